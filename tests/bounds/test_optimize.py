"""Branch and bound for optimization (netopt.bounds.optimize, method "bab") against independent
references: brute force over activation patterns (one LP per pattern), the MILP, dense sampling;
and its proofs re-checked by the float64 checker, tampered ones rejected."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from helpers.brute import brute_force, random_mlp
from helpers.nets import mlp_net

import netopt
from netopt.bounds.objective_rows import minorant_of, rows_imply_bound
from netopt.bounds.optimize import minimize
from netopt.bounds.proof import check_proof
from netopt.errors import FormulationError
from netopt.problems import CrossEntropy, Inversion, OutputObjective
from netopt.result import Status


def _proof_holds(prob, res) -> None:
    """The bound of a minimize() result is proven: rows imply it, and the tree re-checks."""
    assert res.proof is not None
    assert rows_imply_bound(prob, res.proof.C, res.proof.d, prob_sign(prob) * res.bound) is None
    pc = check_proof(prob.net.graph, res.proof)
    assert pc.ok, pc.reason


def prob_sign(prob) -> float:
    return 1.0 if prob.sense == "min" else -1.0


CASES = [(seed, p) for seed in range(10) for p in (1, np.inf)]


@pytest.mark.parametrize("seed,p", CASES, ids=[f"net{s}-p{p}" for s, p in CASES])
def test_bab_optimum_matches_brute_force(seed, p):
    model, Ws, bs = random_mlp(seed)
    net = netopt.load(model)
    rng = np.random.default_rng(100 + seed)
    target = net(rng.uniform(-2, 2, net.input_shape)) + rng.normal(size=net.output_shape) * 0.3
    ref = brute_force(Ws, bs, target, p)
    prob = Inversion(net, target, norm=p, box=(-1, 1))
    r = prob.solve("bab", time_limit=60)
    assert r.status == Status.OPTIMAL, r.message
    assert r.objective == pytest.approx(ref, rel=1e-6, abs=1e-7)
    # the bound is below the true optimum (a proof of something true) and within the gap
    assert r.bound <= ref + 1e-9
    assert r.gap <= 1e-6 + 1e-9
    if r.bound > 0:
        assert "proof" in r.extra
        assert rows_imply_bound(prob, r.extra["proof"].C, r.extra["proof"].d, r.bound) is None
        assert check_proof(net.graph, r.extra["proof"]).ok


@pytest.mark.parametrize("sense", ["min", "max"])
def test_output_objective_matches_the_milp(sense):
    net, _, _ = mlp_net([3, 12, 12, 2], ["relu", "relu", None], seed=4)
    prob = OutputObjective(net, [1.0, -0.5], sense=sense, constant=0.25, box=(-1, 1))
    ref = prob.solve("milp", time_limit=60)
    assert ref.status == Status.OPTIMAL
    r = prob.solve("bab", time_limit=60)
    assert r.status == Status.OPTIMAL, r.message
    assert r.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-7)
    # a lower bound when minimizing, an upper bound when maximizing, of the MILP's optimum
    assert (
        (r.bound <= ref.objective + 1e-9) if sense == "min" else (r.bound >= ref.objective - 1e-9)
    )
    proof = r.extra["proof"]
    assert rows_imply_bound(prob, proof.C, proof.d, r.bound) is None
    assert check_proof(net.graph, proof).ok


def test_l2_bound_is_below_every_sampled_value_and_proven():
    # no MILP reference without Gurobi: the bound must lie below a dense sample's minimum, and
    # the incumbent be no worse than it
    net, _, _ = mlp_net([2, 10, 10, 3], ["relu", "relu", None], seed=7)
    target = np.array([2.0, -1.0, 0.5])
    prob = Inversion(net, target, norm=2, box=(-1, 1))
    res = minimize(prob, time_limit=20, rel_gap=1e-4)
    g = np.linspace(-1, 1, 301)
    X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    sampled = prob.evaluate(net.forward(X)).min()
    assert res.bound <= sampled + 1e-12
    assert res.value <= sampled + 1e-9
    assert res.value - res.bound <= 1e-4 * max(1.0, res.value) + 1e-12
    _proof_holds(prob, res)


def test_time_limit_keeps_a_sound_bound_and_its_proof():
    # a net too big to close in a fraction of a second: the bound so far, proven, below every
    # sampled value, and the incumbent
    net, _, _ = mlp_net([4, 40, 40, 2], ["relu", "relu", None], seed=1)
    prob = Inversion(net, [5.0, -5.0], norm=1, box=(-1, 1))
    res = minimize(prob, time_limit=0.5)
    assert res.stopped == "time limit"
    X = np.random.default_rng(0).uniform(-1, 1, (20000, 4))
    assert res.bound <= prob.evaluate(net.forward(X)).min()
    assert res.x is not None and res.value >= res.bound
    if res.proof is not None:
        _proof_holds(prob, res)


def test_tampered_optimization_proofs_are_rejected():
    net, _, _ = mlp_net([2, 8, 8, 2], ["relu", "relu", None], seed=3)
    prob = Inversion(net, [3.0, 0.0], norm=1, box=(-1, 1))
    res = minimize(prob, time_limit=30)
    assert res.stopped is None and res.proof is not None
    assert sum(1 for nd in res.proof.nodes if nd[0] == "leaf") > 1
    _proof_holds(prob, res)
    # a bound above what the rows give
    assert rows_imply_bound(prob, res.proof.C, res.proof.d, res.bound + 1e-6) is not None
    # a row that is no minorant of the l1 objective (|v_j| > w_j)
    bad = copy.deepcopy(res.proof)
    bad.C = bad.C * 1.5
    assert rows_imply_bound(prob, bad.C, bad.d, res.bound) is not None
    # right-hand sides raised: the rows then imply more, but the tree no longer holds
    up = copy.deepcopy(res.proof)
    up.d = up.d + 0.5
    assert not check_proof(net.graph, up).ok
    # a leaf dropped (the last subtree replaced by nothing): the tree is malformed
    cut = copy.deepcopy(res.proof)
    cut.nodes = cut.nodes[:-1]
    assert not check_proof(net.graph, cut).ok
    # another target: the same proof does not imply the bound of a different problem
    other = Inversion(net, [-3.0, 0.0], norm=1, box=(-1, 1))
    assert rows_imply_bound(other, res.proof.C, res.proof.d, res.bound) is not None


def test_minorants_are_below_the_objective_on_random_outputs():
    # each kind's candidate rows are valid: v.f + e(v) <= objective for random outputs
    net, _, _ = mlp_net([2, 4, 3], ["relu", None], seed=0)
    rng = np.random.default_rng(1)
    for prob in (
        Inversion(net, [0.5, -1.0, 2.0], norm=1, weights=[1.0, 0.0, 2.0], box=(-1, 1)),
        Inversion(net, [0.5, -1.0, 2.0], norm=np.inf, weights=[1.0, 0.5, 2.0], box=(-1, 1)),
        Inversion(net, [0.5, -1.0, 2.0], norm=2, weights=[1.0, 3.0, 2.0], box=(-1, 1)),
        OutputObjective(net, [1.0, 2.0, -1.0], sense="max", constant=1.0, box=(-1, 1)),
    ):
        mn = minorant_of(prob)
        Y = rng.normal(size=(500, 3)) * 3
        lo, hi = Y - rng.uniform(0, 2, Y.shape), Y + rng.uniform(0, 2, Y.shape)
        V = np.concatenate(
            [np.broadcast_to(mn.base_rows(), (500, *mn.base_rows().shape)), mn.box_rows(lo, hi, Y)],
            axis=1,
        )
        g = mn.sign * prob.evaluate(Y)
        low = np.einsum("bkm,bm->bk", V, Y) + mn.offsets(V)
        assert np.all(low <= g[:, None] + 1e-9)
        # and the exact check accepts them with d = the minorant's value minus a hair
        for b in range(0, 500, 97):
            d = V[b] @ Y[b] - 1e-9
            claim = float((V[b] @ Y[b] + mn.offsets(V[b])).min()) - 1e-6
            assert rows_imply_bound(prob, V[b], d, mn.sign * claim) is None


def test_bab_refuses_what_it_cannot_optimize():
    net, _, _ = mlp_net([2, 4, 3], ["relu", None], seed=0)
    with pytest.raises(FormulationError, match="bab"):
        CrossEntropy(net, label=0, box=(-1, 1)).solve("bab")
    unbounded = Inversion(net, [0.0, 0.0, 0.0], norm=1)
    with pytest.raises(FormulationError, match="bounded box"):
        unbounded.solve("bab")


@pytest.mark.parametrize("norm", [1, np.inf, 2])
def test_a_bab_certificate_is_fully_checked_and_a_tampered_one_fails(norm, tmp_path):
    # the whole path: solve("bab") -> certificate -> save/load -> verify re-checks the proof
    from netopt.certificate import Certificate

    net, _, _ = mlp_net([2, 8, 8, 2], ["relu", "relu", None], seed=5)
    prob = Inversion(net, [2.5, -1.0], norm=norm, box=(-1, 1))
    r = prob.solve("bab", time_limit=60, gap=1e-4)
    assert r.status == Status.OPTIMAL and r.bound > 0 and "proof" in r.extra
    path = tmp_path / "cert.json"
    r.certificate.save(path)
    cert = Certificate.load(path)
    assert "proven by branch and bound" in cert.claim
    rep = cert.verify(net)
    assert rep["outcome"] == "verified" and rep["fully_checked"], rep["checks"]
    assert not rep["unchecked"]
    # the claimed bound raised past what the proof's rows give: a failed check
    d = json.loads(path.read_text())
    d["evidence"]["bound"] = r.bound + 1e-3 * max(1.0, abs(r.bound))
    d["evidence"]["gap"] = None
    bad = Certificate.from_dict(d).verify(net)
    assert bad["outcome"] != "verified"
    assert any(c["check"].startswith("bound proof:") and not c["ok"] for c in bad["checks"])


def test_a_target_far_from_zero_still_gives_a_checkable_proof():
    # outputs near 2^24 and an objective near 0.02: the proof's room must cover the rounding of
    # numbers of the outputs' size, not only of the bound's (else its leaves fail re-checking)
    from onnx import numpy_helper

    model, Ws, _ = random_mlp(9)
    last = f"b{len(Ws) - 1}"
    for i, init in enumerate(model.graph.initializer):
        if init.name == last:
            shifted = numpy_helper.to_array(init).astype(np.float64) + 2.0**24
            model.graph.initializer[i].CopyFrom(
                numpy_helper.from_array(shifted.astype(np.float32), last)
            )
    net = netopt.load(model)
    rng = np.random.default_rng(9)
    y0 = net(rng.uniform(-1, 1, net.input_shape)).reshape(-1).astype(np.float64)
    prob = Inversion(net, y0 + rng.normal(size=y0.size) * 0.01, norm=1, box=(-1, 1))
    r = prob.solve("bab", time_limit=30)
    assert r.bound is not None and r.bound > 0
    rep = r.certificate.verify(net, refute=False)
    assert rep["outcome"] == "verified", [c for c in rep["checks"] if not c["ok"]]


def test_a_linear_objective_with_its_optimum_on_a_kink_closes():
    # the maximum of a linear objective on a ReLU's boundary: input splitting alone only
    # approaches it as boxes shrink; the pieces' LPs (with multipliers) close it exactly
    model, Ws, bs = random_mlp(5, max_relus=8)
    net = netopt.load(model)
    rng = np.random.default_rng(1005)
    n_in, m = Ws[0].shape[1], Ws[-1].shape[0]
    lo = rng.uniform(-2, 0, n_in)
    hi = lo + rng.uniform(0.1, 2.5, n_in)
    rng.random()
    prob = OutputObjective(
        net,
        rng.normal(size=m),
        sense="max",
        constant=float(rng.normal() * 5),
        box=(lo.reshape(net.input_shape), hi.reshape(net.input_shape)),
    )
    ref = prob.solve("milp", time_limit=60)
    r = prob.solve("bab", time_limit=60)
    assert r.status == Status.OPTIMAL, r.message
    assert r.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-7)
    assert r.bound >= ref.objective - 1e-9
    assert r.certificate.verify(net, refute=False)["outcome"] == "verified"


def test_a_gap_below_the_proofs_room_is_not_claimed_optimal():
    net, _, _ = mlp_net([3, 6, 1], ["relu", None], seed=2)
    r = Inversion(net, [3.0], norm=1, box=(-1, 1)).solve("bab", time_limit=20, gap=0.0)
    assert r.status != Status.OPTIMAL
    assert r.bound is not None and r.bound <= r.objective
    assert r.certificate.verify(net, refute=False)["outcome"] == "verified"
