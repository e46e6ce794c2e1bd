"""Each pass leaves the forward pass unchanged and does what it says."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import make_model, rel_err
from onnx import helper

import netopt
from netopt.ir import passes


def _check(model, x_shape, expect_absent=(), expect_present=(), rng=None):
    rng = rng or np.random.default_rng(0)
    raw = netopt.load(model, passes=())
    net = netopt.load(model)
    x = rng.uniform(-1, 1, (20, *net.input_shape))
    assert rel_err(net(x), raw(x)) < 1e-12
    assert rel_err(net(x), net.run_onnxruntime(x)) < 1e-5
    counts = net.graph.op_counts()
    for op in expect_absent:
        assert op not in counts, counts
    for op in expect_present:
        assert op in counts, counts
    return net


def test_fold_batchnorm_into_conv(rng):
    c = 3
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], epsilon=1e-3),
    ]
    inits = {
        "w": rng.normal(size=(c, 2, 3, 3)),
        "b": rng.normal(size=c),
        "g": rng.uniform(0.5, 2, c),
        "be": rng.normal(size=c),
        "m": rng.normal(size=c),
        "v": rng.uniform(0.5, 2, c),
    }
    m = make_model(nodes, ["N", 2, 5, 5], ["N", c, 5, 5], inits)
    net = _check(m, (2, 5, 5), expect_absent=("scale",))
    assert net.graph.op_counts() == {"conv2d": 1}


def test_fold_normalization_into_gemm(rng):
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"]),
        helper.make_node("Div", ["s", "std"], ["d"]),
        helper.make_node("Gemm", ["d", "w", "b"], ["y"], transB=1),
    ]
    inits = {
        "mean": rng.normal(size=4),
        "std": rng.uniform(0.5, 2, 4),
        "w": rng.normal(size=(3, 4)),
        "b": rng.normal(size=3),
    }
    net = _check(make_model(nodes, ["N", 4], ["N", 3], inits), (4,), expect_absent=("scale",))
    assert net.graph.op_counts() == {"affine": 1}


def test_normalization_before_padded_conv_keeps_the_shift(rng):
    """A shift before a zero-padded conv changes the border: it must not be folded."""
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"]),
        helper.make_node("Conv", ["s", "w"], ["y"], pads=[1, 1, 1, 1]),
    ]
    inits = {"mean": rng.normal(size=(2, 1, 1)), "w": rng.normal(size=(3, 2, 3, 3))}
    _check(
        make_model(nodes, [1, 2, 4, 4], [1, 3, 4, 4], inits),
        (2, 4, 4),
        expect_present=("scale", "conv2d"),
    )


def test_normalization_before_unpadded_conv_folds(rng):
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"]),
        helper.make_node("Div", ["s", "std"], ["d"]),
        helper.make_node("Conv", ["d", "w"], ["y"], group=2),
    ]
    inits = {
        "mean": rng.normal(size=(4, 1, 1)),
        "std": rng.uniform(0.5, 2, (4, 1, 1)),
        "w": rng.normal(size=(6, 2, 3, 3)),
    }
    net = _check(make_model(nodes, [1, 4, 5, 5], [1, 6, 3, 3], inits), (4, 5, 5))
    assert net.graph.op_counts() == {"conv2d": 1}


def test_fuse_matmul_add_and_constant_mul(rng):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Mul", ["a", "k"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    inits = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3), "k": rng.uniform(0.5, 2, 3)}
    net = _check(make_model(nodes, ["N", 4], ["N", 3], inits), (4,))
    assert net.graph.op_counts() == {"affine": 1, "relu": 1}


def test_drop_identity_dropout_and_cancel_transposes(rng):
    nodes = [
        helper.make_node("Identity", ["x"], ["i"]),
        helper.make_node("Transpose", ["i"], ["t"], perm=[0, 2, 3, 1]),  # NCHW -> NHWC
        helper.make_node("Dropout", ["t"], ["d"]),
        helper.make_node("Transpose", ["d"], ["u"], perm=[0, 3, 1, 2]),  # NHWC -> NCHW
        helper.make_node("Relu", ["u"], ["y"]),
    ]
    net = _check(make_model(nodes, ["N", 2, 3, 4], ["N", 2, 3, 4], opset=13), (2, 3, 4))
    assert net.graph.op_counts() == {"relu": 1}


def test_each_pass_is_pure(rng):
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"]),
        helper.make_node("Gemm", ["s", "w", "b"], ["y"], transB=1),
    ]
    inits = {"mean": rng.normal(size=4), "w": rng.normal(size=(3, 4)), "b": rng.normal(size=3)}
    raw = netopt.load(make_model(nodes, ["N", 4], ["N", 3], inits), passes=())
    before = [(o.id, o.op, o.inputs, o.outputs) for o in raw.graph.ops]
    for p in passes.DEFAULT_PASSES:
        g2 = p(raw.graph)
        assert [(o.id, o.op, o.inputs, o.outputs) for o in raw.graph.ops] == before
        x = rng.uniform(-1, 1, (5, 4))
        from netopt.ir.interpret import interpret

        a = interpret(g2, {g2.inputs[0]: x})[g2.outputs[0]]
        b = interpret(raw.graph, {raw.graph.inputs[0]: x})[raw.graph.outputs[0]]
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_weights_are_read_only(rng):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)]
    net = netopt.load(make_model(nodes, ["N", 4], ["N", 3], {"w": rng.normal(size=(3, 4))}))
    w = net.graph.ops[0].attrs["weight"]
    assert w.dtype == np.float64
    with pytest.raises(ValueError):
        w[0, 0] = 1.0
    with pytest.raises(TypeError):
        net.graph.ops[0].attrs["weight"] = None  # type: ignore[index]
