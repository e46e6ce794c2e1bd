"""The three ways netopt runs a solver through Pyomo (:attr:`SolverSpec.api`).

Each runner solves a model made by :func:`~netopt.solvers.pyomo_backend.model.to_pyomo` with the
solver's own option names and returns a dict: the termination condition ``tc`` (an enum member
name), the solver's own status ``raw``, whether the run ``failed``, whether a point was loaded
(``has_x``), ``objective``, ``bound``, ``nodes``, ``version`` and a ``message`` or ``log_tail``.

- :func:`run_appsi`: Pyomo's persistent APPSI interface (HiGHS);
- :func:`run_v2`: the newer ``pyomo.contrib.solver`` interface (SCIP);
- :func:`run_shell`: the classic interface that writes a file and runs an executable (CBC, GLPK).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from netopt.solvers.pyomo_backend.specs import _KEEPS_POINT, _STATUS, SolverSpec, _pyomo

__all__ = ["RUNNERS", "run_appsi", "run_shell", "run_v2"]


class _ListHandler(logging.Handler):
    """Keeps the records' messages in a list (a solver's log, read back on failure)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if len(self.lines) > 2000:  # a long MIP log: keep its head and its tail
            del self.lines[100:1100]


def run_appsi(s: SolverSpec, pm: Any, native: dict, verbose: bool, warm: bool) -> dict:
    import highspy
    from pyomo.contrib.appsi.solvers import Highs

    from netopt.solvers import highs_session

    # APPSI creates its own highspy objects: the first of the process must not print
    # highspy's banner on stdout, and HiGHS's process-wide scheduler must accept the thread
    # count asked for (it keeps the count of its first run otherwise, and fails the run)
    highs_session.quiet_banner()
    threads = int(native.get("threads") or 0)
    highs_session.prepare_threads(threads or None)
    opt = Highs()
    opt.config.load_solution = False
    opt.config.stream_solver = verbose
    opt.config.warmstart = warm
    lines: list[str] = []
    capture = _ListHandler(lines)
    logger = logging.getLogger("netopt.pyomo.highs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(capture)
    opt.config.solver_output_logger = logger
    opt.config.log_level = logging.INFO
    opt.highs_options = native
    ran: list[Any] = []
    try:
        # APPSI ignores the status run() returns (and every setOptionValue's): build the
        # instance first, then wrap its run() to see that status
        opt.set_instance(pm)
        h = opt._solver_model
        orig = h.run

        def checked_run() -> Any:
            st = orig()
            if highs_session.run_failed(h, st) and threads:
                # another library started HiGHS's scheduler with another count: reset it
                # (HiGHS's documented remedy) and run once more
                highs_session.restart_scheduler(threads)
                st = orig()
            ran.append(st)
            return st

        h.run = checked_run
        for key in opt.update_config:  # nothing changed since set_instance: skip the rescan
            if key != "treat_fixed_vars_as_params":
                setattr(opt.update_config, key, False)
        res = opt.solve(pm)
    finally:
        logger.removeHandler(capture)
    model_status = h.getModelStatus()
    failed = not ran or highs_session.run_failed(h, ran[-1])
    has_x = res.best_feasible_objective is not None and not failed
    if has_x:
        res.solution_loader.load_vars()
    nodes = None
    try:  # APPSI keeps the highspy object; its info has the node count
        nodes = int(h.getInfo().mip_node_count)
    except Exception:
        pass
    message = ""
    if failed:
        errs = [ln.strip() for ln in lines if "error" in ln.lower()]
        message = " ".join(errs[-3:]) or (
            f"run() returned {ran[-1].name if ran else 'nothing'}, model status {model_status.name}"
        )
    tol = {}
    for key in (
        "mip_rel_gap",
        "mip_abs_gap",
        "mip_feasibility_tolerance",
        "primal_feasibility_tolerance",
    ):
        st, v = h.getOptionValue(key)
        if st == highspy.HighsStatus.kOk:
            tol[key] = float(v)
    return {
        "tc": res.termination_condition.name,
        "raw": model_status.name,
        "failed": failed,
        "has_x": has_x,
        "objective": res.best_feasible_objective,
        "bound": res.best_objective_bound,
        "nodes": nodes if nodes is None or nodes >= 0 else None,
        "version": ".".join(map(str, opt.version())),
        "message": message,
        "tolerances": tol,
    }


def run_v2(s: SolverSpec, pm: Any, native: dict, verbose: bool, warm: bool) -> dict:
    from pyomo.contrib.solver.common.factory import SolverFactory
    from pyomo.contrib.solver.common.results import SolutionStatus

    opt = SolverFactory(s.pyomo_name)
    kw: dict[str, Any] = {
        "load_solutions": False,
        "raise_exception_on_nonoptimal_result": False,
        "tee": verbose,
        "solver_options": native,
    }
    if warm:
        kw["warmstart_discrete_vars"] = True
    res = opt.solve(pm, **kw)
    has_x = res.solution_status in (SolutionStatus.feasible, SolutionStatus.optimal)
    if has_x:
        res.solution_loader.load_vars()
    try:  # scip_direct reports its node count in extra_info
        nodes = int(res.extra_info["NNodes"])
    except Exception:
        nodes = None
    raw = None
    tol: dict[str, float] = {}
    sm = getattr(opt, "_solver_model", None)
    if s.name == "scip" and sm is not None:
        # Pyomo folds several of SCIP's limits into "unknown": keep SCIP's own status
        try:
            raw = str(sm.getStatus())
            for key, par in (
                ("mip_rel_gap", "limits/gap"),
                ("mip_abs_gap", "limits/absgap"),
                ("mip_feasibility_tolerance", "numerics/feastol"),
                ("primal_feasibility_tolerance", "numerics/feastol"),
            ):
                tol[key] = float(sm.getParam(par))
        except Exception:
            pass
    log_text = getattr(res, "solver_log", None)
    tail = ""
    if isinstance(log_text, str) and log_text.strip():
        tail = " ".join(log_text.strip().splitlines()[-3:])
    return {
        "tc": res.termination_condition.name,
        "raw": raw,
        "has_x": has_x,
        "objective": res.incumbent_objective,
        "bound": res.objective_bound,
        "nodes": nodes,
        "version": ".".join(map(str, opt.version())),
        "log_tail": tail,  # the solver's last words, shown when the run failed
        "tolerances": tol,
    }


def run_shell(s: SolverSpec, pm: Any, native: dict, verbose: bool, warm: bool) -> dict:
    pyo = _pyomo()
    from pyomo.opt import SolverStatus

    opt = pyo.SolverFactory(s.pyomo_name)
    kw: dict[str, Any] = {"load_solutions": False, "tee": verbose, "options": native}
    if warm and opt.warm_start_capable():
        kw["warmstart"] = True
    res = opt.solve(pm, **kw)
    tc = res.solver.termination_condition.name
    solver_status = res.solver.status
    # the executable's own verdict: after an error nothing parsed from its output is trusted,
    # whatever termination condition Pyomo read
    failed = solver_status == SolverStatus.error
    has_x = len(res.solution) > 0 and _STATUS.get(tc, "error") in _KEEPS_POINT and not failed
    if has_x:
        # a limit-stopped run loads fine; Pyomo's warning about the 'aborted' status is noise
        quiet = logging.getLogger("pyomo.core")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            pm.solutions.load_from(res)
        finally:
            quiet.setLevel(level)
    nodes = None
    try:
        nodes = int(res.solver.statistics.branch_and_bound.number_of_bounded_subproblems)
    except Exception:
        pass
    bound = res.problem.lower_bound
    try:
        bound = None if bound is None else float(bound)
    except (TypeError, ValueError):  # an unset bound is Pyomo's UndefinedData
        bound = None
    # an unset message is Pyomo's UndefinedData, not a str
    message = res.solver.message if isinstance(res.solver.message, str) else ""
    return {
        "tc": tc,
        "raw": getattr(solver_status, "name", str(solver_status)),
        "failed": failed,
        "has_x": has_x,
        "objective": None,
        "bound": bound,
        "nodes": nodes,
        "version": ".".join(map(str, opt.version() or ())),
        "message": message,
    }


#: :attr:`SolverSpec.api` -> its runner
RUNNERS: dict[str, Callable[[SolverSpec, Any, dict, bool, bool], dict]] = {
    "appsi": run_appsi,
    "v2": run_v2,
    "shell": run_shell,
}
