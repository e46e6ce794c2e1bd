"""The backend base class and the raw solution every backend returns."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from netopt.errors import IncompatibleBackendError, SolverUnavailableError
from netopt.options import Option, Schema, integer, number

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
    def size_limits(cls) -> dict[str, int] | None:
        """The most ``"variables"`` and ``"constraints"`` a model may have here (a licence's
        limits), or None where only memory and time limit it."""
        return None

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

    def open(self, model: Any, **options: Any) -> Session:
        """A session on ``model`` for repeated solves with changed bounds and costs.

        The default rebuilds the model for every solve (:class:`RebuildSession`); a backend with
        a persistent solver (HiGHS) keeps it warm instead.
        """
        check_options(self.name, options)
        self.require()
        self.check_model(model)
        return RebuildSession(self, model, options)


class Session:
    """A :class:`~netopt.model.LinearModel` held by a backend: change its bounds and costs, solve.

    The persistent-solver API (Pyomo's ``PersistentSolverBase``): the layer-wise LPs re-solve
    one LP per tolerance, the LP bound tightening one LP per unit; a warm session re-solves from
    the previous basis.
    """

    version: str = ""

    def update(
        self,
        *,
        row_lo: np.ndarray | None = None,
        row_hi: np.ndarray | None = None,
        col_lo: np.ndarray | None = None,
        col_hi: np.ndarray | None = None,
        cost: np.ndarray | None = None,
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def solve(self, time_limit: float | None = None) -> RawSolution:  # pragma: no cover
        """The current model's solution (``extra["iterations"]``: the solver's iterations).

        ``time_limit``: seconds for this solve; a run it stops is not ``optimal`` and proves
        nothing.
        """
        raise NotImplementedError


class RebuildSession(Session):
    """A session that rebuilds the model for every solve (no warm start): any backend."""

    def __init__(self, backend: Backend, model: Any, options: dict[str, Any]) -> None:
        self.backend, self.model, self.options = backend, model, dict(options)
        self.version = ""

    def update(
        self,
        *,
        row_lo: np.ndarray | None = None,
        row_hi: np.ndarray | None = None,
        col_lo: np.ndarray | None = None,
        col_hi: np.ndarray | None = None,
        cost: np.ndarray | None = None,
    ) -> None:
        m = self.model
        self.model = dataclasses.replace(
            m,
            c=m.c if cost is None else cost,
            row_lo=m.row_lo if row_lo is None else row_lo,
            row_hi=m.row_hi if row_hi is None else row_hi,
            lb=m.lb if col_lo is None else col_lo,
            ub=m.ub if col_hi is None else col_hi,
        )

    def solve(self, time_limit: float | None = None) -> RawSolution:
        opts = self.options if time_limit is None else {**self.options, "time_limit": time_limit}
        raw = self.backend.solve(self.model, **opts)
        self.version = raw.solver_version
        return raw


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse unknown option names and invalid values of the common options, before any work.

    ``time_limit``, ``gap`` and ``abs_gap`` must be finite non-negative numbers (``time_limit``
    positive), ``threads`` a non-negative integer (0: the solver's default), ``seed`` an integer,
    ``options`` a dict and ``progress`` a callable. A solver handed ``nan`` or ``-5`` may ignore it
    silently (HiGHS keeps no limit at all), so the values are checked here, not by the solver.
    Solver-specific options go in ``options={...}``.

    Raises
    ------
    OptionError
        Naming the option and what it must be (or, for an unknown name, the valid ones).
    """
    common_schema(f"backend '{name}'").parse(options)


def common_schema(owner: str) -> Schema:
    """The common options every backend understands, declared (:data:`COMMON`)."""
    return Schema(owner, COMMON)


def validate_common_options(where: str, options: dict[str, Any]) -> None:
    """Check the values of those of ``options`` that are common options (others are ignored)."""
    common_schema(where).parse({k: v for k, v in options.items() if k in COMMON_OPTIONS})


def _is_dict(v: Any) -> str | None:
    return (
        None
        if v is None or isinstance(v, dict)
        else "must be a dict of solver option names to values"
    )


def _is_callable(v: Any) -> str | None:
    return None if v is None or callable(v) else "must be a callable"


def _verbosity(v: Any) -> str | None:
    ok = v is None or isinstance(v, bool | int | np.integer)
    return None if ok else "must be True or False"


#: the options every backend understands, declared
COMMON = (
    Option("time_limit", number(low=0, strict=True), None, "seconds of wall time"),
    Option("gap", number(low=0), None, "relative MIP gap at which to stop"),
    Option("abs_gap", number(low=0), None, "absolute MIP gap at which to stop"),
    Option("threads", integer(low=0), None, "solver threads (0: the solver's default)"),
    Option("seed", integer(), None, "the solver's random seed"),
    Option("verbose", _verbosity, False, "the solver's log, on stderr"),
    Option("options", _is_dict, None, "solver-specific options by the solver's own names"),
    Option("progress", _is_callable, None, "called about once a second with incumbent, bound, gap"),
)
