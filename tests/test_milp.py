"""The exact MILP against independent references: brute force over activation patterns,
fixed inputs, relaxation soundness, and the bad-input errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers.brute import brute_force, random_mlp
from helpers.nets import REAL_NETS, make_model, require_nets
from onnx import helper

import netopt
from netopt.errors import FormulationError, InputError, MissingBoundsError
from netopt.problems import Feasibility, Inversion, OutputObjective
from netopt.result import Status

CASES = [(seed, p) for seed in range(24) for p in (1, np.inf)]


@pytest.mark.parametrize("seed,p", CASES, ids=[f"net{s}-p{p}" for s, p in CASES])
def test_milp_matches_brute_force(seed, p):
    model, Ws, bs = random_mlp(seed)
    net = netopt.load(model)
    rng = np.random.default_rng(100 + seed)
    # a target that is usually not reachable: the image of a point outside the box, perturbed
    target = net(rng.uniform(-2, 2, net.input_shape)) + rng.normal(size=net.output_shape) * 0.3
    ref = brute_force(Ws, bs, target, p)
    res = Inversion(net, target, norm=p, box=(-1, 1)).solve(
        "milp", bounds="interval" if seed % 2 else "crown"
    )
    assert res.status == Status.OPTIMAL
    assert abs(res.objective - ref) <= 1e-6 * max(1.0, abs(ref))
    assert res.bound <= res.objective + 1e-6 * max(1.0, abs(res.objective))  # the gap tolerance
    # the relaxation never exceeds the exact optimum
    relax = Inversion(net, target, norm=p, box=(-1, 1)).solve("milp", relax=True)
    assert relax.bound <= ref + 1e-7


def _conv_net(rng):
    """Conv (pads, stride) -> LeakyReLU -> MaxPool (ceil, pads) -> AvgPool -> residual -> Gemm."""
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("LeakyRelu", ["c"], ["l"], alpha=0.2),
        helper.make_node(
            "MaxPool",
            ["l"],
            ["m"],
            kernel_shape=[2, 2],
            strides=[2, 2],
            ceil_mode=1,
            pads=[0, 0, 1, 1],
        ),
        helper.make_node("Relu", ["m"], ["r"]),
        helper.make_node("Add", ["r", "m"], ["s"]),
        helper.make_node(
            "AveragePool",
            ["s"],
            ["a"],
            kernel_shape=[2, 2],
            strides=[1, 1],
            pads=[1, 1, 0, 0],
            count_include_pad=0,
        ),
        helper.make_node("Pad", ["a", "pads"], ["p"], mode="constant"),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1),
    ]
    # shapes: x (2,3,3) -> c (3,3,3) -> m (3,2,2) (ceil mode: the last window is partial, part
    # input, part padding) -> a (3,2,2) -> p (3,3,2) -> 18. (On a 4x4 input the ceil window
    # would start in the padding only: onnxruntime keeps it, netopt drops it as PyTorch does;
    # netopt.load refuses such a model, which onnxruntime cannot run with netopt's shapes.)
    inits = {
        "cw": rng.normal(size=(3, 2, 3, 3)) * 0.5,
        "cb": rng.normal(size=3) * 0.1,
        "pads": np.array([0, 0, 1, 0, 0, 0, 0, 0], dtype=np.int64),
        "gw": rng.normal(size=(2, 18)) * 0.3,
        "gb": rng.normal(size=2) * 0.1,
    }
    return netopt.load(make_model(nodes, [1, 2, 3, 3], [1, 2], inits, opset=17))


def test_fixed_input_gives_the_forward_pass(rng):
    """With x fixed, the MILP admits exactly f(x): every op's rule is exact."""
    net = _conv_net(rng)
    for _ in range(3):
        x0 = rng.uniform(-1, 1, net.input_shape)
        y0 = net(x0)
        box = (x0, x0)
        sat = Feasibility(net, y0, tol=1e-7, box=box).solve("milp")
        assert sat.verdict == "sat"
        for j in range(2):
            off = np.zeros(2)
            off[j] = 1e-3
            unsat = Feasibility(net, y0 + off, tol=1e-4, box=box).solve("milp")
            assert unsat.verdict == "unsat"


def test_conv_net_solver_objective_is_the_true_objective(rng):
    """A loose encoding would let the solver claim a better value than its point attains."""
    net = _conv_net(rng)
    for sense in ("min", "max"):
        c = rng.normal(size=2)
        res = OutputObjective(net, c, sense=sense, box=(-1, 1)).solve("milp")
        assert res.status == Status.OPTIMAL
        assert abs(
            res.objective - res.solver_objective * (1 if sense == "min" else -1)
        ) <= 1e-6 * max(1, abs(res.objective))
        samples = net(rng.uniform(-1, 1, (2000, *net.input_shape))) @ c
        best = samples.min() if sense == "min" else samples.max()
        assert (res.objective <= best + 1e-9) if sense == "min" else (res.objective >= best - 1e-9)


def test_linear_input_constraints_and_integers(rng):
    model, Ws, bs = random_mlp(3)
    net = netopt.load(model)
    n = net.input_shape[0]
    A, b = np.ones((1, n)), np.array([0.5])
    res = OutputObjective(net, np.ones(net.output_shape), sense="max", box=(-1, 1), A=A, b=b).solve(
        "milp"
    )
    assert res.status == Status.OPTIMAL and A @ res.x <= b + 1e-9
    resi = OutputObjective(
        net, np.ones(net.output_shape), sense="max", box=(-1, 1), integer=True
    ).solve("milp")
    grid = np.array(list(itertools.product([-1.0, 0.0, 1.0], repeat=n)))
    assert abs(resi.objective - net(grid).sum(axis=1).max()) <= 1e-6


def test_time_limit_returns_incumbent_and_bound():
    require_nets()
    path = next(p for p in REAL_NETS if p.name == "mlp_5-50-50-50-5_seed0.onnx")
    net = netopt.load(path)
    t = net(np.full(5, 1.5)) + 0.05
    res = Inversion(net, t, norm=1, box=(-1, 1)).solve("milp", time_limit=1.0)
    assert res.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    assert res.x is not None and res.objective is not None and res.bound is not None
    assert res.bound <= res.objective + 1e-9


def test_bad_inputs(rng):
    model, _, _ = random_mlp(0)
    net = netopt.load(model)
    k = net.output_shape[0]
    with pytest.raises(InputError, match="target"):
        Inversion(net, np.zeros(k + 1), box=(-1, 1))
    with pytest.raises(InputError, match="NaN"):
        Inversion(net, np.full(k, np.nan), box=(-1, 1))
    with pytest.raises(InputError, match="empty"):
        Inversion(net, np.zeros(k), box=(1, -1))
    with pytest.raises(MissingBoundsError, match="box"):
        Inversion(net, np.zeros(k)).solve("milp")
    with pytest.raises(FormulationError, match="gurobi"):
        Inversion(net, np.zeros(k), norm=2, box=(-1, 1)).solve("milp", solver="highs")


def test_sigmoid_net_is_refused_with_the_node():
    require_nets()
    path = next(p for p in REAL_NETS if p.name == "keras_linear_131_sigmoid.onnx")
    net = netopt.load(path)
    with pytest.raises(FormulationError, match=r"(?s)Sigmoid.*first-order"):
        OutputObjective(net, [1.0], box=(-1, 1)).solve("milp")
