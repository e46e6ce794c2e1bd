"""Failed runs attest nothing: every backend checks its solver's own status on every call.

Each backend is made to fail on purpose — an option its solver rejects, a solver call that raises,
or a status forced by monkeypatching the solver's own API (Gurobi left at LOADED or NUMERIC,
Pyomo's termination condition set to ``error``, cvxpy's problem left ``optimal_inaccurate``) — and
the tests check that no bound, no infeasibility claim and no optimality claim comes back, from the
backend (a :class:`~netopt.solvers._base.RawSolution` with status "error", or an exception) and end
to end (``Inversion(...).solve``). Invalid common option values are refused before any work, the
Pyomo backend runs HiGHS with any thread count in any order, and on the conformance models of
``test_backends.py`` no bound that comes back is better than the known optimum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_backends import CASES, CONFIGS, Config, binary_milp, integer_knapsack, lp, relu_net

import netopt
from netopt import solvers
from netopt.errors import (
    OptionError,
    SolverUnavailableError,
)
from netopt.model import ConvexBlock, LinearModel, ModelBuilder
from netopt.problems import Inversion
from netopt.result import Status

TOL = 1e-6
GUROBI = Config("gurobi", "gurobi")
PYOMO_HIGHS = Config("pyomo-highs", "pyomo", {"solver": "highs"})
PYOMO_SCIP = Config("pyomo-scip", "pyomo", {"solver": "scip"})
#: the statuses a failed run must never produce end to end
CLAIMS = (Status.OPTIMAL, Status.INFEASIBLE)


def _no_claim(raw: Any) -> None:
    """A failed run's RawSolution: status "error", no bound, no point, no objective."""
    assert raw.status == "error", (raw.status, raw.message)
    assert raw.bound is None and raw.x is None and raw.objective is None
    assert raw.message


@pytest.fixture(scope="module")
def small_inversion() -> Inversion:
    """An inversion whose target the net cannot reach (so no trivial certificate exists)."""
    net, _ = relu_net((3, 8, 6, 2), seed=1)
    y = net.forward(np.full((1, 3), 1.7))[0] + np.array([0.4, -0.3])
    return Inversion(net, y, norm=1, box=(-1.0, 1.0))


def _solve_end_to_end(prob: Inversion, cfg: Config, **opts: Any) -> netopt.Result:
    # no tightening, no local search: only the backend under test is exercised, quickly
    return cfg.problem_solve(prob, tighten=None, heuristic=False, n_samples=4, **opts)


def _assert_no_claim_end_to_end(res: netopt.Result) -> None:
    assert res.bound is None, (res.status, res.bound, res.message)
    assert res.status not in CLAIMS, (res.status, res.message)
    assert res.gap is None


# ------------------------------------------------------------------ bad common option values
class _Untouchable:
    """A model that fails the test if a backend looks at it: options are checked first."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the backend touched the model ({name}) before checking options")


BAD_OPTIONS = [
    {"time_limit": -5},
    {"time_limit": float("nan")},
    {"time_limit": 0},
    {"time_limit": float("inf")},
    {"gap": -1},
    {"gap": float("nan")},
    {"abs_gap": float("nan")},
    {"threads": -3},
    {"threads": 1.5},
    {"seed": 0.5},
    {"options": ["not", "a", "dict"]},
    {"progress": 3},
]
OPTION_BACKENDS = ["highs", "gurobi", "pyomo", "cvxpy"]


@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=lambda b: f"{next(iter(b))}={b[next(iter(b))]}")
@pytest.mark.parametrize("backend", OPTION_BACKENDS)
def test_bad_common_option_is_refused_before_any_work(backend: str, bad: dict[str, Any]) -> None:
    B = solvers.get(backend)
    with pytest.raises(OptionError, match=next(iter(bad))):
        B().solve(_Untouchable(), **bad)


# ----------------------------------------------------------------------------------- Gurobi
def _gurobi() -> Any:
    GUROBI.skip_unless_available()  # also probes the licence before any monkeypatching
    import gurobipy

    return gurobipy


def _force_gurobi_status(monkeypatch: pytest.MonkeyPatch, gp: Any, status: int) -> None:
    """Every new gurobipy Model reports ``status`` after a real optimize()."""

    class Forced(gp.Model):
        @property
        def Status(self) -> int:  # noqa: N802 - Gurobi's attribute name
            return status

    monkeypatch.setattr(gp, "Model", Forced)


@pytest.mark.parametrize("case", ["lp", "binary_milp"])
@pytest.mark.parametrize("name", ["LOADED", "NUMERIC", "INPROGRESS"])
def test_gurobi_failed_status_gives_no_claim(
    monkeypatch: pytest.MonkeyPatch, name: str, case: str
) -> None:
    gp = _gurobi()
    _force_gurobi_status(monkeypatch, gp, getattr(gp.GRB.Status, name))
    raw = GUROBI.solve(CASES[case]().model)
    _no_claim(raw)
    assert name in raw.message


def test_gurobi_optimize_that_does_nothing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """optimize() returning without a run leaves status LOADED: stale values are never read."""
    gp = _gurobi()
    monkeypatch.setattr(gp.Model, "optimize", lambda self, *a, **k: None)
    raw = GUROBI.solve(binary_milp().model)
    _no_claim(raw)
    assert "LOADED" in raw.message


def test_gurobi_error_during_optimize_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    gp = _gurobi()

    def boom(self: Any, *a: Any, **k: Any) -> None:
        raise gp.GurobiError(10001, "Out of memory")

    monkeypatch.setattr(gp.Model, "optimize", boom)
    raw = GUROBI.solve(binary_milp().model)
    _no_claim(raw)
    assert "Out of memory" in raw.message and "10001" in raw.message


@pytest.mark.parametrize("name", ["SUBOPTIMAL", "LOCALLY_OPTIMAL", "CUTOFF"])
def test_gurobi_unproven_status_keeps_point_but_no_bound(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    gp = _gurobi()
    _force_gurobi_status(monkeypatch, gp, getattr(gp.GRB.Status, name))
    raw = GUROBI.solve(integer_knapsack().model)
    assert raw.status == "unknown" and raw.bound is None, raw.message
    assert name in raw.message
    if raw.x is not None:  # kept only for netopt's float64 re-check
        assert integer_knapsack().model.violation(raw.x) <= TOL


@pytest.mark.parametrize("name", ["INF_OR_UNBD", "LOCALLY_INFEASIBLE"])
def test_gurobi_undecided_is_never_infeasible(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """INF_OR_UNBD (even after the re-solve, and on a model whose variables are all bounded) and
    LOCALLY_INFEASIBLE are no proof of infeasibility."""
    gp = _gurobi()
    _force_gurobi_status(monkeypatch, gp, getattr(gp.GRB.Status, name))
    model = CASES["infeasible_milp"]().model
    assert np.all(np.isfinite(model.lb) & np.isfinite(model.ub))
    raw = GUROBI.solve(model)
    assert raw.status == "unknown" and raw.bound is None, raw.message


def test_gurobi_unknown_status_code_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    gp = _gurobi()
    _force_gurobi_status(monkeypatch, gp, 99)
    _no_claim(GUROBI.solve(lp().model))


def test_gurobi_limited_lp_has_no_bound() -> None:
    """A real run stopped by a limit: an LP's incumbent bounds nothing."""
    _gurobi()
    raw = GUROBI.solve(lp().model, options={"IterationLimit": 0, "Presolve": 0})
    assert raw.status == "time_limit", raw.message
    assert raw.bound is None


@pytest.mark.parametrize(
    "bad",
    [
        {"TimeLimit": -5},
        {"TimeLimit": float("nan")},
        {"MIPGap": -1},
        {"Threads": 1.5},
        {"IntFeasTol": 1.0},
        {"Seed": 2**40},
        {"MIPGap": "tight"},
    ],
    ids=str,
)
def test_gurobi_rejected_parameter_value_is_an_option_error(bad: dict[str, Any]) -> None:
    _gurobi()
    with pytest.raises(OptionError, match=next(iter(bad))):
        GUROBI.solve(lp().model, options=bad)


def test_gurobi_reports_its_tolerances() -> None:
    _gurobi()
    raw = GUROBI.solve(binary_milp().model, gap=1e-5, options={"IntFeasTol": 1e-7})
    assert raw.status == "optimal"
    tol = raw.extra["tolerances"]
    assert set(tol) == {
        "mip_rel_gap",
        "mip_abs_gap",
        "mip_feasibility_tolerance",
        "primal_feasibility_tolerance",
    }
    assert all(isinstance(v, float) for v in tol.values())
    assert tol["mip_rel_gap"] == 1e-5 and tol["mip_feasibility_tolerance"] == 1e-7


def test_gurobi_interrupted_keeps_point_and_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """INTERRUPTED (Gurobi's own Ctrl-C handler) is the user's stop, not a time limit: the
    run's point and proven bound are kept, as HiGHS's are."""
    gp = _gurobi()
    _force_gurobi_status(monkeypatch, gp, gp.GRB.Status.INTERRUPTED)
    case = integer_knapsack()
    raw = GUROBI.solve(case.model)
    assert raw.status == "interrupted", raw.message
    assert raw.x is not None and raw.bound is not None
    assert case.model.violation(raw.x) <= TOL


def test_gurobi_stops_at_a_stop_request() -> None:
    """A stop request (what Ctrl-C does under netopt's guard, which Gurobi's handler never
    sees) reaches a running Gurobi through its callback: the solve ends "interrupted", with
    only what it proved; the same solve unstopped is optimal."""
    from netopt import control

    _gurobi()
    case = binary_milp()
    control.request_interrupt()  # already asked: the solve's first callback stops it
    try:
        raw = GUROBI.solve(case.model)
    finally:
        control.clear_interrupt()
    assert raw.status == "interrupted", raw.message
    if raw.bound is not None:
        assert raw.bound <= case.objective + TOL
    if raw.x is not None:
        assert case.model.violation(raw.x) <= TOL
    assert GUROBI.solve(case.model).status == "optimal"


def test_gurobi_verbose_log_goes_to_stderr(capfd: pytest.CaptureFixture) -> None:
    """stdout stays the result's (``--json``): Gurobi's log, banner included, goes to stderr."""
    _gurobi()
    capfd.readouterr()
    raw = GUROBI.solve(binary_milp().model, verbose=True)
    out, err = capfd.readouterr()
    assert raw.status == "optimal"
    assert out == ""
    assert "Gurobi" in err and "Optimal solution found" in err
    GUROBI.solve(binary_milp().model)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("name", ["NUMERIC", "SUBOPTIMAL", "INF_OR_UNBD", "LOADED"])
def test_gurobi_failure_end_to_end(
    monkeypatch: pytest.MonkeyPatch, small_inversion: Inversion, name: str
) -> None:
    gp = _gurobi()
    _force_gurobi_status(monkeypatch, gp, getattr(gp.GRB.Status, name))
    res = _solve_end_to_end(small_inversion, GUROBI)
    _assert_no_claim_end_to_end(res)
    assert name in res.message


# ------------------------------------------------------------------------------------ Pyomo
def _force_appsi_condition(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """APPSI's HiGHS runs for real, then reports termination condition ``name``."""
    from pyomo.contrib.appsi.base import TerminationCondition
    from pyomo.contrib.appsi.solvers.highs import Highs

    post = Highs._postsolve

    def forced(self: Any, timer: Any) -> Any:
        res = post(self, timer)
        res.termination_condition = getattr(TerminationCondition, name)
        return res

    monkeypatch.setattr(Highs, "_postsolve", forced)


@pytest.mark.parametrize("case", ["lp", "binary_milp"])
@pytest.mark.parametrize("name", ["error", "unknown", "licensingProblems"])
def test_pyomo_highs_failed_condition_gives_no_claim(
    monkeypatch: pytest.MonkeyPatch, name: str, case: str
) -> None:
    PYOMO_HIGHS.skip_unless_available()
    _force_appsi_condition(monkeypatch, name)
    raw = PYOMO_HIGHS.solve(CASES[case]().model)
    _no_claim(raw)
    assert name in raw.message


def test_pyomo_highs_failed_run_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """HiGHS's run() returning kError (which APPSI ignores) is caught: no stale bound is read."""
    PYOMO_HIGHS.skip_unless_available()
    import highspy

    from netopt.solvers.highs_session import quiet_banner

    quiet_banner()
    monkeypatch.setattr(highspy.Highs, "run", lambda self: highspy.HighsStatus.kError)
    raw = PYOMO_HIGHS.solve(binary_milp().model)
    _no_claim(raw)
    assert "failed" in raw.message


def _with_free_variable() -> LinearModel:
    """min x + y over x in [0, 1] and a free y with y >= x: bounded below, but y is free."""
    b = ModelBuilder()
    v = b.add_vars(2, [0.0, -np.inf], [1.0, np.inf], integer=[True, False], name="v")
    b.add_rows([0, 0], v, [-1.0, 1.0], 0.0, np.inf, 1, name="r")
    return b.build(np.array([1.0, 1.0]))


def test_pyomo_infeasible_or_unbounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """infeasibleOrUnbounded is infeasible only when every variable of the model is bounded."""
    PYOMO_HIGHS.skip_unless_available()
    import pyomo.environ as pyo

    from netopt.solvers.pyomo_backend import PyomoBackend, to_pyomo

    _force_appsi_condition(monkeypatch, "infeasibleOrUnbounded")
    bounded = CASES["infeasible_milp"]().model
    raw = PYOMO_HIGHS.solve(bounded)
    assert raw.status == "infeasible" and raw.bound is None and raw.x is None, raw.message
    raw = PYOMO_HIGHS.solve(_with_free_variable())
    assert raw.status == "unknown" and raw.bound is None, raw.message
    # a variable the user adds to the Pyomo model counts too
    pm = to_pyomo(bounded)
    pm.extra_var = pyo.Var(bounds=(None, 3.0))
    pm.extra_row = pyo.Constraint(expr=pm.extra_var >= -1e30)
    raw = PyomoBackend().solve_pyomo(pm, bounded)
    assert raw.status == "unknown" and raw.bound is None, raw.message


def test_pyomo_scip_failed_condition_gives_no_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    PYOMO_SCIP.skip_unless_available()
    from pyomo.contrib.solver.common.results import TerminationCondition
    from pyomo.contrib.solver.solvers.scip.scip_direct import ScipDirect

    # SCIP runs for real; Pyomo then reads every SCIP status as a solver error
    class AllErrors(dict):
        def get(self, key: Any, default: Any = None) -> Any:
            return TerminationCondition.error

    monkeypatch.setattr(ScipDirect, "_get_tc_map", lambda self: AllErrors())
    _no_claim(PYOMO_SCIP.solve(binary_milp().model))


def test_pyomo_scip_solution_limit_keeps_a_sound_bound() -> None:
    """A real run SCIP stops at its solution limit (Pyomo: "unknown"): a limit, bound <= optimum."""
    PYOMO_SCIP.skip_unless_available()
    case = integer_knapsack()
    raw = PYOMO_SCIP.solve(case.model, options={"limits/solutions": 1, "presolving/maxrounds": 0})
    assert raw.status == "time_limit" and "sollimit" in raw.message, raw.message
    assert raw.x is not None and case.model.violation(raw.x) <= TOL
    if raw.bound is not None:
        assert raw.bound <= case.objective + TOL * max(1.0, abs(case.objective))


@pytest.mark.parametrize(
    ("cfg", "bad"),
    [
        (PYOMO_HIGHS, {"time_limit": -5.0}),
        (PYOMO_HIGHS, {"time_limit": float("nan")}),
        (PYOMO_HIGHS, {"threads": 1.5}),
        (PYOMO_HIGHS, {"mip_rel_gap": -1.0}),
        (PYOMO_SCIP, {"limits/time": -5.0}),
        (PYOMO_SCIP, {"lp/threads": 1.5}),
        (PYOMO_SCIP, {"limits/gap": float("nan")}),
    ],
    ids=lambda v: v.id if isinstance(v, Config) else str(v),
)
def test_pyomo_rejected_option_value_before_build(
    monkeypatch: pytest.MonkeyPatch, cfg: Config, bad: dict[str, Any]
) -> None:
    cfg.skip_unless_available()
    from netopt.solvers.pyomo_backend import backend as pyomo_backend

    def no_build(model: Any) -> None:
        raise AssertionError("the model was built before the options were checked")

    monkeypatch.setattr(pyomo_backend, "to_pyomo", no_build)
    with pytest.raises(OptionError, match=next(iter(bad)).replace("/", ".")):
        cfg.solve(lp().model, options=bad)


@pytest.mark.parametrize("cfg", [PYOMO_HIGHS, PYOMO_SCIP], ids=lambda c: c.id)
def test_pyomo_common_option_out_of_solver_range(cfg: Config) -> None:
    """seed=-1 is an integer (check_options lets it through) but out of the solvers' range."""
    cfg.skip_unless_available()
    with pytest.raises(OptionError, match="seed"):
        cfg.solve(lp().model, seed=-1)


def test_pyomo_highs_threads_in_any_order() -> None:
    """HiGHS keeps one scheduler per process: threads None, 1, 2 in any order all solve."""
    PYOMO_HIGHS.skip_unless_available()
    from netopt.solvers import highs_session

    case = integer_knapsack()
    seen = []
    for threads in [None, 1, 2, 1, None, 2, 0]:
        raw = PYOMO_HIGHS.solve(case.model, threads=threads)
        assert raw.status == "optimal", (threads, raw.message)
        seen.append(raw.objective)
    # another library may restart the scheduler behind netopt's back: the run is retried
    highs_session._scheduler_threads = 1  # the real scheduler has 2 (the last explicit count)
    try:
        raw = PYOMO_HIGHS.solve(case.model, threads=1)
    finally:
        highs_session._scheduler_threads = None  # unknown again: the next explicit count resets
    assert raw.status == "optimal", raw.message
    seen.append(raw.objective)
    assert max(abs(v - case.objective) for v in seen) <= TOL * max(1.0, abs(case.objective))


@pytest.mark.parametrize("name", ["error", "unknown", "infeasibleOrUnbounded", "run_fails"])
def test_pyomo_failure_end_to_end(
    monkeypatch: pytest.MonkeyPatch, small_inversion: Inversion, name: str
) -> None:
    PYOMO_HIGHS.skip_unless_available()
    if name == "run_fails":
        import highspy

        from netopt.solvers.highs_session import quiet_banner

        quiet_banner()
        monkeypatch.setattr(highspy.Highs, "run", lambda self: highspy.HighsStatus.kError)
    else:
        _force_appsi_condition(monkeypatch, name)
    res = _solve_end_to_end(small_inversion, PYOMO_HIGHS)
    if name == "infeasibleOrUnbounded":
        # the MILP's variables are all bounded (input box, big-M bounds), so the backend reads
        # the forced claim as "infeasible"; but the domain is a box and the starting point lies
        # in it: the re-check refutes the claim, and nothing is claimed
        assert res.status == Status.ERROR and res.bound is None
        assert "claims infeasibility" in res.message
        return
    _assert_no_claim_end_to_end(res)


# ------------------------------------------------------------------------------------ cvxpy
def _block() -> Any:
    """A small lifted-Bregman block (least squares through a ReLU layer, l2 regularizer, box)."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((8, 5)) / np.sqrt(5)
    b = 0.1 * rng.standard_normal(8)
    f = np.maximum(W @ rng.uniform(0, 1, 5) + b, 0)
    return ConvexBlock(W, b, f, 0.0, reg="l2", alpha=1e-2, lo=np.zeros(5), hi=np.ones(5))


def _cvxpy() -> Any:
    return pytest.importorskip("cvxpy")


def _force_cvxpy_status(monkeypatch: pytest.MonkeyPatch, cp: Any, status: str) -> None:
    """Problem.solve runs for real, then reports ``status``."""
    solve = cp.Problem.solve

    def forced(self: Any, *a: Any, **k: Any) -> Any:
        out = solve(self, *a, **k)
        self._status = status
        return out

    monkeypatch.setattr(cp.Problem, "solve", forced)


def test_cvxpy_solver_error_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    cp = _cvxpy()

    def boom(self: Any, *a: Any, **k: Any) -> None:
        raise cp.error.SolverError("the solver crashed on purpose")

    monkeypatch.setattr(cp.Problem, "solve", boom)
    raw = solvers.get("cvxpy")().solve(_block())
    _no_claim(raw)
    assert "crashed on purpose" in raw.message


def test_cvxpy_inaccurate_optimum_is_no_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    cp = _cvxpy()
    _force_cvxpy_status(monkeypatch, cp, cp.OPTIMAL_INACCURATE)
    raw = solvers.get("cvxpy")().solve(_block())
    assert raw.status == "unknown" and raw.bound is None and raw.objective is None, raw.message
    assert raw.x is not None  # kept for re-checking only
    assert "optimal_inaccurate" in raw.message


@pytest.mark.parametrize("status", ["infeasible_inaccurate", "unbounded_inaccurate", "weird"])
def test_cvxpy_inaccurate_infeasibility_is_no_proof(
    monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    cp = _cvxpy()
    _force_cvxpy_status(monkeypatch, cp, status)
    _no_claim(solvers.get("cvxpy")().solve(_block()))


def test_cvxpy_iteration_limit_has_no_value() -> None:
    """A real run stopped by its iteration limit: cvxpy still sets a value; it is not used."""
    _cvxpy()
    raw = solvers.get("cvxpy")().solve(_block(), options={"solver": "CLARABEL", "max_iter": 1})
    assert raw.status == "time_limit", raw.message
    assert raw.bound is None and raw.objective is None and raw.x is None


def test_cvxpy_rejects_bad_solver_options() -> None:
    _cvxpy()
    B = solvers.get("cvxpy")
    with pytest.raises(OptionError, match="solver"):
        B().solve(_block(), options={"solver": 3})
    with pytest.raises(SolverUnavailableError, match="NOPE"):
        B().solve(_block(), options={"solver": "NOPE"})
    with pytest.raises(OptionError, match="no_such_setting"):
        B().solve(_block(), options={"solver": "CLARABEL", "no_such_setting": 1})


def test_cvxpy_failure_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """lifted_bregman's certificate needs an accurate optimum: an inaccurate one certifies nothing.

    The first-order point is kept (re-checked in float64); no gap is reported.
    """
    cp = _cvxpy()
    from netopt.instances._onnx import mlp_onnx

    rng = np.random.default_rng(1)
    W1, b1 = rng.standard_normal((6, 4)) / 2, 0.1 * rng.standard_normal(6)
    y = np.maximum(W1 @ rng.uniform(0, 1, 4) + b1, 0)
    net = netopt.load(mlp_onnx([W1], [b1], ["relu"], dtype=np.float64))
    prob = netopt.Inversion(net, y[None], norm=2)
    ok = prob.solve("lifted_bregman", regularizer="l2", alpha=1e-3, max_iter=200)
    assert "certificate" in ok.extra["bregman"]
    assert ok.extra["bregman"]["certified"] and ok.extra["bregman"]["rel_gap"] is not None
    _force_cvxpy_status(monkeypatch, cp, cp.OPTIMAL_INACCURATE)
    bad = prob.solve("lifted_bregman", regularizer="l2", alpha=1e-3, max_iter=200)
    br = bad.extra["bregman"]
    assert br["certified"] is False and br["rel_gap"] is None
    assert all(c["exact"] is None for c in br["certificate"])
    assert "optimal_inaccurate" in br["certificate"][0]["message"]
    assert bad.x is not None and np.allclose(bad.x, ok.x)


# ------------------------------------------------------------------------- the soundness contract
LIMITS = {
    "highs": {"mip_max_nodes": 0},
    "gurobi": {"NodeLimit": 0},
    "pyomo-highs": {"mip_max_nodes": 0},
    "pyomo-scip": {"limits/nodes": 1},
}


@pytest.mark.parametrize("limited", [False, True], ids=["default", "node_limit"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_every_bound_is_sound(cfg: Config, limited: bool) -> None:
    """Over the conformance models, a returned bound never exceeds the known optimum (min)."""
    cfg.skip_unless_available()
    extra = LIMITS.get(cfg.id, {}) if limited else {}
    ran = 0
    for name, make in CASES.items():
        case = make()
        if not case.needs - {"start"} <= cfg.features:
            continue
        opts = {"options": dict(extra)} if case.model.is_mip and extra else {}
        raw = cfg.solve(case.model, **opts)
        ran += 1
        if case.status == "infeasible":
            assert raw.status in ("infeasible", "time_limit", "unknown"), (name, raw.message)
            continue
        assert raw.status != "infeasible", (name, raw.message)
        if raw.bound is not None:
            assert raw.bound <= case.objective + TOL * max(1.0, abs(case.objective)), (
                name,
                raw.bound,
                case.objective,
            )
        if raw.status == "optimal":
            assert abs(raw.objective - case.objective) <= TOL * max(1.0, abs(case.objective))
    assert ran


@pytest.mark.parametrize("tl", [-5.0, float("nan"), 0.0, float("inf")])
def test_first_order_time_limit_is_checked(tl: float) -> None:
    """The first-order methods refuse the same bad time limits (no limit at all would follow)."""
    pytest.importorskip("torch")
    from netopt.instances._onnx import mlp_onnx

    rng = np.random.default_rng(0)
    net = netopt.load(mlp_onnx([rng.normal(size=(4, 3))], [np.zeros(4)], ["relu"]))
    prob = netopt.Inversion(net, np.ones(4), box=(-1.0, 1.0))
    with pytest.raises(OptionError, match="time_limit"):
        prob.solve("adam", time_limit=tl)
