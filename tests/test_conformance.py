"""The package against Airflow's own rules for providers; no Milvus, no Airflow services.

Each test derives what it checks from the files on disk, so a new hook, operator, sensor or
trigger module is held to the same rules without anyone adding it here:

- provider info: Airflow's provider check (``scripts/in_container/run_provider_yaml_files_check.py``
  in apache/airflow) wants every ``.py`` module under a ``hooks/``, ``operators/``, ``sensors/``,
  ``triggers/`` or ``bundles/`` folder listed under that key, ``__init__.py`` excepted and private
  or base modules included, and nothing else; each listed module importable without a provider
  deprecation warning; the integration names declared; and the whole validating against the
  ``provider_info.schema.json`` the installed Airflow ships;
- operator constructors: Airflow's ``validate_operators_init`` prek check (``scripts/ci/prek/`` in
  apache/airflow; contributing-docs/05_pull_requests.rst) wants each template field assigned
  plainly (``self.x = x``, ``self.x = x or default``, or forwarded as ``super().__init__(x=x)``)
  and not read otherwise in ``__init__``: templates render after the constructor, so a check
  there sees the template, not the value. Here it is applied to every ``__init__`` in an
  operator's or sensor's MRO that this package defines (mixins too), with the class's full,
  inherited ``template_fields`` except those a base outside the package templates;
- the connection form: the same fields on Airflow 3.1 (the hook's ``get_connection_form_widgets``)
  and on 3.2+ (the provider info's ``conn-fields``), each converted by the installed Airflow's
  own UI code.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.resources
import inspect
import json
import pkgutil
import sys
import textwrap
import warnings
from pathlib import Path

import jsonschema
import pytest

import airflow_milvus
from airflow_milvus.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR, get_provider_info

PACKAGE = Path(airflow_milvus.__file__).parent
RESOURCE_TYPES = ("hooks", "operators", "sensors", "triggers", "bundles")

# Classes whose constructors break the template-field rule on purpose: {(class, field): why}.
# Each entry must still find its violation (a stale entry fails), as Airflow's exemption list does.
EXEMPTIONS = {
    ("airflow_milvus.operators.ingest.MilvusIngestOperator", "data"): (
        "a row callable and a template are told apart by the kind of argument, which rendering "
        "cannot change (no template renders to a function). Keeping the callable out of the "
        "template field matters: Airflow 3.3 would call it as a template callable, and Airflow "
        "3.1 serializes it with its memory address, so the DAG's hash would change on every parse."
    ),
}


def _module_name(path: Path) -> str:
    return ".".join(("airflow_milvus", *path.relative_to(PACKAGE).with_suffix("").parts))


def _all_modules() -> list[str]:
    return sorted(
        ["airflow_milvus"]
        + [m.name for m in pkgutil.walk_packages([str(PACKAGE)], "airflow_milvus.") if not m.name.endswith("__main__")]
    )


def _modules_on_disk(resource_type: str) -> set[str]:
    """Airflow's rule: every .py file in a folder named after the resource type, at any depth."""
    return {
        _module_name(path)
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and resource_type in path.relative_to(PACKAGE).parts[:-1]
    }


def _declared(info: dict, resource_type: str) -> list[str]:
    return [module for entry in info.get(resource_type, []) for module in entry["python-modules"]]


# ---------------------------------------------------------------------------------- provider info
@pytest.mark.parametrize("resource_type", RESOURCE_TYPES)
def test_provider_info_lists_every_module(resource_type):
    declared = _declared(get_provider_info(), resource_type)
    assert len(declared) == len(set(declared)), f"{resource_type}: a module is listed twice: {declared}"
    on_disk = _modules_on_disk(resource_type)
    assert set(declared) == on_disk, (
        f"get_provider_info()[{resource_type!r}] must list exactly the modules in {resource_type}/ folders. "
        f"Missing: {sorted(on_disk - set(declared))}; listed but not on disk: {sorted(set(declared) - on_disk)}"
    )


def test_listed_modules_import_without_deprecation_warnings():
    from airflow.exceptions import AirflowProviderDeprecationWarning

    info = get_provider_info()
    integrations = {i["integration-name"] for i in info["integrations"]}
    for resource_type in RESOURCE_TYPES:
        entries = info.get(resource_type, [])
        names = [entry["integration-name"] for entry in entries]
        assert len(names) == len(set(names)), f"{resource_type}: one entry per integration, got {names}"
        assert set(names) <= integrations, f"{resource_type}: undeclared integration in {names}"
        for module in _declared(info, resource_type):
            assert module.startswith("airflow_milvus."), module
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                importlib.import_module(module)
            deprecated = [str(w.message) for w in caught if issubclass(w.category, AirflowProviderDeprecationWarning)]
            assert not deprecated, f"{module}: {deprecated}"
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        assert module.startswith("airflow_milvus.") and inspect.isclass(getattr(importlib.import_module(module), name))


def test_provider_info_validates_against_the_installed_airflow_schema():
    schema_file = importlib.resources.files("airflow") / "provider_info.schema.json"
    assert schema_file.is_file(), "the installed Airflow ships provider_info.schema.json"
    jsonschema.validate(get_provider_info(), json.loads(schema_file.read_text()))


def test_every_module_with_code_has_postponed_annotations():
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        body = tree.body[1:] if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(
            tree.body[0].value, ast.Constant) and isinstance(tree.body[0].value.value, str) else tree.body
        has_future = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                         and any(alias.name == "annotations" for alias in node.names) for node in body)
        if body and not has_future:
            missing.append(str(path.relative_to(PACKAGE)))
    assert not missing, f"add `from __future__ import annotations` to {missing}"


# ---------------------------------------------------------------------------------- operator constructors
def _operator_classes() -> list[type]:
    from airflow.sdk import BaseOperator

    found: dict[str, type] = {}
    for module in _all_modules():
        for _, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if issubclass(cls, BaseOperator) and cls.__module__.startswith("airflow_milvus"):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


def _init_node(cls: type) -> ast.FunctionDef | None:
    """The AST of ``cls.__init__`` when ``cls`` itself defines it."""
    if "__init__" not in cls.__dict__:
        return None
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    class_node = next(node for node in tree.body if isinstance(node, ast.ClassDef))
    return next((n for n in class_node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _kept_value(value: ast.expr, field: str) -> ast.expr:
    """``x or default`` and ``x if x [is not None] else default`` keep ``x``: the sanctioned defaulting."""
    if isinstance(value, ast.BoolOp) and isinstance(value.op, ast.Or):
        return value.values[0]
    if isinstance(value, ast.IfExp) and isinstance(value.body, ast.Name) and value.body.id == field:
        test = value.test
        if (isinstance(test, ast.Name) and test.id == field) or _is_none_check(test, field):
            return value.body
    return value


def _is_none_check(node: ast.AST, field: str | None = None) -> bool:
    return (
        isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Is, ast.IsNot))
        and isinstance(node.comparators[0], ast.Constant) and node.comparators[0].value is None
        and isinstance(node.left, ast.Name) and (field is None or node.left.id == field)
    )


def _check_init(init: ast.FunctionDef, fields: set[str], source_lines: list[str]) -> tuple[set[str], list[tuple[str, str]]]:
    """(fields assigned plainly at the top level of ``__init__``, the (field, problem)s found)."""
    sanctioned: set[int] = set()  # ids of Name nodes that are a sanctioned read of a field
    assigned: set[str] = set()
    problems: list[tuple[str, str]] = []

    def line(node: ast.AST) -> str:
        return source_lines[node.lineno - 1].strip() if node.lineno <= len(source_lines) else ""

    def pairs(stmt: ast.stmt):
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple):
                    yield from zip(target.elts, stmt.value.elts)
                else:
                    yield target, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            yield stmt.target, stmt.value

    top_level = {id(stmt) for stmt in init.body}
    for node in ast.walk(init):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target, value in pairs(node):
                name = _self_attr(target) or (target.id if isinstance(target, ast.Name) else None)
                if name not in fields:
                    continue
                kept = _kept_value(value, name)
                if isinstance(kept, ast.Name) and kept.id == name:
                    sanctioned.add(id(kept))
                    for sub in ast.walk(value):  # the field read in the ternary's own test
                        if isinstance(sub, ast.Name) and sub.id == name and value is not kept:
                            sanctioned.add(id(sub))
                    if _self_attr(target) and id(node) in top_level:
                        assigned.add(name)
                elif _self_attr(target):
                    problems.append((name, f"line {node.lineno}: self.{name} is not assigned plainly: {line(node)}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__" \
                and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name) \
                and node.func.value.func.id == "super":
            for keyword in node.keywords:
                if keyword.arg in fields and isinstance(keyword.value, ast.Name) and keyword.value.id == keyword.arg:
                    sanctioned.add(id(keyword.value))
                    assigned.add(keyword.arg)
        elif _is_none_check(node):
            sanctioned.add(id(node.left))  # whether it was passed at all: only __init__ can tell

    arguments = init.args
    bound = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    bound |= {n.id for n in ast.walk(init) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    in_defaults = {id(n) for d in (*arguments.defaults, *arguments.kw_defaults) if d is not None for n in ast.walk(d)}
    for node in ast.walk(init):
        if id(node) in in_defaults or id(node) in sanctioned:
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in fields and node.id in bound:
            problems.append((node.id, f"line {node.lineno}: logic on template field {node.id!r} before rendering: {line(node)}"))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and _self_attr(node) in fields:
            problems.append((node.attr, f"line {node.lineno}: reads self.{node.attr} before rendering: {line(node)}"))
    return assigned, problems


def _constructor_findings(cls: type) -> dict[tuple[str, str], list[str]]:
    """{(class defining the __init__, field): problems} over every __init__ of the package in cls's MRO."""
    # Fields a base class outside the package templates (PythonOperator's op_args and op_kwargs under
    # @task.milvus) follow that framework's conventions: the rule covers the fields this package adds.
    outside = {f for klass in cls.__mro__ if not klass.__module__.startswith("airflow_milvus")
               for f in getattr(klass, "template_fields", ())}
    fields = set(cls.template_fields) - outside
    findings: dict[tuple[str, str], list[str]] = {}
    assigned: set[str] = set()
    for klass in cls.__mro__:
        init = _init_node(klass) if klass.__module__.startswith("airflow_milvus") else None
        if init is None:
            continue
        source_lines = textwrap.dedent(inspect.getsource(klass)).splitlines()
        done, problems = _check_init(init, fields, source_lines)
        assigned |= done
        owner = f"{klass.__module__}.{klass.__qualname__}"
        for field, problem in problems:
            findings.setdefault((owner, field), []).append(problem)
    for field in sorted(fields - assigned):
        owner = f"{cls.__module__}.{cls.__qualname__}"
        findings.setdefault((owner, field), []).append(
            f"template field {field!r} is never assigned plainly (self.{field} = {field}) in an __init__ of its MRO")
    return findings


OPERATORS = _operator_classes()


def test_the_constructor_check_finds_the_operators():
    names = {cls.__name__ for cls in OPERATORS}
    assert {"MilvusIngestOperator", "MilvusIndexBuiltSensor", "MilvusLoadCollectionOperator"} <= names, names


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda cls: cls.__name__)
def test_template_fields_are_assigned_plainly_in_init(cls):
    findings = {key: problems for key, problems in _constructor_findings(cls).items() if key not in EXEMPTIONS}
    assert not findings, "\n".join(f"{owner} ({field}): {p}" for (owner, field), ps in findings.items() for p in ps)


def test_exemptions_are_not_stale():
    found: set[tuple[str, str]] = set()
    for cls in OPERATORS:
        found |= set(_constructor_findings(cls))
    assert set(EXEMPTIONS) <= found, f"remove fixed exemptions: {sorted(set(EXEMPTIONS) - found)}"


def test_the_constructor_check_can_fail():
    """The check above catches logic on a template field, a transformed assignment and a missing one."""
    from airflow.sdk import BaseOperator

    namespace: dict = {"BaseOperator": BaseOperator}
    source = textwrap.dedent(
        '''
        class Probe(BaseOperator):
            template_fields = ("a", "b", "c", "d", "e")

            def __init__(self, *, a, b, c, d=None, e=None, **kwargs):
                super().__init__(**kwargs)
                if not isinstance(a, dict):
                    raise ValueError(a)
                self.a = a
                self.b = b.strip()
                self.d = d if d is not None else {}
                self.e = e or []
        '''
    )
    exec(compile(source, "<probe>", "exec"), namespace)
    probe = namespace["Probe"]
    probe.__module__ = "airflow_milvus.probe"
    original = inspect.getsource
    try:
        inspect.getsource = lambda obj: source if obj is probe else original(obj)
        findings = _constructor_findings(probe)
    finally:
        inspect.getsource = original
    assert sorted(field for _, field in findings) == ["a", "b", "c"], findings


@pytest.mark.parametrize("cls", [c for c in OPERATORS if not c.__name__.startswith("_")], ids=lambda cls: cls.__name__)
def test_renderers_name_template_fields(cls):
    assert set(getattr(cls, "template_fields_renderers", {})) <= set(cls.template_fields)


def test_a_templated_asset_extra_is_checked_after_rendering():
    from airflow_milvus.errors import MilvusInputError
    from airflow_milvus.operators.collection import MilvusLoadCollectionOperator

    op = MilvusLoadCollectionOperator(task_id="load", collection_name="x", asset_extra="{{ params.extra }}")
    op.asset_extra = "recall"  # what a template rendered to text leaves
    with pytest.raises(MilvusInputError, match="asset_extra='recall' is not a dict"):
        op.coerce_rendered_fields()
    op.asset_extra = {"recall": 0.97}
    op.coerce_rendered_fields()


# ---------------------------------------------------------------------------------- connection form
def _form_on_airflow_3_1() -> tuple[dict, dict]:
    """The extra fields and field behaviour as Airflow 3.1's UI gets them: from the hook's methods,
    through the installed Airflow's own wtforms/flask_appbuilder stand-ins and converter."""
    from unittest import mock

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    from airflow_milvus.hooks.milvus import MilvusHook

    class Hook31Only:  # what ProvidersManager asks of a hook on 3.1, inside HookMetaService's mocks
        hooks: dict = {}
        _instance = None  # 3.3's HookMetaService resets the real singleton's; nothing to reset here

        def initialized(self) -> bool:
            return False

        @property
        def connection_form_widgets(self):
            from airflow.providers_manager import ConnectionFormWidgetInfo

            return {
                f"extra__milvus__{name}": ConnectionFormWidgetInfo("MilvusHook", "airflow-milvus", field, name, False)
                for name, field in MilvusHook.get_connection_form_widgets().items()
            }

        @property
        def field_behaviours(self):
            return {"milvus": MilvusHook.get_ui_field_behaviour()}

    import airflow.api_fastapi.core_api.services.ui.connections as ui_connections

    stand_ins = ("wtforms", "wtforms.csrf", "wtforms.fields", "wtforms.fields.simple", "wtforms.validators",
                 "flask_babel", "flask_appbuilder", "flask_appbuilder.fieldwidgets")
    absent = [name for name in stand_ins if name not in sys.modules]
    with contextlib.ExitStack() as stack:
        # Airflow leaves its stand-ins in sys.modules; later hook imports in this process must not see them.
        stack.callback(lambda: [sys.modules.pop(name, None) for name in absent])
        stack.enter_context(mock.patch("airflow.providers_manager.ProvidersManager", Hook31Only))
        if hasattr(ui_connections, "ProvidersManager"):  # imported at module level there from 3.2
            stack.enter_context(mock.patch.object(ui_connections, "ProvidersManager", Hook31Only))
        _, widgets, behaviours = HookMetaService._get_hooks_with_mocked_fab()
    return HookMetaService._convert_extra_fields(widgets)["milvus"], behaviours["milvus"]


def _form_on_airflow_3_2() -> tuple[dict, dict]:
    """The same as Airflow 3.2+ builds it from conn-fields and ui-field-behaviour (ProvidersManager's
    ``_to_api_format``: the schema with the label as its title, the default as the value)."""
    fields = {
        name: {"value": d["schema"].get("default"), "schema": {**d["schema"], "title": d["label"]},
               "description": d["description"], "source": None}
        for name, d in CONN_FIELDS.items()
    }
    behaviour = {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}
    return fields, behaviour


def test_connection_form_is_the_same_on_airflow_3_1_and_3_2():
    old_fields, old_behaviour = _form_on_airflow_3_1()
    new_fields, new_behaviour = _form_on_airflow_3_2()
    assert list(old_fields) == list(new_fields) == list(CONN_FIELDS)
    for name, new in new_fields.items():
        old = old_fields[name]
        expected_schema = {k: v for k, v in new["schema"].items() if k != "default"}
        if expected_schema["type"][0] == "number":  # Airflow 3.1's form has no float field: whole seconds
            expected_schema["type"] = ["integer", "null"]
        assert (old["value"], old["description"], old["schema"]) == (new["value"], new["description"], expected_schema), name
    assert old_fields["token"]["schema"]["format"] == "password"
    # Airflow prefixes placeholders of extra fields itself (_ensure_prefix_for_placeholders).
    assert old_behaviour == new_behaviour


def test_airflow_reads_the_form_once_without_deprecation_warnings():
    """3.2+ build the form from conn-fields and skip the hook's methods (deprecated there); 3.1 calls
    the methods only under the UI's stand-ins for wtforms (see the test above)."""
    from importlib.metadata import version

    from airflow.exceptions import AirflowProviderDeprecationWarning
    from airflow.providers_manager import ProvidersManager
    from packaging.version import Version

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager = ProvidersManager()
        hook = manager.hooks["milvus"]
        widgets = sorted(k for k in manager.connection_form_widgets if k.startswith("extra__milvus__"))
        behaviour = manager.field_behaviours.get("milvus")
    assert hook is not None and hook.hook_class_name == "airflow_milvus.hooks.milvus.MilvusHook"
    deprecations = [str(w.message) for w in caught if issubclass(w.category, AirflowProviderDeprecationWarning)]
    assert not [m for m in deprecations if "Milvus" in m], deprecations
    if Version(version("apache-airflow-core")) >= Version("3.2"):
        assert widgets == sorted(f"extra__milvus__{name}" for name in CONN_FIELDS)
        assert behaviour["hidden_fields"] == ["extra"]
