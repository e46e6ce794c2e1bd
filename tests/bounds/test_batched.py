"""Batched torch CROWN / alpha-CROWN of chain networks (netopt.bounds.batched), against the float64
numpy CROWN and against sampled points (a lower bound no sampled point goes under)."""

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
