"""The layer-wise LP inversion (Lei et al. 2019): recovery, the set property, errors, backends."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper
from scipy.optimize import linprog

import netopt
from netopt.errors import FormulationError, InputError
from netopt.formulations.layerwise_lp import (
    Layer,
    LayerLP,
    invert_layer,
    invert_layerwise,
    layers_of,
)
from netopt.instances._onnx import mlp_onnx

LP_METHODS = ("linf", "l1", "relax")
ALL_METHODS = (*LP_METHODS, "exact")


def gaussian_net(sizes, rng, act="relu", dtype=np.float64):
    """The paper's random generator: W_i ~ N(0, 1/n_out), no bias, activation after every layer."""
    Ws = [rng.normal(size=(b, a)) / np.sqrt(b) for a, b in itertools.pairwise(sizes)]
    net = netopt.load(mlp_onnx(Ws, [None] * len(Ws), [act] * len(Ws), dtype=dtype))
    return net, Ws


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


# ------------------------------------------------------------------------- exact recovery
@pytest.mark.parametrize("method", ALL_METHODS)
def test_single_tall_gaussian_layer_recovered_exactly(method, rng):
    n, k = 200, 20
    W = rng.normal(size=(n, k)) / np.sqrt(n)
    z = rng.normal(size=k)
    x = np.maximum(W @ z, 0.0)
    sol = invert_layer(W, x, method=method, eps0=1e-9)
    assert sol.status == "ok"
    assert np.max(np.abs(sol.z - z)) <= 1e-6
    assert sol.info["residual_inf"] <= 1e-7
    # about half the rows are active, and the method says how many it used
    assert sol.info["active_rows"] == int((x > 1e-9).sum())


@pytest.mark.parametrize("method", ALL_METHODS)
def test_two_layer_20_100_500_recovered(method, rng):
    net, _ = gaussian_net([20, 100, 500], rng)
    z = rng.normal(size=20)
    x = net.forward(z)
    res = invert_layerwise(net, x, method=method, eps0=1e-9)
    assert res.status == netopt.Status.FEASIBLE
    assert rel(res.x, z) <= 1e-6
    # y and the objective are recomputed by the float64 interpreter, not read from an LP
    np.testing.assert_allclose(res.y, net.forward(res.x), rtol=0, atol=0)
    # scored by the method's norm: l_inf for linf/exact, l_1 for l1/relax
    p = np.inf if method in ("linf", "exact") else 1
    assert res.objective == pytest.approx(float(np.linalg.norm(res.y - x, ord=p)), abs=1e-15)
    lw = res.extra["layerwise"]
    assert [r["layer"] for r in lw["layers"]] == [1, 0]  # output layer first
    assert lw["layers"][0]["ops"] == ["fc1", "relu1"]
    for r in lw["layers"]:
        assert {"eps", "active_rows", "residual_inf", "residual_l1", "solve_seconds"} <= set(r)
        assert r["residual_inf"] <= 1e-6
    assert res.certificate.kind == "point"


def test_problem_box_is_imposed_on_the_latent(rng):
    net, _ = gaussian_net([5, 30, 60], rng)
    z = rng.uniform(-1, 1, size=5)
    x = net.forward(z) + rng.uniform(-0.05, 0.05, size=60)
    prob = netopt.Inversion(net, x, norm="inf", box=(-0.5, 0.5))
    res = invert_layerwise(prob, method="linf", eps0=1e-6)
    assert res.status == netopt.Status.FEASIBLE
    assert np.all(np.abs(res.x) <= 0.5 + 1e-9)
    assert res.problem is prob


# ------------------------------------------------------------------------ the set property
def _small_layer(rng, slope=0.0):
    """6x2 W whose rows point all around the circle, b = -1: the preimage of 0 is a hexagon."""
    ang = np.arange(6) * np.pi / 3 + rng.uniform(-0.2, 0.2, 6)
    W = np.c_[np.cos(ang), np.sin(ang)] * rng.uniform(0.8, 1.5, (6, 1))
    act = "relu" if slope == 0 else "leaky_relu"
    return Layer(0, W, -np.ones(6), act, slope, "z", "x")


def _brute_force_vertices(layer, x, tol=1e-9):
    """Vertices of the preimage {z : phi(Wz + b) = x}, by enumerating pairs of boundary lines.

    The preimage's boundary lies on the lines w_j z + b_j = x_j (active units) or = 0 (inactive
    ones); every vertex is the intersection of two of them, kept when the forward map sends it
    to x.
    """
    W, b = layer.matrix, layer.bias
    level = np.where(x > 0, x, 0.0)
    verts = []
    for i, j in itertools.combinations(range(len(x)), 2):
        A = W[[i, j]]
        if abs(np.linalg.det(A)) < 1e-12:
            continue
        z = np.linalg.solve(A, level[[i, j]] - b[[i, j]])
        if np.max(np.abs(layer.forward(z) - x)) <= tol:
            verts.append(z)
    return np.array(verts)


def _optimal_face_support(model, d):
    """max d.z over the optimal face of the layer LP (z = first two columns), by scipy's linprog."""
    A = model.A.toarray()
    A_ub = np.r_[A[np.isfinite(model.row_hi)], -A[np.isfinite(model.row_lo)]]
    b_ub = np.r_[model.row_hi[np.isfinite(model.row_hi)], -model.row_lo[np.isfinite(model.row_lo)]]
    bounds = list(
        zip(
            np.where(np.isfinite(model.lb), model.lb, None),
            np.where(np.isfinite(model.ub), model.ub, None),
            strict=True,
        )
    )
    opt = linprog(model.c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    assert opt.status == 0
    face_ub = np.r_[A_ub, model.c[None]]
    face_b = np.r_[b_ub, opt.fun + 1e-10 * max(1.0, abs(opt.fun))]
    c = np.zeros(model.n_vars)
    c[:2] = -d
    sup = linprog(c, A_ub=face_ub, b_ub=face_b, bounds=bounds, method="highs")
    assert sup.status == 0
    return -sup.fun


@pytest.mark.parametrize("method", LP_METHODS)
@pytest.mark.parametrize("n_active", [0, 1, 2])
def test_solution_set_is_the_preimage_at_eps_0(method, n_active, rng):
    layer = _small_layer(rng)
    # a latent whose image has exactly n_active positive units
    for _ in range(10000):
        z0 = rng.uniform(-3, 3, 2)
        x = layer.forward(z0)
        if int((x > 0).sum()) == n_active:
            break
    else:
        pytest.fail("no latent with the wanted number of active units")
    verts = _brute_force_vertices(layer, x)
    assert len(verts) >= 1
    model = LayerLP(layer, x, method).model(0.0)
    for a in np.linspace(0, 2 * np.pi, 24, endpoint=False):
        d = np.array([np.cos(a), np.sin(a)])
        assert _optimal_face_support(model, d) == pytest.approx(np.max(verts @ d), abs=1e-7)


@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_linf_feasible_set_is_the_eps_ball_preimage_on_a_grid(slope, eps, rng):
    """{z : (z, t = eps) feasible} equals {z : ||phi(Wz + b) - x||_inf <= eps}, point by point."""
    layer = _small_layer(rng, slope)
    x = layer.forward(np.array([1.3, -0.4])) + rng.uniform(-eps / 2, eps / 2, 6)
    model = LayerLP(layer, x, "linf").model(eps)
    g = np.linspace(-3, 3, 121)
    Z = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    V = np.c_[Z, np.full(len(Z), eps)]
    rows = model.A @ V.T
    slack = np.minimum(
        np.min(
            np.where(np.isfinite(model.row_hi[:, None]), model.row_hi[:, None] - rows, np.inf), 0
        ),
        np.min(
            np.where(np.isfinite(model.row_lo[:, None]), rows - model.row_lo[:, None], np.inf), 0
        ),
    )
    margin = eps - np.max(np.abs(np.array([layer.forward(z) for z in Z]) - x), axis=1)
    clear = (np.abs(margin) > 1e-9) & (np.abs(slack) > 1e-9)
    in_lp, in_pre = slack >= 0, margin >= 0
    assert in_pre[clear].sum() > 5 and (~in_pre[clear]).sum() > 5  # both sides are populated
    assert np.array_equal(in_lp[clear], in_pre[clear])


# --------------------------------------------------------------------------- LeakyReLU
@pytest.mark.parametrize("method", ALL_METHODS)
def test_leaky_relu_20_100_200_500_recovered(method, rng):
    net, _ = gaussian_net([20, 100, 200, 500], rng, act="leaky_relu:0.1")
    z = rng.normal(size=20)
    x = net.forward(z)
    # noiseless: start at eps = 0 (the relaxation (8) keeps growing eps while the l1 residual
    # drops, and its LeakyReLU optimum sits eps away from x, so a larger start costs accuracy)
    res = invert_layerwise(net, x, method=method, eps0=0.0)
    assert rel(res.x, z) <= 1e-6
    assert [r["activation"] for r in res.extra["layerwise"]["layers"]] == ["leaky_relu"] * 3


def test_leaky_relu_layer_lp_has_no_sign_constraint_on_its_input(rng):
    net, _ = gaussian_net([4, 12, 30], rng, act="leaky_relu:0.2")
    layers = layers_of(net.graph)
    assert [ly.slope for ly in layers] == pytest.approx([0.2, 0.2])  # float32 in the file
    assert not layers[1].input_nonneg
    relu_net, _ = gaussian_net([4, 12, 30], rng)
    assert layers_of(relu_net.graph)[1].input_nonneg


# ------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("method", ["linf", "l1"])
def test_error_decreases_with_noise(method):
    rng = np.random.default_rng(3)
    levels = [1e-1, 1e-2, 1e-3, 1e-4]
    errs = {a: [] for a in levels}
    for _ in range(5):
        net, _ = gaussian_net([10, 50, 250], rng)
        z = rng.normal(size=10)
        x = net.forward(z)
        for a in levels:
            xn = x + rng.uniform(-a, a, size=x.shape)
            res = invert_layerwise(net, xn, method=method, eps0=a)
            errs[a].append(rel(res.x, z))
    med = [float(np.median(errs[a])) for a in levels]
    assert all(m1 > m2 for m1, m2 in itertools.pairwise(med)), med
    # and roughly linear in the noise (Theorems 3 and 4): a constant factor, not a floor
    assert med[-1] <= 100 * levels[-1]


# ---------------------------------------------------------------- persistent vs fresh model
@pytest.mark.parametrize("method,eps0", [("linf", 1e-6), ("l1", 1e-3), ("relax", 1e-6)])
def test_warm_resolve_matches_fresh_builds(method, eps0, rng):
    n, k = 300, 30
    W = rng.normal(size=(n, k)) / np.sqrt(n)
    z = rng.normal(size=k)
    x = np.maximum(W @ z, 0) + rng.uniform(-1e-2, 1e-2, n)
    warm = invert_layer(W, x, method=method, eps0=eps0, warm=True)
    fresh = invert_layer(W, x, method=method, eps0=eps0, warm=False)
    assert warm.info["lps"] == fresh.info["lps"] > 1  # the same eps sequence, several LPs
    assert warm.eps == fresh.eps
    assert warm.info["lp_objective"] == pytest.approx(fresh.info["lp_objective"], abs=1e-9)
    np.testing.assert_allclose(warm.z, fresh.z, atol=1e-6)


def test_cvxpy_backend_agrees_with_highs(rng):
    pytest.importorskip("cvxpy")
    n, k = 120, 10
    W = rng.normal(size=(n, k)) / np.sqrt(n)
    z = rng.normal(size=k)
    x = np.maximum(W @ z, 0) + rng.uniform(-1e-3, 1e-3, n)
    for method in ("linf", "l1"):
        a = invert_layer(W, x, method=method, eps0=1e-3, backend="highs")
        b = invert_layer(W, x, method=method, eps0=1e-3, backend="cvxpy", cvxpy_solver="CLARABEL")
        assert a.eps == b.eps
        assert a.info["lp_objective"] == pytest.approx(b.info["lp_objective"], abs=1e-6)
        np.testing.assert_allclose(a.z, b.z, atol=1e-4)
    net, _ = gaussian_net([8, 40, 160], rng)
    zz = rng.normal(size=8)
    res = invert_layerwise(net, net.forward(zz), method="linf", eps0=1e-9, backend="cvxpy")
    assert rel(res.x, zz) <= 1e-5


def test_missing_cvxpy_is_an_install_hint(monkeypatch, rng):
    import sys

    monkeypatch.setitem(sys.modules, "cvxpy", None)
    W = rng.normal(size=(20, 3))
    with pytest.raises(netopt.SolverUnavailableError, match="pip install cvxpy"):
        invert_layer(W, np.maximum(W @ np.ones(3), 0), backend="cvxpy")


# ------------------------------------------------------------------------------ errors
def _conv_pool_model(kind: str):
    w = np.ones((2, 1, 2, 2), dtype=np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv_a", strides=[1, 1])]
    if kind == "maxpool":
        nodes += [
            helper.make_node("Relu", ["c"], ["r"], name="relu_a"),
            helper.make_node("MaxPool", ["r"], ["y"], name="pool_b", kernel_shape=[2, 2]),
        ]
        y_shape = [1, 2, 4, 4]
    elif kind == "strided":
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv_s", strides=[2, 2])]
        nodes.append(helper.make_node("Relu", ["c"], ["y"], name="relu_s"))
        y_shape = [1, 2, 3, 3]
    elif kind == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["c"], ["y"], name="sig_c"))
        y_shape = [1, 2, 5, 5]
    else:
        nodes.append(helper.make_node("Relu", ["c"], ["y"], name="relu_a"))
        y_shape = [1, 2, 5, 5]
    return make_model(nodes, [1, 1, 6, 6], y_shape, {"w": w})


@pytest.mark.parametrize(
    "kind,node,op",
    [
        ("maxpool", "pool_b", "maxpool2d"),
        ("strided", "conv_s", "conv2d"),
        ("sigmoid", "sig_c", "sigmoid"),
    ],
)
def test_uninvertible_ops_are_refused_naming_the_node(kind, node, op):
    net = netopt.load(_conv_pool_model(kind))
    bad = next(o for o in net.graph.ops if o.op == op)
    with pytest.raises(FormulationError) as ei:
        invert_layerwise(net, np.zeros(net.output_shape))
    msg = str(ei.value)
    assert bad.id in msg and f"'{node}'" in msg and op in msg


def test_stride_one_conv_layer_is_inverted(rng):
    w = rng.normal(size=(4, 1, 2, 2))
    net = netopt.load(
        make_model(
            [
                helper.make_node("Conv", ["x", "w"], ["c"], name="conv", strides=[1, 1]),
                helper.make_node("Relu", ["c"], ["y"], name="relu"),
            ],
            [1, 1, 5, 5],
            [1, 4, 4, 4],
            {"w": w},
        )
    )
    z = rng.normal(size=(1, 5, 5))
    x = net.forward(z)
    for method in ("linf", "exact"):
        res = invert_layerwise(net, x, method=method, eps0=1e-9)
        assert rel(res.x, z) <= 1e-5  # float32 weights, float64 interpreter: exact up to LP tol


def test_infeasible_at_the_cap_is_reported_with_the_layer(rng):
    net, _ = gaussian_net([10, 40, 120], rng)
    x = net.forward(rng.normal(size=10))
    x[:10] += 1.0  # no latent comes within 1e-3 of this in l_inf
    res = invert_layerwise(net, x, method="linf", eps0=1e-6, eps_cap=1e-3)
    assert res.status == netopt.Status.UNKNOWN
    assert res.x is None
    failed = res.extra["layerwise"]["failed_layer"]
    assert failed["layer"] == 1 and failed["ops"] == ["fc1", "relu1"]
    assert "fc1" in res.message and "infeasible" in res.message
    rep = res.extra["layerwise"]["layers"][-1]
    assert rep["status"] == "infeasible_at_cap" and rep["eps"] == pytest.approx(1e-3)
    # and the same observation is inverted once the cap allows it
    assert invert_layerwise(net, x, method="linf", eps0=1e-6).status == netopt.Status.FEASIBLE


def test_bad_arguments():
    rng = np.random.default_rng(0)
    net, _ = gaussian_net([3, 9, 20], rng)
    with pytest.raises(InputError, match="method"):
        invert_layerwise(net, np.zeros(20), method="l2")
    with pytest.raises(InputError, match="target"):
        invert_layerwise(net, np.zeros(19))
    with pytest.raises(InputError, match="alpha"):
        invert_layerwise(net, np.zeros(20), alpha=1.0)


def test_warm_resolve_recovers_when_hot_start_is_inconclusive():
    """A k-250-600 instance whose warm re-solve at eps ~ 1e-8 ends in HiGHS status "unknown"
    (HiGHS 1.15.1); the session re-solves from scratch and the latent is recovered."""
    rng = np.random.default_rng([0, 40, 37])  # benchmarks/papers/lei_fig2.py, k = 40, net 37
    W1 = rng.normal(size=(250, 40)) / np.sqrt(250)
    W2 = rng.normal(size=(600, 250)) / np.sqrt(600)
    z = rng.normal(size=40)
    x = np.maximum(W2 @ np.maximum(W1 @ z, 0), 0) + rng.uniform(-1e-9, 1e-9, 600)
    net = netopt.load(mlp_onnx([W1, W2], [None, None], ["relu", "relu"], dtype=np.float64))
    res = invert_layerwise(net, x, method="linf", eps0=1e-9)
    assert res.status == netopt.Status.FEASIBLE, res.message
    assert rel(res.x, z) <= 1e-6
