"""The falsifier (netopt.attack): counterexamples found where the competition's verdict is "sat",
each re-checked in float64 and in onnxruntime, never one where a point cannot exist."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers.nets import NETS, make_model
from onnx import helper

import netopt
from netopt.attack import falsify
from netopt.vnnlib import load_vnnlib

pytest.importorskip("torch")


def _prop(net, path):
    return load_vnnlib(
        path,
        n_inputs=int(np.prod(net.input_shape)),
        n_outputs=int(np.prod(net.output_shape)),
    )


def _verdict(folder: str, onnx: str, vnnlib: str) -> str:
    with open(NETS / folder / "verdicts.csv") as f:
        for row in csv.DictReader(f):
            if row["onnx"] == onnx and row["vnnlib"] == vnnlib:
                return row["verdict"]
    raise KeyError((onnx, vnnlib))


def _check_point(net, x, dj):
    """x lies in the box and satisfies C y <= d in float64 and (within 1e-5) in onnxruntime."""
    assert np.all(x.reshape(-1) >= dj.lo - 1e-12) and np.all(x.reshape(-1) <= dj.hi + 1e-12)
    y64 = net.forward(x).reshape(-1)
    assert np.all(dj.C @ y64 - dj.d <= 0)
    y_ort = np.asarray(net.run_onnxruntime(x), dtype=np.float64).reshape(-1)
    assert np.all(dj.C @ y_ort - dj.d <= 1e-5)


@pytest.mark.parametrize(
    "folder, onnx, vnnlib",
    [
        ("acasxu", "ACASXU_run2a_4_5_batch_2000.onnx", "prop_2.vnnlib"),
        ("acasxu", "ACASXU_run2a_1_9_batch_2000.onnx", "prop_3.vnnlib"),
        ("mnistfc", "mnist-net_256x2.onnx", "prop_3_0.05.vnnlib"),
    ],
)
def test_counterexamples_of_sat_instances(folder, onnx, vnnlib):
    if not (NETS / folder).is_dir():
        pytest.skip(f"{NETS / folder} is absent")
    assert _verdict(folder, onnx, vnnlib) == "sat"  # the competition's consensus
    net = netopt.load(NETS / folder / onnx)
    prop = _prop(net, NETS / folder / vnnlib)
    found = None
    for dj in prop.disjuncts:
        r = falsify(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=20, device="cpu")
        if r.x is not None:
            found = (r, dj)
            break
    assert found is not None, "no counterexample found where the competition found one"
    r, dj = found
    assert r.margin <= 0
    _check_point(net, r.x, dj)


def test_nothing_where_the_property_holds():
    """On an instance every tool proves ("unsat"), the attack returns no point, only a margin."""
    folder, onnx, vnnlib = "mnistfc", "mnist-net_256x2.onnx", "prop_2_0.03.vnnlib"
    if not (NETS / folder).is_dir():
        pytest.skip(f"{NETS / folder} is absent")
    assert _verdict(folder, onnx, vnnlib) == "unsat"
    net = netopt.load(NETS / folder / onnx)
    dj = _prop(net, NETS / folder / vnnlib).disjuncts[0]
    r = falsify(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=2, rounds=1, device="cpu")
    assert r.x is None and r.margin > 0


def _relu_net(rng, n_in=3, hidden=6):
    W1 = rng.normal(size=(hidden, n_in))
    b1 = rng.normal(size=hidden) * 0.3
    W2 = rng.normal(size=(1, hidden))
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1),
    ]
    m = make_model(nodes, [1, n_in], [1, 1], {"W1": W1, "b1": b1, "W2": W2, "b2": np.zeros(1)})
    return netopt.load(m)


@pytest.mark.parametrize("seed", range(4))
def test_threshold_against_a_grid(seed):
    """y(x) <= t for t at the grid's 2nd percentile: points exist (2 % of a fine grid), and one is
    found; for t below a sound CROWN lower bound of the minimum no point is ever returned."""
    rng = np.random.default_rng(seed)
    net = _relu_net(rng)
    lo, hi = -np.ones(3), np.ones(3)
    g = np.linspace(-1, 1, 41)
    X = np.stack(np.meshgrid(g, g, g), -1).reshape(-1, 3)
    y = net.forward(X).reshape(-1)
    t = float(np.quantile(y, 0.02))
    r = falsify(net, lo, hi, np.ones((1, 1)), np.array([t]), time_limit=10, seed=seed, device="cpu")
    assert r.x is not None and float(net.forward(r.x).reshape(-1)[0]) <= t
    from netopt.bounds import compute_bounds, linear_bounds

    b = compute_bounds(net.graph, lo, hi, "crown")
    low, _ = linear_bounds(net.graph, b, net.graph.outputs[0], np.ones((1, 1)))
    r2 = falsify(
        net, lo, hi, np.ones((1, 1)), np.array([float(low[0]) - 1e-3]), time_limit=1,
        rounds=1, device="cpu",
    )  # fmt: skip
    assert r2.x is None and r2.margin > 0


def _abs_sum_net(n):
    """y = sum_i |x_i|, as relu(x) + relu(-x)."""
    W1 = np.vstack([np.eye(n), -np.eye(n)])
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1),
    ]
    inits = {"W1": W1, "b1": np.zeros(2 * n), "W2": np.ones((1, 2 * n)), "b2": np.zeros(1)}
    return netopt.load(make_model(nodes, [1, n], [1, 1], inits))


def test_the_box_centre_is_among_the_starts():
    """y = sum |x_i| <= 1e-9 on [-1, 1]^40 holds only near the centre, which no uniform sample
    or vertex reaches: with no descent step at all, the centre start alone finds it."""
    net = _abs_sum_net(40)
    r = falsify(
        net, -np.ones(40), np.ones(40), np.ones((1, 1)), np.array([1e-9]),
        steps=0, rounds=1, device="cpu",
    )  # fmt: skip
    assert r.x is not None and np.all(r.x == 0)


@pytest.mark.parametrize(
    "lo, hi, C, d, words",
    [
        (-np.ones(3), np.ones(3), np.ones((1, 1)), np.zeros(1), "input's 40 values"),
        (np.ones(40), -np.ones(40), np.ones((1, 1)), np.zeros(1), "lo <= hi"),
        (-np.ones(40), np.ones(40), np.ones((1, 2)), np.zeros(1), "C must be"),
        (-np.ones(40), np.ones(40), np.ones((1, 1)), np.zeros(2), "d of length"),
    ],
)
def test_bad_arguments_are_input_errors(lo, hi, C, d, words):
    from netopt.errors import InputError

    with pytest.raises(InputError, match=words):
        falsify(_abs_sum_net(40), lo, hi, C, d, device="cpu")
