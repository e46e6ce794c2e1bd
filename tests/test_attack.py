"""The falsifier (netopt.attack): counterexamples found where the competition's verdict is "sat",
each re-checked in float64 and in onnxruntime, never one where a point cannot exist; the numpy and
torch gradients against an explicit product of the layers' Jacobians; the batched box attack."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers.nets import NETS, make_model
from onnx import helper

import netopt
from netopt import control
from netopt.attack import _NumpyChain, _TorchEngine, falsify, falsify_boxes, falsify_disjuncts
from netopt.vnnlib import load_vnnlib

pytest.importorskip("torch")


def _prop(net, path):
    return load_vnnlib(
        path,
        n_inputs=int(np.prod(net.input_shape)),
        n_outputs=int(np.prod(net.output_shape)),
    )


def _verdict(folder: str, onnx: str, vnnlib: str) -> str:
    with open(NETS / folder / "verdicts.csv") as f:
        for row in csv.DictReader(f):
            if row["onnx"] == onnx and row["vnnlib"] == vnnlib:
                return row["verdict"]
    raise KeyError((onnx, vnnlib))


def _check_point(net, x, dj):
    """x lies in the box and satisfies C y <= d in float64 and (within 1e-5) in onnxruntime."""
    assert np.all(x.reshape(-1) >= dj.lo - 1e-12) and np.all(x.reshape(-1) <= dj.hi + 1e-12)
    y64 = net.forward(x).reshape(-1)
    assert np.all(dj.C @ y64 - dj.d <= 0)
    y_ort = np.asarray(net.run_onnxruntime(x), dtype=np.float64).reshape(-1)
    assert np.all(dj.C @ y_ort - dj.d <= 1e-5)


@pytest.mark.parametrize(
    "folder, onnx, vnnlib, device",
    [
        ("acasxu", "ACASXU_run2a_4_5_batch_2000.onnx", "prop_2.vnnlib", "cpu"),
        ("acasxu", "ACASXU_run2a_1_9_batch_2000.onnx", "prop_3.vnnlib", "cpu"),
        ("acasxu", "ACASXU_run2a_1_2_batch_2000.onnx", "prop_2.vnnlib", None),
        ("acasxu", "ACASXU_run2a_2_9_batch_2000.onnx", "prop_8.vnnlib", None),
        ("mnistfc", "mnist-net_256x2.onnx", "prop_3_0.05.vnnlib", "cpu"),
    ],
)
def test_counterexamples_of_sat_instances(folder, onnx, vnnlib, device):
    if not (NETS / folder).is_dir():
        pytest.skip(f"{NETS / folder} is absent")
    assert _verdict(folder, onnx, vnnlib) == "sat"  # the competition's consensus
    net = netopt.load(NETS / folder / onnx)
    prop = _prop(net, NETS / folder / vnnlib)
    found = None
    for dj in prop.disjuncts:
        r = falsify(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=20, device=device)
        if r.x is not None:
            found = (r, dj)
            break
    assert found is not None, "no counterexample found where the competition found one"
    r, dj = found
    assert r.margin <= 0
    _check_point(net, r.x, dj)


def test_nothing_where_the_property_holds():
    """On an instance every tool proves ("unsat"), the attack returns no point, only a margin."""
    folder, onnx, vnnlib = "mnistfc", "mnist-net_256x2.onnx", "prop_2_0.03.vnnlib"
    if not (NETS / folder).is_dir():
        pytest.skip(f"{NETS / folder} is absent")
    assert _verdict(folder, onnx, vnnlib) == "unsat"
    net = netopt.load(NETS / folder / onnx)
    dj = _prop(net, NETS / folder / vnnlib).disjuncts[0]
    r = falsify(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=2, rounds=1, device="cpu")
    assert r.x is None and r.margin > 0


def _relu_net(rng, n_in=3, hidden=6):
    W1 = rng.normal(size=(hidden, n_in))
    b1 = rng.normal(size=hidden) * 0.3
    W2 = rng.normal(size=(1, hidden))
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1),
    ]
    m = make_model(nodes, [1, n_in], [1, 1], {"W1": W1, "b1": b1, "W2": W2, "b2": np.zeros(1)})
    return netopt.load(m)


@pytest.mark.parametrize("seed", range(4))
def test_threshold_against_a_grid(seed):
    """y(x) <= t for t at the grid's 2nd percentile: points exist (2 % of a fine grid), and one is
    found; for t below a sound CROWN lower bound of the minimum no point is ever returned."""
    rng = np.random.default_rng(seed)
    net = _relu_net(rng)
    lo, hi = -np.ones(3), np.ones(3)
    g = np.linspace(-1, 1, 41)
    X = np.stack(np.meshgrid(g, g, g), -1).reshape(-1, 3)
    y = net.forward(X).reshape(-1)
    t = float(np.quantile(y, 0.02))
    r = falsify(net, lo, hi, np.ones((1, 1)), np.array([t]), time_limit=10, seed=seed, device="cpu")
    assert r.x is not None and float(net.forward(r.x).reshape(-1)[0]) <= t
    from netopt.bounds import compute_bounds, linear_bounds

    b = compute_bounds(net.graph, lo, hi, "crown")
    low, _ = linear_bounds(net.graph, b, net.graph.outputs[0], np.ones((1, 1)))
    r2 = falsify(
        net, lo, hi, np.ones((1, 1)), np.array([float(low[0]) - 1e-3]), time_limit=1,
        rounds=1, device="cpu",
    )  # fmt: skip
    assert r2.x is None and r2.margin > 0


def _abs_sum_net(n):
    """y = sum_i |x_i|, as relu(x) + relu(-x)."""
    W1 = np.vstack([np.eye(n), -np.eye(n)])
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1),
    ]
    inits = {"W1": W1, "b1": np.zeros(2 * n), "W2": np.ones((1, 2 * n)), "b2": np.zeros(1)}
    return netopt.load(make_model(nodes, [1, n], [1, 1], inits))


def test_the_box_centre_is_among_the_starts():
    """y = sum |x_i| <= 1e-9 on [-1, 1]^40 holds only near the centre, which no uniform sample
    or vertex reaches: with no descent step at all, the centre start alone finds it."""
    net = _abs_sum_net(40)
    r = falsify(
        net, -np.ones(40), np.ones(40), np.ones((1, 1)), np.array([1e-9]),
        steps=0, rounds=1, device="cpu",
    )  # fmt: skip
    assert r.x is not None and np.all(r.x == 0)


@pytest.mark.parametrize(
    "lo, hi, C, d, words",
    [
        (-np.ones(3), np.ones(3), np.ones((1, 1)), np.zeros(1), "input's 40 values"),
        (np.ones(40), -np.ones(40), np.ones((1, 1)), np.zeros(1), "lo <= hi"),
        (-np.ones(40), np.ones(40), np.ones((1, 2)), np.zeros(1), "C must be"),
        (-np.ones(40), np.ones(40), np.ones((1, 1)), np.zeros(2), "d of length"),
    ],
)
def test_bad_arguments_are_input_errors(lo, hi, C, d, words):
    from netopt.errors import InputError

    with pytest.raises(InputError, match=words):
        falsify(_abs_sum_net(40), lo, hi, C, d, device="cpu")


# ---------------------------------------------------------------- all disjuncts at once
@pytest.mark.parametrize("device", [None, "cpu"])
def test_every_class_at_once_finds_the_mnist_counterexample(device):
    """MNIST 256x2, image 0 at eps 0.05 (8 tools: "sat"): the label 8 is beaten only by class 9
    (disjunct 8, "Y_9 >= Y_8"), which plain PGD misses (see the plateau test below); attacking
    the nine disjuncts as one batch finds it, confirmed in float64 and in onnxruntime."""
    folder, onnx, vnnlib = "mnistfc", "mnist-net_256x2.onnx", "prop_0_0.05.vnnlib"
    if not (NETS / folder).is_dir():
        pytest.skip(f"{NETS / folder} is absent")
    assert _verdict(folder, onnx, vnnlib) == "sat"
    net = netopt.load(NETS / folder / onnx)
    prop = _prop(net, NETS / folder / vnnlib)
    rs = falsify_disjuncts(
        net, [(dj.lo, dj.hi, dj.C, dj.d) for dj in prop.disjuncts], time_limit=30, device=device
    )
    hits = [k for k, r in enumerate(rs) if r.x is not None]
    assert hits, [r.margin for r in rs]
    k = hits[0]
    assert rs[k].margin <= 0
    _check_point(net, rs[k].x, prop.disjuncts[k])
    # the winning class is a true one: y_j >= y_8 for the j of that disjunct
    y = net.forward(rs[k].x).reshape(-1)
    j = int(np.nonzero(prop.disjuncts[k].C[0] < 0)[0][0])
    assert y[j] >= y[8]


def test_check_decides_mnist_prop_0_by_the_attack():
    """`netopt check` attacks every disjunct before the bounds of the first: "sat" (confirmed in
    onnxruntime) without spending the MILP on the disjuncts that hold."""
    if not (NETS / "mnistfc").is_dir():
        pytest.skip(f"{NETS / 'mnistfc'} is absent")
    from netopt.vnnlib.check import check

    net = netopt.load(NETS / "mnistfc" / "mnist-net_256x2.onnx")
    r = check(net, NETS / "mnistfc" / "prop_0_0.05.vnnlib", time_limit=60)
    assert r.verdict == "sat" and r.confirmed
    assert r.details[-1]["method"] == "attack" and r.details[-1]["disjunct"] == r.disjunct
    assert r.disjunct_status[r.disjunct] == "sat"


def test_every_disjunct_at_once_finds_acasxu_prop_8():
    """ACAS Xu 2_9, property 8 (6 tools: "sat"): the counterexample satisfies only the second of
    three disjuncts (the first holds with margin ~0.04): two rounds on all three find it."""
    folder, onnx, vnnlib = "acasxu", "ACASXU_run2a_2_9_batch_2000.onnx", "prop_8.vnnlib"
    if not (NETS / folder).is_dir():
        pytest.skip(f"{NETS / folder} is absent")
    assert _verdict(folder, onnx, vnnlib) == "sat"
    net = netopt.load(NETS / folder / onnx)
    prop = _prop(net, NETS / folder / vnnlib)
    rs = falsify_disjuncts(net, [(dj.lo, dj.hi, dj.C, dj.d) for dj in prop.disjuncts], rounds=2)
    assert rs[1].x is not None and rs[0].x is None and rs[0].margin > 0
    _check_point(net, rs[1].x, prop.disjuncts[1])


# ---------------------------------------------------------------- dead ReLUs
def _plateau_net(n=40, cut=34.0):
    """``y = -relu(sum(x) - cut)``: the unit is off on all of ``[0, 1]^n`` but a corner."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1),
    ]
    inits = {
        "W1": np.ones((1, n)),
        "b1": np.array([-cut]),
        "W2": -np.ones((1, 1)),
        "b2": np.zeros(1),
    }
    return netopt.load(make_model(nodes, [1, n], [1, 1], inits))


@pytest.mark.parametrize("device", [None, "cpu"])
def test_a_leaky_backward_pass_leaves_the_plateau(device):
    """y <= -1 needs sum(x) >= 35 on [0, 1]^40. Uniform samples (sum ~ 20 +- 1.8) and random
    vertices (P(sum >= 35) ~ 1e-6) start where the unit is off and the exact gradient is zero:
    plain PGD (leak 0) stays at margin 1. The leaky backward pass sees the unit and climbs."""
    net = _plateau_net()
    lo, hi, C, d = np.zeros(40), np.ones(40), np.ones((1, 1)), np.array([-1.0])
    plain = falsify(net, lo, hi, C, d, leaks=(0.0,), rounds=2, device=device)
    assert plain.x is None and plain.margin == pytest.approx(1.0)
    r = falsify(net, lo, hi, C, d, rounds=2, device=device)
    assert r.x is not None and r.x.reshape(-1).sum() >= 35 - 1e-9
    assert float(net.forward(r.x).reshape(-1)[0]) <= -1.0


def _mlp(rng, sizes):
    """A random MLP (Gemm/Relu chain) with the given layer widths."""
    nodes, inits, prev = [], {}, "x"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        inits[f"W{i}"], inits[f"b{i}"] = rng.normal(size=(b, a)), rng.normal(size=b) * 0.3
        out = "y" if i == len(sizes) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [out], transB=1))
        prev = out
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            prev = f"r{i}"
    return netopt.load(make_model(nodes, [1, sizes[0]], [1, sizes[-1]], inits)), inits


@pytest.mark.parametrize("leak", [0.0, 0.01, 0.5])
def test_margins_and_gradients_equal_the_jacobian_product(leak):
    """Both engines' margin is max_i (C f(x) - d)_i and their gradient the winning row of C
    through W_L D_{L-1} ... D_1 W_1, D_k = diag(1 where the unit is on, else the leak)."""
    rng = np.random.default_rng(3)
    sizes = [6, 9, 7, 4]
    net, w = _mlp(rng, sizes)
    X = rng.normal(size=(32, 6))
    C = rng.normal(size=(32, 2, 4))
    D = rng.normal(size=(32, 2))
    lk = np.full(32, leak)
    want_m, want_g = [], []
    for x, c, dd in zip(X, C, D, strict=True):
        J, h = np.eye(6), x
        for i in range(3):
            z = w[f"W{i}"] @ h + w[f"b{i}"]
            J = w[f"W{i}"] @ J
            if i < 2:
                J = np.where(z > 0, 1.0, leak)[:, None] * J
                z = np.maximum(z, 0)
            h = z
        v = c @ h - dd
        want_m.append(v.max())
        want_g.append(c[int(np.argmax(v))] @ J)
    chain = _NumpyChain.build(net)
    assert chain is not None
    torch_engine = _TorchEngine(net, "cpu", C, D, lk)
    for engine in (chain, torch_engine):
        m, g = engine(X.astype(np.float32), C.astype(np.float32), D.astype(np.float32), lk)
        np.testing.assert_allclose(m, want_m, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(g, want_g, rtol=1e-3, atol=1e-4)


def test_only_chains_get_the_numpy_engine():
    """A graph with an op outside reshape/affine/relu (here a Sigmoid) goes to torch."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Sigmoid", ["h"], ["y"]),
    ]
    net = netopt.load(make_model(nodes, [1, 3], [1, 2], {"W1": np.ones((2, 3)), "b1": np.zeros(2)}))
    assert _NumpyChain.build(net) is None
    assert _NumpyChain.build(_relu_net(np.random.default_rng(0))) is not None


# ---------------------------------------------------------------- boxes of a branch and bound
def test_boxes_points_lie_inside_and_margins_are_float64():
    """The 8 octants of [-1, 1]^3 at once: every point lies in its own box, every margin is the
    float64 interpreter's, a box holding a grid point below the threshold yields a
    counterexample, and a box CROWN proves above it never does."""
    from netopt.bounds import compute_bounds, linear_bounds

    rng = np.random.default_rng(5)
    net = _relu_net(rng)
    bits = (np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1
    lo, hi = np.where(bits == 1, 0.0, -1.0), np.where(bits == 1, 1.0, 0.0)
    g = np.linspace(-1, 1, 41)
    G = np.stack(np.meshgrid(g, g, g), -1).reshape(-1, 3)
    yg = net.forward(G).reshape(-1)
    t = float(np.quantile(yg, 0.01))
    C, d = np.ones((1, 1)), np.array([t])
    r = falsify_boxes(net, lo, hi, C, d, device=None)
    assert r.x.shape == (8, 3) and r.margin.shape == (8,)
    assert np.all(r.x >= lo) and np.all(r.x <= hi)
    np.testing.assert_array_equal(r.margin, net.forward(r.x).reshape(-1) - t)
    # the box of the grid's minimum holds points below t: one is found there
    b_min = int(np.flatnonzero(np.all((G[np.argmin(yg)] >= lo) & (G[np.argmin(yg)] <= hi), 1))[0])
    assert r.margin[b_min] <= 0 and r.found is not None
    for b in range(8):
        bb = compute_bounds(net.graph, lo[b], hi[b], "crown")
        low, _ = linear_bounds(net.graph, bb, net.graph.outputs[0], C)
        if low[0] > t:
            assert r.margin[b] > 0


def test_boxes_on_the_torch_engine_agree_with_float64():
    rng = np.random.default_rng(6)
    net = _relu_net(rng)
    lo = rng.uniform(-1, 0, size=(5, 3))
    hi = lo + rng.uniform(0.1, 1, size=(5, 3))
    r = falsify_boxes(net, lo, hi, np.ones((1, 1)), np.array([-100.0]), device="cpu")
    assert np.all(r.x >= lo) and np.all(r.x <= hi) and r.found is None
    np.testing.assert_array_equal(r.margin, net.forward(r.x).reshape(-1) + 100.0)


def test_boxes_bad_shapes_are_input_errors():
    from netopt.errors import InputError

    net = _relu_net(np.random.default_rng(0))
    with pytest.raises(InputError, match="lo and hi"):
        falsify_boxes(net, np.zeros((2, 3)), np.ones((3, 3)), np.ones((1, 1)), np.zeros(1))
    with pytest.raises(InputError, match="lo <= hi"):
        falsify_boxes(net, np.ones((2, 3)), np.zeros((2, 3)), np.ones((1, 1)), np.zeros(1))


# ---------------------------------------------------------------- Ctrl-C
def test_a_pending_interrupt_stops_before_the_first_step():
    """With Ctrl-C requested only the starts are evaluated: no descent step runs."""
    net = _plateau_net()
    control.request_interrupt()
    try:
        r = falsify(net, np.zeros(40), np.ones(40), np.ones((1, 1)), np.array([-1.0]), restarts=64)
    finally:
        control.clear_interrupt()
    assert r.x is None and r.evaluations == 64


# ---------------------------------------------------------------- the region walk
def test_region_walk_reaches_acasxu_prop_7_where_descent_stops_short(monkeypatch):
    """ACAS Xu 1_9 prop 7 (5 tools: "sat"): at its counterexamples every output is within 1e-3
    of the others. Descent alone ends a few ten-thousandths short on both disjuncts; from its
    best points the region LPs reach a counterexample of each, confirmed in onnxruntime."""
    import netopt.attack as attack

    folder, onnx, vnnlib = "acasxu", "ACASXU_run2a_1_9_batch_2000.onnx", "prop_7.vnnlib"
    if not (NETS / folder).is_dir():
        pytest.skip(f"{NETS / folder} is absent")
    assert _verdict(folder, onnx, vnnlib) == "sat"
    net = netopt.load(NETS / folder / onnx)
    prop = _prop(net, NETS / folder / vnnlib)
    for dj in prop.disjuncts:
        with monkeypatch.context() as m:
            m.setattr(attack, "WALK_PROBLEMS", 0)
            plain = falsify(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=2)
        assert plain.x is None and 0 < plain.margin < 1e-3
        r = falsify(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=2)
        assert r.x is not None and r.margin <= 0
        _check_point(net, r.x, dj)


def _sliver(seed: int, eps: float = 1e-3) -> tuple:
    """A random 3-8-8-2 chain, the box [-1, 1]^3 and the outputs within ``eps`` of f(x*) at a
    random x* (a counterexample region around x*), and a start away from x*."""
    rng = np.random.default_rng(seed)
    net, _ = _mlp(rng, [3, 8, 8, 2])
    xs = rng.uniform(-1, 1, 3)
    ys = net.forward(xs.reshape(1, 3)).reshape(-1)
    C = np.vstack([np.eye(2), -np.eye(2)])
    d = np.concatenate([ys + eps, -(ys - eps)])
    x0 = np.clip(xs + rng.normal(size=3) * 0.3, -1, 1)
    return net, C, d, x0


def test_region_walk_points_are_counterexamples_and_margins_only_fall():
    """From a start near a small counterexample region: the margin never rises above the
    start's, and a point returned satisfies every row in float64 and in onnxruntime (most
    seeds reach the region)."""
    from netopt.attack.regions import region_walk
    from netopt.vnnlib.property import Disjunct

    lo, hi, found = -np.ones(3), np.ones(3), 0
    for seed in range(8):
        net, C, d, x0 = _sliver(seed)
        m0 = float((C @ net.forward(x0.reshape(1, 3)).reshape(-1) - d).max())
        x, m, best = region_walk(net, lo, hi, C, d, x0)
        assert m <= m0 and np.all(lo <= best) and np.all(best <= hi)
        assert float((C @ net.forward(best.reshape(1, 3)).reshape(-1) - d).max()) == m
        if x is not None:
            found += 1
            assert m <= 0
            _check_point(
                net, x.reshape(1, 3), Disjunct(lo, hi, np.zeros((0, 3)), np.zeros(0), C, d)
            )
    assert found >= 4


def test_region_walk_claims_nothing_where_the_property_holds():
    """Below a sound CROWN lower bound of the output's minimum no point exists: the walk
    returns none, only its best margin (> 0)."""
    from netopt.attack.regions import region_walk
    from netopt.bounds import compute_bounds, linear_bounds

    for seed in range(4):
        net, _, _, x0 = _sliver(seed)
        lo, hi = -np.ones(3), np.ones(3)
        C = np.array([[1.0, -1.0]])
        b = compute_bounds(net.graph, lo, hi, "crown")
        low, _ = linear_bounds(net.graph, b, net.graph.outputs[0], C)
        x, m, _ = region_walk(net, lo, hi, C, np.array([float(low[0]) - 1e-6]), x0)
        assert x is None and m > 0


def test_networks_that_are_not_chains_are_not_walked():
    """A residual sum is not a chain: no layers, and the walk returns the start's margin."""
    from netopt.attack.regions import chain_layers, region_walk

    net = _residual_net()
    assert chain_layers(net) is None
    x0 = np.zeros(3)
    C, d = np.eye(3)[:1], np.array([-5.0])
    x, m, best = region_walk(net, -np.ones(3), np.ones(3), C, d, x0)
    assert x is None and np.array_equal(best, x0)
    assert m == pytest.approx(float(net.forward(x0.reshape(1, 3)).reshape(-1)[0]) + 5.0)


def test_chains_too_large_to_walk_are_not_walked(monkeypatch):
    """Past :data:`MAX_WEIGHTS` dense weights (a convolution unrolled) the walk gives up."""
    import netopt.attack.regions as regions

    net, C, d, x0 = _sliver(1)
    assert regions.chain_layers(net) is not None
    monkeypatch.setattr(regions, "MAX_WEIGHTS", 10)
    net, C, d, x0 = _sliver(1)  # a fresh network: its layers are not kept yet
    assert regions.chain_layers(net) is None
    x, m, best = regions.region_walk(net, -np.ones(3), np.ones(3), C, d, x0)
    assert x is None and np.array_equal(best, x0) and m > 0


def _residual_net():
    """y = relu(W x) + x: not a chain (the falsifier's torch engine, no region walk)."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Add", ["r", "x"], ["y"]),
    ]
    rng = np.random.default_rng(0)
    return netopt.load(
        make_model(nodes, [1, 3], [1, 3], {"W1": rng.normal(size=(3, 3)), "b1": np.zeros(3)})
    )


@pytest.mark.parametrize("walkable", [True, False])
def test_the_time_limit_holds_with_or_without_the_walk(walkable):
    """Many rounds asked for, a twentieth of a second given: the attack stops near it whether
    the network is walked (a chain) or not."""
    import time

    net = _sliver(0)[0] if walkable else _residual_net()
    n_out = int(np.prod(net.output_shape))
    C, d = np.eye(n_out)[:1], np.array([-100.0])
    t = time.perf_counter()
    r = falsify(net, -np.ones(3), np.ones(3), C, d, time_limit=0.05, rounds=10_000, device="cpu")
    assert r.x is None and time.perf_counter() - t < 1.5


def test_rows_without_a_limit_do_not_stop_the_walk():
    """A row with d = +inf never binds: the walk goes on the others; with d = -inf nothing
    can be a counterexample and none is claimed."""
    from netopt.attack.regions import region_walk

    net, C, d, x0 = _sliver(1)
    lo, hi = -np.ones(3), np.ones(3)
    x, m, _ = region_walk(net, lo, hi, C, d, x0)
    C2, d2 = np.vstack([C, [[1.0, 1.0]]]), np.append(d, np.inf)
    x2, m2, _ = region_walk(net, lo, hi, C2, d2, x0)
    assert (x2 is None) == (x is None) and m2 == pytest.approx(m)
    x3, m3, _ = region_walk(net, lo, hi, C2, np.append(d, -np.inf), x0)
    assert x3 is None and m3 == np.inf
