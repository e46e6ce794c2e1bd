"""Bounds are sound on real networks: sampled inputs never leave their intervals."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import REAL_NETS, net_id, require_nets

import netopt
from netopt.bounds import compute_bounds, linear_bounds
from netopt.bounds_lp import tighten_lp
from netopt.interpret import interpret, vjp
from netopt.ir import Op
from netopt.linear import linear_map
from netopt.ops import OPS
from netopt.problems import OutputObjective

# the conv nets are bounded too, but their CROWN pass is the slow part of the suite
SOUND_NETS = [p for p in REAL_NETS if p.name not in ("cifar_base_kw.onnx",)]


def _violations(graph, b, x) -> int:
    env = interpret(graph, {graph.inputs[0]: x}, keep=True)
    bad = 0
    for v, a in env.items():
        a = a.reshape(len(x), -1)
        bad += int(np.sum(a < b.lo[v] - 1e-9) + np.sum(a > b.hi[v] + 1e-9))
    return bad


@pytest.mark.parametrize("path", SOUND_NETS, ids=[net_id(p) for p in SOUND_NETS])
def test_bounds_are_sound(path):
    require_nets()
    net = netopt.load(path)
    g = net.graph
    rng = np.random.default_rng(0)
    lo = rng.uniform(-1, 0.5, net.input_shape)
    hi = lo + rng.uniform(0.01, 0.5, net.input_shape)
    x = rng.uniform(lo, hi, (300, *net.input_shape))
    # corners too: extreme inputs are where unsound bounds show first
    x = np.concatenate([x, np.where(rng.random((100, *net.input_shape)) < 0.5, lo, hi)])
    for method in ("interval", "crown"):
        b = compute_bounds(g, lo, hi, method)
        assert _violations(g, b, x) == 0, method
    crown = compute_bounds(g, lo, hi, "crown")
    itv = compute_bounds(g, lo, hi, "interval")
    for v in g.values:
        assert np.all(crown.lo[v] >= itv.lo[v] - 1e-9) and np.all(crown.hi[v] <= itv.hi[v] + 1e-9)


@pytest.mark.parametrize(
    "name", ["mlp_10-32-32-2_seed0.onnx", "ACASXU_run2a_1_1_batch_2000.onnx", "conv_mp1.onnx"]
)
def test_lp_tightening_is_sound_and_tighter(name):
    require_nets()
    net = netopt.load(next(p for p in REAL_NETS if p.name == name))
    g = net.graph
    rng = np.random.default_rng(1)
    lo = rng.uniform(-1, 0, net.input_shape)
    hi = lo + 0.5
    prob = OutputObjective(net, np.ones(net.output_shape), box=(lo, hi))
    b = compute_bounds(g, lo, hi, "crown")
    t = tighten_lp(prob, b, time_budget=20)
    x = rng.uniform(lo, hi, (500, *net.input_shape))
    assert _violations(g, t, x) == 0
    assert sum(t.unstable(g).values()) <= sum(b.unstable(g).values())
    for v in g.values:
        assert np.all(t.lo[v] >= b.lo[v] - 1e-9) and np.all(t.hi[v] <= b.hi[v] + 1e-9)


def test_linear_bounds_of_output_combinations():
    require_nets()
    net = netopt.load(next(p for p in REAL_NETS if p.name == "mnist-net_256x2.onnx"))
    g = net.graph
    rng = np.random.default_rng(2)
    x0 = rng.uniform(0, 1, net.input_shape)
    lo, hi = np.clip(x0 - 0.02, 0, 1), np.clip(x0 + 0.02, 0, 1)
    b = compute_bounds(g, lo, hi, "crown")
    C = rng.normal(size=(5, 10))
    cl, cu = linear_bounds(g, b, g.outputs[0], C)
    y = net(rng.uniform(lo, hi, (500, *net.input_shape))) @ C.T
    assert np.all(y >= cl - 1e-9) and np.all(y <= cu + 1e-9)
    # back-substituting C itself beats bounding C times the output's interval
    ol, oh = b[g.outputs[0]]
    il = np.maximum(C, 0) @ ol + np.minimum(C, 0) @ oh
    assert np.all(cl >= il - 1e-9) and np.any(cl > il + 1e-6)


LINEAR_CASES = [
    (
        "conv2d",
        [(3, 7, 6)],
        {
            "weight": np.random.default_rng(3).normal(size=(4, 1, 3, 2)),
            "bias": np.arange(4.0),
            "strides": (2, 1),
            "pads": (1, 0, 2, 1),
            "dilations": (1, 2),
            "group": 3 if False else 1,
        },
    ),
    (
        "avgpool2d",
        [(2, 5, 5)],
        {
            "kernel": (3, 2),
            "strides": (2, 2),
            "pads": (1, 1, 1, 0),
            "ceil_mode": True,
            "count_include_pad": True,
        },
    ),
    (
        "avgpool2d",
        [(2, 5, 5)],
        {
            "kernel": (3, 3),
            "strides": (2, 2),
            "pads": (1, 1, 1, 1),
            "ceil_mode": True,
            "count_include_pad": False,
        },
    ),
    ("scale", [(2, 3)], {"mul": np.array([[1.0], [2.0]]), "add": np.arange(3.0)}),
    ("pad", [(2, 3)], {"pads": (1, 0, 0, 2), "value": -0.5}),
    ("concat", [(2, 3), (1, 3)], {"axis": 0}),
    ("transpose", [(2, 3, 4)], {"perm": (2, 0, 1)}),
]


@pytest.mark.parametrize("name,shapes,attrs", LINEAR_CASES, ids=[c[0] for c in LINEAR_CASES])
def test_linear_map_equals_forward(name, shapes, attrs):
    if name == "conv2d":
        attrs = {**attrs, "weight": attrs["weight"][:, :1].repeat(3, axis=1)}
    op = Op("o", name, tuple(f"i{k}" for k in range(len(shapes))), ("y",), attrs)
    rng = np.random.default_rng(4)
    xs = [rng.normal(size=(4, *s)) for s in shapes]
    y = OPS[name].forward(xs, op.attrs).reshape(4, -1)
    mats, b = linear_map(op, shapes)
    y2 = sum((m @ x.reshape(4, -1).T).T for m, x in zip(mats, xs, strict=True)) + b
    np.testing.assert_allclose(y, y2, rtol=1e-12, atol=1e-12)


def test_vjp_matches_finite_differences():
    require_nets()
    net = netopt.load(next(p for p in REAL_NETS if p.name == "conv_mp1.onnx"))
    g = net.graph
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, *net.input_shape))
    w = rng.normal(size=(1, *net.output_shape))
    env = interpret(g, {g.inputs[0]: x}, keep=True)
    gx = vjp(g, env, {g.outputs[0]: w})[g.inputs[0]]
    for _ in range(5):
        d = rng.normal(size=x.shape)
        eps = 1e-6
        fd = ((net(x + eps * d) - net(x - eps * d)) * w).sum() / (2 * eps)
        assert abs(fd - (gx * d).sum()) <= 1e-4 * max(1.0, abs(fd))
