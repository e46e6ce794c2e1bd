"""Proven bounds of optimization problems by ReLU-split decisions (``netopt.bounds.opt_decide``):
the rows give the objective exactly, the bounds reach brute force's optimum and never pass it,
and the proofs re-check as bound proofs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.brute import brute_force
from helpers.nets import mlp_net

from netopt.bounds.objective_rows import minorant_of, proof_rhs, rows_imply_bound
from netopt.bounds.opt_decide import (
    DECISION_CANDIDATES,
    DECISION_RATES,
    MAX_L1_OUTPUTS,
    binding_rows,
    decision_rows,
    raise_bound,
    row_maxima,
)
from netopt.bounds.proof import check_proof
from netopt.bounds.proof_format import BabProof
from netopt.control import Deadline
from netopt.problems import Inversion, OutputObjective
from netopt.result import Status

pytest.importorskip("torch")


@pytest.mark.parametrize("kind", ["l1", "linf", "min", "max"])
def test_the_rows_give_the_objective(kind):
    """max_i (V_i f + e(V_i)) equals the minimized objective on random outputs (a zero weight
    included): the sublevel set is exactly the rows' polyhedron."""
    rng = np.random.default_rng(0)
    net, _, _ = mlp_net([3, 4, 4], ["relu", None], seed=0)
    y = rng.normal(size=4)
    if kind in ("min", "max"):
        prob = OutputObjective(net, rng.normal(size=4), sense=kind, constant=0.3, box=(-1, 1))
    else:
        w = np.array([1.0, 0.0, 2.5, 0.5])
        prob = Inversion(net, y, norm=1 if kind == "l1" else np.inf, weights=w, box=(-1, 1))
    mn = minorant_of(prob)
    V = decision_rows(mn)
    Y = rng.normal(size=(200, 4)) * 3
    g = mn.sign * prob.evaluate(Y)
    via_rows = (Y @ V.T + mn.offsets(V)[None]).max(axis=1)
    np.testing.assert_allclose(via_rows, g, rtol=1e-12, atol=1e-12)


def test_objectives_without_few_rows_are_left_out():
    net, _, _ = mlp_net([2, 3, 8], ["relu", None], seed=0)
    assert decision_rows(minorant_of(Inversion(net, np.zeros(8), norm=2, box=(-1, 1)))) is None
    assert MAX_L1_OUTPUTS < 8
    assert decision_rows(minorant_of(Inversion(net, np.zeros(8), norm=1, box=(-1, 1)))) is None
    zero = Inversion(net, np.zeros(8), norm=np.inf, weights=np.zeros(8), box=(-1, 1))
    assert decision_rows(minorant_of(zero)) is None


@pytest.mark.parametrize("norm", [1, np.inf])
def test_raised_bounds_reach_brute_force_and_their_proofs_recheck(norm):
    """From the trivial bound 0 and an incumbent worse than the optimum, the decisions close
    the gap: the bound never passes brute force's optimum, a better point is found, and the
    last proof's rows imply the bound (exactly) and its tree re-checks in float64."""
    net, Ws, bs = mlp_net([10, 5, 4, 2], ["relu", "relu", None], seed=3)
    rng = np.random.default_rng(3)
    y = net(rng.uniform(-1, 1, 10)) + np.array([2.0, -1.5])
    ref = brute_force(Ws, bs, y, norm)
    prob = Inversion(net, y, norm=norm, box=(-1, 1))
    mn = minorant_of(prob)
    rb = raise_bound(prob, mn, 0.0, ref + 0.5, Deadline(60), rel_gap=1e-6)
    assert rb.bound <= ref + 1e-9
    assert rb.bound >= ref - 1e-5
    assert rb.x is not None and rb.value == pytest.approx(ref, abs=1e-5)
    assert abs(prob.evaluate(net(rb.x.reshape(1, -1)))[0] - rb.value) < 1e-12
    assert {t["verdict"] for t in rb.tries} >= {"sat", "unsat"}
    assert rows_imply_bound(prob, rb.proof.C, rb.proof.d, rb.bound) is None
    pc = check_proof(net.graph, rb.proof)
    assert pc.ok, pc.reason
    # the same tree for a threshold past the optimum (some point reaches it): rejected
    past = proof_rhs(mn, rb.proof.C, ref + 1e-3)
    P = rb.proof
    assert not check_proof(net.graph, BabProof(P.lo, P.hi, P.C, past, P.nodes, P.params)).ok


def test_solve_uses_them_on_many_inputs_and_verify_rechecks(monkeypatch):
    """``solve("bab")`` on 10 inputs: input splitting with a small share of the time, then the
    decisions close the gap; the optimum is the MILP's, and the certificate's bound proof is
    re-checked by ``verify``. The decisions run on the device asked for, as reported."""
    import netopt.bounds.branch as branch
    import netopt.formulations.bab.optimum as om

    monkeypatch.setattr(om, "DECIDE_SHARE", 0.97)
    devices: list = []
    real = branch.branch_and_bound

    def spy(*args, **kw):
        devices.append(kw.get("device"))
        return real(*args, **kw)

    monkeypatch.setattr(branch, "branch_and_bound", spy)
    net, _, _ = mlp_net([10, 12, 12, 2], ["relu", "relu", None], seed=4)
    rng = np.random.default_rng(4)
    y = net(rng.uniform(-1, 1, 10)) + np.array([3.0, 1.0])
    prob = Inversion(net, y, norm=1, box=(-1, 1))
    events: list = []
    r = prob.solve("bab", time_limit=40, progress=events.append, device="cpu")
    ref = prob.solve("milp", time_limit=60)
    assert ref.status == Status.OPTIMAL
    assert r.extra["bab"].get("decisions"), r.message
    assert devices and set(devices) == {"cpu"}
    assert {t["device"] for t in r.extra["bab"]["decisions"]} == {"cpu"}
    assert "ReLU-split decisions on cpu" in r.solver_version
    assert r.status == Status.OPTIMAL, r.message
    assert r.objective == pytest.approx(ref.objective, rel=1e-6)
    assert r.bound <= ref.objective + 1e-9
    rep = r.certificate.verify(net)
    assert rep["outcome"] == "verified" and rep["fully_checked"], rep["checks"]
    # each decision is reported live, its bound never above the final one
    dec = [e for e in events if e["phase"] == "ReLU-split decisions"]
    assert len(dec) == len(r.extra["bab"]["decisions"])
    assert all(e["bound"] <= r.bound for e in dec)
    assert dec[-1]["incumbent"] == pytest.approx(r.objective, rel=1e-12)


def test_a_device_not_there_fails_at_once_and_a_failed_decision_keeps_the_bound(monkeypatch):
    """``solve("bab", device=...)`` with a device torch does not see: an InputError before any
    phase runs. A decision that fails (out of the device's memory on one domain): input
    splitting's bound and point stand, with the failure reported, and nothing more claimed."""
    import time

    import torch

    import netopt.bounds.opt_decide as od
    from netopt.errors import InputError, SolveError

    net, _, _ = mlp_net([10, 12, 12, 2], ["relu", "relu", None], seed=4)
    rng = np.random.default_rng(4)
    y = net(rng.uniform(-1, 1, 10)) + np.array([3.0, 1.0])
    prob = Inversion(net, y, norm=1, box=(-1, 1))
    if not torch.cuda.is_available():
        t = time.perf_counter()
        with pytest.raises(InputError, match="CUDA"):
            prob.solve("bab", time_limit=20, device="cuda")
        assert time.perf_counter() - t < 5  # (not after input splitting's share of 20 s)

    def fails(*a, **k):
        raise SolveError("ReLU splitting ran out of memory on cuda bounding a single domain")

    monkeypatch.setattr(od, "raise_bound", fails)
    r = prob.solve("bab", time_limit=10)
    assert "out of memory" in r.extra["bab"]["decisions_failed"]
    assert r.status == Status.TIME_LIMIT and "decisions failed" in r.message
    assert r.bound is not None and r.bound <= r.objective
    rep = r.certificate.verify(net)
    assert rep["outcome"] == "verified", rep["checks"]


def test_rows_that_hold_on_the_whole_box_are_left_out():
    """A target beyond the box's image in its first output: the l1 rows that add f_0 hold on
    the whole box (their float64 CROWN maxima, above every sampled value, lie below d), so the
    decision leaves them out; its proof of the other two rows alone closes the gap at brute
    force's optimum, implies the bound exactly and re-checks."""
    net, Ws, bs = mlp_net([10, 5, 4, 2], ["relu", "relu", None], seed=3)
    rng = np.random.default_rng(5)
    lo, hi = -np.ones(10), np.ones(10)
    Y = np.asarray(net(rng.uniform(-1, 1, (4000, 10))))
    up_f = row_maxima(net, lo, hi, np.eye(2))
    assert np.all(up_f >= Y.max(axis=0))
    y = np.array([up_f[0] + 1.0, float(np.median(Y[:, 1]))])
    prob = Inversion(net, y, norm=1, box=(-1, 1))
    mn = minorant_of(prob)
    V = decision_rows(mn)
    up = row_maxima(net, lo, hi, V)
    assert np.all(up >= (Y @ V.T).max(axis=0))
    ref = brute_force(Ws, bs, y, 1)
    assert binding_rows(up, proof_rhs(mn, V, ref)).tolist() == (V[:, 0] < 0).tolist()
    # no row binding: every point reaches the threshold, and the question keeps them all
    assert binding_rows(up, up + 1.0).all()
    # a NaN maximum keeps its row
    assert binding_rows(np.array([np.nan, 0.0]), np.zeros(2)).tolist() == [True, False]
    rb = raise_bound(prob, mn, 0.0, ref, Deadline(60), rel_gap=1e-6)
    assert rb.proof is not None and len(rb.proof.C) == 2 and np.all(rb.proof.C[:, 0] < 0)
    assert rb.bound <= ref + 1e-9 and ref - rb.bound <= 1e-6 * max(1.0, ref)
    assert rows_imply_bound(prob, rb.proof.C, rb.proof.d, rb.bound) is None
    pc = check_proof(net.graph, rb.proof)
    assert pc.ok, pc.reason


def test_decisions_run_at_their_own_learning_rates(monkeypatch):
    """The decision's rounds of beta-CROWN take DECISION_RATES and its branching
    DECISION_CANDIDATES (through branch_and_bound's ``rates`` and ``candidates``), not ReLU
    splitting's defaults, and the result is still brute force's."""
    from netopt.bounds.batched import ChainBounds
    from netopt.bounds.branch_relu import FSB_CANDIDATES, RELU_RATES, _ReluSearch

    assert DECISION_RATES != RELU_RATES and DECISION_CANDIDATES != FSB_CANDIDATES
    net, prob, ref = _optimum_case()
    seen: list = []
    cands: list = []
    real = ChainBounds.alpha_crown
    real_units = _ReluSearch._units

    def spy(self, *a, **k):
        if k.get("beta"):
            seen.append((k.get("lr"), k.get("lr_beta"), k.get("lr_mix")))
        return real(self, *a, **k)

    def spy_units(self, *a, **k):
        cands.append(self.candidates)
        return real_units(self, *a, **k)

    monkeypatch.setattr(ChainBounds, "alpha_crown", spy)
    monkeypatch.setattr(_ReluSearch, "_units", spy_units)
    rb = raise_bound(prob, minorant_of(prob), 0.0, ref, Deadline(60), rel_gap=1e-6)
    assert seen and set(seen) == {DECISION_RATES}
    assert cands and set(cands) == {DECISION_CANDIDATES}
    assert rb.bound <= ref + 1e-9 and ref - rb.bound <= 1e-6 * max(1.0, ref)
    # rates that are not three positive numbers: a clear error
    from netopt.bounds.branch import branch_and_bound
    from netopt.errors import OptionError

    V = decision_rows(minorant_of(prob))
    for bad in [(0.1, 0.1), (0.1, 0.0, 0.1), ("a", 1, 1)]:
        with pytest.raises(OptionError, match="rates"):
            branch_and_bound(
                net, -np.ones(10), np.ones(10), V, np.zeros(len(V)), rates=bad, mode="relu"
            )
    for bad in [(0.1, float("inf"), 0.1), "123"]:
        with pytest.raises(OptionError, match="rates"):
            branch_and_bound(net, -np.ones(10), np.ones(10), V, np.zeros(len(V)), rates=bad)
    for bad in [0, 2.5, True]:
        with pytest.raises(OptionError, match="candidates"):
            branch_and_bound(
                net, -np.ones(10), np.ones(10), V, np.zeros(len(V)), candidates=bad, mode="relu"
            )


def test_branch_and_bound_filters_over_the_candidates_it_is_given(monkeypatch):
    """``candidates`` of one search is what filtered smart branching tries per domain, whatever
    the module's default; 1 is BaBSR's pick alone (no children bounded)."""
    import netopt.bounds.branch_relu as br
    from netopt.bounds.branch import branch_and_bound

    net, prob, ref = _optimum_case()
    V = decision_rows(minorant_of(prob))
    d = proof_rhs(minorant_of(prob), V, ref - 1e-3)
    widths: list = []
    real = br.children_lower

    def spy(cb, sb, lo, hi, sp, part, la, un):
        widths.append(la.shape[1])
        return real(cb, sb, lo, hi, sp, part, la, un)

    monkeypatch.setattr(br, "children_lower", spy)
    monkeypatch.setattr(br, "FSB_CANDIDATES", 50)
    lo, hi = -np.ones(10), np.ones(10)
    r = branch_and_bound(net, lo, hi, V, d, mode="relu", candidates=2, time_limit=60)
    assert r.verdict == "unsat" and widths and set(widths) == {2}
    widths.clear()
    r = branch_and_bound(net, lo, hi, V, d, mode="relu", candidates=1, time_limit=60)
    assert r.verdict == "unsat" and not widths


def _optimum_case():
    net, Ws, bs = mlp_net([10, 5, 4, 2], ["relu", "relu", None], seed=3)
    rng = np.random.default_rng(3)
    y = net(rng.uniform(-1, 1, 10)) + np.array([2.0, -1.5])
    prob = Inversion(net, y, norm=1, box=(-1, 1))
    return net, prob, brute_force(Ws, bs, y, 1)


def test_the_first_decision_aims_at_the_incumbent():
    """With the optimum as the incumbent, one decision at the incumbent less half the gap
    tolerance proves the gap closed (brute force's optimum), and its proof re-checks."""
    net, prob, ref = _optimum_case()
    mn = minorant_of(prob)
    rel = 1e-6
    rb = raise_bound(prob, mn, 0.0, ref, Deadline(60), rel_gap=rel)
    assert [t["verdict"] for t in rb.tries] == ["unsat"]
    assert rb.tries[0]["t"] == ref - 0.5 * rel * max(1.0, ref)
    assert ref - rb.bound <= rel * max(1.0, ref)
    assert check_proof(net.graph, rb.proof).ok


def test_an_undecided_aim_falls_back_to_bisection(monkeypatch):
    """Where the decision at the incumbent is left undecided, the next thresholds bisect below
    it (each unsat proof still sound: no bound above brute force's optimum)."""
    import netopt.bounds.branch as branch_mod

    net, prob, ref = _optimum_case()
    real = branch_mod.branch_and_bound
    calls: list = []

    def first_undecided(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            from netopt.bounds.branch_search import BranchResult

            return BranchResult("unknown", stopped="time limit")
        return real(*a, **k)

    monkeypatch.setattr(branch_mod, "branch_and_bound", first_undecided)
    mn = minorant_of(prob)
    rb = raise_bound(prob, mn, 0.0, ref, Deadline(30), rel_gap=1e-6)
    aim = rb.tries[0]["t"]
    assert rb.tries[0]["verdict"] == "unknown" and aim == ref - 0.5e-6 * max(1.0, ref)
    assert rb.tries[1]["t"] == pytest.approx(0.5 * aim)
    assert all(t["t"] < aim for t in rb.tries[1:])
    assert "unsat" in {t["verdict"] for t in rb.tries[1:]}
    assert 0.0 < rb.bound <= ref + 1e-9
