"""The exact MILP against independent references: brute force over activation patterns,
fixed inputs, relaxation soundness, and the bad-input errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers.nets import REAL_NETS, make_model, require_nets
from onnx import helper
from scipy.optimize import linprog

import netopt
from netopt.errors import FormulationError, InputError, MissingBoundsError
from netopt.problems import Feasibility, Inversion, OutputObjective
from netopt.result import Status


def random_mlp(seed: int, max_relus: int = 8):
    """A random 2-3 layer ReLU MLP (numpy weights and the ONNX model)."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 4))
    n_hidden = int(rng.integers(1, 3))
    widths, left = [], max_relus
    for k in range(n_hidden):
        w = int(rng.integers(1, max(2, left - (n_hidden - k - 1)) + 1))
        w = min(w, left - (n_hidden - k - 1))
        widths.append(w)
        left -= w
    n_out = int(rng.integers(1, 3))
    dims = [n_in, *widths, n_out]
    Ws = [rng.normal(size=(dims[i + 1], dims[i])) for i in range(len(dims) - 1)]
    bs = [rng.normal(size=dims[i + 1]) * 0.5 for i in range(len(dims) - 1)]
    nodes, inits, cur = [], {}, "x"
    for i, (w, b) in enumerate(zip(Ws, bs, strict=True)):
        inits[f"w{i}"], inits[f"b{i}"] = w, b
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"h{i}"], transB=1))
        cur = f"h{i}"
        if i < len(Ws) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    nodes[-1].output[0] = "y"
    model = make_model(nodes, ["N", n_in], ["N", n_out], inits)
    # the ONNX file stores float32: the reference uses the same rounded weights
    Ws = [w.astype(np.float32).astype(np.float64) for w in Ws]
    bs = [b.astype(np.float32).astype(np.float64) for b in bs]
    return model, Ws, bs


def brute_force(Ws, bs, target, p, lo=-1.0, hi=1.0) -> float:
    """min ||f(x) - t||_p over the box: one LP per activation pattern (scipy's linprog)."""
    n_in = Ws[0].shape[1]
    widths = [w.shape[0] for w in Ws[:-1]]
    best = np.inf
    for pattern in itertools.product([0, 1], repeat=sum(widths)):
        # a_k = D_k (W_k a_{k-1} + b_k) as an affine map P x + q of the input
        P, q = np.eye(n_in), np.zeros(n_in)
        A_ub, b_ub, k = [], [], 0
        for W, b, n in zip(Ws[:-1], bs[:-1], widths, strict=True):
            zP, zq = W @ P, W @ q + b
            d = np.array(pattern[k : k + n], dtype=float)
            k += n
            # active: z >= 0  (-z <= 0); inactive: z <= 0
            sgn = np.where(d > 0, -1.0, 1.0)
            A_ub.append(sgn[:, None] * zP)
            b_ub.append(-sgn * zq)
            P, q = d[:, None] * zP, d * zq
        yP, yq = Ws[-1] @ P, Ws[-1] @ q + bs[-1]
        m = len(yq)
        # variables: x (n_in), t (m for p=1, 1 for p=inf)
        nt = m if p == 1 else 1
        T = np.eye(m) if p == 1 else np.ones((m, 1))
        Au = [np.hstack([a, np.zeros((len(a), nt))]) for a in A_ub]
        Au.append(np.hstack([yP, -T]))  # y - t <= target
        Au.append(np.hstack([-yP, -T]))  # -(y - t) <= -target
        bu = [*b_ub, target - yq, -(target - yq)]
        res = linprog(
            np.r_[np.zeros(n_in), np.ones(nt)],
            A_ub=np.vstack(Au),
            b_ub=np.concatenate(bu),
            bounds=[(lo, hi)] * n_in + [(0, None)] * nt,
            method="highs",
        )
        if res.status == 0:
            best = min(best, res.fun)
    return best


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
        bounds="interval" if seed % 2 else "crown"
    )
    assert res.status == Status.OPTIMAL
    assert abs(res.objective - ref) <= 1e-6 * max(1.0, abs(ref))
    assert res.bound <= res.objective + 1e-6 * max(1.0, abs(res.objective))  # the gap tolerance
    # the relaxation never exceeds the exact optimum
    relax = Inversion(net, target, norm=p, box=(-1, 1)).solve(relax=True)
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
        sat = Feasibility(net, y0, tol=1e-7, box=box).solve()
        assert sat.verdict == "sat"
        for j in range(2):
            off = np.zeros(2)
            off[j] = 1e-3
            unsat = Feasibility(net, y0 + off, tol=1e-4, box=box).solve()
            assert unsat.verdict == "unsat"


def test_conv_net_solver_objective_is_the_true_objective(rng):
    """A loose encoding would let the solver claim a better value than its point attains."""
    net = _conv_net(rng)
    for sense in ("min", "max"):
        c = rng.normal(size=2)
        res = OutputObjective(net, c, sense=sense, box=(-1, 1)).solve()
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
    res = OutputObjective(
        net, np.ones(net.output_shape), sense="max", box=(-1, 1), A=A, b=b
    ).solve()
    assert res.status == Status.OPTIMAL and A @ res.x <= b + 1e-9
    resi = OutputObjective(
        net, np.ones(net.output_shape), sense="max", box=(-1, 1), integer=True
    ).solve()
    grid = np.array(list(itertools.product([-1.0, 0.0, 1.0], repeat=n)))
    assert abs(resi.objective - net(grid).sum(axis=1).max()) <= 1e-6


def test_time_limit_returns_incumbent_and_bound():
    require_nets()
    path = next(p for p in REAL_NETS if p.name == "mlp_5-50-50-50-5_seed0.onnx")
    net = netopt.load(path)
    t = net(np.full(5, 1.5)) + 0.05
    res = Inversion(net, t, norm=1, box=(-1, 1)).solve(time_limit=1.0)
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
        Inversion(net, np.zeros(k)).solve()
    with pytest.raises(FormulationError, match="gurobi"):
        Inversion(net, np.zeros(k), norm=2, box=(-1, 1)).solve(solver="highs")


def test_sigmoid_net_is_refused_with_the_node():
    require_nets()
    path = next(p for p in REAL_NETS if p.name == "keras_linear_131_sigmoid.onnx")
    net = netopt.load(path)
    with pytest.raises(FormulationError, match=r"(?s)Sigmoid.*first-order"):
        OutputObjective(net, [1.0], box=(-1, 1)).solve()
