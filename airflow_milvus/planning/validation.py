"""Input validation and coercion: names, globs, params, and templated booleans/seconds.

Pure functions only. Templates, the UI and XComs hand values over as text; these turn them
into what the operators need, or raise ``MilvusInputError`` naming the value and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_milvus.errors import MilvusInputError

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_NAME_LENGTH = 255
GLOB_CHARS = frozenset("*?[")


def validate_name(value: Any, what: str) -> str:
    """Return ``value`` if it is a valid Milvus collection/field/index name, else raise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MilvusInputError(f"{what} is empty: give the name of an existing {what.split()[0]}.")
    if not isinstance(value, str):
        raise MilvusInputError(
            f"{what} must be a string, got {type(value).__name__} {value!r}; "
            "check the template or XCom that provides it."
        )
    if len(value) > MAX_NAME_LENGTH:
        raise MilvusInputError(
            f"{what} {value[:40]!r}… is {len(value)} characters long; Milvus allows at most "
            f"{MAX_NAME_LENGTH}."
        )
    if not _NAME_RE.match(value):
        raise MilvusInputError(
            f"{what} {value!r} is not a valid Milvus name: use letters, digits and underscores, "
            "starting with a letter or underscore."
        )
    return value


def validate_stored_name(value: Any, what: str) -> str:
    """Return ``value`` if Milvus could have stored it as a name, else raise.

    For names that come from Milvus (listings, snapshots, a drop's result), never stricter than
    the server: Milvus (2.3.5 measured) trims spaces before its own check and stores the name
    untrimmed (``"vec_idx "``, ``" year_idx"``), so the trimmed name is what is checked. Names
    typed as arguments get ``validate_name``."""
    if not isinstance(value, str):
        raise MilvusInputError(
            f"{what} must be a string, got {type(value).__name__} {value!r}; check the template or "
            "XCom that provides it (pass the drop operator's output unchanged)."
        )
    if value and not value.strip():  # Milvus 2.3.5 stores a name of spaces too
        return value
    validate_name(value.strip(), what)
    return value


def is_glob(name: str) -> bool:
    return any(c in GLOB_CHARS for c in name)


def parse_params(params: Any, what: str = "params", example: str = '{"M": 16, "efConstruction": 200}') -> dict[str, Any]:
    """Params (index build params by default) from a dict or a JSON object string."""
    if params is None or params == "":
        return {}
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError as exc:
            raise MilvusInputError(
                f"{what} {params!r} is not valid JSON ({exc.msg} at char {exc.pos}); "
                f"write it as a JSON object, e.g. {example}."
            ) from None
    if not isinstance(params, Mapping):
        raise MilvusInputError(
            f"{what} must be a dict or a JSON object, got {type(params).__name__} {params!r}."
        )
    return {str(k): v for k, v in params.items()}


def as_bool(value: Any, what: str) -> bool:
    """A real bool from a bool or a string (templates and the UI render booleans as text)."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise MilvusInputError(f"{what} = {value!r} is not a boolean; use true or false.")


def as_seconds(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MilvusInputError(f"{what} = {value!r} is not a number of seconds.") from None
    if number <= 0:
        raise MilvusInputError(f"{what} = {value!r} must be greater than 0 seconds.")
    return number


def is_unset(value: Any) -> bool:
    """Whether an optional templated field is unset: an unset template renders None as "None" or ""."""
    return value is None or (isinstance(value, str) and value in ("", "None"))


def as_int(value: Any, what: str, low: int, high: int | None = None) -> int:
    """A whole number within [low, high] from an int or its text (templates render numbers as text)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = value if isinstance(value, int) else int(str(value).strip())
    except (TypeError, ValueError):
        raise MilvusInputError(f"{what} = {value!r} is not a whole number.") from None
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise MilvusInputError(f"{what} = {value!r} must be {bound}.")
    return number
