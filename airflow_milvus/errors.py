"""Exceptions raised by the provider. Each message names the object and the fix.

An error states facts; when changing an input would resolve it, it also carries one or more
:class:`Fix`. Each front end names the fix in its own words: ``str(error)`` as an operator
argument (``drop_all=True``), the CLI as a flag (``--all``, via ``error.render("flag")``). So
no message text is written for one front end and rewritten for another. Raise one like this::

    raise MilvusInputError(
        f"Collection {name!r} has 2 indexes ({names}).",
        fixes=[
            Fix("field_name", flag="-f FIELD", purpose="to drop one"),
            Fix("index_name", flag="-i INDEX", purpose="to drop one"),
            Fix("drop_all", True, flag="--all", purpose="to drop them all"),
        ],
    )

Operators show "... Give field_name or index_name to drop one, or set drop_all=True to drop
them all."; the CLI "... Pass -f FIELD or -i INDEX to drop one, or pass --all to drop them
all.". A fix with no ``flag`` is left out at a shell (the CLI has no such option).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from airflow.sdk.exceptions import AirflowException

Style = Literal["argument", "flag"]


@dataclass(frozen=True)
class Fix:
    """One change of input that resolves an error.

    :param argument: the operator argument to change, e.g. ``"drop_all"``.
    :param value: the value that resolves it; ``None`` when the argument only needs giving
        (``field_name``: any existing field will do).
    :param flag: the CLI flag doing the same, e.g. ``"--all"`` or ``"-f FIELD"``; ``None``
        when the CLI has no such option.
    :param purpose: what the change does, e.g. ``"to drop them all"``.
    """

    argument: str
    value: Any = None
    flag: str | None = None
    purpose: str = ""

    def phrase(self, style: Style) -> str | None:
        """The fix named for ``style``, without verb or purpose; None if that front end lacks it."""
        if style == "flag":
            return self.flag
        return self.argument if self.value is None else f"{self.argument}={self.value!r}"

    def verb(self, style: Style) -> str:
        return "pass" if style == "flag" else ("give" if self.value is None else "set")


def render_fixes(fixes: Iterable[Fix], style: Style) -> str:
    """One sentence offering the fixes: neighbours with the same verb and purpose share them."""
    groups: list[tuple[str, str, list[str]]] = []
    for fix in fixes:
        phrase = fix.phrase(style)
        if phrase is None:
            continue
        verb = fix.verb(style)
        if groups and groups[-1][:2] == (verb, fix.purpose):
            groups[-1][2].append(phrase)
        else:
            groups.append((verb, fix.purpose, [phrase]))
    if not groups:
        return ""
    parts = [" ".join(filter(None, (verb, " or ".join(phrases), purpose))) for verb, purpose, phrases in groups]
    sentence = ", or ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."


class MilvusProviderError(AirflowException):
    """Base class: a Milvus operation failed or was refused by the provider.

    :param message: the facts: what was refused and why, naming the object.
    :param fixes: input changes that resolve it (see :class:`Fix`). ``str()`` names them as
        operator arguments, as a DAG author reads them; the CLI calls ``render("flag")``.
    """

    def __init__(self, message: str = "", *, fixes: Iterable[Fix] = ()) -> None:
        self.facts = str(message)
        self.fixes = tuple(fixes)
        super().__init__(self.render("argument"))

    def render(self, style: Style) -> str:
        """The facts followed by the fixes, named for ``style``."""
        return " ".join(filter(None, (self.facts, render_fixes(self.fixes, style))))


class MilvusInputError(MilvusProviderError, ValueError):
    """Bad input: nothing was changed."""


class MilvusAuthenticationError(MilvusProviderError):
    """The server answered but refused the credentials. Never retried."""


class MilvusUnavailableError(MilvusProviderError):
    """The server could not be reached within the retry bound."""


class MilvusIndexBuildError(MilvusProviderError):
    """An index build failed or did not finish in time."""
