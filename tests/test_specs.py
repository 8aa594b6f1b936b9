"""Pure decision logic: specs, names, params, release rules (incl. Milvus 2.6's relaxed rules)."""

from __future__ import annotations

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.planning.rules import build_outcome, needs_release, parse_version
from airflow_milvus.planning.specs import (
    check_rebuildable,
    normalize_spec,
    same_index,
    spec_from_description,
    specs_from_input,
    stored_request,
)
from airflow_milvus.planning.validation import parse_params, validate_name, validate_stored_name

VEC = {"collection_name": "c", "field_name": "vec", "index_name": "vec", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 8}}
SCALAR = {"collection_name": "c", "field_name": "year", "index_name": "year", "index_type": "STL_SORT", "metric_type": None, "params": {}}


@pytest.mark.parametrize(
    ("specs", "state", "version", "expected"),
    [
        ([VEC], "Loaded", "v2.3.5-lite", True),
        ([SCALAR], "Loaded", "v2.3.5", True),  # before 2.6 every drop needs a release
        ([SCALAR], "Loaded", "v2.6.0", False),  # 2.6 drops scalar indexes while loaded
        ([SCALAR], "Loaded", "2.6.3", False),
        ([VEC], "Loaded", "v2.6.0", True),  # vector indexes still need a release
        ([SCALAR, VEC], "Loaded", "v2.6.1", True),
        ([VEC], "NotLoad", "v2.3.5", False),
        ([VEC], "Loading", "v2.3.5", True),
        ([SCALAR], "Loaded", "milvus_lite-3.2.2", True),  # Lite refuses any drop while loaded
        ([], "Loaded", "v2.3.5", False),  # nothing to drop, nothing to release
        ([{**SCALAR, "index_type": "AUTOINDEX"}], "Loaded", "v2.6.0", False),
        ([{**VEC, "index_type": "AUTOINDEX"}], "Loaded", "v2.6.0", True),  # metric says vector
    ],
)
def test_needs_release(specs, state, version, expected):
    assert needs_release(specs, state, version) is expected
    reads = []
    assert needs_release(specs, state, lambda: reads.append(version) or version) is expected
    # The version costs an RPC: read only for scalar indexes on a loaded collection.
    scalar_only = bool(specs) and not any(s["metric_type"] or s["index_type"] == "HNSW" for s in specs)
    assert reads == ([version] if scalar_only and state in ("Loaded", "Loading") else [])


def test_parse_version():
    assert parse_version("v2.3.5-lite") == (2, 3, 5)
    assert parse_version("2.6") == (2, 6)
    assert parse_version("milvus_lite-3.2.2") == (0,)


def test_spec_from_server_description_restores_types():
    desc = {"M": "8", "efConstruction": "64", "metric_type": "L2", "index_type": "HNSW", "field_name": "vec",
            "index_name": "vec_idx", "total_rows": 100, "indexed_rows": 100, "pending_index_rows": 0, "state": "Finished"}
    assert spec_from_description("c", desc) == {
        "collection_name": "c", "field_name": "vec", "index_name": "vec_idx", "index_type": "HNSW",
        "metric_type": "L2", "params": {"M": 8, "efConstruction": 64}}


def test_spec_from_lite_description_maps_none_metric():
    desc = {"index_type": "INVERTED", "metric_type": "NONE", "field_name": "tag", "index_name": "tag", "state": "Finished"}
    assert spec_from_description("c", desc)["metric_type"] is None
    assert spec_from_description("c", desc)["params"] == {}


def test_spec_from_nested_params():
    desc = {"index_type": "HNSW", "metric_type": "IP", "field_name": "v", "index_name": "v", "params": {"M": 16}}
    assert spec_from_description("c", desc)["params"] == {"M": 16}


def test_same_index():
    assert same_index(VEC, {**VEC, "index_name": "other"})
    assert not same_index(VEC, {**VEC, "metric_type": "IP"})
    assert not same_index(VEC, {**VEC, "params": {"M": 16}})
    assert same_index({**VEC, "params": {}}, {**VEC, "params": {"M": 16}})  # Lite reports no params
    assert same_index({**VEC, "params": {"M": "8"}}, VEC)


def test_specs_from_drop_result_includes_pending_and_dedupes():
    result = {"dropped": [VEC], "pending_rebuild": [SCALAR, VEC], "collections": {}, "dry_run": False}
    assert specs_from_input(result) == [VEC, SCALAR]
    assert specs_from_input([VEC]) == [VEC]
    assert specs_from_input(VEC) == [VEC]
    assert specs_from_input('[{"collection_name": "c", "field_name": "vec", "index_type": "FLAT", "metric_type": "L2"}]')[0]["index_type"] == "FLAT"


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([{"collection_name": "c"}], "lacks field_name, index_type"),
        (["not a dict"], "must be a dict"),
        ({"dropped": "x"}, "'dropped' is not a list"),
        (42, "must be a list"),
        ("{nope", "not JSON"),
        ([{**VEC, "params": "{bad json"}], "not valid JSON"),
        ([{**VEC, "metric_type": 3}], "metric_type must be a string"),
        ([{**VEC, "collection_name": "a" * 256}], "at most 255"),
        ([{**VEC, "index_name": 5}], "must be a string"),
        ([{**VEC, "stored_params": {"nlist": 1024}}], "stored_params must map keys to strings"),
    ],
)
def test_specs_from_bad_input(bad, match):
    with pytest.raises(MilvusInputError, match=match):
        specs_from_input(bad)


@pytest.mark.parametrize(
    ("name", "match"),
    [(None, "empty"), ("", "empty"), ("  ", "empty"), (5, "must be a string"), ("a" * 256, "at most 255"),
     ("1abc", "not a valid"), ("bad'name", "not a valid"), ("a or 1==1", "not a valid"), ("книги", "not a valid")],
)
def test_validate_name_rejects(name, match):
    with pytest.raises(MilvusInputError, match=match):
        validate_name(name, "collection name")


def test_validate_name_accepts():
    assert validate_name("_Books_2024", "collection name") == "_Books_2024"


# Names as Milvus 2.3.5 stored them: it trims before its own check and keeps them untrimmed.
STORED_NAMES = ["vec_idx ", " year_idx", " ", "\t", "a" * 255 + " "]


@pytest.mark.parametrize("name", STORED_NAMES)
def test_names_from_milvus_are_held_to_what_milvus_takes(name):
    assert validate_stored_name(name, "index name") == name
    spec = {**VEC, "index_name": name}
    assert specs_from_input({"dropped": [spec]})[0]["index_name"] == name
    check_rebuildable([spec])
    with pytest.raises(MilvusInputError, match="not a valid Milvus name|at most 255|is empty"):
        validate_name(name, "index name")  # a name typed as an argument stays strict


def test_explicit_spec_names_stay_strict():
    with pytest.raises(MilvusInputError, match="not a valid Milvus name"):
        normalize_spec({**VEC, "index_name": "vec_idx "}, "index")


def test_check_rebuildable_names_the_index_and_the_fix():
    with pytest.raises(MilvusInputError, match=r"Index 'v' on c.vec could not be rebuilt .*nothing was dropped.*index_name") as info:
        check_rebuildable([VEC, {**VEC, "index_name": "v", "params": "[1]"}])
    assert "-i INDEX" in info.value.render("flag")


# DescribeIndex pairs as the real server stored them, per client (tests/test_interop.py checks them live).
ORM_VEC = {"index_type": "IVF_FLAT", "metric_type": "L2", "params": '{"nlist":1024}'}
ORM_SCALAR = {"index_type": "STL_SORT", "metric_type": ""}
CLIENT_VEC = {"index_type": "HNSW", "metric_type": "L2", "M": "8", "efConstruction": "64"}


@pytest.mark.parametrize("stored", [ORM_VEC, ORM_SCALAR, CLIENT_VEC], ids=["nested", "empty-metric", "flat"])
def test_layout_survives_xcom_and_rebuild(stored):
    import json

    spec = spec_from_description("c", {**stored, "field_name": "f", "index_name": "i ", "stored_params": stored})
    assert spec["stored_params"] == stored
    rebuilt = specs_from_input(json.loads(json.dumps({"dropped": [spec]})))[0]  # through XCom
    assert stored_request(rebuilt) == stored
    assert same_index(spec, rebuilt) and same_index(spec_from_description("c", {**stored, "field_name": "f"}), rebuilt)


def test_spec_from_description_reads_both_layouts():
    nested = spec_from_description("c", {**ORM_VEC, "field_name": "v", "index_name": "v"})
    flat = spec_from_description("c", {"index_type": "IVF_FLAT", "metric_type": "L2", "nlist": "1024", "field_name": "v", "index_name": "v"})
    assert nested == flat and nested["params"] == {"nlist": 1024} and "stored_params" not in nested


def test_edited_spec_keeps_the_stored_layout():
    spec = spec_from_description("c", {**ORM_VEC, "field_name": "v", "index_name": "v", "stored_params": ORM_VEC})
    assert stored_request({**spec, "params": {"nlist": 64}}) == {"index_type": "IVF_FLAT", "metric_type": "L2", "params": '{"nlist":64}'}
    flat = spec_from_description("c", {**CLIENT_VEC, "field_name": "v", "stored_params": CLIENT_VEC})
    assert stored_request({**flat, "index_type": "HNSW", "params": {"M": 16}}) == {"index_type": "HNSW", "metric_type": "L2", "M": "16"}
    assert stored_request(VEC) is None  # a spec a user wrote: built as before (MilvusClient's flat keys)


def test_parse_params():
    assert parse_params('{"M": 16}') == {"M": 16}
    assert parse_params(None) == {}
    with pytest.raises(MilvusInputError, match="JSON object"):
        parse_params("[1, 2]")


def test_normalize_spec_defaults():
    spec = normalize_spec({"collection_name": "c", "field_name": "v", "index_type": "FLAT", "metric_type": "L2"})
    assert spec == {"collection_name": "c", "field_name": "v", "index_name": None, "index_type": "FLAT", "metric_type": "L2", "params": {}}


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ({"state": "Finished", "pending_index_rows": 0}, "done"),
        ({"state": "Finished", "pending_index_rows": 5}, "pending"),
        ({"state": "InProgress", "pending_index_rows": 5}, "pending"),
        ({"state": "Failed"}, "failed"),
        ({"state": "NotExist"}, "missing"),
    ],
)
def test_build_outcome(status, outcome):
    assert build_outcome(status) == outcome
