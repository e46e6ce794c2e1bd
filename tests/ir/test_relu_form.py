"""Max pooling as ReLUs (netopt.ir.relu_form): the same function as the max pool.

References: ``np.max`` for the tournament's weights; onnxruntime (end to end, float32) and the
float64 interpreter on the original graph for the rewritten one, on pools with padding,
strides, ceil mode, dilations and overlapping windows, after a ReLU and on inputs of any sign.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import make_model, rel_err
from helpers.ort_oracle import ort_session
from onnx import helper

import netopt
import netopt.ir.relu_form as rf
from netopt.bounds.bab import BatchCrown
from netopt.ir.interpret import interpret
from netopt.ir.ops import pool_output_size
from netopt.ir.relu_form import added_units, relu_form, tournament


@pytest.mark.parametrize("nonneg", [True, False])
@pytest.mark.parametrize("k", range(1, 10))
def test_tournament_is_the_maximum(k, nonneg):
    rng = np.random.default_rng(k)
    X = rng.uniform(0 if nonneg else -3, 3, (500, k))
    X[:50] = X[:50, :1]  # ties
    mats = tournament(k, nonneg)
    h = X
    for W in mats[:-1]:
        h = np.maximum(h @ W.T, 0.0)
    got = (h @ mats[-1].T)[:, 0]
    np.testing.assert_allclose(got, X.max(axis=1), rtol=0, atol=1e-12)
    # ceil(log2 k) rounds of ReLUs
    assert len(mats) - 1 == int(np.ceil(np.log2(k)))


def _pool_net(
    pool: dict, relu_first: bool, after: str = "", seed: int = 0
) -> tuple[netopt.Network, bytes]:
    """Conv -> [Relu] -> MaxPool(pool) -> [after] -> Flatten -> Gemm on a (1, 2, 7, 6) input;
    ``after``: "" (nothing), "relu" (a ReLU reads the pool: it moves before it), "relu+skip"
    (the pool read by a ReLU and by an Add of the two: it stays)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "K", "kb"], ["c"], pads=[1, 1, 1, 1], name="conv")]
    src = "c"
    if relu_first:
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
        src = "r"
    nodes.append(helper.make_node("MaxPool", [src], ["p"], name="pool", **pool))
    flat_in = "p"
    if after:
        nodes.append(helper.make_node("Relu", ["p"], ["pr"], name="relu_after"))
        flat_in = "pr"
    if after == "relu+skip":
        nodes.append(helper.make_node("Add", ["pr", "p"], ["ps"], name="skip"))
        flat_in = "ps"
    nodes.append(helper.make_node("Flatten", [flat_in], ["f"], name="flat"))
    # the pooled size (the conv keeps 7 x 6)
    (kh, kw), (sh, sw) = pool["kernel_shape"], pool["strides"]
    pt, pl, pb, pr = pool.get("pads", [0, 0, 0, 0])
    dh, dw = pool.get("dilations", [1, 1])
    ceil = bool(pool.get("ceil_mode", 0))
    n = (
        3
        * pool_output_size(7, kh, sh, pt, pb, dh, ceil)
        * pool_output_size(6, kw, sw, pl, pr, dw, ceil)
    )
    nodes.append(helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1, name="fc"))
    inits = {
        "K": rng.normal(size=(3, 2, 3, 3)),
        "kb": rng.normal(size=3),
        "W": rng.normal(size=(4, n)),
        "b": rng.normal(size=4),
    }
    model = make_model(nodes, [1, 2, 7, 6], [1, 4], inits)
    return netopt.load(model), model.SerializeToString()


POOLS = [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [1, 1]},  # overlapping windows
    {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1]},  # padding cells
    {"kernel_shape": [2, 3], "strides": [2, 2], "ceil_mode": 1},  # the ceil-mode overhang
    {"kernel_shape": [2, 2], "strides": [1, 2], "dilations": [2, 1]},
    {"kernel_shape": [1, 1], "strides": [2, 2]},  # one cell: no ReLU at all
    {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [1, 1, 1, 1]},  # nine cells, padded
]


@pytest.mark.parametrize(
    "relu_first, after", [(True, ""), (False, ""), (False, "relu"), (False, "relu+skip")]
)
@pytest.mark.parametrize("pool", POOLS)
def test_relu_form_is_the_same_function(pool, relu_first, after):
    net, data = _pool_net(pool, relu_first, after)
    g = relu_form(net.graph)
    assert "maxpool2d" not in g.op_counts()
    assert set(g.op_counts()) <= {"conv2d", "relu", "select", "affine", "reshape", "add"}
    # a ReLU that alone reads the pool moves before it: one ReLU op fewer after the tournament
    moved = after == "relu"
    assert (g.ops[1].op == "relu") == (relu_first or moved)
    assert g.outputs == net.graph.outputs and g.inputs == net.graph.inputs
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, (64, *net.input_shape)).astype(np.float32)
    inp, out = net.graph.inputs[0], net.graph.outputs[0]
    ref = interpret(net.graph, {inp: X.astype(np.float64)})[out]
    got = interpret(g, {inp: X.astype(np.float64)})[out]
    assert rel_err(got, ref) < 1e-12
    sess = ort_session(data)
    y_ort = np.concatenate([sess.run(None, {"x": x[None]})[0] for x in X])
    assert rel_err(got.reshape(y_ort.shape), y_ort) < 1e-5
    # the units are the tournament's: fewer after a ReLU (values >= 0 pass as they are)
    n_relu = sum(g.value(o.outputs[0]).size for o in g.ops if o.op == "relu")
    before = sum(net.graph.value(o.outputs[0]).size for o in net.graph.ops if o.op == "relu")
    assert n_relu - before == added_units(net.graph)


def test_relu_form_keeps_what_has_no_max_pool_and_is_computed_once():
    net, _ = _pool_net(POOLS[0], True)
    g = relu_form(net.graph)
    assert relu_form(net.graph) is g
    assert relu_form(g) is g  # nothing left to rewrite
    mlp = netopt.load(
        make_model(
            [helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)],
            [1, 3],
            [1, 2],
            {"W": np.ones((2, 3)), "b": np.zeros(2)},
        )
    )
    assert relu_form(mlp.graph) is mlp.graph


def test_over_the_unit_limit_the_max_pool_stays(monkeypatch):
    monkeypatch.setattr(rf, "MAX_UNITS", 10)
    net, _ = _pool_net(POOLS[1], True)  # 3 x 5 x 4 windows of 9 cells: more than 10 units
    assert added_units(net.graph) > 10
    assert relu_form(net.graph) is net.graph
    # the batched bounds (and branch and bound, and its proofs) then do not take it; the
    # method says which op
    assert not BatchCrown(net.graph).ok
    from netopt.formulations.bab import Bab

    assert [op for _, op, _ in Bab.check_support(net.graph)] == ["maxpool2d"]
    monkeypatch.setattr(rf, "MAX_UNITS", 4096)
    net, _ = _pool_net(POOLS[1], True)
    assert Bab.check_support(net.graph) == []
