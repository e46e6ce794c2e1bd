"""The backend base class and the raw solution every backend returns."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from netopt.errors import IncompatibleBackendError, SolverUnavailableError

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

    def solve(self, model: Any, **options: Any) -> RawSolution:  # pragma: no cover - abstract
        raise NotImplementedError


def check_options(name: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(COMMON_OPTIONS))
    if unknown:
        raise IncompatibleBackendError(
            f"backend '{name}': unknown option(s) {unknown}; common options are {list(COMMON_OPTIONS)} "
            "and solver-specific ones go in options={...}"
        )
