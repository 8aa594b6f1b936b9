"""The index planners as decision tables: what was read from Milvus in, the plan out. No Milvus."""

from __future__ import annotations

import pytest

from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.planning.create import (
    CollectionState,
    CreateOutcome,
    check_fits,
    collections_to_load,
    loaded_before,
    existing_for,
    plan_create,
    poll_targets,
    unindexed_vector_fields,
)
from airflow_milvus.planning.drop import CollectionDrop, DropPlan, plan_collection_drop

VEC = {"collection_name": "c", "field_name": "vec", "index_name": "vec", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 8}}
YEAR = {"collection_name": "c", "field_name": "year", "index_name": "year_idx", "index_type": "STL_SORT", "metric_type": None, "params": {}}
FIELDS = [{"name": "id", "type": "INT64"}, {"name": "vec", "type": "FLOAT_VECTOR"}, {"name": "year", "type": "INT64"}]


def drop(snapshot, **kwargs):
    kwargs.setdefault("load_state", "NotLoad")
    kwargs.setdefault("server_version", "v2.3.5")
    return plan_collection_drop("c", snapshot, **kwargs)


@pytest.mark.parametrize(
    ("snapshot", "asked", "dropped"),
    [
        ([VEC], {}, ["vec"]),  # collection only, one index: dropped without drop_all
        ([VEC, YEAR], {"drop_all": True}, ["vec", "year_idx"]),
        ([VEC, YEAR], {"field_name": "year"}, ["year_idx"]),
        ([VEC, YEAR], {"index_name": "year_idx"}, ["year_idx"]),
        ([VEC, YEAR], {"field_name": "year", "index_name": "year_idx"}, ["year_idx"]),
        ([VEC], {"field_name": "year"}, []),  # already absent: missing_ok (default) makes it done
        ([], {}, []),
    ],
)
def test_drop_targets(snapshot, asked, dropped):
    plan = drop(snapshot, field_names=["id", "vec", "year"], **asked)
    assert [t["index_name"] for t in plan.targets] == dropped
    assert plan.snapshot == snapshot
    assert (plan.note is None) is bool(dropped)  # nothing to drop is logged, not an error


@pytest.mark.parametrize(
    ("snapshot", "asked", "match"),
    [
        ([VEC, YEAR], {}, r"has 2 indexes .*drop_all=True"),  # ambiguous
        ([VEC, YEAR], {"field_name": "vec", "index_name": "year_idx"}, r"name different indexes\. Give field_name or index_name alone\."),
        ([VEC], {"field_name": "nope", "field_names": ["id", "vec"]}, r"Field 'nope' does not exist .*fields: id, vec"),
        ([VEC], {"index_name": "gone", "missing_ok": False}, r"no index named 'gone' \(it has: vec on vec \(HNSW\)\)\. Set missing_ok"),
        ([VEC], {"load_state": "Loaded", "release_if_loaded": False}, r"is Loaded.*release_if_loaded=True"),
    ],
)
def test_drop_refusals(snapshot, asked, match):
    with pytest.raises(MilvusInputError, match=match):
        drop(snapshot, **asked)


@pytest.mark.parametrize(
    ("targets_of", "state", "version", "release", "was_loaded"),
    [
        ([VEC], "Loaded", "v2.3.5", True, True),
        ([VEC], "Loading", "v2.6.1", True, True),  # vector indexes need a release on every version
        ([YEAR], "Loaded", "v2.6.1", False, True),  # 2.6 drops scalar indexes while loaded
        ([YEAR], "Loaded", "milvus_lite-3.2.2", True, True),
        ([VEC], "NotLoad", "v2.3.5", False, False),
    ],
)
def test_drop_release_by_load_state_and_version(targets_of, state, version, release, was_loaded):
    plan = drop(targets_of, load_state=state, server_version=version)
    assert (plan.release, plan.was_loaded) == (release, was_loaded)


@pytest.mark.parametrize(
    ("remembered", "snapshot", "pending", "was_loaded"),
    [
        ([{**VEC, "was_loaded": True}], [YEAR], [VEC], True),  # a failed run released it: still counts as loaded
        ([{**VEC, "was_loaded": False}], [YEAR], [VEC], False),
        ([{**VEC, "was_loaded": True}], [VEC], [], False),  # rebuilt since: nothing pending
        ([], [VEC], [], False),
    ],
)
def test_drop_restores_what_an_earlier_run_dropped(remembered, snapshot, pending, was_loaded):
    plan = drop(snapshot, remembered=remembered, field_name="year", drop_all=True)
    assert plan.pending == pending
    assert plan.was_loaded is was_loaded


def test_drop_plan_xcom_shape():
    vec = drop([VEC], load_state="Loaded")
    empty = CollectionDrop("d", [], [], [YEAR], False, False)
    plan = DropPlan((vec, empty))
    assert plan.to_xcom(dry_run=False) == {
        "dropped": [VEC],
        "collections": {"c": {"was_loaded": True, "released": True}, "d": {"was_loaded": False, "released": False}},
        "dry_run": False,
        "snapshot": {"c": [VEC], "d": []},
        "pending_rebuild": [YEAR],
    }
    dry = plan.to_xcom(dry_run=True)
    assert dry["dry_run"] is True and dry["collections"]["c"]["released"] is False


@pytest.mark.parametrize(
    ("remaining", "lost", "error"),
    [
        ([], [YEAR], None),  # Milvus Lite dropped every index: re-create the other one
        (["year_idx"], [], None),
        (["vec", "year_idx"], None, r"\['vec'\] of 'c' are still present"),
    ],
)
def test_drop_verification(remaining, lost, error):
    plan = drop([VEC, YEAR], field_name="vec")
    if error:
        with pytest.raises(MilvusProviderError, match=error):
            plan.check_dropped(remaining)
    else:
        assert plan.check_dropped(remaining) == lost


OTHER_VEC = {**VEC, "index_type": "FLAT", "params": {}}


@pytest.mark.parametrize(
    ("existing", "if_exists", "action", "kept"),
    [
        ([], "fail", "create", []),
        ([VEC], "fail", "identical", [VEC]),  # identical is success without work, whatever if_exists says
        ([{**VEC, "params": {}}], "replace", "identical", [{**VEC, "params": {}}]),  # Lite reports no params
        ([OTHER_VEC], "skip", "keep", [OTHER_VEC]),
        ([OTHER_VEC], "replace", "replace", [OTHER_VEC]),
    ],
)
def test_create_step(existing, if_exists, action, kept):
    step = plan_create(VEC, existing, if_exists=if_exists)
    assert (step.action, step.existing) == (action, kept)


def test_create_different_index_with_fail_is_refused():
    with pytest.raises(MilvusInputError, match=r"different index .*if_exists='replace'"):
        plan_create(VEC, [OTHER_VEC], if_exists="fail")


@pytest.mark.parametrize(
    ("wanted", "lite", "in_the_way"),
    [
        (VEC, False, [VEC]),
        ({**YEAR, "field_name": "vec", "index_name": "year_idx"}, False, [VEC, YEAR]),  # server: the name is taken too
        ({**YEAR, "field_name": "vec", "index_name": "year_idx"}, True, [VEC]),  # Lite names indexes by field
        ({**YEAR, "field_name": "id", "index_name": None}, False, []),
    ],
)
def test_indexes_in_the_way(wanted, lite, in_the_way):
    assert existing_for(wanted, [VEC, YEAR], lite=lite) == in_the_way


@pytest.mark.parametrize(
    ("spec", "fields", "match"),
    [
        (VEC, None, "Collection 'c' does not exist"),
        ({**VEC, "field_name": "nope"}, FIELDS, r"Field 'nope' does not exist .*fields: id, vec, year"),
        ({**VEC, "field_name": "year"}, FIELDS, "is a vector index, but field c.year is a scalar field"),
        ({**VEC, "metric_type": None}, FIELDS, "needs a metric_type"),
    ],
)
def test_create_refuses_what_milvus_would(spec, fields, match):
    with pytest.raises(MilvusInputError, match=match):
        check_fits(spec, fields)


@pytest.mark.parametrize("spec", [VEC, YEAR, {**VEC, "index_type": "AUTOINDEX", "metric_type": None}])
def test_create_accepts_fitting_specs(spec):
    check_fits(spec, FIELDS)  # raises otherwise


@pytest.mark.parametrize(
    ("specs", "lite", "targets", "unknown"),
    [
        ([VEC], False, [("c", "vec")], []),
        ([YEAR], False, [("c", "year_idx")], []),
        ([YEAR], True, [("c", "year")], []),  # Lite named it after the field
        ([YEAR], None, [], [YEAR]),  # flavour unknown and the name differs from the field's: look it up
        ([{**YEAR, "index_name": None}], False, [], [{**YEAR, "index_name": None}]),
        ([VEC, VEC], None, [("c", "vec")], []),
    ],
)
def test_poll_targets(specs, lite, targets, unknown):
    known, rest = poll_targets(specs, lite=lite)
    assert [(t["collection_name"], t["index_name"]) for t in known] == targets
    assert rest == unknown


DROP_RESULT = {"dropped": [], "collections": {"c": {"was_loaded": True}, "d": {"was_loaded": False}}}


@pytest.mark.parametrize(
    ("outcome", "load", "restore", "specs", "to_load"),
    [
        (CreateOutcome(created=[VEC]), False, True, DROP_RESULT, ["c"]),  # loaded before the drop
        (CreateOutcome(created=[VEC]), False, False, DROP_RESULT, []),
        (CreateOutcome(created=[VEC]), False, True, [VEC], []),  # specs, not a drop result: no load state to restore
        (CreateOutcome(skipped=[{**VEC, "collection_name": "e"}]), True, False, [VEC], ["e"]),
        (CreateOutcome(created=[VEC], reload={"z"}), False, False, [VEC], ["z"]),  # a replace released it
    ],
)
def test_collections_to_load(outcome, load, restore, specs, to_load):
    assert collections_to_load(outcome, load=load, restore_load_state=restore, index_specs=specs) == to_load


def test_create_outcome_survives_deferral():
    outcome = CreateOutcome(created=[VEC], skipped=[YEAR], reload={"c"}, keep_released={"d"})
    assert outcome.to_xcom() == {"created": [VEC], "skipped": [YEAR], "loaded": [], "released": []}
    assert outcome.to_payload() == {
        "result": {"created": [VEC], "skipped": [YEAR], "loaded": [], "released": []},
        "reload": ["c"],
        "keep_released": ["d"],
    }
    assert CreateOutcome.from_payload(outcome.to_payload()) == outcome
    # A trigger deferred by the previous version carries neither "released" nor "keep_released".
    old = {"result": {"created": [VEC], "skipped": [], "loaded": []}, "reload": []}
    assert CreateOutcome.from_payload(old) == CreateOutcome(created=[VEC])


@pytest.mark.parametrize(
    ("specs", "states", "before"),
    [
        ({"collections": {"c": {"was_loaded": False}}}, {"c": CollectionState([], [], "Loaded")}, {"c": False}),
        (None, {"c": CollectionState([], [], "Loaded"), "d": CollectionState([], [], "NotLoad")}, {"c": True, "d": False}),
        (None, {"c": CollectionState([], [])}, {}),  # not read (a server): nothing to put back
    ],
    ids=["the-drop-record-wins", "read-before-create", "unread"],
)
def test_load_state_before_a_create(specs, states, before):
    assert loaded_before(specs, states) == before


@pytest.mark.parametrize(
    ("indexes", "built", "unindexed"),
    [
        ([], [], ["vec"]),
        ([], [VEC], []),
        ([VEC], [], []),
        ([YEAR], [], ["vec"]),
    ],
)
def test_unindexed_vector_fields(indexes, built, unindexed):
    assert unindexed_vector_fields(CollectionState(FIELDS, indexes), built) == unindexed


def test_refusals_name_the_fix_for_each_front_end():
    with pytest.raises(MilvusInputError) as ambiguous:
        drop([VEC, YEAR])
    assert str(ambiguous.value).endswith("Give field_name or index_name to drop one, or set drop_all=True to drop them all.")
    assert ambiguous.value.render("flag").endswith("Pass -f FIELD or -i INDEX to drop one, or pass --all to drop them all.")
    with pytest.raises(MilvusInputError) as conflict:
        plan_create(VEC, [OTHER_VEC], if_exists="fail")
    assert conflict.value.render("flag").endswith("Pass --if-exists replace to rebuild it, or pass --if-exists skip to keep it.")
