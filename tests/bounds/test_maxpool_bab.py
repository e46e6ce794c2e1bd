"""Branch and bound on networks with max pooling (taken as ReLUs: netopt.ir.relu_form).

References: the big-M MILP (exact for max pooling: its own formulation of the op, not the
ReLU form) for each verdict and for the exact minimum that places the limits; onnxruntime for
each counterexample (``_points`` evaluates in the float64 interpreter, checked here again);
the proof checker on the *original* graph, as ``netopt verify`` runs it, which must accept each
"unsat" proof and reject the same tree for a limit the network reaches.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import make_model
from helpers.ort_oracle import ort_session
from onnx import helper

import netopt
from netopt.bounds.branch import branch_and_bound
from netopt.bounds.proof import check_proof
from netopt.bounds.proof_format import BabProof


def _net(seed: int, relu_first: bool) -> tuple[netopt.Network, bytes]:
    """Conv(1 -> 2, 3x3, pad 1) -> [Relu] -> MaxPool 2x2 -> [Relu] -> Flatten -> Gemm(8 -> 3) on
    a (1, 1, 4, 4) input: the pool's windows after a ReLU (values >= 0), or before it."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "K", "kb"], ["c"], pads=[1, 1, 1, 1])]
    if relu_first:
        nodes += [
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        ]
    else:
        nodes += [
            helper.make_node("MaxPool", ["c"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Relu", ["m"], ["p"]),
        ]
    nodes += [
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1),
    ]
    inits = {
        "K": rng.normal(size=(2, 1, 3, 3)),
        "kb": rng.normal(size=2) * 0.3,
        "W": rng.normal(size=(3, 8)),
        "b": rng.normal(size=3) * 0.3,
    }
    model = make_model(nodes, [1, 1, 4, 4], [1, 3], inits)
    return netopt.load(model), model.SerializeToString()


def _exact_min(net, c, lo, hi) -> float:
    r = netopt.OutputObjective(
        net, c, box=(lo.reshape(net.input_shape), hi.reshape(net.input_shape))
    )
    res = r.solve("milp", time_limit=60)
    assert str(res.status) == "optimal"
    return float(res.objective)


@pytest.mark.parametrize("relu_first", [True, False])
@pytest.mark.parametrize("seed", range(2))
def test_maxpool_decisions_agree_with_the_milp(seed, relu_first):
    net, data = _net(seed, relu_first)
    rng = np.random.default_rng(100 + seed)
    x0 = rng.uniform(-1, 1, 16)
    lo, hi = x0 - 0.4, x0 + 0.4
    C = np.array([[1.0, -1.0, 0.0]])
    m = _exact_min(net, C[0], lo, hi)
    sess = ort_session(data)
    for d, want in ((m - 0.05, "unsat"), (m + 0.05, "sat")):
        r = branch_and_bound(net, lo, hi, C, [d], mode="relu", device="cpu", time_limit=60)
        assert r is not None and r.verdict == want, (d, m, r.verdict, r.stopped)
        milp = netopt.Feasibility(
            net, C=C, d=[d], box=(lo.reshape(1, 4, 4), hi.reshape(1, 4, 4))
        ).solve("milp", time_limit=60)
        assert milp.verdict == want
        if want == "sat":
            x = np.asarray(r.x, dtype=np.float32).reshape(1, 1, 4, 4)
            assert np.all(x >= lo.reshape(x.shape) - 1e-7) and np.all(
                x <= hi.reshape(x.shape) + 1e-7
            )
            y = sess.run(None, {"x": x})[0].reshape(-1)
            assert C[0] @ y <= d + 1e-5
            continue
        # the proof, re-checked on the network as loaded (its max pool rewritten by the checker)
        P = r.proof
        pc = check_proof(net.graph, P)
        assert pc.ok, pc.reason
        # the same tree for a limit the network reaches: rejected
        false = BabProof(P.lo, P.hi, P.C, P.d + 0.1, P.nodes, P.params)
        assert not check_proof(net.graph, false).ok


def test_maxpool_input_splitting_agrees_with_the_milp():
    """A few inputs (input splitting, the float32 numpy engine on the rewritten chain)."""
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Reshape", ["h", "s"], ["h3"]),
        helper.make_node("Relu", ["h3"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[1, 1]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "W2", "b2"], ["y"], transB=1),
    ]
    inits = {
        "W1": rng.normal(size=(32, 3)),
        "b1": rng.normal(size=32) * 0.3,
        "s": np.array([1, 2, 4, 4], dtype=np.int64),
        "W2": rng.normal(size=(2, 8)),
        "b2": np.zeros(2),
    }
    net = netopt.load(make_model(nodes, [1, 3], [1, 2], inits))
    lo, hi = -np.ones(3), np.ones(3)
    C = np.array([[1.0, 1.0]])
    m = _exact_min(net, C[0], lo, hi)
    for d, want in ((m - 0.02, "unsat"), (m + 0.02, "sat")):
        r = branch_and_bound(net, lo, hi, C, [d], mode="input", time_limit=60)
        assert r is not None and r.verdict == want
        if want == "unsat":
            assert check_proof(net.graph, r.proof).ok
        else:
            assert C[0] @ net.forward(r.x.reshape(1, 3)).reshape(-1) <= d
        # the method's API takes the network too (its support check reads the ReLU form)
        res = netopt.Feasibility(net, C=C, d=[d], box=(lo, hi)).solve("bab", time_limit=60)
        assert res.verdict == want


def test_maxpool_optimum_agrees_with_the_milp():
    """Optimization by branch and bound (``solve("bab")``) on the ReLU form: the MILP's optimum,
    and a proven bound no higher than it."""
    net, _ = _net(1, relu_first=False)
    rng = np.random.default_rng(101)
    x0 = rng.uniform(-1, 1, 16)
    lo, hi = x0 - 0.4, x0 + 0.4
    c = np.array([1.0, -1.0, 0.0])
    m = _exact_min(net, c, lo, hi)
    box = (lo.reshape(net.input_shape), hi.reshape(net.input_shape))
    res = netopt.OutputObjective(net, c, box=box).solve("bab", time_limit=60)
    assert res.bound <= m + 1e-6 * max(1.0, abs(m))
    assert str(res.status) == "optimal"
    assert res.objective == pytest.approx(m, rel=1e-6, abs=1e-6)
