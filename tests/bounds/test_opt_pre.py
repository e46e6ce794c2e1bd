"""alpha-CROWN's optimized bounds of the activations' inputs (``ChainBounds.optimize_pre``), their
rigorous float64 form (``BatchCrown.bound(pre_slopes=...)``) and their place in ReLU-splitting
proofs (``BabProof.pre``).

References: the network's own activation inputs at sampled points of the box (every bound must
hold there), and the triangle relaxation's LP (scipy's HiGHS), which no choice of slopes can beat
on the first relaxed layer and which optimized slopes should approach.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.nets import mlp_net
from scipy.optimize import linprog

from netopt.bounds.bab import BatchCrown
from netopt.bounds.batched import ChainBounds
from netopt.bounds.branch import branch_and_bound
from netopt.bounds.proof import BabProof, check_proof
from netopt.errors import InputError

torch = pytest.importorskip("torch")

N_IN = 10
LO, HI = -np.ones((1, N_IN)), np.ones((1, N_IN))


@pytest.fixture(scope="module")
def net3():
    """A seeded 10-24-24-24-2 ReLU chain and its activation inputs at 20000 sampled points."""
    net, Ws, bs = mlp_net([N_IN, 24, 24, 24, 2], ["relu", "relu", "relu", None], seed=3)
    X = np.random.default_rng(0).uniform(-1, 1, size=(20000, N_IN))
    # the box's corners too: where extreme values are met
    X = np.vstack([X, np.array(np.meshgrid(*[[-1, 1]] * N_IN)).reshape(N_IN, -1).T])
    a, zs = X, []
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        z = a @ W.T + b
        zs.append(z)
        a = np.maximum(z, 0)
    return net, Ws, bs, zs


def _holds(pre, zs, tol):
    for (lo, hi), z in zip(pre, zs, strict=True):
        lo, hi = np.asarray(lo).reshape(-1), np.asarray(hi).reshape(-1)
        assert np.all(z >= lo - tol) and np.all(z <= hi + tol)


def _width(pre, j):
    lo, hi = (np.asarray(t).reshape(-1) for t in pre[j])
    return hi - lo


def _lp_layer1(Ws, bs):
    """Bounds of layer 1's activation inputs by the triangle relaxation's LP over the box."""
    W0, b0, W1, b1 = Ws[0], bs[0], Ws[1], bs[1]
    l0 = np.minimum(W0, 0) @ HI[0] + np.maximum(W0, 0) @ LO[0] + b0
    u0 = np.maximum(W0, 0) @ HI[0] + np.minimum(W0, 0) @ LO[0] + b0
    n0, n1 = N_IN, len(b0)
    # variables x (n0), a (n1); rows A v <= c
    A, c = [], []
    for k in range(n1):
        if u0[k] <= 0:
            continue
        row = np.zeros(n0 + n1)
        row[:n0], row[n0 + k] = W0[k], -1.0  # a >= W x + b
        A.append(row), c.append(-b0[k])
        if l0[k] < 0:
            s = u0[k] / (u0[k] - l0[k])  # a <= s (W x + b - l)
            row = np.zeros(n0 + n1)
            row[:n0], row[n0 + k] = -s * W0[k], 1.0
            A.append(row), c.append(s * (b0[k] - l0[k]))
        else:
            row = np.zeros(n0 + n1)
            row[:n0], row[n0 + k] = -W0[k], 1.0
            A.append(row), c.append(b0[k])
    bounds = [(-1, 1)] * n0 + [(0, max(u, 0)) for u in u0]
    lo, hi = np.empty(len(b1)), np.empty(len(b1))
    for j in range(len(b1)):
        obj = np.r_[np.zeros(n0), W1[j]]
        r1 = linprog(obj, A_ub=np.array(A), b_ub=np.array(c), bounds=bounds, method="highs")
        r2 = linprog(-obj, A_ub=np.array(A), b_ub=np.array(c), bounds=bounds, method="highs")
        assert r1.status == 0 and r2.status == 0
        lo[j], hi[j] = r1.fun + b1[j], -r2.fun + b1[j]
    return lo, hi


def test_optimized_bounds_hold_and_tighten(net3):
    net, _, _, zs = net3
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    crown, _ = cb.pre_bounds(cb._t(LO), cb._t(HI))
    opt, rows = cb.optimize_pre(LO, HI, iters=30)
    _holds([(a.numpy(), b.numpy()) for a, b in opt], zs, 1e-9)
    assert [r[0] for r in rows] == [1, 2]
    for j in (1, 2):
        assert np.all(_width(opt, j) <= _width(crown, j) + 1e-9)
    # the first relaxed layer gains (a later one gains from it too)
    assert _width(opt, 1).sum() < 0.97 * _width(crown, 1).sum()
    assert _width(opt, 2).sum() < _width(crown, 2).sum()


def test_float64_rows_hold_never_beat_the_lp_and_approach_it(net3):
    net, Ws, bs, zs = net3
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    _, rows = cb.optimize_pre(LO, HI, iters=30)
    bc = BatchCrown(net.graph)
    C = np.eye(2)
    _, _, plain = bc.bound(LO, HI, C)
    _, _, tight = bc.bound(LO, HI, C, pre_slopes=rows)
    vids = bc.relu_inputs
    _holds([tight[v] for v in vids], zs, 0.0)  # rigorous: no tolerance
    for v in vids:
        assert np.all(tight[v][0] >= plain[v][0]) and np.all(tight[v][1] <= plain[v][1])
    lp_lo, lp_hi = _lp_layer1(Ws, bs)
    lo1, hi1 = tight[vids[1]][0][0], tight[vids[1]][1][0]
    # no slopes beat the LP (the relaxation's optimum); 30 steps close most of CROWN's gap
    assert np.all(lo1 <= lp_lo + 1e-7) and np.all(hi1 >= lp_hi - 1e-7)
    gap_crown = (plain[vids[1]][1][0] - plain[vids[1]][0][0]) - (lp_hi - lp_lo)
    gap_opt = (hi1 - lo1) - (lp_hi - lp_lo)
    assert gap_opt.sum() < 0.25 * gap_crown.sum()


@pytest.mark.parametrize("garbage", [7.0, -3.0, float("nan"), float("inf"), "random"])
def test_garbage_slopes_in_rows_stay_sound(net3, garbage):
    net, _, _, zs = net3
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    _, rows = cb.optimize_pre(LO, HI, iters=5)
    rng = np.random.default_rng(1)
    bad = []
    for j, units, sides, sl in rows:
        new = []
        for i, cols, v in sl:
            g = rng.uniform(-3, 3, v.shape) if garbage == "random" else np.full(v.shape, garbage)
            new.append((i, cols, g))
        bad.append((j, units, sides, new))
    bc = BatchCrown(net.graph)
    _, _, pre = bc.bound(LO, HI, np.eye(2), pre_slopes=bad)
    _holds([pre[v] for v in bc.relu_inputs], zs, 0.0)


@pytest.fixture(scope="module")
def relu_proof():
    """A ReLU-splitting proof of "y0 - y1 > m" over the box of a seeded 10-16-16-16-2 chain, m a
    quarter of the sampled range below the sampled minimum."""
    net, _, _ = mlp_net([N_IN, 16, 16, 16, 2], ["relu", "relu", "relu", None], seed=1)
    X = np.random.default_rng(0).uniform(-1, 1, size=(20000, N_IN))
    C = np.array([[1.0, -1.0]])
    margin = net.forward(X) @ C[0]
    d = np.array([margin.min() - 0.25 * np.ptp(margin)])
    r = branch_and_bound(net, LO[0], HI[0], C, d, mode="relu", time_limit=60)
    assert r.verdict == "unsat"
    return net, r.proof, margin


def test_relu_search_proof_carries_its_rows_and_needs_them(relu_proof):
    net, proof, _ = relu_proof
    assert proof.pre and {e[0] for e in proof.pre} <= {1, 2}
    back = BabProof.from_dict(json.loads(json.dumps(proof.to_dict())))
    assert len(back.pre) == len(proof.pre)
    assert check_proof(net.graph, back).ok
    # the leaves need the optimized bounds: without the rows the checker rejects the tree
    bare = BabProof(proof.lo, proof.hi, proof.C, proof.d, proof.nodes, proof.params)
    assert not check_proof(net.graph, bare).ok


def test_rows_cannot_prove_a_false_claim(relu_proof):
    """The same tree and rows over a limit the network reaches: rejected, whatever the rows."""
    net, proof, margin = relu_proof
    d_sat = np.array([np.quantile(margin, 0.01)])
    rng = np.random.default_rng(2)
    for trial in range(4):
        pre = [
            (j, u, s, [(i, c, rng.uniform(-1, 2, v.shape) if trial else v) for i, c, v in sl])
            for j, u, s, sl in proof.pre
        ]
        false = BabProof(proof.lo, proof.hi, proof.C, d_sat, proof.nodes, proof.params, pre)
        assert not check_proof(net.graph, false).ok


@pytest.mark.parametrize(
    "mutate, why",
    [
        (lambda e: (9, *e[1:]), "activation op 9 out of range"),
        (lambda e: (e[0], e[1] + 100, *e[2:]), "unit is out of range"),
        (lambda e: (e[0], e[1], e[2], [(e[0], c, v) for _, c, v in e[3]]), "do not bound"),
        (lambda e: (e[0], e[1], e[2], [(i, c + 100, v) for i, c, v in e[3]]), "out of range"),
    ],
)
def test_rows_out_of_range_are_rejected(relu_proof, mutate, why):
    net, proof, _ = relu_proof
    pre = [mutate(proof.pre[0]), *proof.pre[1:]]
    pc = check_proof(
        net.graph, BabProof(proof.lo, proof.hi, proof.C, proof.d, proof.nodes, proof.params, pre)
    )
    assert not pc.ok and why in pc.reason


@pytest.mark.parametrize(
    "pre, field",
    [
        ({}, "pre must be a list"),
        ([{"layer": 1, "units": [0]}], r"pre\[0\] must be an object"),
        ([{"layer": -1, "units": [], "sides": [], "slopes": []}], r"pre\[0\].layer"),
        ([{"layer": 1, "units": [0], "sides": [2], "slopes": []}], r"sides"),
        ([{"layer": 1, "units": [0, 1], "sides": [1], "slopes": []}], "2 units and 1 sides"),
        ([{"layer": 1, "units": [0], "sides": [1], "slopes": [[0, [0, 1], [[0.5]]]]}], "rows of 2"),
        ([{"layer": 1, "units": [0], "sides": [1], "slopes": [[0, [0], [["a"]]]]}], "numbers"),
    ],
)
def test_from_dict_names_the_bad_pre_field(pre, field):
    base = BabProof.single_leaf(LO[0], HI[0], np.array([[1.0, -1.0]]), [0.0], 0).to_dict()
    with pytest.raises(InputError, match=field):
        BabProof.from_dict({**base, "pre": pre})


def test_rows_of_other_sides_are_rejected(relu_proof):
    """A proof built in code (not read from JSON) is checked as closely: a side other than
    +-1 would bound ``0 z`` and make a unit look dead."""
    net, proof, _ = relu_proof
    j, units, sides, sl = proof.pre[0]
    for bad in (np.zeros_like(sides), np.full_like(sides, 2)):
        pre = [(j, units, bad, sl), *proof.pre[1:]]
        P = BabProof(proof.lo, proof.hi, proof.C, proof.d, proof.nodes, proof.params, pre)
        pc = check_proof(net.graph, P)
        assert not pc.ok and "every side" in pc.reason
    many = [
        (j, np.tile(units, 3), np.tile(sides, 3), [(i, c, np.tile(v, (3, 1))) for i, c, v in sl])
    ]
    P = BabProof(proof.lo, proof.hi, proof.C, proof.d, proof.nodes, proof.params, many)
    assert "rows for" in check_proof(net.graph, P).reason


def test_huge_indices_are_a_clear_error():
    base = BabProof.single_leaf(LO[0], HI[0], np.array([[1.0, -1.0]]), [0.0], 0).to_dict()
    for pre in (
        [{"layer": 1, "units": [2**63], "sides": [1], "slopes": []}],
        [{"layer": 1, "units": [0], "sides": [1], "slopes": [[0, [2**64], [[0.5]]]]}],
    ):
        with pytest.raises(InputError, match="below 2"):
            BabProof.from_dict({**base, "pre": pre})


def test_rows_on_a_branching_network_never_crash():
    """Two activations read one ReLU's output; a row's slopes may name the one bounded after it
    in the graph's order (not below it): ignored, no crash; the claim is checked as usual."""
    from helpers.nets import make_model
    from onnx import helper

    import netopt

    rng = np.random.default_rng(0)
    n = 4
    inits = {
        k: rng.normal(size=s) for k, s in zip("ABCD", [(n, n), (n, n), (n, n), (1, n)], strict=True)
    }
    nodes = [
        helper.make_node("Gemm", ["x", "A"], ["z1"], transB=1),
        helper.make_node("Relu", ["z1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "B"], ["z2"], transB=1),
        helper.make_node("Gemm", ["a1", "C"], ["z3"], transB=1),
        helper.make_node("Relu", ["z3"], ["a3"]),
        helper.make_node("Relu", ["z2"], ["a2"]),
        helper.make_node("Add", ["a2", "a3"], ["s"]),
        helper.make_node("Gemm", ["s", "D"], ["y"], transB=1),
    ]
    net = netopt.load(make_model(nodes, [1, n], [1, 1], inits))
    lo, hi = -np.ones(n), np.ones(n)
    X = np.random.default_rng(1).uniform(-1, 1, (5000, n))
    y = net.forward(X).reshape(-1)
    base = BabProof.single_leaf(lo, hi, np.array([[1.0]]), [y.min() - 100.0], 0).to_dict()
    base["pre"] = [{"layer": 2, "units": [0], "sides": [1], "slopes": [[1, [0], [[0.5]]]]}]
    assert check_proof(net.graph, BabProof.from_dict(base)).ok  # far below: CROWN closes it
    false = {**base, "d": [float(np.median(y))]}
    assert not check_proof(net.graph, BabProof.from_dict(false)).ok


def test_root_bounds_are_kept_per_box_and_never_changed():
    """Searches over one box share its root bounds (a property's disjuncts); another box gets
    its own; no search changes what another uses, and every proof is accepted."""
    from netopt.bounds.bab import batch_crown_of

    net, _, _ = mlp_net([N_IN, 16, 16, 16, 2], ["relu", "relu", "relu", None], seed=1)
    X = np.random.default_rng(0).uniform(-1, 1, size=(20000, N_IN))
    Y = net.forward(X)
    cache = batch_crown_of(net).__dict__.setdefault("_root_pre", {})
    cache.clear()
    runs = []
    for C, scale in ((np.array([[1.0, -1.0]]), 1.0), (np.array([[-1.0, 1.0]]), 1.0)):
        m = Y @ C[0]
        d = np.array([m.min() - 0.5 * np.ptp(m)])
        runs.append((C, d, LO[0] * scale, HI[0] * scale))
    m = net.forward(X * 0.5) @ runs[0][0][0]
    runs.append((runs[0][0], np.array([m.min() - 0.5 * np.ptp(m)]), LO[0] * 0.5, HI[0] * 0.5))
    kept = None
    for n, (C, d, lo, hi) in enumerate(runs):
        r = branch_and_bound(net, lo, hi, C, d, mode="relu", time_limit=60)
        assert r.verdict == "unsat" and check_proof(net.graph, r.proof).ok
        assert len(cache) == (1 if n < 2 else 2)
        if n == 0:
            rows, pre = next(iter(cache.values()))
            kept = {v: (a.copy(), b.copy()) for v, (a, b) in pre.items()}
            first = (rows, pre)
        else:
            # the first box's entry: the same objects, unchanged
            rows, pre = cache[next(iter(cache))]
            assert rows is first[0] and pre is first[1]
            for v, (a, b) in kept.items():
                assert np.array_equal(pre[v][0], a) and np.array_equal(pre[v][1], b)
    # the second box's bounds are its own: those of a fresh pass with its rows
    rows2, pre2 = cache[list(cache)[1]]
    _, _, fresh = batch_crown_of(net).bound(LO * 0.5, HI * 0.5, np.eye(2), pre_slopes=rows2 or None)
    for v in pre2:
        assert np.array_equal(pre2[v][0], fresh[v][0][0])
