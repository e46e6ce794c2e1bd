"""The default exact method "auto": which phases it runs, and that what it returns is the truth.

References: brute force over activation patterns (the optimum), the MILP alone, the proof
checker (a branch-and-bound bound re-checked without the search).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from helpers.brute import brute_force, random_mlp
from helpers.nets import mlp_net

import netopt
from netopt import formulations
from netopt.cli.main import main
from netopt.errors import SolveError
from netopt.formulations.auto import (
    BAB_MAX_INPUTS,
    BAB_MAX_OUTPUTS,
    _stronger,
    milp_backend,
    plan,
)
from netopt.problems import Feasibility, Inversion, OutputObjective
from netopt.result import Outcome, Status


def _net(n_in: int, seed: int = 0, n_out: int = 2):
    net, _, _ = mlp_net([n_in, 6, n_out], ["relu", None], seed=seed)
    return net


@pytest.mark.parametrize(
    ("n_in", "kind", "kw", "phases"),
    [
        (3, "l1", {}, ["bab", "milp"]),
        (BAB_MAX_INPUTS, "linf", {}, ["bab", "milp"]),
        (BAB_MAX_INPUTS + 1, "l1", {}, ["milp"]),
        (3, "l2", {}, ["bab"]),  # the 2-norm's MILP needs a MIQP backend
        (3, "max", {}, ["bab", "milp"]),
        (3, "feas", {}, ["bab", "milp"]),
        (12, "feas", {}, ["milp"]),  # decisions: input splitting up to 8 inputs
        (3, "l1", {"solver": "highs"}, ["milp"]),  # a backend named: the MILP on it
        (3, "l1", {"relax": True}, ["milp"]),
        (3, "l1", {"A": True}, ["milp"]),  # linear input constraints: no box to split
        (3, "l1", {"outputs": BAB_MAX_OUTPUTS}, ["bab", "milp"]),
        (3, "l1", {"outputs": BAB_MAX_OUTPUTS + 1}, ["milp"]),  # rows through every output
        (3, "max", {"outputs": BAB_MAX_OUTPUTS + 1}, ["milp"]),
        (3, "feas", {"outputs": BAB_MAX_OUTPUTS + 1}, ["milp"]),
    ],
)
def test_the_plan_follows_the_rule(n_in, kind, kw, phases):
    n_out = kw.get("outputs", 2)
    net = _net(n_in, n_out=n_out)
    dom = {"box": (-1.0, 1.0)}
    if kw.get("A"):
        dom.update(A=np.ones((1, n_in)), b=np.ones(1))
    y = np.zeros(n_out)
    if kind in ("l1", "l2", "linf"):
        prob = Inversion(net, y, norm={"l1": 1, "l2": 2, "linf": "inf"}[kind], **dom)
    elif kind == "max":
        prob = OutputObjective(net, np.eye(n_out)[0] - np.eye(n_out)[1], sense="max", **dom)
    else:
        prob = Feasibility(net, y, tol=0.1, **dom)
    opts = {k: v for k, v in kw.items() if k in ("relax",)}
    got, why = plan(prob, kw.get("solver"), opts)
    assert got == phases, why
    assert why


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p", [1, np.inf])
def test_the_default_finds_the_brute_force_optimum_with_a_checked_certificate(seed, p):
    model, Ws, bs = random_mlp(seed)
    net = netopt.load(model)
    rng = np.random.default_rng(200 + seed)
    target = net(rng.uniform(-2, 2, net.input_shape)) + rng.normal(size=net.output_shape) * 0.3
    ref = brute_force(Ws, bs, target, p)
    prob = Inversion(net, target, norm=p, box=(-1, 1))
    r = prob.solve(time_limit=60)
    assert r.status == Status.OPTIMAL, r.message
    assert r.objective == pytest.approx(ref, rel=1e-6, abs=1e-7)
    assert r.bound <= ref + 1e-9
    assert r.extra["auto"]["plan"] == ["bab", "milp"]
    assert r.formulation == "bab"  # closed by branch and bound: the MILP never ran
    assert "milp" not in r.extra["auto"]
    rep = r.certificate.verify(net)
    assert rep["ok"], rep
    if r.bound > 0:
        assert "bound_proof" in r.certificate.evidence


def _weak(problem, bound: float, x: np.ndarray, claim: str = "time_limit") -> Outcome:
    return Outcome([x], claim, bound=bound, formulation="bab", solver="stub")


def _handover_problem() -> tuple:
    """A small l1 inversion, its brute-force optimum, and a poor point (the input 0) for a
    stubbed branch and bound to stop at."""
    model, Ws, bs = random_mlp(3)
    net = netopt.load(model)
    target = net(np.zeros(net.input_shape)) + 0.7
    prob = Inversion(net, target, norm=1, box=(-1, 1))
    return prob, brute_force(Ws, bs, target, 1), np.zeros(net.input_shape)


def test_an_unfinished_branch_and_bound_hands_over_to_the_milp(monkeypatch):
    prob, ref, x_mid = _handover_problem()
    # branch and bound stopping early: a valid but loose bound and a poor point
    monkeypatch.setattr(
        formulations.get("bab"),
        "run",
        lambda self, problem, solver=None, **o: _weak(problem, 0.0, x_mid),
    )
    seen = {}
    milp_run = formulations.get("milp").run

    def spy(self, problem, solver=None, **o):
        seen.update(o)
        return milp_run(self, problem, solver, **o)

    monkeypatch.setattr(formulations.get("milp"), "run", spy)
    r = prob.solve(time_limit=30)
    assert r.status == Status.OPTIMAL
    assert r.objective == pytest.approx(ref, rel=1e-6, abs=1e-7)
    assert r.formulation == "milp"
    assert r.extra["auto"]["plan"] == ["bab", "milp"]
    assert r.extra["auto"]["bab"]["claim"] == "time_limit"
    assert r.extra["auto"]["milp"]["claim"] == "optimal"
    # the MILP starts from branch and bound's point, within what the time limit has left
    assert np.allclose(np.asarray(seen["start"]).reshape(-1, x_mid.size)[0], x_mid.reshape(-1))
    assert 0 < seen["time_limit"] <= 30


@pytest.mark.parametrize(
    "here, caps, pip, kw, want",
    [
        (False, None, False, {}, None),  # no gurobipy or no licence
        (True, None, False, {}, "gurobi"),  # a full licence
        (True, None, False, {"options": {"mip_rel_gap": 1e-4}}, None),  # HiGHS's options
        (True, None, False, {"verbose": True}, None),  # HiGHS's log, as documented
        (True, {"variables": 2000, "constraints": 2000}, False, {}, None),  # the pip licence
        (True, {"variables": 2000, "constraints": 2000}, True, {}, "gurobi"),  # ... allowed
        (True, {"variables": 20, "constraints": 2000}, True, {}, None),  # ... too small
    ],
)
def test_which_backend_runs_the_milp_phase(monkeypatch, here, caps, pip, kw, want):
    """milp_backend: Gurobi with a licence of no size limit (one with limits only when allowed
    and the model fits), unless solver options or a log ask for HiGHS."""
    import netopt.formulations.auto as auto_mod
    from netopt import solvers

    gurobi = solvers.get("gurobi")
    monkeypatch.setattr(gurobi, "available", classmethod(lambda cls: (here, "")))
    monkeypatch.setattr(gurobi, "size_limits", classmethod(lambda cls: caps))
    monkeypatch.setattr(auto_mod, "USE_SIZE_LIMITED_GUROBI", pip)
    prob = Inversion(_net(3), np.zeros(2), norm=1, box=(-1, 1))
    assert milp_backend(prob, kw) == want


def test_the_size_estimate_bounds_the_milp_gurobi_is_given(monkeypatch):
    """milp_size is an upper bound on the MILP's variables and rows as Gurobi counts them
    (ReLU and leaky ReLU; the model captured on its way to HiGHS, loose bounds: no tightening)."""
    from netopt import solvers
    from netopt.formulations.auto import milp_size
    from netopt.solvers.gurobi_backend import _size

    highs = solvers.get("highs")
    real = highs.solve
    seen = []

    def spy(self, model, **o):
        seen.append(_size(model))
        return real(self, model, **o)

    monkeypatch.setattr(highs, "solve", spy)
    for acts in (["relu", "relu", None], ["leaky_relu", "relu", None]):
        net, _, _ = mlp_net([3, 12, 9, 2], acts, seed=1)
        prob = Inversion(net, np.zeros(2), norm=1, box=(-5, 5))
        seen.clear()
        prob.solve("milp", time_limit=30, bounds="interval", tighten=None)
        n_var, n_row = milp_size(prob)
        assert seen and max(z["variables"] for z in seen) <= n_var
        assert max(z["constraints"] for z in seen) <= n_row


@pytest.mark.parametrize("refuses", [False, True])
def test_the_milp_phase_on_gurobi_gets_the_longer_share_and_falls_back_to_highs(
    monkeypatch, refuses
):
    """With Gurobi as the MILP phase's backend, branch and bound gets BAB_SHARE_GUROBI of the
    time and the MILP runs on Gurobi; where Gurobi refuses the model (its licence's size limit),
    HiGHS runs it with the time left and the record says so."""
    import netopt.formulations.auto as auto_mod
    from netopt.errors import SolverUnavailableError

    prob, ref, x_mid = _handover_problem()
    monkeypatch.setattr(auto_mod, "milp_backend", lambda problem, options: "gurobi")
    got: dict = {"solvers": []}

    def bab(self, problem, solver=None, **o):
        got["bab_time"] = o.get("time_limit")
        return _weak(problem, 0.0, x_mid)

    monkeypatch.setattr(formulations.get("bab"), "run", bab)
    milp_run = formulations.get("milp").run

    def spy(self, problem, solver=None, **o):
        got["solvers"].append(solver)
        if solver == "gurobi" and refuses:
            raise SolverUnavailableError("the model exceeds the size-limited licence")
        return milp_run(self, problem, None, **o)  # (HiGHS either way: no licence needed)

    monkeypatch.setattr(formulations.get("milp"), "run", spy)
    r = prob.solve(time_limit=30)
    assert got["bab_time"] == pytest.approx(auto_mod.BAB_SHARE_GUROBI * 30)
    assert r.status == Status.OPTIMAL
    assert r.objective == pytest.approx(ref, rel=1e-6, abs=1e-7)
    assert got["solvers"] == (["gurobi", None] if refuses else ["gurobi"])
    assert r.extra["auto"]["milp_backend"] == ("highs" if refuses else "gurobi")


def test_a_failing_milp_keeps_branch_and_bounds_point_and_bound(monkeypatch):
    net = _net(3)
    prob = Inversion(net, np.array([9.0, -9.0]), norm=1, box=(-1, 1))
    x = np.full(3, 0.25)
    monkeypatch.setattr(
        formulations.get("bab"),
        "run",
        lambda self, problem, solver=None, **o: _weak(problem, 1.0, x),
    )

    def broken(self, problem, solver=None, **o):
        raise SolveError("HiGHS: run failed")

    monkeypatch.setattr(formulations.get("milp"), "run", broken)
    r = prob.solve(time_limit=10)
    assert r.status == Status.TIME_LIMIT
    assert r.bound == 1.0 and np.allclose(r.x, x)
    assert "run failed" in r.extra["auto"]["milp"]["error"]


def test_the_stronger_claim_wins():
    prob = Inversion(_net(3), np.zeros(2), norm=1, box=(-1, 1))
    x = np.zeros(3)
    a = Outcome([x], "time_limit", bound=2.0, formulation="bab")
    b = Outcome([x], "time_limit", bound=1.5, formulation="milp")
    assert _stronger(prob, a, b) is a  # the higher lower bound
    assert _stronger(prob, b, a) is a
    c = Outcome([x], "optimal", bound=1.9, formulation="milp")
    assert _stronger(prob, a, c) is c  # a closed gap is a claim the other cannot make
    d = Outcome([x], "error", bound=None, formulation="milp")
    assert _stronger(prob, a, d) is a
    top = OutputObjective(_net(3), [1.0, 0.0], sense="max", box=(-1, 1))
    assert _stronger(top, a, b) is b  # maximizing: the lower upper bound


def test_the_2norm_on_highs_is_optimized_by_branch_and_bound():
    net = _net(2, seed=3)
    target = np.array([2.0, -1.0])
    prob = Inversion(net, target, norm=2, box=(-1, 1))
    r = prob.solve(time_limit=30)
    assert r.extra["auto"]["plan"] == ["bab"]
    assert r.status == Status.OPTIMAL
    g = np.linspace(-1, 1, 201)
    X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    vals = np.linalg.norm(net(X) - target, axis=1)
    assert r.bound <= vals.min() + 1e-9  # a bound below every sampled value
    assert r.objective <= vals.min() + 1e-6  # and a point as good as the grid's best
    assert r.certificate.verify(net)["ok"]


def test_the_cli_default_writes_a_certificate_verify_accepts_without_the_solver(tmp_path):
    model, _, _ = random_mlp(5)
    path = tmp_path / "net.onnx"
    onnx.save(model, path)
    net = netopt.load(path)
    t = tmp_path / "t.json"
    t.write_text(json.dumps({"target": (net(np.zeros(net.input_shape)) + 3.0).tolist()}))
    cert = tmp_path / "cert.json"
    argv = ["invert", str(path), "--target", str(t), "--box", "-1", "1", "--quiet"]
    assert main([*argv, "--time-limit", "30", "--out", str(cert)]) == 0
    doc = json.loads(cert.read_text())
    assert doc["evidence"]["formulation"] == "bab"
    assert doc["evidence"]["status"] == "optimal"
    # the bound is proven by a tree verify re-checks: no solver-attested claim, exit 0
    assert main(["verify", str(cert), str(path)]) == 0


@pytest.mark.parametrize("seed", range(3))
def test_the_default_decides_feasibility_by_branch_and_bound_with_a_proof(seed):
    model, Ws, bs = random_mlp(10 + seed)
    net = netopt.load(model)
    rng = np.random.default_rng(seed)
    y0 = net(rng.uniform(-1, 1, net.input_shape))
    ref = brute_force(Ws, bs, y0, np.inf)  # 0: y0 is reached
    far = y0 + 50.0
    assert ref <= 1e-9 and brute_force(Ws, bs, far, np.inf) > 1.0
    sat = Feasibility(net, y0, tol=0.05, box=(-1, 1)).solve(time_limit=30)
    assert sat.verdict == "sat" and sat.extra["auto"]["plan"] == ["bab", "milp"]
    unsat = Feasibility(net, far, tol=1.0, box=(-1, 1)).solve(time_limit=30)
    assert unsat.status == Status.INFEASIBLE
    assert unsat.formulation == "bab"
    cert = unsat.certificate
    assert "proof" in cert.evidence  # a tree verify re-checks, not a solver's word
    assert cert.verify(net)["ok"]


@pytest.mark.parametrize("n_in", [3, 10])
def test_branch_and_bound_gets_the_longer_share_on_few_inputs_before_highs(monkeypatch, n_in):
    """Before a MILP phase on HiGHS, branch and bound gets BAB_SHARE_FEW_INPUTS of the time
    over a box of at most INPUT_SPLIT_MAX_DIM inputs (input splitting's ground), else
    BAB_SHARE."""
    import netopt.formulations.auto as auto_mod
    from netopt.bounds.branch import INPUT_SPLIT_MAX_DIM
    from netopt.instances import mlp_instance

    net = mlp_instance((n_in, 8, 2), 0, target="realizable").net
    prob = Inversion(net, net(np.zeros(net.input_shape)) + 0.7, norm=1, box=(-1, 1))
    monkeypatch.setattr(auto_mod, "milp_backend", lambda problem, options: "highs")
    got: dict = {}

    def bab(self, problem, solver=None, **o):
        got["bab_time"] = o.get("time_limit")
        return _weak(problem, 0.0, np.zeros(net.input_shape))

    monkeypatch.setattr(formulations.get("bab"), "run", bab)
    prob.solve(time_limit=4)
    share = auto_mod.BAB_SHARE_FEW_INPUTS if n_in <= INPUT_SPLIT_MAX_DIM else auto_mod.BAB_SHARE
    assert got["bab_time"] == pytest.approx(share * 4)
    assert auto_mod.BAB_SHARE_FEW_INPUTS != auto_mod.BAB_SHARE
