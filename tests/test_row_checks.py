"""RowChecker as a decision table: pure, no Milvus. Descriptions have the shape
``MilvusClient.describe_collection`` returns (DataType members, params, nullable, default_value)."""

from __future__ import annotations

import numpy as np
import pytest
from pymilvus import DataType

from airflow_milvus.imports.rows import RowChecker, value_problem


def field(name, kind, **extra):
    params = {k: extra.pop(k) for k in ("dim", "max_length") if k in extra}
    return {"name": name, "type": kind, "params": params, "description": "", "field_id": 0, **extra}


BOOKS = {
    "collection_name": "books",
    "auto_id": False,
    "enable_dynamic_field": False,
    "fields": [
        field("id", DataType.INT64, is_primary=True),
        field("vec", DataType.FLOAT_VECTOR, dim=4),
        field("title", DataType.VARCHAR, max_length=8),
        field("year", DataType.INT32),
        field("price", DataType.DOUBLE),
        field("in_print", DataType.BOOL),
        field("note", DataType.VARCHAR, max_length=64, nullable=True),
        field("shelf", DataType.INT64, default_value="int_data: 1"),  # pymilvus shows a protobuf value
        field("bits", DataType.BINARY_VECTOR, dim=16, nullable=True),
    ],
}
GOOD = {"id": 1, "vec": [0.1, 0.2, 0.3, 0.4], "title": "Dune", "year": 1965, "price": 9, "in_print": True}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({}, None),
        ({"note": None, "bits": None}, None),  # nullable fields may be None
        ({"note": "signed", "shelf": 3}, None),
        ({"price": 9.5, "vec": np.zeros(4, dtype=np.float32)}, None),  # numpy vectors and floats
        ({"vec": (1, 2, 3, 4)}, None),  # any sized sequence of numbers
        ({"bits": b"\x00\xff"}, None),
        ({"vec": [0.1, 0.2, 0.3]}, "field 'vec': vector has dimension 3, the collection expects 4"),
        ({"vec": "0.1,0.2,0.3,0.4"}, "field 'vec': expected a vector (list of numbers), got str"),
        ({"vec": 0.5}, "field 'vec': expected a vector (list of numbers), got float"),
        ({"vec": ["a", "b", "c", "d"]}, "field 'vec': vector holds str values, expected numbers"),
        ({"year": "1965"}, "field 'year': expected an integer (INT32), got str '1965'"),
        ({"year": True}, "field 'year': expected an integer (INT32), got bool True"),
        ({"year": 1965.0}, "field 'year': expected an integer (INT32), got float 1965.0"),
        ({"price": "9"}, "field 'price': expected a number (DOUBLE), got str '9'"),
        ({"price": False}, "field 'price': expected a number (DOUBLE), got bool False"),
        ({"in_print": 1}, "field 'in_print': expected a bool, got int 1"),
        ({"title": 42}, "field 'title': expected a string, got int 42"),
        ({"title": "Children of Dune"}, "field 'title': string of 16 characters exceeds max_length 8; shorten it"),
        ({"bits": b"\x00"}, "field 'bits': binary vector has 8 bits, the collection expects 16"),
        ({"colour": "red"}, "has field 'colour', which the collection does not have (fields: id, vec, title, year, "
                            "price, in_print, note, shelf, bits); remove it, or enable the dynamic field"),
    ],
)
def test_one_row_against_the_books_schema(change, problem):
    assert RowChecker(BOOKS, "upsert").problem({**GOOD, **change}) == problem


@pytest.mark.parametrize("mode", ["insert", "upsert"])
@pytest.mark.parametrize(
    ("drop", "missing"), [(("year",), "year"), (("id", "title"), "id, title"), (("note", "shelf", "bits"), None)]
)
def test_required_fields_are_those_neither_nullable_nor_defaulted(mode, drop, missing):
    row = {k: v for k, v in GOOD.items() if k not in drop}
    problem = RowChecker(BOOKS, mode).problem(row)
    if missing is None:
        assert problem is None
    else:
        assert problem == f"lacks field(s) {missing}; every row needs them (they are neither nullable nor have a default)"


@pytest.mark.parametrize("row", [[1, [0.1] * 4], "id=1", None, 7])
def test_a_row_that_is_not_a_dict_is_named_by_its_type(row):
    assert RowChecker(BOOKS, "insert").problem(row) == f"is a {type(row).__name__}, not a dict of field values"


@pytest.mark.parametrize("where", ["collection", "field"])
def test_auto_id_primary_key_is_generated_on_insert_and_required_on_upsert(where):
    fields = [field("pk", DataType.VARCHAR, max_length=16, is_primary=True, auto_id=where == "field"),
              field("vec", DataType.FLOAT_VECTOR, dim=2)]  # fmt: skip
    schema = {"auto_id": where == "collection", "fields": fields}
    vec = {"vec": [0.0, 1.0]}
    assert RowChecker(schema, "insert").problem(vec) is None
    assert RowChecker(schema, "insert").problem({"pk": "a", **vec}) == "sets 'pk', which Milvus generates (auto_id); leave it out"
    assert RowChecker(schema, "upsert").problem({"pk": "a", **vec}) is None
    assert RowChecker(schema, "upsert").problem(vec).startswith("lacks field(s) pk;")


def test_dynamic_field_accepts_unknown_keys_of_any_type_but_still_checks_schema_fields():
    schema = {**BOOKS, "enable_dynamic_field": True}
    checker = RowChecker(schema, "upsert")
    assert checker.problem({**GOOD, "colour": "red", "tags": ["a"], "meta": {"k": 1}}) is None
    assert checker.problem({**GOOD, "colour": "red", "year": "x"}).startswith("field 'year': expected an integer")


def test_function_output_field_is_optional_and_may_not_be_set():
    schema = {"fields": [field("id", DataType.INT64, is_primary=True), field("text", DataType.VARCHAR, max_length=99),
                         field("sparse", DataType.SPARSE_FLOAT_VECTOR, is_function_output=True)]}  # fmt: skip
    checker = RowChecker(schema, "insert")
    assert checker.problem({"id": 1, "text": "hello"}) is None
    assert checker.problem({"id": 1, "text": "hello", "sparse": {3: 0.5}}) == (
        "sets 'sparse', which a collection function computes; leave it out"
    )


def test_types_given_as_text_work_like_datatype_members():
    schema = {"fields": [{"name": "id", "type": "Int64", "is_primary": True}, {"name": "v", "type": "FLOAT_VECTOR", "params": {"dim": "2"}}]}
    checker = RowChecker(schema, "insert")
    assert checker.problem({"id": 1, "v": [1.0, 2.0]}) is None
    assert checker.problem({"id": "1", "v": [1.0]}) == "field 'id': expected an integer (INT64), got str '1'"


@pytest.mark.parametrize(
    ("kind", "value"),
    [("JSON", {"any": ["thing"]}), ("ARRAY", [1, 2]), ("SPARSE_FLOAT_VECTOR", {1: 0.5}), ("BINARY_VECTOR", [0, 1])],
)
def test_types_it_does_not_check_pass_for_milvus_to_judge(kind, value):
    assert value_problem(kind, {"dim": 8}, value) is None


def test_long_values_are_cut_in_the_message():
    problem = value_problem("INT64", {}, "9" * 100)
    assert problem == f"expected an integer (INT64), got str '{'9' * 39}"
