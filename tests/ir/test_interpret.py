"""The reference interpreter's reverse pass: :func:`netopt.ir.interpret.vjp` against finite differences."""

from __future__ import annotations

import numpy as np
from helpers.nets import REAL_NETS, make_model, require_nets
from onnx import helper

import netopt
from netopt.ir.interpret import interpret, vjp


def _check_vjp(net, rng, x, tol=1e-4):
    g = net.graph
    w = rng.normal(size=(1, *net.output_shape))
    env = interpret(g, {g.inputs[0]: x}, keep=True)
    gx = vjp(g, env, {g.outputs[0]: w})[g.inputs[0]]
    for _ in range(5):
        d = rng.normal(size=x.shape)
        eps = 1e-6
        fd = ((net(x + eps * d) - net(x - eps * d)) * w).sum() / (2 * eps)
        assert abs(fd - (gx * d).sum()) <= tol * max(1.0, abs(fd))


def test_vjp_of_every_elementwise_and_smooth_op():
    """One chain through leaky_relu, sigmoid, tanh, softmax and log_softmax (and affine)."""
    rng = np.random.default_rng(6)
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
        helper.make_node("LeakyRelu", ["h"], ["a"], alpha=0.1),
        helper.make_node("Sigmoid", ["a"], ["s"]),
        helper.make_node("Tanh", ["s"], ["t"]),
        helper.make_node("Softmax", ["t"], ["p"], axis=-1),
        helper.make_node("LogSoftmax", ["p"], ["y"], axis=-1),
    ]
    inits = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=4)}
    net = netopt.load(make_model(nodes, [1, 3], [1, 4], inits))
    _check_vjp(net, rng, rng.normal(size=(1, *net.input_shape)))


def test_vjp_matches_finite_differences():
    require_nets()
    net = netopt.load(next(p for p in REAL_NETS if p.name == "conv_mp1.onnx"))
    rng = np.random.default_rng(5)
    _check_vjp(net, rng, rng.normal(size=(1, *net.input_shape)))
