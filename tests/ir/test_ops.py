"""The IR vocabulary: every op has shape inference and a numpy forward, checked on an example.

A new IR op must add an example here (the coverage test says so), and a rule in every other
registry that lists IR ops (the torch module's, and later bounds and formulations).
"""

from __future__ import annotations

import numpy as np
import pytest

from netopt.ir import Op
from netopt.ir.ops import OPS, linear_map, pool_output_size

rng = np.random.default_rng(0)
W = rng.normal(size=(3, 4))

# op -> (input sample shapes, attrs, expected output shape, reference function on batched arrays)
EXAMPLES = {
    "affine": ([(4,)], {"weight": W, "bias": np.ones(3)}, (3,), lambda x: x @ W.T + 1),
    "scale": (
        [(2, 3)],
        {"mul": np.array([1.0, 2.0, 3.0]), "add": np.array(0.5)},
        (2, 3),
        lambda x: x * [1, 2, 3] + 0.5,
    ),
    "conv2d": (
        [(2, 5, 5)],
        {
            "weight": np.ones((4, 1, 3, 3)),
            "bias": np.zeros(4),
            "strides": (2, 2),
            "pads": (1, 1, 1, 1),
            "dilations": (1, 1),
            "group": 2,
        },
        (4, 3, 3),
        None,
    ),
    "avgpool2d": (
        [(1, 4, 4)],
        {
            "kernel": (2, 2),
            "strides": (2, 2),
            "pads": (0, 0, 0, 0),
            "ceil_mode": False,
            "count_include_pad": False,
        },
        (1, 2, 2),
        lambda x: x.reshape(-1, 1, 2, 2, 2, 2).mean(axis=(3, 5)),
    ),
    "maxpool2d": (
        [(1, 4, 4)],
        {"kernel": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0), "ceil_mode": False},
        (1, 2, 2),
        lambda x: x.reshape(-1, 1, 2, 2, 2, 2).max(axis=(3, 5)),
    ),
    "reshape": ([(2, 3)], {"shape": (3, 2)}, (3, 2), lambda x: x.reshape(-1, 3, 2)),
    "transpose": ([(2, 3)], {"perm": (1, 0)}, (3, 2), lambda x: x.transpose(0, 2, 1)),
    "identity": ([(3,)], {}, (3,), lambda x: x),
    "select": (
        [(2, 3)],
        {"index": np.array([[5, 0], [2, 2]])},
        (2, 2),
        lambda x: x.reshape(-1, 6)[:, [5, 0, 2, 2]].reshape(-1, 2, 2),
    ),
    "pad": (
        [(2, 2)],
        {"pads": (1, 0, 0, 2), "value": 0.5},
        (3, 4),
        lambda x: np.pad(x, ((0, 0), (1, 0), (0, 2)), constant_values=0.5),
    ),
    "add": ([(3,), (3,)], {}, (3,), None),
    "concat": ([(2, 3), (2, 1)], {"axis": 1}, (2, 4), None),
    "relu": ([(3,)], {}, (3,), lambda x: np.maximum(x, 0)),
    "leaky_relu": ([(3,)], {"alpha": 0.1}, (3,), lambda x: np.where(x > 0, x, 0.1 * x)),
    "sigmoid": ([(3,)], {}, (3,), lambda x: 1 / (1 + np.exp(-x))),
    "tanh": ([(3,)], {}, (3,), np.tanh),
    "softmax": (
        [(4,)],
        {"axes": (0,)},
        (4,),
        lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True),
    ),
    "log_softmax": (
        [(4,)],
        {"axes": (0,)},
        (4,),
        lambda x: x - np.log(np.exp(x).sum(1, keepdims=True)),
    ),
}


def test_every_op_has_an_example():
    assert set(EXAMPLES) == set(OPS), f"IR ops without an example here: {set(OPS) - set(EXAMPLES)}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_op_example(name):
    shapes, attrs, out, ref = EXAMPLES[name]
    spec = OPS[name]
    assert tuple(spec.infer(shapes, attrs)) == out
    xs = [rng.normal(size=(5, *s)) for s in shapes]
    y = spec.forward(xs, attrs)
    assert y.shape == (5, *out)
    if ref is not None:
        np.testing.assert_allclose(y, ref(*xs), rtol=1e-12, atol=1e-12)
    assert spec.doc, f"IR op {name} needs a docstring with its math"


def test_conv_against_direct_sum():
    w = rng.normal(size=(4, 1, 3, 3))
    attrs = {
        "weight": w,
        "bias": rng.normal(size=4),
        "strides": (2, 1),
        "pads": (1, 0, 1, 2),
        "dilations": (1, 2),
        "group": 2,
    }
    x = rng.normal(size=(2, 2, 6, 5))
    y = OPS["conv2d"].forward([x], attrs)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 2)))
    for m in range(4):
        c = m // 2  # group of 2 output channels reads 1 input channel
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                acc = attrs["bias"][m] + sum(
                    w[m, 0, p, q] * xp[:, c, 2 * i + p, j + 2 * q]
                    for p in range(3)
                    for q in range(3)
                )
                np.testing.assert_allclose(y[:, m, i, j], acc, rtol=1e-12, atol=1e-12)


def test_pool_output_size_ceil_drops_window_in_padding_only():
    assert pool_output_size(5, 2, 2, 0, 0) == 2
    assert pool_output_size(5, 2, 2, 0, 0, ceil=True) == 3
    assert pool_output_size(4, 2, 2, 1, 1, ceil=True) == 3
    # a last window starting inside the end padding only is dropped (3 would be ceil's count)
    assert pool_output_size(3, 2, 2, 1, 1, ceil=True) == 2
    with pytest.raises(ValueError):
        pool_output_size(1, 3, 1, 0, 0)


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
