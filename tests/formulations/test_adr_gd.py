"""ADR-GD (Yu & Gao 2024): the surrogate pieces by hand, soundness, never worse than the start."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
import netopt.formulations
from netopt.errors import FormulationError, InputError
from netopt.instances._onnx import mlp_onnx

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from netopt.formulations.adr_gd import (  # noqa: E402  (after the torch skip)
    constraint_loss,
    dense_layers,
    offset_sigmoid,
    solve_adr,
    solve_gd_baseline,
    surrogate_forward,
)


def _rand_net(sizes, seed):
    """The authors' random nets: |w|, |b| ~ U[0, 1] with a random sign."""
    rng = np.random.default_rng(seed)
    Ws = [
        rng.uniform(0, 1, (o, i)) * rng.choice([-1, 1], (o, i))
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    bs = [rng.uniform(0, 1, o) * rng.choice([-1, 1], o) for o in sizes[1:]]
    acts = ["relu"] * (len(sizes) - 2) + [None]
    return netopt.load(mlp_onnx(Ws, bs, acts, dtype=np.float64))


# ------------------------------------------------------------------------ the pieces by hand
def test_offset_sigmoid_matches_hand_values():
    beta = 2000.0
    for eta in (0.3, 0.49, 0.5, 0.5005, 0.51, 0.7):
        z = beta * (eta - 0.5 + 1e-6)
        want = 1.0 - 1.0 / (1.0 + np.exp(-z))
        assert offset_sigmoid(np.array(eta), beta) == pytest.approx(want, abs=1e-15)
        got_t = offset_sigmoid(torch.tensor(eta, dtype=torch.float64), beta).item()
        assert got_t == pytest.approx(want, abs=1e-15)
    assert offset_sigmoid(np.array(0.49)) > 1 - 1e-8  # on
    assert offset_sigmoid(np.array(0.51)) < 1e-8  # off
    assert offset_sigmoid(np.array(0.5)) == pytest.approx(0.4995, abs=1e-4)  # the offset


def test_constraint_loss_matches_hand_computation():
    t = lambda a: torch.tensor([a], dtype=torch.float64)  # noqa: E731
    g = [t([2.0, -1.0, 3.0]), t([-4.0, 1.0])]
    r = [t([1.0, 2.0, 3.0]), t([2.0, 0.5])]
    eta = [t([0.6, 0.4, 0.45]), t([0.45, 0.7])]
    # layer 1: gn = [2, -0.5, 1]; off: max(2*0.1, 0, 0) = 0.2; on: max(0, 0.5*0.1, -1*0.05) = 0.05
    # layer 2: gn = [-2, 2];      off: max(0, 2*0.2) = 0.4;   on: max(2*0.05, 0) = 0.1
    assert constraint_loss(g, r, eta).item() == pytest.approx(0.2 + 0.05 + 0.4 + 0.1)
    # floor 1 (the authors' attack code): layer 2's gn becomes [-2, 1] -> off 0.2
    assert constraint_loss(g, r, eta, floor=1.0).item() == pytest.approx(0.2 + 0.05 + 0.2 + 0.1)
    # eta consistent with the signs of g: no penalty
    ok = [t([0.4, 0.6, 0.3]), t([0.7, 0.3])]
    assert constraint_loss(g, r, ok).item() == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_surrogate_equals_true_network_at_the_exact_pattern(seed):
    net = _rand_net([6, 16, 16, 3], seed)
    dn = dense_layers(net)
    X = np.random.default_rng(seed).uniform(-1, 1, (5, 6))
    ref = net.forward(X)
    assert np.allclose(dn.forward(X), ref, rtol=1e-12, atol=1e-12)
    x = torch.tensor(X, dtype=torch.float64)
    pre, h = [], X
    for W, b in dn.hidden:
        g = h @ W.T + b
        pre.append(g)
        h = np.maximum(g, 0)
    for beta, tol in ((2000.0, 1e-5), (1e7, 1e-12)):
        # eta = 0.5 -/+ 0.01 sign(g) (the algorithm's initialisation) and eta at the clamp ends
        for off in (0.01, 0.2):
            etas = [torch.tensor(0.5 - off * np.sign(g)) for g in pre]
            ft = surrogate_forward(dn, x, etas, beta).numpy()
            assert np.max(np.abs(ft - ref)) / max(1, np.abs(ref).max()) < tol


# ------------------------------------------------------------------------------- the method
@pytest.mark.parametrize("sense", ["max", "min"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_never_worse_than_start_and_objective_recomputed(sense, seed):
    net = _rand_net([5, 24, 24, 1], seed)
    p = netopt.OutputObjective(net, [1.0], sense=sense, box=(-1, 1))
    start = np.random.default_rng(seed).uniform(-1, 1, 5)
    r = solve_adr(p, steps=150, start=start, seed=seed)
    v0 = p.objective_of_input(start)
    assert r.status == netopt.Status.FEASIBLE
    assert (r.objective >= v0) if sense == "max" else (r.objective <= v0)
    assert r.objective == p.objective_of_input(r.x)
    assert p.domain.contains(r.x)
    info = r.extra["adr"]
    assert info["lam"].shape == (150, 1) and info["true"].shape == (151, 1)
    assert np.all((info["lam"] >= 0.2) & (info["lam"] <= 10))
    # the reported best equals the running best of the true objective (float64 both ways)
    assert r.objective == pytest.approx(info["best"][-1], rel=1e-12)


@pytest.mark.parametrize("norm", [1, 2, "inf"])
def test_inversion_reaches_a_target_and_never_worsens(norm):
    net = _rand_net([4, 12, 12, 3], 3)
    x_true = np.array([0.3, -0.2, 0.5, 0.1])
    p = netopt.Inversion(net, net.forward(x_true[None])[0], norm=norm, box=(-1, 1))
    r = p.solve("adr_gd", steps=300, restarts=2, seed=1)
    v0 = p.objective_of_input(np.zeros(4))
    assert r.objective <= v0
    assert r.objective == p.objective_of_input(r.x)
    assert r.extra["adr"]["true"].shape == (301, 2)


def test_sound_against_the_exact_milp_optimum():
    net = _rand_net([4, 10, 10, 1], 7)
    p = netopt.OutputObjective(net, [1.0], sense="max", box=(-1, 1))
    exact = p.solve("milp", time_limit=30)
    assert exact.status == netopt.Status.OPTIMAL
    r = p.solve("adr_gd", steps=600, restarts=4, seed=0)
    gd = solve_gd_baseline(p, steps=600)
    assert r.objective <= exact.objective + 1e-6 * max(1.0, abs(exact.objective))
    assert gd.objective <= exact.objective + 1e-6 * max(1.0, abs(exact.objective))
    assert r.objective == p.objective_of_input(r.x)
    assert gd.objective == p.objective_of_input(gd.x)
    # a gap this small means ADR-GD found the optimum's region on this tiny net
    assert r.objective >= exact.objective - 0.05 * abs(exact.objective)


def test_fixed_schedule_keeps_lambda_and_options_are_checked():
    net = _rand_net([3, 8, 1], 0)
    p = netopt.OutputObjective(net, [1.0], sense="max", box=(-1, 1))
    r = solve_adr(p, steps=20, lam=0.5, schedule="fixed")
    assert np.all(r.extra["adr"]["lam"] == 0.5)
    with pytest.raises(InputError, match="schedule"):
        solve_adr(p, steps=5, schedule="bogus")
    with pytest.raises(InputError, match="dtype"):
        solve_adr(p, steps=5, dtype="float16")


# ------------------------------------------------------------------------------ bad input
def _gemm(name, i, o, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    inits = {f"W_{name}": rng.normal(size=(n_out, n_in)), f"b_{name}": rng.normal(size=n_out)}
    node = helper.make_node("Gemm", [i, f"W_{name}", f"b_{name}"], [o], name=name, transB=1)
    return node, inits


def _sigmoid_model():
    n1, i1 = _gemm("fc_a", "x", "h", 3, 4, 0)
    n2, i2 = _gemm("fc_b", "s", "y", 4, 1, 1)
    sig = helper.make_node("Sigmoid", ["h"], ["s"], name="squash_9")
    return make_model([n1, sig, n2], [1, 3], [1, 1], {**i1, **i2})


def _maxpool_model():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu_in"),
        helper.make_node("MaxPool", ["r"], ["m"], name="pool_q", kernel_shape=[2, 2]),
        helper.make_node("Flatten", ["m"], ["f"], name="flat"),
    ]
    n3, i3 = _gemm("fc_out", "f", "y", 9, 1, 2)
    return make_model([*nodes, n3], [1, 1, 4, 4], [1, 1], i3)


@pytest.mark.parametrize(
    "model,node,op",
    [(_sigmoid_model, "squash_9", "sigmoid"), (_maxpool_model, "pool_q", "maxpool2d")],
)
def test_out_of_scope_ops_are_refused_naming_the_node(model, node, op):
    net = netopt.load(model())
    p = netopt.OutputObjective(net, [1.0], sense="max", box=(-1, 1))
    with pytest.raises(FormulationError) as ei:
        p.solve("adr_gd", steps=5)
    msg = str(ei.value)
    assert node in msg and op in msg and "adr_gd" in msg
    F = netopt.formulations.get("adr_gd")
    assert [b[1] for b in F.check_support(net.graph)] == [op]


def test_non_box_domains_and_other_problems_are_refused():
    net = _rand_net([3, 8, 2], 0)
    p = netopt.OutputObjective(net, [1.0, 0.0], box=(-1, 1), A=np.ones((1, 3)), b=[1.0])
    with pytest.raises(InputError, match="box"):
        solve_adr(p, steps=5)
    ce = netopt.CrossEntropy(net, 0, box=(-1, 1))
    with pytest.raises(InputError, match="OutputObjective or Inversion"):
        solve_adr(ce, steps=5)
