"""A ReLU-splitting decision stopped by its time limit still proves lowered rows
(``netopt.bounds.relu_floor``): its open domains made leaves, the proof re-checks in float64,
the threshold it implies never passes brute force's optimum, and the same tree does not prove
the rows it was asked about."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers.brute import brute_force
from helpers.nets import mlp_net

import netopt.bounds.branch_relu as br
from netopt.bounds.branch import branch_and_bound
from netopt.bounds.objective_rows import minorant_of, proof_rhs, rows_imply_bound
from netopt.bounds.opt_decide import _floor, decision_rows, raise_bound
from netopt.bounds.proof import check_proof
from netopt.bounds.proof_format import BabProof
from netopt.control import Deadline
from netopt.problems import Inversion

pytest.importorskip("torch")


@functools.cache
def _case(seed: int = 4):
    # (a decision at its optimum takes 12 rounds, 515 domains)
    net, Ws, bs = mlp_net([10, 6, 5, 2], ["relu", "relu", None], seed=seed)
    rng = np.random.default_rng(seed)
    y = net(rng.uniform(-1, 1, 10)) + np.array([2.0, -1.5])
    prob = Inversion(net, y, norm=1, box=(-1, 1))
    return net, prob, brute_force(Ws, bs, y, 1)


def _stop_after(monkeypatch, rounds: int) -> None:
    """The search's time limit strikes at the start of round ``rounds + 1``."""
    real = br._ReluSearch._stop
    seen = {"n": 0}

    def stop(self, n_open):
        seen["n"] += 1
        return "time limit" if seen["n"] > rounds else real(self, n_open)

    monkeypatch.setattr(br._ReluSearch, "_stop", stop)


@pytest.mark.parametrize("rounds", [1, 4, 8])
def test_a_stopped_decision_proves_lower_rows(monkeypatch, rounds):
    net, prob, ref = _case()
    mn = minorant_of(prob)
    V = decision_rows(mn)
    t = ref - 1e-6  # near the optimum: open domains are left after a few rounds
    d = proof_rhs(mn, V, t)
    _stop_after(monkeypatch, rounds)
    lo, hi = prob.domain.lo.reshape(-1), prob.domain.hi.reshape(-1)
    r = branch_and_bound(net, lo, hi, V, d, mode="relu", split_update=False, floor_on_stop=True)
    assert r.verdict == "unknown" and r.stopped == "time limit"
    s = r.stats["floor_shift"]
    assert s < 0 and r.proof is not None
    np.testing.assert_array_equal(r.proof.d, d + s)
    pc = check_proof(net.graph, r.proof)
    assert pc.ok, pc.reason
    floor = _floor(prob, mn, V, t, r)
    assert floor is not None and floor <= ref + 1e-9
    assert rows_imply_bound(prob, V, r.proof.d, floor) is None
    # the open domains are leaves that close only for the lowered rows
    P = r.proof
    assert not check_proof(net.graph, BabProof(P.lo, P.hi, P.C, d, P.nodes, P.params)).ok


def test_without_the_option_an_undecided_search_proves_nothing(monkeypatch):
    net, prob, ref = _case()
    mn = minorant_of(prob)
    V = decision_rows(mn)
    _stop_after(monkeypatch, 2)
    lo, hi = prob.domain.lo.reshape(-1), prob.domain.hi.reshape(-1)
    r = branch_and_bound(net, lo, hi, V, proof_rhs(mn, V, ref - 1e-6), mode="relu")
    assert r.verdict == "unknown" and r.proof is None and "floor_shift" not in r.stats


def test_an_undecided_aim_still_raises_the_bound(monkeypatch):
    """The decision at the incumbent stopped after two rounds: the bound becomes the threshold
    its tree proves (above the trivial 0, never above brute force's optimum), its proof
    re-checks."""
    net, prob, ref = _case()
    mn = minorant_of(prob)
    real = br._ReluSearch._stop
    calls = {"n": 0}

    def stop(self, n_open):
        calls["n"] += 1
        return "time limit" if calls["n"] == 3 else real(self, n_open)

    monkeypatch.setattr(br._ReluSearch, "_stop", stop)
    rb = raise_bound(prob, mn, 0.0, ref, Deadline(30), rel_gap=1e-6)
    first = rb.tries[0]
    assert first["verdict"] == "unknown" and "floor" in first
    assert 0.0 < first["floor"] <= ref + 1e-9
    assert rb.bound >= first["floor"] and rb.bound <= ref + 1e-9
    assert check_proof(net.graph, rb.proof).ok


def test_combination_weights_that_do_not_sum_to_one_in_float32(monkeypatch):
    """Four rows whose open domains carry mixed combination weights (float32, their sum off
    from 1): the lowered rows' proof re-checks, and the threshold it implies lies below every
    sampled point's objective."""
    net, _, _ = mlp_net([10, 16, 16, 2], ["relu", "relu", None], seed=1)
    rng = np.random.default_rng(1)
    y = net(rng.uniform(-1, 1, 10)) + rng.normal(0, 2, 2)
    prob = Inversion(net, y, norm=1, box=(-1, 1))
    mn = minorant_of(prob)
    V = decision_rows(mn)
    X = rng.uniform(-1, 1, (4000, 10))
    g = prob.evaluate(net(X))
    t = float(g.min())
    seen: dict = {}
    real = br.floor_open

    def spy(search, splits, slopes, betas, mixes, ids):
        seen["mu"] = mixes.detach().cpu().double().numpy()
        return real(search, splits, slopes, betas, mixes, ids)

    monkeypatch.setattr(br, "floor_open", spy)
    _stop_after(monkeypatch, 6)
    lo, hi = prob.domain.lo.reshape(-1), prob.domain.hi.reshape(-1)
    d = proof_rhs(mn, V, t)
    r = branch_and_bound(net, lo, hi, V, d, mode="relu", split_update=False, floor_on_stop=True)
    assert (seen["mu"].max(axis=1) < 1).any()  # weights spread over the rows
    assert r.proof is not None
    pc = check_proof(net.graph, r.proof)
    assert pc.ok, pc.reason
    floor = _floor(prob, mn, V, t, r)
    assert floor is not None and floor < t and floor <= g.min()


def test_domains_set_aside_leave_no_floor(monkeypatch):
    """A domain set aside (every sign fixed, no LP closing it: "stuck") is neither split nor
    closed: the stopped search proves nothing rather than a tree with a hole."""
    net, prob, ref = _case()
    mn = minorant_of(prob)
    V = decision_rows(mn)
    _stop_after(monkeypatch, 6)
    real_choose = br.choose_relu
    calls = {"n": 0}

    def choose(scores, kt, sp):
        layer, unit, can = real_choose(scores, kt, sp)
        calls["n"] += 1
        if calls["n"] == 5:
            can = can.copy()
            can[0] = False  # as if domain 0 had every sign fixed
        return layer, unit, can

    def affine(search, idx, *args):  # as when the LPs are cut short by the deadline
        search.stats["stuck"] += len(idx)
        return None

    monkeypatch.setattr(br, "choose_relu", choose)
    monkeypatch.setattr(br, "close_affine", affine)
    lo, hi = prob.domain.lo.reshape(-1), prob.domain.hi.reshape(-1)
    d = proof_rhs(mn, V, ref - 1e-6)
    r = branch_and_bound(net, lo, hi, V, d, mode="relu", split_update=False, floor_on_stop=True)
    assert r.stats["stuck"] >= 1
    assert r.verdict == "unknown" and r.proof is None and "floor_shift" not in r.stats
