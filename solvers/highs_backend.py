"""HiGHS through highspy, directly on the model's arrays (the default backend, no licence)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.model import LinearModel
from netopt.solvers import register
from netopt.solvers._base import Backend, RawSolution, Session, check_options
from netopt.solvers.highs_session import HighsSession

log = logging.getLogger("netopt")

_STATUS = {
    "kOptimal": "optimal",
    "kInfeasible": "infeasible",
    "kTimeLimit": "time_limit",
    "kUnbounded": "unbounded",
    "kUnboundedOrInfeasible": "unbounded_or_infeasible",
    "kInterrupt": "time_limit",
    "kHighsInterrupt": "time_limit",
    "kIterationLimit": "time_limit",
    "kSolutionLimit": "time_limit",
    "kObjectiveBound": "time_limit",
    "kObjectiveTarget": "time_limit",
    "kModelEmpty": "optimal",
}


def highs_lp(model: LinearModel, integrality: bool = True) -> Any:
    """``model`` as a ``highspy.HighsLp`` (column-wise matrix; integrality when it is a MIP)."""
    import highspy

    lp = highspy.HighsLp()
    n, m = model.n_vars, model.n_rows
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = np.asarray(model.c, dtype=np.float64)
    lp.offset_ = float(model.c0)
    lp.col_lower_ = model.lb
    lp.col_upper_ = model.ub
    lp.row_lower_ = model.row_lo
    lp.row_upper_ = model.row_hi
    A = model.A.tocsc()
    A.sort_indices()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, m
    if integrality and model.is_mip:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if t else highspy.HighsVarType.kContinuous
            for t in model.integer
        ]
    return lp


@register("highs")
class HighsBackend(Backend):
    """HiGHS (MILP branch-and-cut, dual simplex for LPs).

    Options: ``time_limit`` (s), ``gap`` (relative MIP gap), ``abs_gap``, ``threads``, ``seed``,
    ``verbose`` (HiGHS log), ``progress`` (a callable receiving a dict with incumbent, bound, gap,
    nodes and time about once a second), ``options`` (any HiGHS option by name).
    """

    name = "highs"
    features = frozenset({"integer", "dual_bound", "start"})
    packages = ("highspy",)
    pip = "pip install highspy"

    @classmethod
    def check_option_values(cls, options: dict[str, Any]) -> None:
        """Apply the options to a scratch HiGHS instance: a rejected one is an OptionError."""
        check_options(cls.name, options)
        cls.require()
        HighsSession(f"backend '{cls.name}'", capture=False).set_common(options)

    def solve(self, model: LinearModel, **opts: Any) -> RawSolution:
        check_options(self.name, opts)
        self.require()
        self.check_model(model)
        import highspy

        # every option call and the run itself are checked (HighsSession): a failed run
        # returns status "error" with HiGHS's message and no bound, objective or point
        s = HighsSession(f"backend '{self.name}'", verbose=bool(opts.get("verbose", False)))
        s.set_common(opts)
        h = s.h
        lp = highs_lp(model)
        n = model.n_vars
        s.pass_model(lp)
        if model.start is not None and model.is_mip:
            sol = highspy.HighsSolution()
            sol.col_value = list(map(float, model.start))
            sol.value_valid = True
            h.setSolution(sol)  # a rejected start only costs the incumbent, never soundness
        progress = opts.get("progress")
        if progress is not None and model.is_mip:
            last = [0.0]

            def on_event(e: Any) -> None:
                d = e.data_out
                if d.running_time - last[0] >= 1.0:
                    last[0] = d.running_time
                    progress(
                        {
                            "incumbent": d.mip_primal_bound,
                            "bound": d.mip_dual_bound,
                            "gap": d.mip_gap,
                            "nodes": d.mip_node_count,
                            "time": d.running_time,
                        }
                    )

            h.cbMipInterrupt.subscribe(on_event)
        t0 = time.perf_counter()
        ok, why = s.run(interruptible=True)
        dt = time.perf_counter() - t0
        ver = s.version
        if not ok:
            log.warning("%s", why)
            return RawSolution("error", seconds=dt, message=why, solver_version=ver)
        ms = h.getModelStatus()
        status = _STATUS.get(ms.name, "unknown")
        if ms.name == "kInterrupt" and interrupted():
            # stopped on the user's request (Ctrl-C): a limit like time, the bound still proven
            status = "interrupted"
        info = h.getInfo()
        sol = h.getSolution()
        has_x = bool(getattr(info, "primal_solution_status", 0) == 2) or (status == "optimal")
        x = (
            np.asarray(sol.col_value, dtype=np.float64)
            if has_x and len(sol.col_value) == n
            else None
        )
        obj = float(info.objective_function_value) if x is not None else None
        bound = None
        nodes = 0
        if status in ("optimal", "time_limit", "interrupted"):
            # only a run that ended in a known state attests a bound
            if model.is_mip:
                b = float(info.mip_dual_bound)
                bound = b if np.isfinite(b) else None
                nodes = int(info.mip_node_count)
            elif status == "optimal":
                # LP: the optimal value is the bound (duality), attested by the solver
                bound = obj
        elif model.is_mip:
            nodes = max(0, int(info.mip_node_count))
        extra = {
            "tolerances": {
                "mip_rel_gap": s.option("mip_rel_gap"),
                "mip_abs_gap": s.option("mip_abs_gap"),
                "mip_feasibility_tolerance": s.option("mip_feasibility_tolerance"),
                "primal_feasibility_tolerance": s.option("primal_feasibility_tolerance"),
            }
        }
        return RawSolution(
            status, x, obj, bound, nodes, dt, h.modelStatusToString(ms), ver, extra=extra
        )

    def open(self, model: LinearModel, **opts: Any) -> HighsWarmSession:
        """A warm session: the model is passed to HiGHS once and re-solved from its basis."""
        check_options(self.name, opts)
        self.require()
        self.check_model(model)
        return HighsWarmSession(model, opts)


#: HiGHS's default time limit (no limit)
_NO_LIMIT = float("inf")


class HighsWarmSession(Session):
    """One HiGHS model kept alive across changes of bounds and costs, re-solved from its basis.

    Presolve is off by default: it would rebuild the reduced LP on every re-solve and discard
    the basis that makes the next, nearly identical LP cheap (``options={"presolve": "on"}``
    turns it back on). Only the entries that changed are passed to HiGHS.
    """

    def __init__(self, model: LinearModel, opts: dict[str, Any]) -> None:
        # many small LPs: HiGHS's log is captured only to explain a failed run
        self.session = HighsSession(
            "HiGHS session", verbose=bool(opts.get("verbose", False)), capture=False
        )
        self.session.set("presolve", "off")
        self.session.set_common(opts, default_gap=None)
        self._time_limit = opts.get("time_limit")  # per solve, unless a solve says otherwise
        self.session.pass_model(highs_lp(model, integrality=False))
        self.h = self.session.h
        self._cur = [model.row_lo.copy(), model.row_hi.copy(), model.lb.copy(), model.ub.copy()]
        self._cost = np.asarray(model.c, dtype=np.float64).copy()
        self.version = self.session.version

    def update(
        self,
        *,
        row_lo: np.ndarray | None = None,
        row_hi: np.ndarray | None = None,
        col_lo: np.ndarray | None = None,
        col_hi: np.ndarray | None = None,
        cost: np.ndarray | None = None,
    ) -> None:
        rlo, rhi, clo, chi = self._cur
        row_lo = rlo if row_lo is None else row_lo
        row_hi = rhi if row_hi is None else row_hi
        col_lo = clo if col_lo is None else col_lo
        col_hi = chi if col_hi is None else col_hi
        idx = np.flatnonzero((row_lo != rlo) | (row_hi != rhi))
        if len(idx):
            self.h.changeRowsBounds(len(idx), idx.astype(np.int32), row_lo[idx], row_hi[idx])
        idx = np.flatnonzero((col_lo != clo) | (col_hi != chi))
        if len(idx):
            self.h.changeColsBounds(len(idx), idx.astype(np.int32), col_lo[idx], col_hi[idx])
        if cost is not None:
            idx = np.flatnonzero(cost != self._cost)
            if len(idx):
                self.h.changeColsCost(len(idx), idx.astype(np.int32), cost[idx])
            self._cost = np.asarray(cost, dtype=np.float64).copy()
        self._cur = [row_lo.copy(), row_hi.copy(), col_lo.copy(), col_hi.copy()]

    def solve(self, time_limit: float | None = None) -> RawSolution:
        """Re-solve from the current basis; a run that ends undecided is repeated from scratch.

        A hot start can end in HiGHS's "unknown" when a bound sits near its feasibility
        tolerance (1e-7); the same LP without the basis decides it. ``time_limit`` bounds this
        solve (HiGHS's ``time_limit``; a run it stops is ``time_limit``, never repeated).
        """
        t0 = time.perf_counter()
        limit = time_limit if time_limit is not None else self._time_limit
        self.session.set("time_limit", float(limit) if limit is not None else _NO_LIMIT)
        ok, why = self.session.run()
        its = int(self.h.getInfo().simplex_iteration_count) if ok else 0
        name = self.h.getModelStatus().name
        stopped = name in ("kTimeLimit", "kInterrupt")
        if not stopped and (
            not ok or name not in ("kOptimal", "kInfeasible", "kUnboundedOrInfeasible")
        ):
            self.h.clearSolver()
            ok, why = self.session.run()
            if not ok:
                return RawSolution(
                    "error", seconds=time.perf_counter() - t0, message=why,
                    solver_version=self.version, extra={"iterations": its},
                )  # fmt: skip
            its += int(self.h.getInfo().simplex_iteration_count)
            name = self.h.getModelStatus().name
        dt = time.perf_counter() - t0
        status = _STATUS.get(name, "unknown")
        x = obj = None
        if status == "optimal":
            x = self.session.solution()
            obj = self.session.objective()
        return RawSolution(
            status, x, obj, obj, 0, dt, self.session.model_status_text(), self.version,
            extra={"iterations": its},
        )  # fmt: skip
