"""Declared options: every method and backend says which options it takes, of which type.

A :class:`Schema` is a list of :class:`Option` declarations. :meth:`Schema.parse` is the one
validator: an unknown name, or a value of the wrong type or outside its range, raises one
:class:`~netopt.errors.OptionError` that names the option, the owner (``method 'milp'``,
``backend 'highs'``) and the valid names (with the closest ones first when the name looks like a
typo). The pipeline parses a method's options before any work; the bench and the command line read
the same declarations (:meth:`Schema.names`, :meth:`Schema.describe`).

Written here rather than taken from a library (Pyomo's ``ConfigDict`` is the model): netopt's core
depends on numpy, scipy, networkx and onnx only, and what it needs is a few dozen lines.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.errors import OptionError

__all__ = ["Option", "Schema", "from_signature", "number", "integer", "choice", "flag", "anything"]

#: a check returns why a value is invalid, or None
Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Option:
    """One declared option: its name, a check of its value, its default and a line of doc."""

    name: str
    check: Check | None = None
    default: Any = None
    doc: str = ""


def anything(v: Any) -> str | None:
    return None


def flag(v: Any) -> str | None:
    return None if isinstance(v, bool | np.bool_) else "must be True or False"


def number(
    *, low: float | None = None, high: float | None = None, strict: bool = False, none: bool = True
) -> Check:
    """A finite real number in ``[low, high]`` (``(low, high]`` with ``strict``); None allowed."""

    def check(v: Any) -> str | None:
        if v is None:
            return None if none else "must be a number, not None"
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            return "must be a number"
        f = float(v)
        if not math.isfinite(f):
            return "must be finite"
        if low is not None and (f <= low if strict else f < low):
            return f"must be {'>' if strict else '>='} {low:g}"
        if high is not None and f > high:
            return f"must be <= {high:g}"
        return None

    return check


def integer(*, low: int | None = None, none: bool = True) -> Check:
    """An integer (a float with an integer value is accepted) ``>= low``; None allowed."""

    def check(v: Any) -> str | None:
        if v is None:
            return None if none else "must be an integer, not None"
        ok = isinstance(v, int | np.integer) and not isinstance(v, bool)
        ok = ok or (isinstance(v, float | np.floating) and float(v).is_integer())
        if not ok:
            return "must be an integer"
        if low is not None and int(v) < low:
            return f"must be >= {low}"
        return None

    return check


def choice(*values: Any) -> Check:
    """One of ``values``."""

    def check(v: Any) -> str | None:
        return None if v in values else f"must be one of {', '.join(map(repr, values))}"

    return check


class Schema:
    """The options of one owner (a method or a backend)."""

    def __init__(self, owner: str, options: Iterable[Option | str]) -> None:
        self.owner = owner
        self.options: dict[str, Option] = {}
        for o in options:
            o = Option(o) if isinstance(o, str) else o
            self.options.setdefault(o.name, o)  # the first declaration of a name wins

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.options)

    def __add__(self, other: Schema) -> Schema:
        return Schema(self.owner, [*self.options.values(), *other.options.values()])

    def __contains__(self, name: str) -> bool:
        return name in self.options

    def parse(self, given: dict[str, Any]) -> dict[str, Any]:
        """Check ``given`` against the declarations; returns it unchanged when valid.

        Raises
        ------
        OptionError
            An unknown name (listing the valid ones, the closest first), or an invalid value
            (naming the option, the value and what it must be).
        """
        unknown = [k for k in given if k not in self.options]
        if unknown:
            raise OptionError(self._unknown(unknown))
        for k, v in given.items():
            check = self.options[k].check
            why = check(v) if check is not None else None
            if why:
                raise OptionError(f"{self.owner}: option {k}={_short(v)} {why}")
        return given

    def _unknown(self, unknown: Sequence[str]) -> str:
        near = []
        for k in unknown:
            near += difflib.get_close_matches(k, self.names, n=2, cutoff=0.6)
        hint = f" (did you mean {', '.join(dict.fromkeys(near))}?)" if near else ""
        return (
            f"{self.owner}: unknown option(s) {', '.join(unknown)}{hint}; it takes "
            f"{', '.join(sorted(self.names)) or 'none'}"
        )

    def describe(self) -> list[tuple[str, Any, str]]:
        """``(name, default, doc)`` of every option, in declaration order."""
        return [(o.name, o.default, o.doc) for o in self.options.values()]


def from_signature(owner: str, fn: Callable, extra: Iterable[Option | str] = ()) -> Schema:
    """The keyword-only parameters of ``fn`` as options (their defaults' types checked).

    A parameter whose default is a bool takes a bool; an int default, an integer; a float
    default, a number; anything else (None, a string, a tuple) is checked by ``fn`` itself.
    """
    opts: list[Option | str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is not p.KEYWORD_ONLY:
            continue
        d = p.default
        if isinstance(d, bool):
            check: Check | None = flag
        elif isinstance(d, int):
            check = integer()
        elif isinstance(d, float):
            check = number()
        else:
            check = None
        opts.append(Option(p.name, check, None if d is p.empty else d))
    return Schema(owner, [*opts, *extra])


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."
