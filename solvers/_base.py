"""The backend base class and the raw solution every backend returns."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from netopt.errors import IncompatibleBackendError, OptionError, SolverUnavailableError

#: options every backend understands (anything else goes through ``options=``)
COMMON_OPTIONS = (
    "time_limit",
    "gap",
    "abs_gap",
    "threads",
    "seed",
    "verbose",
    "options",
    "progress",
)


@dataclass
class RawSolution:
    """What a backend returns: the solver's own claims, not yet re-checked.

    ``status`` is one of optimal, infeasible, time_limit, unbounded, unknown, error;
    ``objective`` and ``bound`` refer to the model's (minimized) objective.
    """

    status: str
    x: np.ndarray | None = None
    objective: float | None = None
    bound: float | None = None
    nodes: int | None = None
    seconds: float = 0.0
    message: str = ""
    solver_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """A solver backend. Subclasses declare what they accept and import their package lazily."""

    name: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ("LinearModel",)
    #: integer, quadratic, quadratic_integer, dual_bound, start
    features: ClassVar[frozenset[str]] = frozenset()
    packages: ClassVar[tuple[str, ...]] = ()
    pip: ClassVar[str] = ""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether the backend's packages import (and why not)."""
        for p in cls.packages:
            try:
                importlib.import_module(p)
            except ImportError as e:
                return False, f"{p} is not installed ({e}); {cls.pip}"
        return True, ""

    @classmethod
    def require(cls) -> None:
        ok, why = cls.available()
        if not ok:
            from netopt.solvers import available_for

            others = available_for(cls.model_types[0])
            raise SolverUnavailableError(
                f"backend '{cls.name}': {why}. Backends that would work now: {', '.join(others) or 'none'}"
            )

    @classmethod
    def check_model(cls, model: Any) -> None:
        """Refuse a model this backend cannot solve, naming the backends that can."""
        from netopt.solvers import backends_with

        mt = type(model).__name__
        need = set()
        if getattr(model, "is_mip", False):
            need.add("integer")
        if getattr(model, "is_quadratic", False):
            need.add("quadratic_integer" if getattr(model, "is_mip", False) else "quadratic")
        if mt not in cls.model_types or not need <= cls.features:
            others = backends_with(mt, need)
            what = " with ".join([mt] + ([", ".join(sorted(need))] if need else []))
            hint = ""
            if "quadratic_integer" in need:
                hint = " (the 2-norm needs a mixed-integer quadratic solver: use solver='gurobi', or norm=1 / norm='inf')"
            raise IncompatibleBackendError(
                f"backend '{cls.name}' cannot solve a {what}{hint}; backends that can: {', '.join(others) or 'none registered'}"
            )

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """Refuse solver-specific options (``options={...}``) the solver rejects, before any work.

        The default does nothing (the solver is asked when it runs); a backend that can ask its
        solver cheaply overrides it.
        """

    def solve(self, model: Any, **options: Any) -> RawSolution:  # pragma: no cover - abstract
        raise NotImplementedError


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse unknown option names and invalid values of the common options, before any work.

    ``time_limit``, ``gap`` and ``abs_gap`` must be finite non-negative numbers (``time_limit``
    positive), ``threads`` a non-negative integer (0: the solver's default), ``seed`` an integer,
    ``options`` a dict and ``progress`` a callable. A solver handed ``nan`` or ``-5`` may ignore it
    silently (HiGHS keeps no limit at all), so the values are checked here, not by the solver.
    """
    unknown = sorted(set(options) - set(COMMON_OPTIONS))
    if unknown:
        raise IncompatibleBackendError(
            f"backend '{name}': unknown option(s) {unknown}; common options are {list(COMMON_OPTIONS)} "
            "and solver-specific ones go in options={...}"
        )
    validate_common_options(f"backend '{name}'", options)


def _number(where: str, key: str, v: Any, *, positive: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise OptionError(f"{where}: {key} must be a number, got {v!r}")
    f = float(v)
    if not np.isfinite(f) or f < 0 or (positive and f == 0):
        need = "a finite number > 0" if positive else "a finite number >= 0"
        raise OptionError(f"{where}: {key} must be {need}, got {v!r}")
    return f


def validate_common_options(where: str, options: dict[str, Any]) -> None:
    """Check the values of the common solver options (see :func:`check_options`).

    Raises
    ------
    OptionError
        Naming the option, the value and what it must be.
    """
    for key in ("time_limit", "gap", "abs_gap"):
        if options.get(key) is not None:
            _number(where, key, options[key], positive=key == "time_limit")
    for key in ("threads", "seed"):
        v = options.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            if not (isinstance(v, float | np.floating) and float(v).is_integer()):
                raise OptionError(f"{where}: {key} must be an integer, got {v!r}")
        if key == "threads" and int(v) < 0:
            raise OptionError(f"{where}: threads must be >= 0 (0: the solver's default), got {v!r}")
    if options.get("options") is not None and not isinstance(options["options"], dict):
        raise OptionError(
            f"{where}: options must be a dict of solver option names to values, got {options['options']!r}"
        )
    if options.get("progress") is not None and not callable(options["progress"]):
        raise OptionError(f"{where}: progress must be a callable, got {options['progress']!r}")
