"""The chain splitter: layers whose composed maps reproduce the network, and the refusals.

References: the float64 interpreter (value by value) and onnxruntime (end to end) on small ONNX
models; the refusals must name the op, its IR id and its ONNX node.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import make_model, rel_err
from onnx import helper

import netopt
from netopt.errors import FormulationError
from netopt.ir.chain import chain_refusals, split_chain
from netopt.ir.interpret import interpret

RNG = np.random.default_rng(0)


def _w(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def _mlp() -> netopt.Network:
    """Gemm -> Relu -> Relu -> Gemm -> LeakyRelu -> Gemm (a layer without linear ops, too)."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h1"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Relu", ["a1"], ["a1b"], name="relu1b"),
        helper.make_node("Gemm", ["a1b", "W2", "b2"], ["h2"], transB=1, name="fc2"),
        helper.make_node("LeakyRelu", ["h2"], ["a2"], alpha=0.1, name="lrelu2"),
        helper.make_node("Gemm", ["a2", "W3", "b3"], ["y"], transB=1, name="fc3"),
    ]
    inits = {"W1": _w(6, 4), "b1": _w(6), "W2": _w(5, 6), "b2": _w(5), "W3": _w(3, 5), "b3": _w(3)}
    return netopt.load(make_model(nodes, [1, 4], [1, 3], inits))


def _conv() -> netopt.Network:
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm: a convolution and a pooling activation."""
    nodes = [
        helper.make_node("Conv", ["x", "K", "kb"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1, name="fc"),
    ]
    inits = {"K": _w(2, 1, 3, 3), "kb": _w(2), "W": _w(3, 8), "b": _w(3)}
    return netopt.load(make_model(nodes, [1, 1, 4, 4], [1, 3], inits))


def _smooth() -> netopt.Network:
    """Gemm -> Sigmoid -> Gemm."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Sigmoid", ["h"], ["s"], name="sig"),
        helper.make_node("Gemm", ["s", "W2", "b2"], ["y"], transB=1, name="fc2"),
    ]
    inits = {"W1": _w(5, 3), "b1": _w(5), "W2": _w(2, 5), "b2": _w(2)}
    return netopt.load(make_model(nodes, [1, 3], [1, 2], inits))


def _skip() -> netopt.Network:
    """h = relu(W1 x + b1); y = h + (W2 h + b2): two branches joined by an add."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["a"], name="relu1"),
        helper.make_node("Gemm", ["a", "W2", "b2"], ["g"], transB=1, name="fc2"),
        helper.make_node("Add", ["a", "g"], ["y"], name="skip_add"),
    ]
    inits = {"W1": _w(4, 3), "b1": _w(4), "W2": _w(4, 4), "b2": _w(4)}
    return netopt.load(make_model(nodes, [1, 3], [1, 4], inits))


CHAINS = {"mlp": _mlp, "conv": _conv, "smooth": _smooth}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_each_layer_map_reproduces_the_interpreter(name):
    """M x + b of every layer equals the interpreter's pre-activation value, from its input."""
    net = CHAINS[name]()
    g = net.graph
    x = np.random.default_rng(1).uniform(-2, 2, (7, *net.input_shape))
    env = interpret(g, {g.inputs[0]: x}, keep=True)
    layers = split_chain(g)
    assert layers[0].input == g.inputs[0] and layers[-1].output == g.outputs[0]
    for prev, nxt in zip(layers, layers[1:], strict=False):
        assert nxt.input == prev.output
    for layer in layers:
        m, b = layer.affine()
        assert m.shape == (env[layer.pre][0].size, layer.n_in)
        got = (m @ env[layer.input].reshape(7, -1).T).T + b
        np.testing.assert_allclose(got, env[layer.pre].reshape(7, -1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_layers_compose_to_the_network(name):
    """Running the layers one after the other is the network: interpreter and onnxruntime."""
    net = CHAINS[name]()
    g = net.graph
    x = np.random.default_rng(2).uniform(-2, 2, (5, *net.input_shape))
    x = x.astype(np.float32).astype(np.float64)  # the same numbers for onnxruntime
    h = x.reshape(5, -1)
    for layer in split_chain(g):
        h = layer.forward(h)
    ref = interpret(g, {g.inputs[0]: x})[g.outputs[0]].reshape(5, -1)
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-12)
    ort = np.stack([net.run_onnxruntime(xi) for xi in x]).reshape(5, -1)
    assert rel_err(h, ort) < 1e-5


def test_layers_cut_at_every_activation():
    """The MLP's layers: a ReLU after a ReLU is a layer of no linear op (M = I, b = 0)."""
    layers = split_chain(_mlp().graph)
    assert [L.act for L in layers] == ["relu", "relu", "leaky_relu", "linear"]
    assert layers[2].activation.attrs["alpha"] == pytest.approx(0.1)
    assert layers[1].linear == ()
    m, b = layers[1].affine()
    np.testing.assert_array_equal(m.toarray(), np.eye(6))
    np.testing.assert_array_equal(b, np.zeros(6))
    conv = split_chain(_conv().graph)
    assert [L.act for L in conv] == ["relu", "maxpool2d", "linear"]


def test_refusals_of_a_chain_are_empty():
    assert chain_refusals(_mlp().graph, ("relu", "leaky_relu")) == []
    assert chain_refusals(_conv().graph, ("relu", "maxpool2d")) == []
    assert chain_refusals(_smooth().graph, ("sigmoid",)) == []


def test_refusals_name_the_add_of_two_branches():
    g = _skip().graph
    bad = chain_refusals(g, ("relu",), method="the test method")
    ops = {r.op: r for r in bad}
    add = ops["add"]
    assert g.op(add.op_id).op == "add"
    assert "2 variable inputs" in add.why and "'skip_add'" in add.why
    # the ReLU's output feeds both branches: the fork is named too
    fork = ops["relu"]
    assert "feeds several ops" in fork.why and "the test method" in fork.why
    assert "'relu1'" in fork.why
    assert str(add).startswith(f"{add.op_id} (add): ")
    with pytest.raises(FormulationError, match="not a chain"):
        split_chain(g)


def test_refusals_name_a_smooth_op_the_method_lacks():
    g = _smooth().graph
    bad = chain_refusals(g, ("relu", "leaky_relu"), method="the test method")
    assert [r.op for r in bad] == ["sigmoid"]
    assert "smooth" in bad[0].why and "'sig'" in bad[0].why and "relu, leaky_relu" in bad[0].why


def test_refusals_restrict_the_linear_ops():
    g = _conv().graph
    bad = chain_refusals(g, ("relu", "maxpool2d"), linear=("affine", "reshape"))
    assert [r.op for r in bad] == ["conv2d"]
    assert "'conv'" in bad[0].why


def test_method_refusal_is_asked_first():
    g = _mlp().graph
    bad = chain_refusals(
        g,
        ("relu", "leaky_relu"),
        refusal=lambda o: "no LeakyReLU here" if o.op == "leaky_relu" else None,
    )
    assert [(r.op, r.why.split(" (from")[0]) for r in bad] == [("leaky_relu", "no LeakyReLU here")]
