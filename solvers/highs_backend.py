"""HiGHS through highspy, directly on the model's arrays (the default backend, no licence)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from netopt.errors import IncompatibleBackendError, SolveError
from netopt.model import LinearModel
from netopt.solvers import register
from netopt.solvers._base import Backend, RawSolution, check_options

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

    def solve(self, model: LinearModel, **opts: Any) -> RawSolution:
        check_options(self.name, opts)
        self.require()
        self.check_model(model)
        import highspy

        h = highspy.Highs()
        h.setOptionValue("output_flag", bool(opts.get("verbose", False)))
        if opts.get("time_limit") is not None:
            h.setOptionValue("time_limit", float(opts["time_limit"]))
        h.setOptionValue(
            "mip_rel_gap", float(opts.get("gap") if opts.get("gap") is not None else 1e-6)
        )
        if opts.get("abs_gap") is not None:
            h.setOptionValue("mip_abs_gap", float(opts["abs_gap"]))
        if opts.get("threads") is not None:
            h.setOptionValue("threads", int(opts["threads"]))
        h.setOptionValue("random_seed", int(opts.get("seed") or 0))
        for k, v in (opts.get("options") or {}).items():
            st = h.setOptionValue(k, v)
            if st != highspy.HighsStatus.kOk:
                raise IncompatibleBackendError(
                    f"backend 'highs': HiGHS rejected option {k}={v!r}; see HiGHS's option list"
                )

        lp = highs_lp(model)
        n = model.n_vars
        st = h.passModel(lp)
        if st == highspy.HighsStatus.kError:
            raise SolveError("backend 'highs': HiGHS rejected the model (passModel failed)")
        if model.start is not None and model.is_mip:
            sol = highspy.HighsSolution()
            sol.col_value = list(map(float, model.start))
            sol.value_valid = True
            h.setSolution(sol)
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
        h.run()
        dt = time.perf_counter() - t0
        ms = h.getModelStatus()
        status = _STATUS.get(ms.name, "unknown")
        info = h.getInfo()
        sol = h.getSolution()
        has_x = bool(getattr(info, "primal_solution_status", 0) == 2) or (status == "optimal")
        x = (
            np.asarray(sol.col_value, dtype=np.float64)
            if has_x and len(sol.col_value) == n
            else None
        )
        obj = float(info.objective_function_value) if x is not None else None
        if model.is_mip:
            bound = float(info.mip_dual_bound)
            bound = None if not np.isfinite(bound) else bound
            nodes = int(info.mip_node_count)
        else:
            # LP: the optimal value is the bound (duality), attested by the solver
            bound = obj if status == "optimal" else None
            nodes = 0
        ver = f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
        return RawSolution(status, x, obj, bound, nodes, dt, h.modelStatusToString(ms), ver)
