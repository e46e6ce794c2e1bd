"""Batched torch CROWN / alpha-CROWN / beta-CROWN of chain networks (netopt.bounds.batched), against
the float64 numpy CROWN, against sampled points (a lower bound no sampled point goes under) and
against the LP over the triangle relaxation; the reuse of a parent's bounds; BaBSR and input
branching scores against their formulas."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import NETS, make_model
from onnx import helper

import netopt
from netopt.bounds import compute_bounds, linear_bounds
from netopt.errors import FormulationError

torch = pytest.importorskip("torch")
from netopt.bounds.batched import ChainBounds  # noqa: E402
from netopt.bounds.branching import TIE, babsr_scores, input_scores  # noqa: E402


def _mlp(rng, sizes, leak=None):
    nodes, inits = [], {}
    prev = "x"
    for i in range(len(sizes) - 1):
        inits[f"W{i}"] = rng.normal(size=(sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])
        inits[f"b{i}"] = rng.normal(size=sizes[i + 1]) * 0.1
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [f"h{i}"], transB=1))
        prev = f"h{i}"
        if i < len(sizes) - 2:
            if leak is None:
                nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            else:
                nodes.append(helper.make_node("LeakyRelu", [prev], [f"r{i}"], alpha=leak))
            prev = f"r{i}"
    nodes[-1].output[0] = "y"
    return netopt.load(make_model(nodes, [1, sizes[0]], [1, sizes[-1]], inits))


def _boxes(rng, n_in, B, width=0.5):
    c = rng.uniform(-1, 1, size=(B, n_in))
    w = rng.uniform(0, width, size=(B, n_in))
    return c - w, c + w


@pytest.mark.parametrize("leak", [None, 0.1])
def test_float64_crown_equals_the_numpy_crown(leak):
    rng = np.random.default_rng(0)
    net = _mlp(rng, [4, 12, 10, 3], leak)
    C = rng.normal(size=(2, 3))
    d = rng.normal(size=2)
    lo, hi = _boxes(rng, 4, 6)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    got = cb.crown(lo, hi, C, d).lower.numpy()
    for i in range(len(lo)):
        b = compute_bounds(net.graph, lo[i], hi[i], "crown")
        ref, _ = linear_bounds(net.graph, b, net.graph.outputs[0], C)
        # the numpy bounds round outward: never above, and equal up to that rounding
        assert np.all(ref - d <= got[i] + 1e-9)
        np.testing.assert_allclose(got[i], ref - d, rtol=1e-7, atol=1e-9)


def test_acasxu_crown_matches_numpy():
    path = NETS / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    net = netopt.load(path)
    rng = np.random.default_rng(1)
    lo = rng.uniform(-0.3, 0.3, size=(3, 5))
    hi = lo + 0.05
    C = np.eye(5)[:4] - np.eye(5)[[4]]
    d = np.zeros(4)
    got = ChainBounds(net.graph, dtype=torch.float64, device="cpu").crown(lo, hi, C, d).lower
    for i in range(3):
        b = compute_bounds(net.graph, lo[i].reshape(1, 1, 5), hi[i].reshape(1, 1, 5), "crown")
        ref, _ = linear_bounds(net.graph, b, net.graph.outputs[0], C)
        np.testing.assert_allclose(got[i].numpy(), ref, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("leak", [None, 0.2])
def test_bounds_hold_on_sampled_points_with_splits_and_any_slopes(dtype, leak):
    """CROWN and alpha-CROWN (from random, out-of-range initial slopes), with random ReLU splits:
    every sampled point of a box that respects its splits has C f(x) - d above the bound."""
    rng = np.random.default_rng(2)
    net = _mlp(rng, [3, 16, 16, 2], leak)
    C = rng.normal(size=(2, 2))
    d = rng.normal(size=2)
    B = 32
    lo, hi = _boxes(rng, 3, B, 0.6)
    cb = ChainBounds(net.graph, dtype=getattr(torch, dtype), device="cpu")
    splits = [rng.integers(-1, 2, size=(B, 16)) * (rng.random((B, 16)) < 0.2) for _ in range(2)]
    init = [rng.uniform(-2, 3, size=(B, 16)) for _ in range(2)]
    res = [
        cb.crown(lo, hi, C, d),
        cb.crown(lo, hi, C, d, splits),
        cb.alpha_crown(lo, hi, C, d, splits, iters=15, init=init),
    ]
    X = rng.uniform(lo[:, None, :], hi[:, None, :], size=(B, 400, 3))
    flat = X.reshape(-1, 3)
    from netopt.ir.interpret import interpret

    env = interpret(net.graph, {net.graph.inputs[0]: flat}, keep=True)
    pre = [op.inputs[0] for op in net.graph.ops if op.op in ("relu", "leaky_relu")]
    Z = [env[v].reshape(B, 400, -1) for v in pre]
    val = (env[net.graph.outputs[0]].reshape(B, 400, -1) @ C.T) - d
    tol = 1e-9 if dtype == "float64" else 1e-4
    for k, r in enumerate(res):
        low = r.lower.double().numpy()
        for i in range(B):
            keep = np.ones(400, bool)
            if k > 0:  # the split boxes: only points on the chosen sides count
                for z, s in zip(Z, splits, strict=True):
                    keep &= np.all(
                        (s[i] == 0) | ((s[i] > 0) & (z[i] >= 0)) | ((s[i] < 0) & (z[i] <= 0)),
                        axis=1,
                    )
            if keep.any():
                assert np.all(val[i][keep] >= low[i] - tol), (k, i)


def test_alpha_never_worse_than_crown_and_slopes_in_range():
    rng = np.random.default_rng(3)
    net = _mlp(rng, [5, 20, 20, 4])
    C = rng.normal(size=(3, 4))
    d = np.zeros(3)
    lo, hi = _boxes(rng, 5, 16, 0.8)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    base = cb.crown(lo, hi, C, d).lower.max(dim=1).values
    a = cb.alpha_crown(lo, hi, C, d, iters=20)
    assert torch.all(a.lower.max(dim=1).values >= base - 1e-12)
    for s in a.slopes:
        assert torch.all((s >= 0) & (s <= 1))
    # the recorded slopes reproduce the recorded bound
    pre, _ = cb.pre_bounds(lo, hi)
    lines = [cb._lines(j, pre[j][0], pre[j][1], a.slopes[j]) for j in range(len(pre))]
    again = cb._spec(cb._t(lo), cb._t(hi), C, d, lines)
    torch.testing.assert_close(again, a.lower)


def test_non_chain_is_refused():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Add", ["x", "r"], ["y"]),
    ]
    net = netopt.load(make_model(nodes, [1, 3], [1, 3]))
    with pytest.raises(FormulationError, match="add"):
        ChainBounds(net.graph, device="cpu")
    from netopt.bounds.chain_numpy import NumpyChainCrown

    with pytest.raises(FormulationError, match="add"):
        NumpyChainCrown(net.graph)


# ---------------------------------------------------------------- beta-CROWN, reuse, scores
def _forward_pre(net, X):
    """Every activation's input at the points ``X`` (``(N, n_in)``), by the reference interpreter."""
    from netopt.ir.interpret import interpret

    env = interpret(net.graph, {net.graph.inputs[0]: X}, keep=True)
    pre = [op.inputs[0] for op in net.graph.ops if op.op in ("relu", "leaky_relu")]
    return [env[v] for v in pre], env[net.graph.outputs[0]]


def _sampled(rng, net, lo, hi, splits, C, d, n=2000):
    """``C f(x) - d`` at ``n`` uniform points of each box (``(B, n, k)``), and which of them
    respect the box's splits (``(B, n)``)."""
    B, n_in = lo.shape
    X = rng.uniform(lo[:, None, :], hi[:, None, :], size=(B, n, n_in))
    Z, Y = _forward_pre(net, X.reshape(-1, n_in))
    val = Y.reshape(B, n, -1) @ C.T - d
    keep = np.ones((B, n), bool)
    for z, s in zip(Z, splits, strict=True):
        z, s = z.reshape(B, n, -1), s[:, None, :]
        keep &= np.all((s == 0) | ((s > 0) & (z >= 0)) | ((s < 0) & (z <= 0)), axis=2)
    return val, keep


def _feasible_splits(rng, net, lo, hi, p=0.3):
    """Random splits of each box that one point of the box (its centre) respects."""
    Z, _ = _forward_pre(net, (lo + hi) / 2)
    return [np.where(rng.random(z.shape) < p, np.where(z >= 0, 1, -1), 0) for z in Z]


def _lp_min(cb, lo, hi, c, d, pre, splits):
    """min c.f(x) - d over the box, the splits and the triangle relaxation on the bounds ``pre``
    (scipy's HiGHS): every CROWN / alpha / beta bound on the same bounds is at most this."""
    from scipy.optimize import linprog

    W = [w.double().numpy() for w in cb.W]
    b = [v.double().numpy() for v in cb.b]
    sizes = [len(lo)] + [2 * w.shape[0] for w in W[:-1]]  # x, then (z_j, a_j) per layer
    off = np.concatenate([[0], np.cumsum(sizes)])
    nv = int(off[-1])
    A_eq, b_eq, A_ub, b_ub, bounds = [], [], [], [], list(zip(lo, hi, strict=True))
    prev_a = np.arange(len(lo))
    for j in range(len(W) - 1):
        n = W[j].shape[0]
        zi, ai = off[j + 1] + np.arange(n), off[j + 1] + n + np.arange(n)
        leak = cb.leak[j]
        low, up = (t.double().numpy() for t in pre[j])
        bounds += [(low[i], up[i]) for i in range(n)] + [(None, None)] * n
        for i in range(n):
            row = np.zeros(nv)
            row[zi[i]] = 1
            row[prev_a] = -W[j][i]
            A_eq.append(row)
            b_eq.append(b[j][i])
            s = splits[j][i] if splits is not None else 0
            lz, uz = (
                (max(low[i], 0), up[i]) if s > 0 else (low[i], min(up[i], 0) if s < 0 else up[i])
            )
            row = np.zeros(nv)
            row[ai[i]] = 1
            if lz >= 0 or uz <= 0:  # a = z or a = leak z
                row[zi[i]] = -1 if lz >= 0 else -leak
                A_eq.append(row)
                b_eq.append(0.0)
                continue
            for slope in (1.0, leak):  # a >= slope z
                r = np.zeros(nv)
                r[zi[i]], r[ai[i]] = slope, -1
                A_ub.append(r)
                b_ub.append(0.0)
            ch = (uz - leak * lz) / (uz - lz)  # a <= chord
            row[zi[i]] = -ch
            A_ub.append(row)
            b_ub.append(uz - ch * uz)
        prev_a = ai
    obj = np.zeros(nv)
    obj[prev_a] = c @ W[-1]
    res = linprog(
        obj,
        A_ub=np.array(A_ub) if A_ub else None,
        b_ub=b_ub or None,
        A_eq=np.array(A_eq),
        b_eq=b_eq,
        bounds=bounds,
        method="highs",
    )
    assert res.status == 0, res.message
    return res.fun + c @ b[-1] - d


@pytest.mark.parametrize("leak", [None, 0.1])
def test_float64_crown_equals_batchcrown(leak):
    """The numpy BaB engine (netopt.bounds.bab.BatchCrown, float64, outward rounding) is the
    reference: same bounds, same best-row input coefficients, same activation bounds, also when
    a parent's bounds are intersected in (prev=)."""
    from netopt.bounds.bab import BatchCrown

    rng = np.random.default_rng(10)
    net = _mlp(rng, [4, 12, 10, 3], leak)
    C = rng.normal(size=(3, 3))
    d = rng.normal(size=3)
    lo, hi = _boxes(rng, 4, 8, 0.6)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    ref = BatchCrown(net.graph)
    r_lo, r_coef, r_pre = ref.bound(lo, hi, C)
    got = cb.crown(lo, hi, C, d)
    scale = max(1.0, float(np.abs(r_lo).max()))
    np.testing.assert_allclose(got.lower.numpy(), r_lo - d, rtol=1e-9, atol=1e-9 * scale)
    assert np.array_equal(got.row.numpy(), np.argmax(r_lo - d, axis=1))
    best = r_coef[np.arange(8), got.row.numpy()]
    np.testing.assert_allclose(got.coef.numpy(), best, rtol=1e-9, atol=1e-12)
    for (gl, gu), (rl, ru) in zip(got.pre, r_pre.values(), strict=True):
        np.testing.assert_allclose(gl.numpy(), rl, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gu.numpy(), ru, rtol=1e-9, atol=1e-12)
    # children: the lower half of each box along input 0, with the parents' bounds
    mid = (lo[:, 0] + hi[:, 0]) / 2
    c_hi = hi.copy()
    c_hi[:, 0] = mid
    r2_lo, _, r2_pre = ref.bound(lo, c_hi, C, prev=r_pre)
    got2 = cb.crown(lo, c_hi, C, d, prev=got.pre)
    np.testing.assert_allclose(got2.lower.numpy(), r2_lo - d, rtol=1e-9, atol=1e-9 * scale)
    for (gl, gu), (rl, ru) in zip(got2.pre, r2_pre.values(), strict=True):
        np.testing.assert_allclose(gl.numpy(), rl, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gu.numpy(), ru, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("leak", [None, 0.2])
def test_beta_crown_sound_on_points_and_below_the_lp(dtype, leak):
    """beta-CROWN on split boxes (splits a point of each box respects), from random multipliers
    (negative ones too), with the parent's bounds reused or intersected: every sampled point that
    respects the splits is above the bound, and in float64 no bound exceeds the LP optimum over
    the triangle relaxation on the same activation bounds."""
    rng = np.random.default_rng(11)
    net = _mlp(rng, [3, 12, 12, 2], leak)
    C = rng.normal(size=(2, 2))
    d = rng.normal(size=2)
    B = 24
    lo, hi = _boxes(rng, 3, B, 0.7)
    cb = ChainBounds(net.graph, dtype=getattr(torch, dtype), device="cpu")
    splits = _feasible_splits(rng, net, lo, hi)
    parent = cb.crown(lo, hi, C, d)
    init_b = [rng.normal(size=(B, 2, 12)) for _ in range(2)]
    res = {
        "beta": cb.alpha_crown(lo, hi, C, d, splits, iters=30, beta=True, init_betas=init_b),
        "beta_reuse": cb.alpha_crown(lo, hi, C, d, splits, iters=30, beta=True, pre=parent.pre),
        "beta_prev": cb.alpha_crown(lo, hi, C, d, splits, iters=30, beta=True, prev=parent.pre),
        "crown_reuse": cb.crown(lo, hi, C, d, splits, pre=parent.pre),
    }
    val, keep = _sampled(rng, net, lo, hi, splits, C, d)
    assert keep.sum(axis=1).min() > 0  # every box keeps points (its centre's side at least)
    tol = 1e-9 if dtype == "float64" else 1e-4
    for name, r in res.items():
        low = r.lower.double().numpy()
        for i in range(B):
            assert np.all(val[i][keep[i]] >= low[i] - tol), (name, i)
    for r in (res["beta"], res["beta_prev"]):
        for b_, s in zip(r.betas, splits, strict=True):
            assert torch.all(b_ >= 0)
            assert torch.all(b_[torch.as_tensor(s == 0)[:, None, :].expand_as(b_)] == 0)
    if dtype == "float64":
        for name in ("beta", "beta_prev"):
            r = res[name]
            for i in range(0, B, 4):
                k = int(r.row[i])
                pre_i = [(pl[i], pu[i]) for pl, pu in r.pre]
                lp = _lp_min(cb, lo[i], hi[i], C[k], d[k], pre_i, [s[i] for s in splits])
                assert r.lower[i, k].item() <= lp + 1e-7, (name, i)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_combined_row_sound_on_points_and_never_below_the_best_row(dtype):
    """``mix``: the last column bounds the combination ``mu^T (C f - d)`` of the rows, ``mu`` in
    the simplex: every sampled point respecting the splits is above it (with the returned
    ``mu``), the other columns are the rows' own bounds, and with no step the combination
    starts as the best row."""
    rng = np.random.default_rng(21)
    net = _mlp(rng, [3, 12, 12, 3])
    C = rng.normal(size=(3, 3))
    d = rng.normal(size=3)
    B = 16
    lo, hi = _boxes(rng, 3, B, 0.7)
    cb = ChainBounds(net.graph, dtype=getattr(torch, dtype), device="cpu")
    splits = _feasible_splits(rng, net, lo, hi)
    r0 = cb.alpha_crown(lo, hi, C, d, splits, iters=0, beta=True, mix=True)
    low0 = r0.lower.double().numpy()
    assert low0.shape == (B, 4)
    assert np.allclose(low0[:, 3], low0[:, :3].max(axis=1), atol=1e-5)
    r = cb.alpha_crown(lo, hi, C, d, splits, iters=30, beta=True, mix=True)
    mu = r.mix.double().numpy()
    assert mu.shape == (B, 3) and np.all(mu >= 0) and np.allclose(mu.sum(axis=1), 1)
    val, keep = _sampled(rng, net, lo, hi, splits, C, d)  # val (B, N, 3)
    tol = 1e-9 if dtype == "float64" else 1e-4
    low = r.lower.double().numpy()
    for i in range(B):
        v = val[i][keep[i]]
        assert np.all(v >= low[i, :3] - tol), i
        assert np.all(v @ mu[i] >= low[i, 3] - tol), i
    # one row: nothing to combine
    assert cb.alpha_crown(lo, hi, C[:1], d[:1], iters=2, mix=True).mix is None


def test_the_combination_is_positive_where_no_row_is():
    """Rows ``c f <= a`` and ``c f >= b`` with a < b inside the range of ``c f``: neither row's
    bound is positive, yet no point meets both; the optimized weights find it (near 1/2 each:
    the combination is then the constant (b - a) / 2)."""
    rng = np.random.default_rng(22)
    net = _mlp(rng, [3, 10, 10, 2])
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    lo, hi = _boxes(rng, 3, 1, 0.7)
    c = rng.normal(size=2)
    # the range of c f on sampled points: each row alone is met somewhere
    _, Y = _forward_pre(net, rng.uniform(lo, hi, (2000, 3)))
    L, U = (Y @ c).min(), (Y @ c).max()
    a, b = L + 0.3 * (U - L), L + 0.7 * (U - L)
    C, d = np.vstack([c, -c]), np.array([a, -b])
    r = cb.alpha_crown(lo, hi, C, d, iters=30, mix=True)
    lower = r.lower.numpy()
    assert np.all(lower[:, :2].max(axis=1) < 0)
    assert np.all(lower[:, 2] > 0)
    assert np.allclose(r.mix.numpy(), 0.5, atol=0.2)


def test_beta_never_worse_than_alpha_on_split_leaves():
    """On the split leaves of a seeded net: beta-CROWN started from alpha-CROWN's slopes is never
    below alpha-CROWN's bound, and better on some boxes; started cold (slopes and multipliers
    optimized jointly, the slopes then take another path), it is better on most boxes."""
    rng = np.random.default_rng(12)
    net = _mlp(rng, [4, 16, 16, 3])
    C = rng.normal(size=(2, 3))
    d = np.zeros(2)
    lo, hi = _boxes(rng, 4, 32, 0.8)
    splits = _feasible_splits(rng, net, lo, hi, p=0.4)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    a = cb.alpha_crown(lo, hi, C, d, splits, iters=20)
    best_a = a.lower.max(dim=1).values
    warm = cb.alpha_crown(lo, hi, C, d, splits, iters=20, beta=True, init=a.slopes)
    best_w = warm.lower.max(dim=1).values
    assert torch.all(best_w >= best_a - 1e-6)
    assert torch.any(best_w > best_a + 1e-3)
    cold = cb.alpha_crown(lo, hi, C, d, splits, iters=20, beta=True)
    assert int((cold.lower.max(dim=1).values > best_a).sum()) >= 24
    assert torch.equal(cold.row, cold.lower.argmax(dim=1))


def test_beta_strictly_better_on_a_constructed_split():
    r"""y = relu(x) - relu(-x) = x on [-1, 1], split relu(x)'s input z_1 = x >= 0. Without beta
    the unsplit unit a_2 = relu(-x) on [-1, 1] takes its chord, y >= x - (-x/2 + 1/2) >= -2; the
    constraint x >= 0 (beta on z_1) gives the LP optimum min_{x >= 0} 1.5 x - 0.5 = -0.5."""
    nodes = [
        helper.make_node("Gemm", ["x", "W0", "b0"], ["h0"], transB=1),
        helper.make_node("Relu", ["h0"], ["r0"]),
        helper.make_node("Gemm", ["r0", "W1", "b1"], ["y"], transB=1),
    ]
    inits = {"W0": [[1.0], [-1.0]], "b0": [0.0, 0.0], "W1": [[1.0, -1.0]], "b1": [0.0]}
    net = netopt.load(make_model(nodes, [1, 1], [1, 1], inits))
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    lo, hi, C, d = [[-1.0]], [[1.0]], [[1.0]], [0.0]
    splits = [np.array([[1, 0]])]
    a = cb.alpha_crown(lo, hi, C, d, splits, iters=50)
    b = cb.alpha_crown(lo, hi, C, d, splits, iters=200, beta=True, lr_beta=0.1)
    assert a.lower.item() == pytest.approx(-2.0, abs=1e-9)
    assert -0.5 - 0.02 <= b.lower.item() <= -0.5 + 1e-9
    assert b.betas[0][0, 0, 0].item() == pytest.approx(1.5, abs=0.02)
    assert b.betas[0][0, 0, 1].item() == 0.0  # unsplit unit: no multiplier


def test_recorded_parameters_reproduce_the_bound_and_warm_start():
    """The returned slopes and betas, given back as the start with no step, give the same bound
    (a warm start from a parent uses them as they are); more steps from there never lose."""
    rng = np.random.default_rng(13)
    net = _mlp(rng, [3, 10, 10, 2], 0.1)
    C = rng.normal(size=(2, 2))
    d = rng.normal(size=2)
    lo, hi = _boxes(rng, 3, 12, 0.8)
    splits = _feasible_splits(rng, net, lo, hi, p=0.4)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    r = cb.alpha_crown(lo, hi, C, d, splits, iters=15, beta=True)
    again = cb.alpha_crown(
        lo, hi, C, d, splits, iters=0, beta=True, init=r.slopes, init_betas=r.betas
    )
    torch.testing.assert_close(again.lower, r.lower, rtol=1e-12, atol=1e-12)
    for x, y in zip(again.lams, r.lams, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(again.coef, r.coef, rtol=1e-12, atol=1e-12)
    more = cb.alpha_crown(
        lo, hi, C, d, splits, iters=10, beta=True, init=r.slopes, init_betas=r.betas
    )
    assert torch.all(more.lower.max(dim=1).values >= r.lower.max(dim=1).values)


def test_reusing_parent_bounds():
    """pre= (reuse): the parent's bounds clipped to the new splits, no backward pass. It equals
    recomputing with the parent's bounds intersected (prev=) when the new splits are all in the
    last activation layer (the earlier layers' bounds cannot change); with a new split in the
    first layer, recomputing is at least as tight on every unit."""
    rng = np.random.default_rng(14)
    net = _mlp(rng, [4, 14, 12, 3])
    C = rng.normal(size=(2, 3))
    d = rng.normal(size=2)
    lo, hi = _boxes(rng, 4, 16, 0.8)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    base = _feasible_splits(rng, net, lo, hi, p=0.2)
    parent = cb.crown(lo, hi, C, d, base)
    extra = _feasible_splits(rng, net, lo, hi, p=0.3)
    late = [base[0], np.where(base[1] != 0, base[1], extra[1])]
    reuse = cb.crown(lo, hi, C, d, late, pre=parent.pre)
    again = cb.crown(lo, hi, C, d, late, prev=parent.pre)
    for (rl, ru), (al, au), (pl, pu), s in zip(reuse.pre, again.pre, parent.pre, late, strict=True):
        s = torch.as_tensor(s, dtype=torch.float64)
        torch.testing.assert_close(rl, torch.where(s > 0, pl.clamp(min=0), pl))
        torch.testing.assert_close(ru, torch.where(s < 0, pu.clamp(max=0), pu))
        torch.testing.assert_close(al, rl, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(au, ru, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(again.lower, reuse.lower, rtol=1e-12, atol=1e-12)
    early = [np.where(base[0] != 0, base[0], extra[0]), base[1]]
    reuse = cb.crown(lo, hi, C, d, early, pre=parent.pre)
    again = cb.crown(lo, hi, C, d, early, prev=parent.pre)
    fresh = cb.crown(lo, hi, C, d, early)
    for (rl, ru), (al, au), (fl, fu) in zip(reuse.pre, again.pre, fresh.pre, strict=True):
        assert torch.all(al >= rl) and torch.all(au <= ru)
        assert torch.all(al >= fl) and torch.all(au <= fu)
    # the second layer gains from the first layer's new splits somewhere
    assert torch.any(again.pre[1][0] > reuse.pre[1][0]) or torch.any(
        again.pre[1][1] < reuse.pre[1][1]
    )
    with pytest.raises(ValueError):
        cb.crown(lo, hi, C, d, early, pre=parent.pre, prev=parent.pre)


def _rows_spy(monkeypatch, cls) -> list:
    """Every back-substitution's row count (boxes times rows) through ``cls._substitute``."""
    seen: list = []
    real = cls._substitute

    def spy(self, Lam, *args, **kw):
        seen.append(Lam.shape[0] * Lam.shape[1])
        return real(self, Lam, *args, **kw)

    monkeypatch.setattr(cls, "_substitute", spy)
    return seen


@pytest.mark.parametrize("engine", ["torch", "numpy"])
@pytest.mark.parametrize("leak", [None, 0.1])
def test_skipping_units_dead_on_the_parent(leak, engine, monkeypatch):
    """``dead=`` (units a superset's bounds say are inactive): in ReLU layers mostly dead their
    rows are skipped (fewer rows back-substituted), every bound still holds on sampled points,
    the dead units' upper bounds are <= 0 even where the box's own bounds say otherwise, and
    where the dead units are the ones the box's own CROWN finds inactive the bounds are CROWN's
    exactly. Leaky layers, and layers with few dead units, take the full pass: the same
    bounds as without the mask."""
    from netopt.bounds.chain_numpy import DEAD_SHARE, NumpyChainCrown

    rng = np.random.default_rng(21)
    net = _mlp(rng, [4, 16, 14, 12, 3], leak)
    C = rng.normal(size=(2, 3))
    d = rng.normal(size=2)
    plo, phi = _boxes(rng, 4, 12, 0.2)
    if engine == "torch":
        cls, cb = ChainBounds, ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    else:
        cls, cb = NumpyChainCrown, NumpyChainCrown(net.graph, np.float64)
    _, _, Pp = cb.crown_rows(plo, phi, C, d, with_pre=True)
    lo, hi = plo.copy(), phi.copy()
    hi[:, 0] = (plo[:, 0] + phi[:, 0]) / 2  # a half of each parent
    offs = np.cumsum([0, 16, 14, 12])
    layers = list(zip(offs[:-1], offs[1:], strict=True))
    s0, coef0, P0 = cb.crown_rows(lo, hi, C, d, with_pre=True)
    seen = _rows_spy(monkeypatch, cls)
    cb.crown_rows(lo, hi, C, d, with_pre=True)
    full = sum(seen)
    if leak is not None:
        # never skipped, whatever the mask
        s1, coef1, P1 = cb.crown_rows(
            lo, hi, C, d, with_pre=True, dead=np.ones_like(P0[:, 1], bool)
        )
        np.testing.assert_array_equal(s1, s0)
        np.testing.assert_array_equal(P1, P0)
        return
    dead = Pp[:, 1] <= 0
    skipped = [(a, b) for a, b in layers if dead[:, a:b].mean() >= DEAD_SHARE]
    assert skipped
    seen.clear()
    s, coef, P = cb.crown_rows(lo, hi, C, d, with_pre=True, dead=dead)
    assert sum(seen) < full
    for a, b in skipped:
        assert np.all(P[:, 1, a:b][dead[:, a:b]] <= 0)
    zero = [np.zeros((12, n)) for n in (16, 14, 12)]
    val, _ = _sampled(rng, net, lo, hi, zero, C, d)
    assert np.all(s <= val.min(axis=1) + 1e-9)
    Z, _ = _forward_pre(
        net, rng.uniform(lo[:, None], hi[:, None], size=(12, 500, 4)).reshape(-1, 4)
    )
    Z = np.concatenate([z.reshape(12, 500, -1) for z in Z], 2)
    assert np.all(Z >= P[:, None, 0] - 1e-9) and np.all(Z <= P[:, None, 1] + 1e-9)
    # every unit taken as dead: clipped to <= 0 whatever the box's own bounds
    everything = np.ones_like(dead)
    assert np.any(P0[:, 1] > 0)
    assert np.all(cb.crown_rows(lo, hi, C, d, with_pre=True, dead=everything)[2][:, 1] <= 0)
    # the units the box's own bounds find inactive: CROWN's bounds on every other unit
    own = P0[:, 1] <= 0
    s1, coef1, P1 = cb.crown_rows(lo, hi, C, d, with_pre=True, dead=own)
    np.testing.assert_allclose(s1, s0, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(coef1, coef0, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(P1[:, :, ~own.any(0)], P0[:, :, ~own.any(0)], rtol=1e-10, atol=1e-10)
    # too few dead units in every layer: the full pass, the mask unused
    few = np.zeros_like(dead)
    few[0, [a for a, _ in layers]] = True
    s2, _, P2 = cb.crown_rows(lo, hi, C, d, with_pre=True, dead=few)
    np.testing.assert_array_equal(s2, s0)
    np.testing.assert_array_equal(P2, P0)
    with pytest.raises(ValueError, match="dead must be"):
        cb.crown_rows(lo, hi, C, d, dead=dead[:, :-1])


@pytest.mark.parametrize("leak", [None, 0.1])
def test_the_numpy_engine_equals_the_torch_engine(leak):
    """:class:`NumpyChainCrown` (input splitting's engine without torch) gives
    :meth:`ChainBounds.crown_rows`'s bounds, coefficients and activation bounds: in float64 to
    rounding, with and without dead units; in float32 within float32's rounding, and still
    below the sampled values."""
    from netopt.bounds.chain_numpy import NumpyChainCrown

    rng = np.random.default_rng(5)
    net = _mlp(rng, [4, 16, 14, 12, 3], leak)
    C = rng.normal(size=(2, 3))
    d = rng.normal(size=2)
    lo, hi = _boxes(rng, 4, 24, 0.3)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    nb = NumpyChainCrown(net.graph, np.float64)
    ref = cb.crown_rows(lo, hi, C, d, with_pre=True)
    dead = ref[2][:, 1] <= 0
    assert dead.any()
    for kw in ({}, {"dead": dead}):
        want = cb.crown_rows(lo, hi, C, d, with_pre=True, **kw)
        got = nb.crown_rows(lo, hi, C, d, with_pre=True, **kw)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == np.float64
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    s32, coef32 = NumpyChainCrown(net.graph).crown_rows(lo, hi, C, d, dead=dead)
    np.testing.assert_allclose(s32, ref[0], rtol=1e-4, atol=1e-4)
    val, _ = _sampled(rng, net, lo, hi, [np.zeros((24, n)) for n in (16, 14, 12)], C, d)
    assert np.all(s32 <= val.min(axis=1) + 1e-4)


def test_the_numpy_engine_needs_no_torch():
    """Input splitting's float32 search in a process without torch: nothing imports it."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, netopt\n"
        "from netopt.bounds.branch import branch_and_bound\n"
        "net = netopt.load(sys.argv[1])\n"
        "lo = np.array([[-0.129289109, 0.11140846, -0.499999896, -0.5, -0.5]])\n"
        "hi = np.array([[0.700434925, 0.499999896, -0.499204121, 0.5, 0.5]])\n"
        "C = np.zeros((1, 5)); C[0, 0] = 1.0; C[0, 1] = -1.0\n"
        "r = branch_and_bound(net, lo, hi, C, np.array([-0.06]), mode='input', time_limit=30)\n"
        "assert r.verdict == 'unsat' and r.stats['nodes'] > 1, (r.verdict, r.stats)\n"
        "assert 'numpy float32 search' in r.stats['device'], r.stats['device']\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    acas = NETS / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx"
    if not acas.exists():
        pytest.skip(f"{acas} is not here")
    out = subprocess.run([sys.executable, "-c", code, str(acas)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("leak", [None, 0.1])
def test_babsr_scores_of_one_hidden_layer(leak):
    r"""With one hidden layer the coefficient of a_1 in row c's bound is c W_2 exactly, so the
    score is computable from the weights: |min(b lam (r - 1), b lam (r - alpha)) + min(lam, 0) t|
    on unstable units, 0 on stable and split ones."""
    rng = np.random.default_rng(15)
    net = _mlp(rng, [3, 20, 4], leak)
    C = rng.normal(size=(3, 4))
    d = rng.normal(size=3)
    lo, hi = _boxes(rng, 3, 10, 0.8)
    splits = _feasible_splits(rng, net, lo, hi, p=0.3)
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    r = cb.alpha_crown(lo, hi, C, d, splits, iters=5, beta=True)
    a = cb.leak[0]  # the model's float32 attribute, as the engine reads it
    W2, b1 = cb.W[1].numpy(), cb.b[0].numpy()
    (sc,) = babsr_scores(cb, r)
    (sc_max,) = babsr_scores(cb, r, reduce="max")
    low, up = (t.numpy() for t in r.pre[0])
    for i in range(10):
        lam = C[int(r.row[i])] @ W2
        np.testing.assert_allclose(r.lams[0][i].numpy(), C @ W2, rtol=1e-12, atol=1e-12)
        for n in range(20):
            if low[i, n] >= 0 or up[i, n] <= 0:
                assert sc[i, n] == 0 and sc_max[i, n] == 0
                continue
            assert splits[0][i, n] == 0
            rr = (up[i, n] - a * low[i, n]) / (up[i, n] - low[i, n])
            t = (1 - a) * -low[i, n] * up[i, n] / (up[i, n] - low[i, n])
            c1, c2 = b1[n] * lam[n] * (rr - 1), b1[n] * lam[n] * (rr - a)
            icpt = min(lam[n], 0) * t
            tie = TIE * (up[i, n] - low[i, n])  # every unstable unit's score above 0
            assert sc[i, n].item() == pytest.approx(
                abs(min(c1, c2) + icpt) + tie, rel=1e-9, abs=1e-13
            )
            assert sc_max[i, n].item() == pytest.approx(
                abs(max(c1, c2) + icpt) + tie, rel=1e-9, abs=1e-13
            )
    assert torch.all(sc[torch.as_tensor(splits[0] != 0)] == 0)
    assert torch.any(sc > 0)


def test_babsr_scores_every_unstable_unit_above_zero():
    """A layer of zero bias whose coefficients are >= 0 (a max pool's ReLU form) has BaBSR terms
    of 0; its unstable units still score above 0, so a domain with one left is never taken for
    one on which the network is affine."""
    rng = np.random.default_rng(3)
    net = _mlp(rng, [3, 6, 1], None)
    W1 = rng.normal(size=(6, 3))
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    cb.W[0] = torch.as_tensor(W1)
    cb.b[0] = torch.zeros(6, dtype=torch.float64)
    cb.W[1] = torch.ones((1, 6), dtype=torch.float64)  # coefficients >= 0: no intercept term
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    r = cb.alpha_crown(lo, hi, np.eye(1), np.zeros(1), iters=0)
    (sc,) = babsr_scores(cb, r)
    low, up = r.pre[0]
    unst = (low < 0) & (up > 0)
    assert bool(unst.all())
    assert bool((sc[unst] > 0).all())


def test_input_scores_are_the_best_rows_smear():
    """The input score is |coef| * width; an input no row depends on scores 0."""
    rng = np.random.default_rng(16)
    net = _mlp(rng, [3, 8, 8, 2])
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    cb.W[0][:, 2] = 0.0  # input 2 no longer reaches the output
    C = rng.normal(size=(2, 2))
    lo, hi = _boxes(rng, 3, 6, 0.5)
    r = cb.alpha_crown(lo, hi, C, np.zeros(2), iters=5)
    s = input_scores(cb, r, lo, hi)
    assert s.shape == (6, 3)
    assert torch.all(s[:, 2] == 0) and torch.all(s[:, :2] > 0)
    torch.testing.assert_close(s, r.coef.abs() * torch.as_tensor(hi - lo))


def test_dtype_and_device_of_every_result():
    rng = np.random.default_rng(17)
    net = _mlp(rng, [3, 8, 8, 2])
    lo, hi = _boxes(rng, 3, 4, 0.5)
    splits = _feasible_splits(rng, net, lo, hi)
    C, d = rng.normal(size=(2, 2)), np.zeros(2)
    for dt in (torch.float32, torch.float64):
        cb = ChainBounds(net.graph, dtype=dt, device="cpu")
        r = cb.alpha_crown(lo, hi, C, d, splits, iters=3, beta=True)
        tensors = [r.lower, r.coef, *r.slopes, *r.betas, *r.lams] + [t for p in r.pre for t in p]
        assert all(t.dtype == dt and t.device.type == "cpu" for t in tensors)
        assert r.row.dtype == torch.int64
        assert [tuple(b_.shape) for b_ in r.betas] == [(4, 2, 8), (4, 2, 8)]
    # by name too, as the options take it
    assert ChainBounds(net.graph, dtype="float64", device="cpu").W[0].dtype == torch.float64


def test_a_cuda_device_that_is_not_there_is_a_clear_error(monkeypatch):
    """A CUDA device index past the devices torch sees: an InputError naming the count (here
    one device, as torch would report it on a one-GPU machine), not a CUDA error later."""
    from netopt.errors import InputError
    from netopt.torch_utils import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(InputError, match=r"'cuda:3'.*1 CUDA device"):
        resolve_device("cuda:3")


def test_the_slopes_adam_takes_torch_adams_steps():
    """alpha/beta-CROWN's Adam (written out: torch.optim's first use imports torch._dynamo,
    about a second) against torch.optim.Adam itself, two groups of their own rates."""
    import torch

    from netopt.torch_utils import Adam

    torch.manual_seed(0)
    a, b = torch.randn(5, 3), torch.randn(4)
    ours = [a.clone().requires_grad_(True), b.clone().requires_grad_(True)]
    ref = [a.clone().requires_grad_(True), b.clone().requires_grad_(True)]

    def groups(p):
        return [{"params": [p[0]], "lr": 0.25}, {"params": [p[1]], "lr": 0.05}]

    opts = [(ours, Adam(groups(ours))), (ref, torch.optim.Adam(groups(ref)))]
    for _ in range(20):
        for p, opt in opts:
            opt.zero_grad()
            ((p[0] ** 3).sum() + (p[1].sin() * p[0][0, 0]).sum()).backward()
            opt.step()
    for x, y in zip(ours, ref, strict=True):
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-5)
    assert not torch.equal(ours[0], a)  # the steps moved it


@pytest.mark.parametrize("mix", [False, True])
def test_a_box_in_a_batch_is_bounded_as_alone_and_stops_once_closed(mix, monkeypatch):
    """alpha/beta-CROWN optimizes a box only while it is open (the batch shrinks to the open
    boxes, ``Adam.select``): every field of each box's answer equals its answer bounded alone,
    whichever boxes closed before it or with it; a box stops at the step that closed it."""
    from netopt.bounds.spec_bound import CLOSE_HEADROOM, BoxBatch

    rng = np.random.default_rng(5)
    net = _mlp(rng, [4, 12, 10, 3])
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    B = 16
    lo, hi = _boxes(rng, 4, B, 0.4)
    lo[:4], hi[:4] = lo[:4] + 0.35, hi[:4] - 0.35  # narrow boxes: these close early
    root = cb.alpha_crown(lo, hi, np.eye(3)[:1], np.zeros(1), iters=0)
    splits = [_feasible_splits(rng, net, lo, hi, 0.2)[j] for j in range(len(root.pre))]
    C = rng.normal(size=(2, 3))
    # rows closing some boxes at once, some after a few steps, some never
    lower0 = cb.alpha_crown(lo, hi, C, np.zeros(2), splits, iters=0, beta=True).lower
    d = np.quantile(lower0.max(dim=1).values.numpy(), 0.6) * np.ones(2)
    kept: list = []
    take = BoxBatch.take
    monkeypatch.setattr(
        BoxBatch, "take", lambda self, idx: (kept.append(len(idx)), take(self, idx))[1]
    )
    kw = dict(iters=12, beta=True, mix=mix)
    together = cb.alpha_crown(lo, hi, C, d, splits, **kw)
    start = cb.alpha_crown(lo, hi, C, d, splits, iters=0, beta=True, mix=mix).lower
    tau = CLOSE_HEADROOM * (1 + np.abs(d).max())
    at_once = start.max(dim=1).values > tau
    closed = together.lower.max(dim=1).values > tau
    # some boxes closed at once, some during the steps, some stayed open; the batch shrank
    assert at_once.any() and (closed & ~at_once).any() and not closed.all()
    assert len(kept) >= 2 and kept[0] == B - int(at_once.sum())
    for b in range(B):
        alone = cb.alpha_crown(
            lo[b : b + 1], hi[b : b + 1], C, d, [s[b : b + 1] for s in splits], **kw
        )
        np.testing.assert_allclose(together.lower[b : b + 1], alone.lower, rtol=0, atol=1e-12)
        for x, y in zip(together.slopes, alone.slopes, strict=True):
            np.testing.assert_allclose(x[b : b + 1], y, rtol=0, atol=1e-12)
        for x, y in zip(together.betas, alone.betas, strict=True):
            np.testing.assert_allclose(x[b : b + 1], y, rtol=0, atol=1e-12)
        if mix:
            np.testing.assert_allclose(together.mix[b : b + 1], alone.mix, rtol=0, atol=1e-12)
    # a box closed at the start takes no step: its bound is the start's
    np.testing.assert_array_equal(together.lower[at_once], start[at_once])


def test_one_box_with_rows_of_each_box_of_its_own():
    """alpha/beta-CROWN of one box (``lo`` of batch 1) with per-box rows ``C`` ``(B, k, m)``:
    each box's answer is the one of its rows alone, whichever boxes closed first."""
    rng = np.random.default_rng(8)
    net = _mlp(rng, [3, 10, 8, 2])
    cb = ChainBounds(net.graph, dtype=torch.float64, device="cpu")
    lo, hi = _boxes(rng, 3, 1, 0.5)
    B = 12
    C = rng.normal(size=(B, 2, 2))
    d = np.zeros(B * 2)
    start = cb.alpha_crown(lo, hi, C, d, iters=0).lower.max(dim=1).values.numpy()
    d = np.full(B * 2, np.quantile(start, 0.5))  # about half the boxes open
    both = cb.alpha_crown(lo, hi, C, d, iters=8, mix=True)
    assert both.lower.shape == (B, 3) and all(s.shape[0] == B for s in both.slopes)
    for b in range(B):
        one = cb.alpha_crown(lo, hi, C[b : b + 1], d[2 * b : 2 * b + 2], iters=8, mix=True)
        np.testing.assert_allclose(both.lower[b : b + 1], one.lower, rtol=0, atol=1e-12)
        for x, y in zip(both.slopes, one.slopes, strict=True):
            np.testing.assert_allclose(x[b : b + 1], y, rtol=0, atol=1e-12)
