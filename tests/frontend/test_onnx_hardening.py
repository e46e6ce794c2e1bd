"""Hostile ONNX models: netopt refuses at load what onnxruntime refuses or netopt cannot model.

Regression tests for the findings of a mutation-fuzzing campaign
(``benchmarks/fuzz/fuzz_onnx.py``), and a fast slice of that fuzzer: every mutant is either refused
with a NetoptError at load, or it loads, onnxruntime runs it and agrees with ``net.forward``, and
interval bounds hold.
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from helpers.nets import NETS, REAL_NETS, ROOT, rel_err
from onnx import TensorProto, helper, numpy_helper

import netopt
from netopt.cli import main
from netopt.errors import NetoptError, OnnxImportError, UnsupportedOpError

sys.path.insert(0, str(ROOT / "benchmarks" / "fuzz"))
import fuzz_onnx  # noqa: E402


def _gemm_model(
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    x_type: int = TensorProto.FLOAT,
    x_dims: list | None = None,
    y_dims: list | None = None,
    opset: int = 13,
    extra: list[onnx.NodeProto] | None = None,
    y_name: str = "y",
) -> onnx.ModelProto:
    """``y = x @ w.T + b`` (Gemm, transB=1) on a symbolic batch, then ``extra`` nodes."""
    ins = ["x", "w"] + (["b"] if b is not None else [])
    nodes = [helper.make_node("Gemm", ins, ["g"], transB=1, name="fc")]
    nodes.append(helper.make_node("Identity", ["g"], [y_name], name="id"))
    nodes += extra or []
    inits = [numpy_helper.from_array(w, "w")]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "b"))
    out = "z" if extra else y_name
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", x_type, x_dims or ["N", w.shape[1]])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, y_dims or ["N", w.shape[0]])],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset <= 18 else 9
    return m


W = np.array([[1.0, -2.0, 0.5], [0.25, 1.5, -1.0]], dtype=np.float32)
B = np.array([0.1, -0.2], dtype=np.float32)


def test_a_clean_model_loads_and_keeps_its_session():
    net = netopt.load(_gemm_model(W, B))
    # the session made at load is the one run_onnxruntime uses
    assert net._ort_sess is not None
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    assert rel_err(net(x), net.run_onnxruntime(x)) < 1e-6


# ------------------------------------------------------- what onnxruntime refuses
@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "bool"])
def test_weight_of_another_dtype_in_a_float32_gemm(dtype):
    with pytest.raises(OnnxImportError, match="onnxruntime refuses the model") as e:
        netopt.load(_gemm_model(W.astype(dtype), B))
    # the message carries onnxruntime's own reason and says what to do
    assert "Type" in str(e.value) and "re-export" in str(e.value)


@pytest.mark.parametrize(
    "et", [TensorProto.BOOL, TensorProto.STRING, TensorProto.INT64, TensorProto.FLOAT16]
)
def test_graph_input_that_is_not_float32_or_float64(et):
    with pytest.raises(OnnxImportError, match="graph input 'x' has the element type") as e:
        netopt.load(_gemm_model(W, B, x_type=et))
    assert TensorProto.DataType.Name(et) in str(e.value)


def test_double_input_with_double_weights_still_loads():
    m = _gemm_model(W.astype(np.float64), B.astype(np.float64), x_type=TensorProto.DOUBLE)
    m.graph.output[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    net = netopt.load(m)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 3))
    assert rel_err(net(x), net.run_onnxruntime(x)) < 1e-12


def test_gemm_on_rank_3():
    with pytest.raises(NetoptError, match="Gemm|onnxruntime refuses"):
        netopt.load(_gemm_model(W, B, x_dims=["N", 2, 3]))


def test_flatten_with_a_negative_axis_before_opset_11():
    flat = helper.make_node("Flatten", ["y"], ["z"], axis=-1, name="flat")
    with pytest.raises(OnnxImportError, match="onnxruntime refuses"):
        netopt.load(_gemm_model(W, B, opset=10, extra=[flat]))
    # the same node is valid from opset 11 on
    net = netopt.load(_gemm_model(W, B, opset=11, extra=[flat]))
    assert net.output_shape == (2,)


def test_opset_99_is_refused_not_only_warned():
    with pytest.raises(OnnxImportError, match="onnxruntime refuses"):
        netopt.load(_gemm_model(W, B, opset=99))


def test_gemm_bias_that_broadcasts_both_ways():
    # C of shape (2, 1) on a (1, 2) output would widen it to (2, 2): Gemm forbids that
    with pytest.raises(OnnxImportError, match="does not broadcast to the output"):
        netopt.load(_gemm_model(W, B.reshape(2, 1)))


# ------------------------------------------------------------- structural
def test_no_graph_output_is_refused_at_load(tmp_path, capsys):
    m = _gemm_model(W, B)
    del m.graph.output[:]
    with pytest.raises(OnnxImportError, match="declares no output"):
        netopt.load(m)
    p = tmp_path / "no_output.onnx"
    onnx.save(m, p)
    # `netopt info` used to call it fine; now one error line and exit 2
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netopt: error:") and "no_output.onnx" in err


# ------------------------------------------------------------- semantics
def test_float16_cast_round_trip_is_refused():
    nodes = [
        helper.make_node("Cast", ["y"], ["h"], to=TensorProto.FLOAT16, name="to16"),
        helper.make_node("Cast", ["h"], ["z"], to=TensorProto.FLOAT, name="to32"),
    ]
    with pytest.raises(UnsupportedOpError, match="FLOAT16") as e:
        netopt.load(_gemm_model(W, B, extra=nodes))
    assert e.value.unsupported[0][:2] == ("to16", "Cast")


def test_float64_cast_round_trip_still_loads():
    nodes = [
        helper.make_node("Cast", ["y"], ["h"], to=TensorProto.DOUBLE, name="to64"),
        helper.make_node("Cast", ["h"], ["z"], to=TensorProto.FLOAT, name="to32"),
    ]
    net = netopt.load(_gemm_model(W, B, extra=nodes))
    x = np.random.default_rng(2).uniform(-1, 1, (6, 3))
    assert rel_err(net(x), net.run_onnxruntime(x)) < 1e-6


@pytest.mark.parametrize("where", ["weight", "bias"])
def test_weight_that_overflows_float32(where):
    w, b = W.copy(), B.copy()
    (w if where == "weight" else b).flat[1] = 3e38
    with pytest.raises(
        OnnxImportError, match="beyond the 1e\\+30 netopt accepts in a float32 model"
    ) as e:
        netopt.load(_gemm_model(w, b))
    assert "3e+38" in str(e.value) and "node 'fc' (Gemm" in str(e.value)


def test_huge_weights_load_in_a_float64_model():
    # onnxruntime computes a DOUBLE model in float64: 1e37 weights do not overflow there
    w, b = W.astype(np.float64) * 1e37, B.astype(np.float64) * 1e37
    m = _gemm_model(w, b, x_type=TensorProto.DOUBLE)
    m.graph.output[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    net = netopt.load(m)
    x = np.random.default_rng(6).uniform(-1, 1, (4, 3))
    y = net(x)
    assert np.all(np.abs(y) > 1e35)
    assert rel_err(y, net.run_onnxruntime(x)) < 1e-12 * np.max(np.abs(y))


def test_softmax_over_the_batch_axis_alone_is_one_per_sample():
    # opset 13: only axis 0 (the batch, one sample) is normalized, so every value is 1
    sm = helper.make_node("Softmax", ["y"], ["z"], axis=0, name="sm")
    net = netopt.load(_gemm_model(W, B, extra=[sm]))
    x = np.random.default_rng(5).uniform(-1, 1, (4, 3))
    assert np.array_equal(net(x), np.ones((4, 2)))
    assert rel_err(net(x), net.run_onnxruntime(x)) < 1e-6


def test_run_onnxruntime_compares_sample_by_sample_where_the_batch_mixes():
    # opset 11: Softmax coerces to 2-D at axis 0, so a batch is normalized as one; netopt's
    # semantics is the model's on one sample, and run_onnxruntime must give that
    sm = helper.make_node("Softmax", ["y"], ["z"], axis=0, name="sm")
    net = netopt.load(_gemm_model(W, B, opset=11, extra=[sm]))
    x = np.random.default_rng(3).uniform(-1, 1, (4, 3))
    y = net(x)
    assert np.allclose(y.sum(axis=1), 1.0)
    assert rel_err(y, net.run_onnxruntime(x)) < 1e-6


def test_run_onnxruntime_falls_back_to_single_samples():
    # a Reshape to [1, 2] only runs on a batch of one
    shape = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "s")
    rs = helper.make_node("Reshape", ["y", "s"], ["z"], name="rs")
    m = _gemm_model(W, B, extra=[rs])
    m.graph.initializer.append(shape)
    net = netopt.load(m)
    x = np.random.default_rng(4).uniform(-1, 1, (3, 3))
    assert rel_err(net(x), net.run_onnxruntime(x)) < 1e-6


@pytest.mark.skipif(not REAL_NETS, reason=f"the shared networks folder {NETS} is absent")
def test_a_file_netopt_reads_by_convention_defers_onnxruntime_refusal():
    path = next(p for p in REAL_NETS if p.name == "maxpool_2d.onnx")
    net = netopt.load(path)
    x = np.zeros((1, *net.input_shape))
    with pytest.raises(OnnxImportError, match="onnxruntime refuses the model") as e:
        net.run_onnxruntime(x)
    assert "kernel_shape" in str(e.value)


# ------------------------------------------------------------------ the fuzzer
def test_fuzz_slice_has_no_bad_outcome():
    counts, bad = fuzz_onnx.fuzz(1200, seed=11, timeout=20)
    assert not bad, "\n".join(f"{s} {k} {o}: {d[-300:]}" for s, k, o, d, _ in bad[:5])
    total = sum((c for c in counts.values()), start=__import__("collections").Counter())
    assert total["refused"] > 300 and total["ok"] > 150
    assert all(sum(c.values()) > 0 for c in counts.values())


def test_a_node_onnxruntime_has_no_kernel_for_loads_and_says_so_when_run():
    # a float64 Conv is valid ONNX, but onnxruntime's CPU provider has no kernel for it
    w = np.random.default_rng(7).normal(size=(2, 1, 2, 2))
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 2, 2, 2])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    net = netopt.load(m)
    x = np.random.default_rng(8).uniform(-1, 1, (2, 1, 3, 3))
    assert net(x).shape == (2, 2, 2, 2)
    with pytest.raises(OnnxImportError, match="NOT_IMPLEMENTED"):
        net.run_onnxruntime(x)
