"""Gurobi through gurobipy's matrix API, directly on the model's arrays (MILP and MIQP).

The pip wheel of gurobipy ships a size-limited licence (2000 variables and 2000 linear constraints;
200 variables once the objective has quadratic terms). Such a licence is recognised once per
process by a probe (see :func:`licence`), and a model over its limits is refused *before* anything
is built, with its size, the limits and what to do.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from netopt.control import interrupted
from netopt.errors import OptionError, SolverUnavailableError
from netopt.model import LinearModel
from netopt.solvers import register
from netopt.solvers._base import Backend, RawSolution, check_options

log = logging.getLogger("netopt")

__all__ = ["GurobiBackend", "Licence", "licence", "SIZE_LIMITS"]

#: limits of gurobipy's pip licence: variables, linear constraints, variables with a quadratic
#: objective (Gurobi then caps *all* variables at 200, as measured with gurobipy 13.0.3)
SIZE_LIMITS = {"variables": 2000, "constraints": 2000, "quadratic_variables": 200}

# Gurobi error codes (GRB.Error) that mean "this licence will not do"
_NO_LICENSE, _SIZE_LIMIT = 10009, 10010

# Every Gurobi status code (GRB.Status, gurobipy 13) -> netopt status. Only "optimal",
# "time_limit" (a limit stopped a run that was going well) and "interrupted" (the user stopped it)
# may carry a bound; a code missing here is read as "error". INF_OR_UNBD is resolved by a re-solve (see GurobiBackend._solve).
_STATUS = {
    1: "error",  # LOADED: optimize() returned without running
    2: "optimal",  # OPTIMAL
    3: "infeasible",  # INFEASIBLE
    4: "unknown",  # INF_OR_UNBD: still undecided after the re-solve without dual reductions
    5: "unbounded",  # UNBOUNDED
    6: "unknown",  # CUTOFF: worse than the Cutoff parameter; no point, no bound reported
    7: "time_limit",  # ITERATION_LIMIT
    8: "time_limit",  # NODE_LIMIT
    9: "time_limit",  # TIME_LIMIT
    10: "time_limit",  # SOLUTION_LIMIT
    11: "interrupted",  # INTERRUPTED: Ctrl-C (Gurobi's own handler) or our callback's terminate
    12: "error",  # NUMERIC: numerical trouble, nothing it reports can be trusted
    13: "unknown",  # SUBOPTIMAL: optimality tolerances not met; the point is re-checked only
    14: "error",  # INPROGRESS: optimize() returned while still running
    15: "time_limit",  # USER_OBJ_LIMIT
    16: "time_limit",  # WORK_LIMIT
    17: "time_limit",  # MEM_LIMIT
    18: "unknown",  # LOCALLY_OPTIMAL: a local optimum bounds nothing
    19: "unknown",  # LOCALLY_INFEASIBLE: not a proof of infeasibility
}
_INF_OR_UNBD = 4
_NUMERIC = 12
#: statuses that keep the solver's point (re-checked in float64 by netopt.solve)
_KEEPS_POINT = frozenset({"optimal", "time_limit", "interrupted", "unknown", "unbounded"})
#: netopt's tolerance names -> the Gurobi parameters that hold them (RawSolution.extra)
_TOLERANCES = {
    "mip_rel_gap": "MIPGap",
    "mip_abs_gap": "MIPGapAbs",
    "mip_feasibility_tolerance": "IntFeasTol",
    "primal_feasibility_tolerance": "FeasibilityTol",
}


@dataclass(frozen=True)
class Licence:
    """What the installed Gurobi licence allows.

    Attributes
    ----------
    ok : bool
        An environment starts.
    size_limited : bool
        The probe model (2001 variables) was refused with error 10010.
    message : str
        Gurobi's own message when ``ok`` is False.
    version : str
    expiration : int or None
        ``YYYYMMDD`` of the licence's end, where Gurobi reports it.
    """

    ok: bool
    size_limited: bool
    message: str
    version: str
    expiration: int | None = None


def _env(verbose: bool) -> Any:
    """A started Gurobi environment that never writes to the console.

    Gurobi's console is stdout, which ``netopt check --json`` and ``invert --json`` keep for
    their result; with ``verbose`` the log reaches stderr instead, through the solve's
    ``MESSAGE`` callback (:meth:`GurobiBackend._solve`), as HiGHS's does.
    """
    import gurobipy as gp

    env = gp.Env(empty=True)
    # set before start(): the licence banner is printed by start() itself
    env.setParam("OutputFlag", 1 if verbose else 0)
    env.setParam("LogToConsole", 0)
    env.start()
    return env


@functools.lru_cache(maxsize=1)
def licence() -> Licence:
    """Probe the licence once per process (a few milliseconds).

    How the size limit is told: gurobipy does not say which kind of licence it runs on, so a
    model of ``SIZE_LIMITS["variables"] + 1`` free-standing variables is optimized; the
    size-limited licence refuses it with ``GurobiError`` 10010 (``SIZE_LIMIT_EXCEEDED``), a full
    licence solves it (trivially, no rows). A missing or expired licence makes the environment
    fail to start.
    """
    import gurobipy as gp

    ver = ".".join(map(str, gp.gurobi.version()))
    try:
        env = _env(False)
    except gp.GurobiError as e:
        return Licence(False, False, f"{e} (Gurobi error {e.errno})", ver)
    try:
        m = gp.Model(env=env)
        try:
            m.addMVar(SIZE_LIMITS["variables"] + 1, lb=0.0, ub=1.0)
            limited = False
            try:
                m.optimize()
            except gp.GurobiError as e:
                if e.errno != _SIZE_LIMIT:
                    raise
                limited = True
            try:
                exp = int(m.LicenseExpiration)
            except (AttributeError, gp.GurobiError):
                exp = None
        finally:
            m.dispose()
    except gp.GurobiError as e:
        return Licence(False, False, f"{e} (Gurobi error {e.errno})", ver)
    finally:
        env.dispose()
    return Licence(True, limited, "", ver, exp)


def _row_sets(model: LinearModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows that are equalities, have a finite lower side, have a finite upper side (not eq)."""
    lo, hi = model.row_lo, model.row_hi
    flo, fhi = np.isfinite(lo), np.isfinite(hi)
    eq = flo & fhi & (lo == hi)
    return np.nonzero(eq)[0], np.nonzero(flo & ~eq)[0], np.nonzero(fhi & ~eq)[0]


def _rows(model: LinearModel) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """The model's rows as one-sided ones: ``(A, sense, rhs)`` with sense in ``=``, ``>``, ``<``.

    A finite range ``lo < a.v < hi`` becomes two rows rather than Gurobi's ranged row, which adds
    a slack column: the vector returned stays the model's, and the size limit counts what it is.
    Free rows are dropped.
    """
    lo, hi = model.row_lo, model.row_hi
    eq, ge, le = _row_sets(model)
    idx = np.concatenate([eq, ge, le])
    sense = np.array(["="] * len(eq) + [">"] * len(ge) + ["<"] * len(le), dtype="U1")
    rhs = np.concatenate([lo[eq], lo[ge], hi[le]])
    return model.A.tocsr()[idx], sense, rhs


def _size(model: LinearModel) -> dict[str, int]:
    """What Gurobi will count: variables, linear constraints (ranges as two), quadratic or not."""
    n_rows = sum(len(r) for r in _row_sets(model))
    return {"variables": model.n_vars, "constraints": n_rows, "quadratic": int(model.is_quadratic)}


@register("gurobi")
class GurobiBackend(Backend):
    """Gurobi (MILP and MIQP branch-and-cut) through gurobipy's matrix API.

    Options: ``time_limit`` -> TimeLimit, ``gap`` -> MIPGap (default 1e-6 as the HiGHS backend),
    ``abs_gap`` -> MIPGapAbs, ``threads`` -> Threads, ``seed`` -> Seed, ``verbose`` -> OutputFlag
    (the log on stderr, never stdout), ``progress`` (a callable receiving a dict with incumbent, bound,
    gap, nodes and time about once a second, from a MIP callback), ``options`` (any Gurobi
    parameter by name, e.g. ``{"NodeLimit": 100, "MIPFocus": 1}``). ``model.start`` is the MIP
    start. An INF_OR_UNBD answer is resolved by a re-solve with DualReductions=0; should that
    still not decide, the status is "unknown" (never "infeasible").

    Every Gurobi status is mapped explicitly (see ``_STATUS``): only OPTIMAL and the limit
    statuses (TIME_LIMIT, NODE_LIMIT, ...) carry a bound — a MIP's finite ``ObjBound``, an LP's
    optimal value at OPTIMAL only. NUMERIC, LOADED, INPROGRESS, an unknown code and a
    :class:`gurobipy.GurobiError` during the run give status "error" with Gurobi's status name or
    message and no point, objective or bound. SUBOPTIMAL, CUTOFF, LOCALLY_OPTIMAL and
    LOCALLY_INFEASIBLE give "unknown" (a point, if any, is kept for netopt's re-check). The
    tolerances Gurobi ran with are in ``extra["tolerances"]``.

    Raises
    ------
    SolverUnavailableError
        gurobipy is missing (``pip install gurobipy``), the licence is missing or expired (with
        Gurobi's message), or the model exceeds the size-limited pip licence. The last is a
        licence problem, not a model Gurobi cannot solve, so it is this class rather than
        :class:`~netopt.errors.IncompatibleBackendError`; the message gives the model's size, the
        limits, and the ways out (a full licence, or ``solver='highs'``). The size is checked
        before anything is built; Gurobi's own error 10010 is mapped to the same error should a
        licence have other limits.
    OptionError
        An invalid common option (before any work), an unknown Gurobi parameter name in
        ``options``, or a parameter value Gurobi refuses or does not store as given (``nan``,
        ``1.5`` for an integer parameter); the message names it.

    Ctrl-C under :func:`netopt.control.sigint_guard` (or
    :func:`~netopt.control.request_interrupt`) stops the run at its next callback, and Gurobi's
    own Ctrl-C handler stops it too: either way the status is "interrupted", with the incumbent
    and the bound of the run so far.
    """

    name = "gurobi"
    features = frozenset({"integer", "quadratic", "quadratic_integer", "dual_bound", "start"})
    packages = ("gurobipy",)
    pip = "pip install gurobipy"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether gurobipy imports *and* its licence lets an environment start."""
        ok, why = super().available()
        if not ok:
            return ok, why
        lic = licence()
        if not lic.ok:
            return False, (
                f"Gurobi {lic.version} has no usable licence: {lic.message}. Get one from gurobi.com "
                "(free for academics), or use solver='highs'"
            )
        return True, ""

    @classmethod
    def size_limits(cls) -> dict[str, int] | None:
        """:data:`SIZE_LIMITS` under the pip wheel's size-limited licence, else None."""
        return dict(SIZE_LIMITS) if licence().size_limited else None

    @classmethod
    def check_size(cls, model: LinearModel) -> None:
        """Refuse a model that the size-limited licence would refuse (only on that licence)."""
        lic = licence()
        if not lic.size_limited:
            return
        sz = _size(model)
        nv_max = SIZE_LIMITS["quadratic_variables"] if sz["quadratic"] else SIZE_LIMITS["variables"]
        over = []
        if sz["variables"] > nv_max:
            what = (
                "variables (the limit once the objective is quadratic)"
                if sz["quadratic"]
                else "variables"
            )
            over.append(f"{sz['variables']} variables > {nv_max} {what}")
        if sz["constraints"] > SIZE_LIMITS["constraints"]:
            over.append(f"{sz['constraints']} linear constraints > {SIZE_LIMITS['constraints']}")
        if over:
            raise SolverUnavailableError(cls._too_big("; ".join(over)))

    @staticmethod
    def _too_big(what: str) -> str:
        return (
            f"backend 'gurobi': the model is too large for Gurobi's size-limited licence (the one "
            f"pip installs: {SIZE_LIMITS['variables']} variables and {SIZE_LIMITS['constraints']} "
            f"linear constraints, {SIZE_LIMITS['quadratic_variables']} variables with a quadratic "
            f"objective): {what}. Install a full licence (gurobi.com; free for academics), or "
            "solve with solver='highs' (norm=1 or norm='inf' for an inversion)."
        )

    def solve(self, model: LinearModel, **opts: Any) -> RawSolution:
        """Solve ``model`` with Gurobi (see the class docstring for the options)."""
        check_options(self.name, opts)
        self.require()
        self.check_model(model)
        self.check_size(model)
        import gurobipy as gp
        from gurobipy import GRB

        verbose = bool(opts.get("verbose", False))
        try:
            env = _env(verbose)
        except gp.GurobiError as e:
            raise SolverUnavailableError(
                f"backend 'gurobi': Gurobi's licence refused to start ({e}, error {e.errno}); "
                "check the licence (gurobi.com), or use solver='highs'"
            ) from e
        try:
            m = gp.Model(env=env)
            try:
                return self._solve(gp, GRB, m, model, opts)
            finally:
                m.dispose()
        finally:
            env.dispose()

    def _solve(
        self, gp: Any, GRB: Any, m: Any, model: LinearModel, opts: dict[str, Any]
    ) -> RawSolution:
        params: dict[str, tuple[Any, str]] = {
            "MIPGap": (float(opts.get("gap") if opts.get("gap") is not None else 1e-6), "gap")
        }
        for key, par, cast in (
            ("time_limit", "TimeLimit", float),
            ("abs_gap", "MIPGapAbs", float),
            ("threads", "Threads", int),
            ("seed", "Seed", int),
        ):
            if opts.get(key) is not None:
                params[par] = (cast(opts[key]), key)
        for k, v in (opts.get("options") or {}).items():
            params[k] = (v, "")
        for k, (v, common) in params.items():
            _set_param(gp, m, k, v, common)

        n = model.n_vars
        inf = GRB.INFINITY
        lb = np.where(np.isfinite(model.lb), model.lb, -inf)
        ub = np.where(np.isfinite(model.ub), model.ub, inf)
        vtype = np.where(model.integer, GRB.INTEGER, GRB.CONTINUOUS)
        x = m.addMVar(n, lb=lb, ub=ub, vtype=vtype, name="v")
        A, sense, rhs = _rows(model)
        if A.shape[0]:
            m.addMConstr(A, x, sense, rhs)
        Q = model.Q if model.is_quadratic else None
        m.setMObjective(
            Q, np.asarray(model.c, dtype=np.float64), float(model.c0), sense=GRB.MINIMIZE
        )
        if model.start is not None and model.is_mip:
            x.Start = np.asarray(model.start, dtype=np.float64)

        progress = opts.get("progress") if model.is_mip else None
        verbose = bool(opts.get("verbose", False))
        last = [-1.0]

        def cb(_m: Any, where: int) -> None:
            # every callback: the user's stop request (Ctrl-C under netopt's guard, which
            # Gurobi's own handler does not see), the log (stderr), progress about once a second
            if interrupted():
                _m.terminate()
            if where == GRB.Callback.MESSAGE:
                if verbose:
                    sys.stderr.write(_m.cbGet(GRB.Callback.MSG_STRING))
                return
            if progress is None or where != GRB.Callback.MIP:
                return
            t = _m.cbGet(GRB.Callback.RUNTIME)
            if t - last[0] < 1.0:
                return
            last[0] = t
            inc, bnd = _m.cbGet(GRB.Callback.MIP_OBJBST), _m.cbGet(GRB.Callback.MIP_OBJBND)
            inc = inc if abs(inc) < inf else None
            bnd = bnd if abs(bnd) < inf else None
            gap = (
                abs(inc - bnd) / max(1.0, abs(inc)) if inc is not None and bnd is not None else None
            )
            nodes = int(_m.cbGet(GRB.Callback.MIP_NODCNT))
            progress({"incumbent": inc, "bound": bnd, "gap": gap, "nodes": nodes, "time": t})

        ver = ".".join(map(str, gp.gurobi.version()))
        extra = {"tolerances": _tolerances(m)}
        t0 = time.perf_counter()
        try:
            self._optimize(gp, m, cb)
            st = int(m.Status)
            if st == _INF_OR_UNBD:
                # presolve's dual reductions could not tell infeasible from unbounded: solve again
                # without them, which decides. INF_OR_UNBD itself is never read as infeasible
                # (huge finite bounds may be infinite to Gurobi: "all bounded" proves nothing)
                m.setParam("DualReductions", 0)
                m.reset()
                self._optimize(gp, m, cb)
                st = int(m.Status)
        except gp.GurobiError as e:
            # a failure during the run (out of memory, a callback error, ...): nothing it left
            # behind is a result
            why = f"backend 'gurobi': Gurobi failed ({e}, error {e.errno})"
            log.warning("%s", why)
            return RawSolution(
                "error",
                seconds=time.perf_counter() - t0,
                message=why,
                solver_version=ver,
                extra=extra,
            )
        dt = time.perf_counter() - t0
        name = _status_name(GRB, st)
        status = _STATUS.get(st, "error")
        msg = f"Gurobi status {name}"
        if st == _INF_OR_UNBD:
            msg += " (infeasible or unbounded, undecided even without dual reductions)"
        elif status == "error":
            msg += " (the run failed: no point, bound or status claim is taken from it)"
        try:
            xs, obj, bound, nodes = _read_result(gp, m, x, model, status, inf)
        except gp.GurobiError as e:
            why = f"backend 'gurobi': reading Gurobi's result failed ({e}, error {e.errno}); {msg}"
            log.warning("%s", why)
            return RawSolution("error", seconds=dt, message=why, solver_version=ver, extra=extra)
        if status == "error":
            log.warning("backend 'gurobi': %s", msg)
        return RawSolution(status, xs, obj, bound, nodes, dt, msg, ver, extra=extra)

    @classmethod
    def _optimize(cls, gp: Any, m: Any, cb: Any) -> None:
        """``m.optimize``; a licence refusal becomes :class:`SolverUnavailableError`.

        Any other :class:`gurobipy.GurobiError` propagates to :meth:`_solve`, which reports it as
        status "error" with Gurobi's message.
        """
        try:
            m.optimize(cb)
        except gp.GurobiError as e:
            if e.errno == _SIZE_LIMIT:
                raise SolverUnavailableError(cls._too_big(f"Gurobi refused it ({e})")) from e
            if e.errno == _NO_LICENSE:
                raise SolverUnavailableError(
                    f"backend 'gurobi': no valid Gurobi licence ({e}); check it, or use solver='highs'"
                ) from e
            raise


def _status_name(GRB: Any, st: int) -> str:
    """Gurobi's name of status code ``st`` (the number itself when it has none)."""
    for k in dir(GRB.Status):
        if k.isupper() and getattr(GRB.Status, k) == st:
            return k
    return str(st)


def _same_value(requested: Any, stored: Any) -> bool:
    """Whether Gurobi stored what was asked for (it ignores ``nan`` and truncates ``1.5`` silently)."""
    if isinstance(stored, str):
        return str(requested) == stored
    try:
        return float(requested) == float(stored)
    except (TypeError, ValueError):
        return False


def _set_param(gp: Any, m: Any, name: str, value: Any, common: str = "") -> None:
    """Set one Gurobi parameter and check that Gurobi took it as given.

    Raises
    ------
    OptionError
        ``name`` is no Gurobi parameter, or Gurobi refuses the value (out of range, wrong type), or stores another one (``nan``
        ignored, a fractional value for an integer parameter truncated).
    """
    what = f"{name}={value!r}" + (f" (from {common}={value!r})" if common else "")
    try:
        info = m.getParamInfo(name)
    except gp.GurobiError:
        info = None
    if info is None:
        raise OptionError(
            f"backend 'gurobi': unknown Gurobi parameter {name!r}; see Gurobi's parameter "
            "reference for names"
        )
    try:
        m.setParam(name, value)
    except (gp.GurobiError, TypeError, ValueError, OverflowError) as e:
        raise OptionError(
            f"backend 'gurobi': Gurobi refuses parameter {what} ({e}); see Gurobi's parameter "
            f"reference for its range (min {info[3]!r}, max {info[4]!r})"
        ) from e
    stored = m.getParamInfo(name)[2]
    if not _same_value(value, stored):
        raise OptionError(
            f"backend 'gurobi': Gurobi did not take parameter {what}: it holds {stored!r} "
            f"instead (min {info[3]!r}, max {info[4]!r}, type {info[1].__name__})"
        )


def _tolerances(m: Any) -> dict[str, float]:
    """The gap and feasibility tolerances Gurobi runs with (for the float64 re-check)."""
    return {k: float(m.getParamInfo(par)[2]) for k, par in _TOLERANCES.items()}


def _read_result(
    gp: Any, m: Any, x: Any, model: LinearModel, status: str, inf: float
) -> tuple[np.ndarray | None, float | None, float | None, int | None]:
    """``(x, objective, bound, nodes)`` of a finished run whose netopt status is ``status``.

    The point is read only when Gurobi holds a solution (``SolCount > 0``) and the run did not
    fail; a bound only from an optimal or limit-stopped run: a MIP's ``ObjBound`` when finite, an
    LP's (or convex QP's) optimal value.
    """
    xs = obj = bound = None
    if status in _KEEPS_POINT and int(m.SolCount) > 0:
        xs = np.asarray(x.X, dtype=np.float64)
        o = float(m.ObjVal)
        obj = o if np.isfinite(o) and abs(o) < inf else None
        if obj is None or not np.all(np.isfinite(xs)):
            xs = obj = None
    if model.is_mip:
        if status in ("optimal", "time_limit", "interrupted"):
            try:
                b = float(m.ObjBound)
            except (AttributeError, gp.GurobiError):
                b = np.nan  # not available: no bound
            bound = b if np.isfinite(b) and abs(b) < inf else None
        try:
            nodes = int(m.NodeCount)
        except (AttributeError, gp.GurobiError):
            nodes = None
    else:
        nodes = None
        if status == "optimal":
            bound = obj  # an LP's (or convex QP's) optimum is its bound (duality)
    return xs, obj, bound, nodes
