"""Bad input gets a netopt error naming the file, node, op or value, and what to do."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import REAL_NETS, make_model, require_nets
from onnx import TensorProto, helper

import netopt
from netopt.errors import InputError, NetoptError, OnnxImportError, UnsupportedOpError


def _mlp(rng, w=None):
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["y"], name="act"),
    ]
    inits = {"w": rng.normal(size=(3, 4)) if w is None else w, "b": np.zeros(3)}
    return make_model(nodes, ["N", 4], ["N", 3], inits)


def test_not_an_onnx_file(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is not a model\n" * 20)
    with pytest.raises(OnnxImportError, match="notes.onnx"):
        netopt.load(p)


def test_missing_file(tmp_path):
    with pytest.raises(OnnxImportError, match="no such file"):
        netopt.load(tmp_path / "absent.onnx")


def test_truncated_file(tmp_path):
    require_nets()
    data = next(p for p in REAL_NETS if p.name == "mnist-net_256x2.onnx").read_bytes()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(OnnxImportError, match=r"cut\.onnx.*(truncated|checker)"):
        netopt.load(p)


def test_model_failing_checker(rng):
    m = _mlp(rng)
    m.graph.node[0].input[1] = "undefined_weight"
    with pytest.raises(OnnxImportError, match="onnx.checker"):
        netopt.load(m)


def test_all_unsupported_ops_in_one_error(rng):
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1, name="fc1"),
        helper.make_node("Erf", ["h"], ["e"], name="my_erf"),
        helper.make_node("Relu", ["e"], ["r"], name="act"),
        helper.make_node("Sin", ["r"], ["y"], name="my_sin"),
    ]
    m = make_model(nodes, ["N", 4], ["N", 3], {"w": rng.normal(size=(3, 4)), "b": np.zeros(3)})
    with pytest.raises(UnsupportedOpError) as e:
        netopt.load(m)
    msg = str(e.value)
    assert "my_erf" in msg and "my_sin" in msg and "Erf" in msg and "Sin" in msg
    assert {n for n, _, _ in e.value.unsupported} == {"my_erf", "my_sin"}
    assert isinstance(e.value, NotImplementedError)


@pytest.mark.parametrize("w_shape", [[4, 3], ["N", 4, 3]])
def test_non_constant_weights(w_shape):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    g = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, w_shape),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(NetoptError, match=r"initializer") as e:
        netopt.load(m)
    assert "'w'" in str(e.value) or "mm" in str(e.value)


def test_unresolved_shape(rng):
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], ["N", "features"], ["N", "features"])
    with pytest.raises(OnnxImportError, match="input_shapes"):
        netopt.load(m)
    net = netopt.load(m, input_shapes={"x": (5,)})
    assert net.input_shape == (5,)


def test_fixed_batch_above_one(rng):
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], [8, 5], [8, 5])
    with pytest.raises(OnnxImportError, match="fixed batch dimension 8"):
        netopt.load(m)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights(rng, bad):
    w = rng.normal(size=(3, 4))
    w[1, 2] = bad
    with pytest.raises(OnnxImportError, match=r"fc1.*non-finite"):
        netopt.load(_mlp(rng, w))


def test_opset_too_old(rng):
    m = _mlp(rng)
    m.opset_import[0].version = 6
    with pytest.raises(OnnxImportError, match="version_converter"):
        netopt.load(m)


def test_wrong_input_shape_for_forward(rng):
    net = netopt.load(_mlp(rng))
    with pytest.raises(InputError, match=r"\(4,\)"):
        net(np.zeros(5))
    with pytest.raises(InputError):
        net(np.array(["a", "b", "c", "d"]))


def test_output_independent_of_input(rng):
    nodes = [
        helper.make_node("Relu", ["x"], ["unused"]),
        helper.make_node(
            "Constant", [], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [3], [1, 2, 3])
        ),
    ]
    m = make_model(nodes, ["N", 3], [3])
    with pytest.raises(OnnxImportError, match="does not depend"):
        netopt.load(m)


def test_every_error_is_a_netopt_error_and_a_builtin():
    from netopt import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, NetoptError)
        if cls is not NetoptError:
            assert len(cls.__mro__) > 3  # also subclasses a builtin
