"""Structured fixes: one error, named as an operator argument or as a CLI flag."""

from __future__ import annotations

import pickle

import pytest

from airflow_milvus.errors import (
    Fix,
    MilvusInputError,
    MilvusProviderError,
    render_fixes,
)

AMBIGUOUS = [
    Fix("field_name", flag="-f FIELD", purpose="to drop one"),
    Fix("index_name", flag="-i INDEX", purpose="to drop one"),
    Fix("drop_all", True, flag="--all", purpose="to drop them all"),
]
IF_EXISTS = [
    Fix("if_exists", "replace", flag="--if-exists replace", purpose="to rebuild it"),
    Fix("if_exists", "skip", flag="--if-exists skip", purpose="to keep it"),
]


@pytest.mark.parametrize(
    ("fixes", "style", "sentence"),
    [
        (AMBIGUOUS, "argument", "Give field_name or index_name to drop one, or set drop_all=True to drop them all."),
        (AMBIGUOUS, "flag", "Pass -f FIELD or -i INDEX to drop one, or pass --all to drop them all."),
        (IF_EXISTS, "argument", "Set if_exists='replace' to rebuild it, or set if_exists='skip' to keep it."),
        (IF_EXISTS, "flag", "Pass --if-exists replace to rebuild it, or pass --if-exists skip to keep it."),
        ([Fix("missing_collection_ok", True, purpose="to skip it")], "argument", "Set missing_collection_ok=True to skip it."),
        ([Fix("missing_collection_ok", True, purpose="to skip it")], "flag", ""),  # the CLI has no such flag
        ([Fix("release_if_loaded", True)], "argument", "Set release_if_loaded=True."),
        ([], "argument", ""),
    ],
)
def test_render_fixes(fixes, style, sentence):
    assert render_fixes(fixes, style) == sentence


def test_error_text_names_fixes_as_arguments_and_renders_flags_on_request():
    err = MilvusInputError("Collection 'books' has 2 indexes (vec, year).", fixes=AMBIGUOUS)
    assert err.facts == "Collection 'books' has 2 indexes (vec, year)."
    assert str(err) == "Collection 'books' has 2 indexes (vec, year). Give field_name or index_name to drop one, or set drop_all=True to drop them all."
    assert err.render("flag") == "Collection 'books' has 2 indexes (vec, year). Pass -f FIELD or -i INDEX to drop one, or pass --all to drop them all."


def test_error_without_fixes_is_its_message():
    err = MilvusProviderError("Alias 'live' points at 'b', not at 'a'.")
    assert str(err) == err.render("flag") == err.render("argument") == "Alias 'live' points at 'b', not at 'a'."
    assert err.fixes == ()


def test_fix_only_for_operators_leaves_the_facts_at_a_shell():
    err = MilvusInputError("Collection 'x' does not exist. Check the name.", fixes=[Fix("missing_collection_ok", True, purpose="to skip it")])
    assert str(err).endswith("Check the name. Set missing_collection_ok=True to skip it.")
    assert err.render("flag") == "Collection 'x' does not exist. Check the name."


def test_error_survives_pickling_with_its_text():
    # Airflow may pickle a task's exception across processes: the rendered text must survive.
    err = pickle.loads(pickle.dumps(MilvusInputError("Bad.", fixes=[Fix("drop_all", True)])))
    assert isinstance(err, MilvusInputError) and str(err) == "Bad. Set drop_all=True."
