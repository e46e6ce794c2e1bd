"""Lifted Bregman inversion: the penalty, PDHG vs an exact convex solver, CD, Landweber, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
from netopt.errors import FormulationError, SolverUnavailableError
from netopt.formulations.lifted_bregman import (
    bregman_layers,
    coordinate_descent,
    invert_bregman,
    lifted_objective,
)
from netopt.formulations.lifted_bregman.landweber import landweber
from netopt.instances._onnx import mlp_onnx
from netopt.model.convex import ConvexBlock, activation, bregman_penalty, phi_conj, psi

SLOPES = [0.0, 0.2]


def _numeric_phi_conj(z: float, slope: float) -> float:
    """sup_u u z - 1/2 u^2 - Psi(u) on a fine grid (an independent Fenchel conjugate)."""
    u = np.linspace(-20, 20, 400001)
    if slope == 0.0:
        u = u[u >= 0]
    vals = u * z - 0.5 * u**2
    if slope > 0:
        vals = vals - 0.5 * (1 / slope - 1) * np.minimum(u, 0) ** 2
    return float(vals.max())


@pytest.mark.parametrize("slope", SLOPES)
def test_penalty_closed_form_matches_numeric_conjugate(slope):
    rng = np.random.default_rng(1)
    for _ in range(20):
        z = float(rng.uniform(-3, 3))
        y = float(rng.uniform(0, 3) if slope == 0 else rng.uniform(-3, 3))
        num = _numeric_phi_conj(z, slope)
        assert phi_conj(np.array([z]), slope) == pytest.approx(num, abs=1e-8)
        phi_y = 0.5 * y**2 + psi(np.array([y]), slope)
        assert bregman_penalty(np.array([y]), np.array([z]), slope) == pytest.approx(
            phi_y + num - y * z, abs=1e-8
        )


@pytest.mark.parametrize("slope", SLOPES)
def test_penalty_nonnegative_and_zero_exactly_on_graph(slope):
    rng = np.random.default_rng(2)
    z = rng.uniform(-3, 3, 1000)
    y = rng.uniform(0 if slope == 0 else -3, 3, 1000)
    for yi, zi in zip(y, z, strict=True):
        B = bregman_penalty(np.array([yi]), np.array([zi]), slope)
        s = activation(np.array([zi]), slope)[0]
        assert B >= 0.5 * (yi - s) ** 2 - 1e-12  # property 1 of the paper
    on_graph = activation(z, slope)
    for zi, yi in zip(z, on_graph, strict=True):
        assert bregman_penalty(np.array([yi]), np.array([zi]), slope) == pytest.approx(0, abs=1e-12)
    if slope == 0.0:
        assert bregman_penalty(np.array([-0.1]), np.array([1.0]), 0.0) == np.inf


def _perceptron(seed: int = 0, H: int = 16, m: int = 64, noise: float = 0.01):
    rng = np.random.default_rng(seed)
    n = H * H
    x = np.zeros((H, H))
    x[4:12, 5:11] = 1.0
    W = rng.standard_normal((m, n)) / np.sqrt(n)
    b = 0.1 * rng.standard_normal(m)
    y = np.maximum(W @ x.ravel() + b, 0) + noise * rng.standard_normal(m)
    net = netopt.load(mlp_onnx([W], [b], ["relu"], dtype=np.float64))
    return net, W, b, x, y


def test_pdhg_tv_matches_cvxpy():
    pytest.importorskip("cvxpy")
    net, W, b, x, y = _perceptron()
    r = invert_bregman(
        net, y[None], regularizer="tv", alpha=1e-2, image_shape=(16, 16), max_iter=20000, tol=1e-9
    )
    e = r.extra["bregman"]
    cert = e["certificate"][0]
    assert cert["solver"] in ("CLARABEL", "SCS")
    assert abs(e["rel_gap"]) < 1e-4
    # independent re-evaluation of the objective at the returned point
    sub = ConvexBlock(W, b, np.maximum(y, 0), 0.0, reg="tv", alpha=1e-2, image_shape=(16, 16))
    assert sub.objective(r.x) == pytest.approx(cert["exact"], rel=1e-4)
    assert r.status == netopt.Status.FEASIBLE
    assert r.objective == pytest.approx(np.linalg.norm(net.forward(r.x[None])[0] - y[None]))
    # objective history ends at the plateau
    assert e["history"][-1] <= e["history"][0]


@pytest.mark.parametrize("reg", ["l1", "l2", "box"])
def test_other_regularizers_certified(reg):
    pytest.importorskip("cvxpy")
    net, W, b, x, y = _perceptron(seed=3)
    r = invert_bregman(
        net, y[None], regularizer=reg, alpha=1e-2, box=(0.0, 1.0), max_iter=20000, tol=1e-10
    )
    assert abs(r.extra["bregman"]["rel_gap"]) < 1e-4
    assert r.x.min() >= 0 and r.x.max() <= 1


def _two_layer(seed: int = 0):
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((24, 12)) / np.sqrt(12)
    W2 = rng.standard_normal((16, 24)) / np.sqrt(24)
    b1, b2 = 0.1 * rng.standard_normal(24), 0.1 * rng.standard_normal(16)
    u = rng.uniform(0, 1, 12)
    y = np.maximum(W2 @ np.maximum(W1 @ u + b1, 0) + b2, 0)
    return W1, b1, W2, b2, u, y


@pytest.mark.parametrize("reg", ["l2", "tv"])
def test_coordinate_descent_monotone(reg):
    W1, b1, W2, b2, u, y = _two_layer()
    net = netopt.load(mlp_onnx([W1, W2], [b1, b2], ["relu", "relu"], dtype=np.float64))
    layers = bregman_layers(net.graph)
    zs, info = coordinate_descent(
        layers, y, reg=reg, alpha=1e-3, image_shape=(3, 4), max_iter=300, tol=0.0
    )
    h = np.array(info["history"])
    assert np.all(np.diff(h) <= 1e-12)
    assert h[-1] < 0.5 * h[0]
    assert lifted_objective(layers, y, zs, reg, 1e-3, (3, 4)) == pytest.approx(h[-1])


def test_cd_driver_certifies_blocks():
    pytest.importorskip("cvxpy")
    W1, b1, W2, b2, u, y = _two_layer(1)
    net = netopt.load(mlp_onnx([W1, W2], [b1, b2], ["relu", "relu"], dtype=np.float64))
    prob = netopt.Inversion(net, y[None], norm=2)
    r = prob.solve("lifted_bregman", regularizer="l2", alpha=1e-3, max_iter=3000, tol=1e-12)
    e = r.extra["bregman"]
    assert e["method"] == "cd" and [c["block"] for c in e["certificate"]] == ["u", "z1"]
    # each block is nearly optimal given the others (block CD converges slowly: 3.7e-3 on u)
    assert all(-1e-6 < c["rel_gap"] < 1e-2 for c in e["certificate"])


def test_landweber_reduces_residual():
    net, W, b, x, y = _perceptron(seed=4)
    r = landweber(net, y[None], max_iter=500)
    h = r.extra["bregman"]["residual_history"]
    assert h[-1] < 0.5 * h[0]
    r2 = landweber(net, y[None], noise=0.01, max_iter=100000)
    e = r2.extra["bregman"]
    assert e["residual"] <= e["discrepancy_target"]


def test_discrepancy_principle_hits_target():
    net, W, b, x, y = _perceptron(seed=5, noise=0.02)
    r = invert_bregman(
        net,
        y[None],
        regularizer="tv",
        alpha=1e-2,
        image_shape=(16, 16),
        noise=0.02,
        discrepancy=True,
        max_iter=3000,
        tol=1e-6,
        certify=False,
    )
    d = r.extra["bregman"]["discrepancy"]
    assert abs(d["residual"] / d["target"] - 1) <= 0.02
    # the residual reported is the one of the returned point, recomputed
    assert np.linalg.norm(np.maximum(W @ r.x.ravel() + b, 0) - np.maximum(y, 0)) == pytest.approx(
        d["residual"], rel=1e-9
    )


def test_out_of_scope_op_names_node():
    w = np.ones((4, 3), dtype=np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["h"], transB=1, name="dense_1"),
        helper.make_node("Sigmoid", ["h"], ["y"], name="squash_7"),
    ]
    net = netopt.load(make_model(nodes, [1, 3], [1, 4], {"W": w}))
    with pytest.raises(FormulationError, match="squash_7") as ei:
        invert_bregman(net, np.zeros((1, 4)), regularizer="l2")
    assert "sigmoid" in str(ei.value)


def test_cvxpy_missing_is_clear(monkeypatch):
    net, W, b, x, y = _perceptron()
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # `import cvxpy` now raises ImportError
    with pytest.raises(SolverUnavailableError, match=r"pip install 'netopt\[cvxpy\]'"):
        invert_bregman(net, y[None], regularizer="l2", alpha=1e-2, max_iter=10)
