"""Regression tests of the ONNX frontend: deterministic examples of the bugs the property tests
(``test_property_ort.py``, ``test_mutants.py``) found.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from helpers.onnx_builders import min_ir
from helpers.onnx_strategies import window_size, windows_hit_input
from helpers.ort_oracle import check_against_onnxruntime
from onnx import TensorProto, helper, numpy_helper

import netopt


def _model(nodes, x_dims, y_dims, inits=(), opset: int = 13) -> onnx.ModelProto:
    """A one-input, one-output float32 model (``y_dims=None``: a rank-4 output, shape unknown)."""
    y_dims = [None] * 4 if y_dims is None else y_dims
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)],
        initializer=list(inits),
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = max(min_ir(opset), 4)
    return m


def test_non_utf8_name_is_an_import_error():
    """A corrupt byte in a name: protobuf hands it out as bytes; netopt must not crash on it."""
    m = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], ["N", 2], ["N", 2])
    data = m.SerializeToString()
    i = data.index(b"relu")
    bad = data[:i] + b"\xc1" + data[i + 1 :]
    with pytest.raises(netopt.OnnxImportError, match="UTF-8"):
        netopt.load(bad)


@pytest.mark.parametrize("opset", [9, 11, 12, 13, 17])
def test_constant_folding_uses_the_model_opset(opset):
    """PyTorch's ``x.view(x.size(0), -1)``: the Unsqueeze on constants has attribute axes
    before opset 13, which onnx.reference applies only when told the model's opset."""
    unsq = (
        helper.make_node("Unsqueeze", ["d0"], ["d0u"], axes=[0])
        if opset < 13
        else helper.make_node("Unsqueeze", ["d0", "zero1"], ["d0u"])
    )
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["d0"], axis=0),
        unsq,
        helper.make_node("Concat", ["d0u", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "zero1"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    m = _model(nodes, ["N", 2, 3], ["N", 6], inits, opset)
    net = netopt.load(m)
    assert net.input_shape == (2, 3) and net.output_shape == (6,)
    check_against_onnxruntime(m, net)


def _pool_configs():
    """Every small pooling geometry: kernel, stride, dilation, pads, ceil_mode, count_include_pad."""
    for op in ("MaxPool", "AveragePool"):
        for k, s, d, p0, p1, ceil in itertools.product(
            (1, 2, 3), (1, 2, 3), (1, 2), (0, 1, 2), (0, 1, 2), (0, 1)
        ):
            for cip in (0, 1) if op == "AveragePool" else (None,):
                if p0 < k and p1 < k:
                    yield op, k, s, d, p0, p1, ceil, cip


def test_pool_geometries_match_onnxruntime():
    """ceil_mode, count_include_pad, pads and dilations of both pools, all in one model.

    onnxruntime is the reference for the output size (a ceil_mode window that would start in
    the end padding is dropped) and for the average's divisor (ceil_mode's overhang never
    counts, explicit padding iff count_include_pad).
    """
    hw = (4, 5)
    nodes, outs = [], []
    for i, (op, k, s, d, p0, p1, ceil, cip) in enumerate(_pool_configs()):
        attrs = dict(kernel_shape=[k, k], strides=[s, s], dilations=[d, d], ceil_mode=ceil)
        attrs["pads"] = [p0, p1, p1, p0]  # other begin/end pads on H than on W
        if cip is not None:
            attrs["count_include_pad"] = cip
        out = [
            window_size(None, hw[0], k, s, d, p0, p1, ceil),
            window_size(None, hw[1], k, s, d, p1, p0, ceil),
        ]
        if None in out:
            continue
        assert windows_hit_input(hw, (k, k), (s, s), (d, d), attrs["pads"], out)
        outs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["N", 1, *out]))
        nodes.append(helper.make_node(op, ["x"], [f"y{i}"], **attrs))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, *hw])
    m = helper.make_model(
        helper.make_graph(nodes, "pools", [x], outs),
        opset_imports=[helper.make_opsetid("", 19)],
    )
    m.ir_version = 9
    assert len(outs) > 400
    check_against_onnxruntime(m, netopt.load(m))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_window_in_padding_only_is_refused(op):
    """A dilation can make a window skip the whole input: its value is undefined (onnxruntime
    gives 0 or the lowest float32, torch -inf), so the import refuses it."""
    attrs = dict(kernel_shape=[1, 2], dilations=[1, 2], pads=[0, 1, 0, 1])
    m = _model(
        [helper.make_node(op, ["x"], ["y"], **attrs)], ["N", 1, 2, 1], ["N", 1, 2, 1], (), 19
    )
    with pytest.raises(netopt.OnnxImportError, match="covers padding only"):
        netopt.load(m)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_with_empty_axes_squeezes_every_unit_axis(opset):
    """onnxruntime reads an empty ``axes`` (attribute, or input from opset 13) as none given."""
    if opset < 13:
        node = helper.make_node("Squeeze", ["x"], ["y"])
        node.attribute.append(helper.make_attribute("axes", [], attr_type=onnx.AttributeProto.INTS))
        inits = []
    else:
        node = helper.make_node("Squeeze", ["x", "axes"], ["y"])
        inits = [numpy_helper.from_array(np.zeros(0, np.int64), "axes")]
    m = _model(
        [node, helper.make_node("Softmax", ["y"], ["z"], axis=0)], [1, 3, 1], [3], inits, opset
    )
    m.graph.output[0].name = "z"
    net = netopt.load(m)
    assert net.output_shape == (3,)
    check_against_onnxruntime(m, net)


@pytest.mark.parametrize(
    "opset, lo, hi",
    [(13, np.inf, None), (13, None, -np.inf), (7, np.inf, None), (7, -1.0, -np.inf)],
)
def test_clip_bound_infinite_the_wrong_way_is_refused(opset, lo, hi):
    """min = +inf or max = -inf is no "no bound" but a constant output (onnxruntime: +-FLT_MAX)."""
    if opset < 11:
        bounds = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        node, inits = helper.make_node("Clip", ["x"], ["y"], **bounds), []
    else:
        node = helper.make_node(
            "Clip", ["x", "" if lo is None else "lo", "hi" if hi is not None else ""], ["y"]
        )
        inits = [
            numpy_helper.from_array(np.array(v, np.float32), n)
            for n, v in (("lo", lo), ("hi", hi))
            if v is not None
        ]
    m = _model([node], ["N", 3], ["N", 3], inits, opset)
    with pytest.raises(netopt.OnnxImportError, match="constant"):
        netopt.load(m)


def test_clip_nan_bound_is_no_bound():
    """onnxruntime ignores a NaN bound, and so does netopt."""
    inits = [numpy_helper.from_array(np.array(np.nan, np.float32), "lo")]
    m = _model([helper.make_node("Clip", ["x", "lo"], ["y"])], ["N", 3], ["N", 3], inits, 13)
    check_against_onnxruntime(m, netopt.load(m))


def _gemm_model(alpha: float, beta: float, c: list[float]) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(np.eye(2, dtype=np.float32), "B"),
        numpy_helper.from_array(np.array(c, np.float32), "C"),
    ]
    node = helper.make_node("Gemm", ["x", "B", "C"], ["y"], alpha=alpha, beta=beta)
    return _model([node], ["N", 2], ["N", 2], inits, 13)


def test_gemm_with_beta_zero_ignores_c():
    """onnxruntime (like BLAS) skips C when beta is 0, even a C holding NaN or inf."""
    m = _gemm_model(1.0, 0.0, [np.nan, np.inf])
    net = netopt.load(m)
    assert np.all(net.graph.ops[0].attrs["bias"] == 0)
    check_against_onnxruntime(m, net)


def test_gemm_non_finite_bias_is_refused():
    """The bias folds into the affine op past emit's check: it must be checked there too."""
    with pytest.raises(netopt.OnnxImportError, match="non-finite"):
        netopt.load(_gemm_model(1.0, 1.0, [np.nan, 1.0]))


@pytest.mark.parametrize("bounds", [(0.0, 1e30), (-1e30, None), (None, -1e12)])
def test_clip_with_huge_finite_bound_is_refused(bounds):
    """hi - relu(hi - x) rounds x away in float64 for hi = 1e30: refuse, do not mislead."""
    lo, hi = bounds
    names = ["x", "" if lo is None else "lo", "" if hi is None else "hi"]
    inits = [
        numpy_helper.from_array(np.array(v, np.float32), n)
        for n, v in (("lo", lo), ("hi", hi))
        if v is not None
    ]
    m = _model([helper.make_node("Clip", names, ["y"])], ["N", 3], ["N", 3], inits, 13)
    with pytest.raises(netopt.OnnxImportError, match="too large"):
        netopt.load(m)
