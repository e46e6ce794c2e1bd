"""ADMM (Wong & Kolter 2017): projections, proximal maps, linear solves and the iterations.

Every check is against an independent reference: brute force over the pieces of a graph, dense
numpy solves, scipy's ``lsq_linear`` / ``minimize``, the float64 interpreter.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers.nets import mlp_net  # noqa: E402

import netopt  # noqa: E402
from netopt.errors import FormulationError, IncompatibleBackendError, InputError  # noqa: E402
from netopt.instances import mlp_instance  # noqa: E402
from netopt.problems import CrossEntropy  # noqa: E402
from netopt.result import Status  # noqa: E402
from netopt.solve import solve_many  # noqa: E402

F64 = torch.float64


def t64(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64))


# ----------------------------------------------------------------------------- projections
GRID = np.linspace(-6.0, 6.0, 24001)


def _on_rays(a, b, slope):
    """Brute force: the least squared distance from (a, b) to points (t, t), t >= 0 and
    (t, slope t), t <= 0 on a fine grid of t."""
    pos = GRID[GRID >= 0]
    neg = GRID[GRID <= 0]
    d_pos = (a[:, None] - pos) ** 2 + (b[:, None] - pos) ** 2
    d_neg = (a[:, None] - neg) ** 2 + (b[:, None] - slope * neg) ** 2
    return np.minimum(d_pos.min(1), d_neg.min(1))


@pytest.mark.parametrize("slope", [0.0, 0.1, 0.5])
def test_relu_and_leaky_projection_vs_brute_force(slope):
    from netopt.formulations.admm.projections import project_leaky_relu, project_relu

    rng = np.random.default_rng(1)
    a, b = rng.uniform(-3, 3, 400), rng.uniform(-3, 3, 400)
    if slope == 0.0:
        x, y = project_relu(t64(a), t64(b))
    else:
        x, y = project_leaky_relu(t64(a), t64(b), slope)
    x, y = x.numpy(), y.numpy()
    # on the graph
    np.testing.assert_allclose(y, np.where(x >= 0, x, slope * x), atol=1e-12)
    d = (a - x) ** 2 + (b - y) ** 2
    brute = _on_rays(a, b, slope)
    h = GRID[1] - GRID[0]
    assert np.all(d <= brute + 1e-12)  # no grid point of the graph is nearer
    assert np.all(brute - d <= 12 * h)  # and the grid gets as close as its spacing allows


def _maxpool_brute(a, b):
    """min over the argmax index i and a grid of levels t of the distance to {max x = t}."""
    best = np.full(len(a), np.inf)
    for i in range(a.shape[1]):
        others = np.delete(a, i, axis=1)
        t = GRID[None, :]
        d = (b[:, None] - t) ** 2 + (a[:, i : i + 1] - t) ** 2
        d = d + (np.clip(others[:, :, None] - t[:, None, :], 0, None) ** 2).sum(1)
        best = np.minimum(best, d.min(1))
    return best


def test_maxpool_projection_vs_brute_force():
    from netopt.formulations.admm.projections import project_maxpool

    rng = np.random.default_rng(2)
    a, b = rng.uniform(-2, 2, (200, 4)), rng.uniform(-3, 3, 200)
    x, y = project_maxpool(t64(a), t64(b))
    x, y = x.numpy(), y.numpy()
    np.testing.assert_allclose(x.max(1), y, atol=1e-12)
    d = ((a - x) ** 2).sum(1) + (b - y) ** 2
    brute = _maxpool_brute(a, b)
    assert np.all(d <= brute + 1e-12)
    assert np.all(brute - d <= 1e-5)
    # a padding cell (-inf) never wins and never moves; the rest is the 3-cell projection
    ap = np.concatenate([a[:, :3], np.full((200, 1), -np.inf)], axis=1)
    xp, yp = project_maxpool(t64(ap), t64(b))
    x3, y3 = project_maxpool(t64(a[:, :3]), t64(b))
    assert np.all(np.isneginf(xp.numpy()[:, 3]))
    np.testing.assert_allclose(xp.numpy()[:, :3], x3.numpy(), atol=1e-12)
    np.testing.assert_allclose(yp.numpy(), y3.numpy(), atol=1e-12)


def test_box_projection_vs_brute_force():
    from netopt.formulations.admm.projections import project_box

    rng = np.random.default_rng(3)
    a, b = rng.uniform(-3, 3, 300), rng.uniform(-3, 3, 300)
    x, y = project_box(t64(a), t64(b), t64(-1.0), t64(0.5))
    t = np.linspace(-1, 0.5, 30001)
    brute = ((a[:, None] - t) ** 2 + (b[:, None] - t) ** 2).min(1)
    d = (a - x.numpy()) ** 2 + (b - y.numpy()) ** 2
    assert np.all(d <= brute + 1e-12) and np.all(brute - d <= 1e-6)


# ----------------------------------------------------------------------------- proximal maps
def _objective_for(net, problem, rows=(0,)):
    from netopt.torch_utils import torch_objective

    return torch_objective([problem], np.array(rows), F64, torch.device("cpu"))


@pytest.mark.parametrize("norm", [1, 2, "inf"])
def test_output_prox_vs_scipy(norm):
    from scipy.optimize import minimize

    net, _, _ = mlp_net((3, 4, 4), ["relu", None])
    rng = np.random.default_rng(4)
    t, w = rng.normal(size=4), np.array([1.0, 0.5, 2.0, 0.0])
    prob = netopt.Inversion(net, t, norm=norm, weights=w)
    obj = _objective_for(net, prob)
    a, rho = rng.normal(size=4) * 2, 0.7
    z = obj.prox_output(t64(a)[None], t64([[rho]]))[0].numpy()
    p = {1: 1, 2: 2, "inf": np.inf}[norm]

    def f(v):
        r = w * (v - t)
        val = 0.5 * (r @ r) if p == 2 else np.linalg.norm(r, p)  # the 2-norm prox is of ||.||^2/2
        return val + 0.5 * rho * ((v - a) ** 2).sum()

    ref = min(
        (
            minimize(
                f,
                x0,
                method="Nelder-Mead",
                options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 40000},
            )
            for x0 in (a, t, z)
        ),
        key=lambda r: r.fun,
    )
    assert f(z) <= ref.fun + 1e-9


def test_cross_entropy_prox_vs_scipy():
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    net, _, _ = mlp_net((3, 5, 6), ["relu", None])
    prob = CrossEntropy(net, label=2)
    obj = _objective_for(net, prob)
    rng = np.random.default_rng(5)
    for rho in (1e-3, 1.0, 50.0):
        a = rng.normal(size=6) * 3
        z = obj.prox_output(t64(a)[None], t64([[rho]]))[0].numpy()

        def f(v, rho=rho, a=a):
            return logsumexp(v) - v[2] + 0.5 * rho * ((v - a) ** 2).sum()

        ref = minimize(f, a, method="BFGS", options={"gtol": 1e-12})
        assert f(z) <= ref.fun + 1e-10


def test_cross_entropy_prox_batched_without_syncs_vs_scipy():
    """The fixed-step (sync-free) Newton path, warm-started or not, on a batch of rows with
    different labels and rho, against the early-exit path and BFGS."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    from netopt.torch_utils import torch_objective

    net, _, _ = mlp_net((3, 5, 6), ["relu", None])
    probs = [CrossEntropy(net, label=k) for k in range(6)]
    obj = torch_objective(probs, np.arange(6), torch.float64, torch.device("cpu"))
    rng = np.random.default_rng(6)
    a = rng.normal(size=(6, 6)) * 4
    rho = np.array([1e-3, 0.1, 1.0, 5.0, 50.0, 1e3])[:, None]
    for z0 in (None, t64(a + rng.normal(size=a.shape))):
        fixed = obj._prox_ce(t64(a), t64(rho), 30, z0, early_exit=False).numpy()
        early = obj._prox_ce(t64(a), t64(rho), 30, z0, early_exit=True).numpy()
        np.testing.assert_allclose(fixed, early, atol=1e-9)
        for i in range(6):

            def f(v, i=i):
                return logsumexp(v) - v[i] + 0.5 * rho[i, 0] * ((v - a[i]) ** 2).sum()

            ref = minimize(f, a[i], method="BFGS", options={"gtol": 1e-12})
            assert f(fixed[i]) <= ref.fun + 1e-10


# ----------------------------------------------------------------------------- linear solves
@pytest.mark.parametrize("shape", [(30, 12), (12, 30)])
@pytest.mark.parametrize("woodbury", [False, True])
def test_dense_z_update_vs_dense_solve(shape, woodbury):
    from netopt.formulations.admm.linops import DenseOp

    rng = np.random.default_rng(6)
    W = rng.normal(size=shape)
    op = DenseOp(W, t64(np.zeros(shape[0])), woodbury=woodbury)
    R = rng.normal(size=(5, shape[1]))
    ref = np.linalg.solve(np.eye(shape[1]) + W.T @ W, R.T).T
    np.testing.assert_allclose(op.solve(t64(R)).numpy(), ref, rtol=1e-10, atol=1e-10)


def _circular_dense(kernel, H, W):
    """The dense matrix of the circular stride-1 cross-correlation, column by column."""
    import torch.nn.functional as Fn

    cout, cin, kh, kw = kernel.shape
    n = cin * H * W
    eye = torch.eye(n, dtype=F64).reshape(n, cin, H, W)
    padded = Fn.pad(eye, (0, kw - 1, 0, kh - 1), mode="circular")
    return Fn.conv2d(padded, kernel).reshape(n, -1).T.numpy()


@pytest.mark.parametrize("cin,cout", [(2, 3), (3, 1)])
def test_fft_circular_solve_vs_dense(cin, cout):
    from netopt.formulations.admm.linops import fft_circular_solve

    rng = np.random.default_rng(7)
    H, W = 6, 5
    k = t64(rng.normal(size=(cout, cin, 3, 2)))
    M = _circular_dense(k, H, W)
    r = rng.normal(size=(4, cin * H * W))
    ref = np.linalg.solve(np.eye(M.shape[1]) + M.T @ M, r.T).T
    z = fft_circular_solve(k, t64(r).reshape(4, cin, H, W)).reshape(4, -1).numpy()
    np.testing.assert_allclose(z, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "attrs",
    [
        {"strides": (2, 2), "pads": (1, 1, 1, 1)},
        {"strides": (1, 1), "pads": (0, 1, 2, 0)},
        {"strides": (2, 1), "pads": (0, 0, 0, 0), "dilations": (1, 2)},
    ],
)
def test_conv_operator_and_cg_vs_dense(attrs):
    from netopt.formulations.admm.linops import ConvOp
    from netopt.ir.ops import OPS
    from netopt.ir.ops.conv import conv_matrix as _conv

    rng = np.random.default_rng(8)
    a = {
        "weight": rng.normal(size=(4, 3, 3, 3)),
        "bias": np.zeros(4),
        "dilations": (1, 1),
        "group": 1,
        **attrs,
    }
    shape = (3, 7, 8)
    out = tuple(OPS["conv2d"].infer([shape], a))
    M = _conv(shape, a)[0].toarray()
    op = ConvOp(a, shape, out, t64(np.zeros(int(np.prod(out)))), cg_iters=200, cg_tol=1e-13)
    x = rng.normal(size=(3, M.shape[1]))
    y = rng.normal(size=(3, M.shape[0]))
    np.testing.assert_allclose(op.mv(t64(x)).numpy(), x @ M.T, atol=1e-10)
    np.testing.assert_allclose(op.rmv(t64(y)).numpy(), y @ M, atol=1e-10)
    ref = np.linalg.solve(np.eye(M.shape[1]) + M.T @ M, x.T).T
    np.testing.assert_allclose(op.solve(t64(x)).numpy(), ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("seed", range(12))
def test_conv_adjoint_vs_sparse_transpose_on_random_shapes(seed):
    """The polyphase adjoint against ``linear_map(...).T``: strides 1-3, asymmetric pads,
    dilations, groups, kernels larger than the stride and not a multiple of it."""
    from netopt.formulations.admm.linops import ConvOp
    from netopt.ir import Op
    from netopt.ir.ops import OPS, linear_map

    rng = np.random.default_rng(100 + seed)
    groups = int(rng.choice([1, 1, 2]))
    cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kh, kw = (int(k) for k in rng.integers(1, 5, size=2))
    a = {
        "weight": rng.normal(size=(cout, cin // groups, kh, kw)),
        "bias": np.zeros(cout),
        "strides": tuple(int(v) for v in rng.integers(1, 4, size=2)),
        "pads": tuple(int(v) for v in rng.integers(0, 3, size=4)),
        "dilations": tuple(int(v) for v in rng.integers(1, 3, size=2)),
        "group": groups,
    }
    if seed == 0:  # the cifar_base_kw layer
        a.update(strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1))
    shape = (cin, int(rng.integers(7, 12)), int(rng.integers(7, 12)))
    out = tuple(OPS["conv2d"].infer([shape], a))
    op_ir = Op("c", "conv2d", ["x"], ["y"], a)
    (M,), _ = linear_map(op_ir, [shape])
    op = ConvOp(a, shape, out, t64(np.zeros(int(np.prod(out)))))
    x = rng.normal(size=(2, M.shape[1]))
    y = rng.normal(size=(2, M.shape[0]))
    np.testing.assert_allclose(op.mv(t64(x)).numpy(), (M @ x.T).T, atol=1e-10)
    np.testing.assert_allclose(op.rmv(t64(y)).numpy(), (M.T @ y.T).T, atol=1e-10)


@pytest.mark.parametrize("kind", ["identity", "dense", "woodbury", "conv", "sparse"])
def test_operator_update_returns_the_solve_and_its_image(kind):
    """``update(a, t, x0, W x0)`` against :math:`(I + W^T W)^{-1}(a + W^T t)` and its image."""
    import scipy.sparse as sp

    from netopt.formulations.admm.linops import ConvOp, DenseOp, IdentityOp, SparseOp
    from netopt.ir.ops import OPS
    from netopt.ir.ops.conv import conv_matrix as _conv

    rng = np.random.default_rng(3)
    if kind == "identity":
        M = np.eye(6)
        op = IdentityOp(6, t64(np.zeros(6)))
    elif kind in ("dense", "woodbury"):
        M = rng.normal(size=(4, 9)) if kind == "woodbury" else rng.normal(size=(9, 4))
        op = DenseOp(M, t64(np.zeros(M.shape[0])))
        assert op.woodbury == (kind == "woodbury")
    else:
        a = {
            "weight": rng.normal(size=(4, 2, 4, 4)),
            "bias": np.zeros(4),
            "strides": (2, 2),
            "pads": (1, 0, 2, 1),
            "dilations": (1, 1),
            "group": 1,
        }
        shape = (2, 9, 8)
        out = tuple(OPS["conv2d"].infer([shape], a))
        M = _conv(shape, a)[0].toarray()
        if kind == "conv":
            op = ConvOp(a, shape, out, t64(np.zeros(M.shape[0])), cg_iters=300, cg_tol=1e-14)
        else:
            op = SparseOp(sp.csr_matrix(M), t64(np.zeros(M.shape[0])), 300, 1e-14)
    m, n = M.shape
    av, tv, x0 = rng.normal(size=(3, n)), rng.normal(size=(3, m)), rng.normal(size=(3, n))
    ref = np.linalg.solve(np.eye(n) + M.T @ M, (av + tv @ M).T).T
    z, wz = op.update(t64(av), t64(tv), t64(x0), t64(x0 @ M.T))
    np.testing.assert_allclose(z.numpy(), ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(wz.numpy(), ref @ M.T, rtol=1e-8, atol=1e-8)


# ----------------------------------------------------------------------------- ADMM
@pytest.mark.parametrize("order", ["jacobi", "backward"])
def test_admm_linear_network_is_box_least_squares(order):
    from scipy.optimize import lsq_linear

    # LeakyReLU with slope 1 is the identity: a linear network split into three blocks
    net, Ws, bs = mlp_net((6, 8, 7, 5), ["leaky_relu:1.0", "leaky_relu:1.0", None], seed=9)
    A = Ws[2] @ Ws[1] @ Ws[0]
    c = Ws[2] @ (Ws[1] @ bs[0] + bs[1]) + bs[2]
    t = np.random.default_rng(10).normal(size=5) * 3
    ref = lsq_linear(A, t - c, bounds=(-0.5, 0.5), tol=1e-14)
    prob = netopt.Inversion(net, t, norm=2, box=(-0.5, 0.5))
    res = prob.solve(
        "admm",
        dtype="float64",
        order=order,
        max_iter=5000,
        eps_abs=1e-10,
        eps_rel=1e-10,
        eval_every=1,
    )
    assert res.status == Status.FEASIBLE
    np.testing.assert_allclose(res.x, ref.x, atol=1e-5)
    assert res.objective == pytest.approx(np.linalg.norm(A @ ref.x + c - t), abs=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_admm_reaches_small_residuals_on_relu_nets(seed):
    inst = mlp_instance((6, 16, 16, 3), seed, target="realizable", dtype=np.float64)
    # the 2-norm (ADMM's output update is then the smooth squared loss's prox)
    prob = netopt.Inversion(inst.net, inst.target, norm=2, box=(inst.lo, inst.hi))
    res = prob.solve("admm", dtype="float64", max_iter=2000, eps_abs=1e-9, eps_rel=1e-9)
    h = res.extra["history"]
    assert h["primal"][-1] < 1e-5 and h["dual"][-1] < 1e-4
    # the candidate is a true input: its recomputed objective equals the interpreter's
    assert res.objective == prob.objective_of_input(res.x)
    assert res.objective < prob.objective_of_input((inst.lo + inst.hi) / 2)


def test_admm_convnet_with_maxpool_runs_and_improves():
    from helpers.nets import NETS

    path = NETS / "conv" / "Convnet_maxpool.onnx"
    if not path.exists():
        pytest.skip("shared nets absent")
    net = netopt.load(path)
    x0 = np.full(net.input_shape, 0.5)
    prob = CrossEntropy(net, label=3, l2=0.01, box=(0.0, 1.0))
    res = prob.solve("admm", dtype="float64", max_iter=60, rho=1.0, start=x0, cg_iters=20)
    assert res.objective < prob.objective_of_input(x0)
    assert np.all(res.x >= 0) and np.all(res.x <= 1)


def test_admm_refuses_an_op_it_cannot_split_naming_the_node():
    from helpers.nets import make_model
    from onnx import helper

    m = make_model(
        [
            helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc1", transB=1),
            helper.make_node("Sigmoid", ["h"], ["y"], name="squash"),
        ],
        [1, 3],
        [1, 2],
        {"W": np.ones((2, 3)), "b": np.zeros(2)},
    )
    net = netopt.load(m)
    prob = netopt.Inversion(net, [0.5, 0.5], norm=1, box=(-1, 1))
    with pytest.raises(FormulationError, match="(?s)sigmoid.*adam"):
        prob.solve("admm")
    with pytest.raises(FormulationError) as e:
        prob.solve("admm")
    assert any(o.id in str(e.value) for o in net.graph.ops if o.op == "sigmoid")
    # the gradient methods run it
    assert prob.solve("adam", max_iter=50).status == Status.FEASIBLE


def test_admm_batching_over_targets_matches_one_at_a_time():
    inst = mlp_instance((5, 12, 3), 3, target="realizable", dtype=np.float64)
    rng = np.random.default_rng(11)
    targets = [inst.target + rng.normal(scale=0.3, size=3) for _ in range(3)]
    probs = [netopt.Inversion(inst.net, t, norm=1, box=(-1, 1)) for t in targets]
    # the stopping test is batch-wide: switch it off to compare row by row at a fixed count
    kw = {"dtype": "float64", "max_iter": 150, "restarts": 2}
    kw.update(eps_abs=0.0, eps_rel=0.0)
    together = solve_many(probs, "admm", **kw)
    alone = [p.solve("admm", **kw) for p in probs]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.x, b.x, atol=1e-12)
        assert a.objective == pytest.approx(b.objective, abs=1e-12)


def test_admm_divergence_is_a_status_with_the_iteration():
    net, _, _ = mlp_net((3, 2), [None])
    prob = netopt.OutputObjective(net, [1.0, -1.0], sense="min")  # unbounded below, no box
    res = prob.solve("admm", rho=1e-12, max_iter=200, dtype="float64")
    assert res.status == Status.ERROR
    assert res.extra["stop"] in ("diverged", "nan") and "iteration" in res.message


# ----------------------------------------------------------------------------- API, devices
def test_admm_refuses_exact_options_and_any_solver():
    inst = mlp_instance((4, 8, 2), 0)
    prob = netopt.Inversion(inst.net, inst.target, box=(-1, 1))
    with pytest.raises(InputError, match="exact"):
        prob.solve("admm", relax=True)
    # the method runs its own torch iterations: a backend name is refused, naming the method
    # and the device option
    for solver in ("torch", "highs"):
        with pytest.raises(IncompatibleBackendError, match="(?s)'admm'.*device"):
            prob.solve("admm", solver=solver, max_iter=5)
    assert "torch" not in netopt.solvers.available()


def test_importing_admm_does_not_import_torch():
    code = "import sys, netopt.formulations.admm, netopt.torch_utils; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_admm_cuda_matches_cpu():
    inst = mlp_instance((6, 16, 2), 1, dtype=np.float64)
    prob = netopt.Inversion(inst.net, inst.target, box=(-1, 1))
    kw = {"dtype": "float64", "max_iter": 100}
    a, b = prob.solve("admm", device="cuda", **kw), prob.solve("admm", device="cpu", **kw)
    np.testing.assert_allclose(a.x, b.x, atol=1e-8)


def test_admm_cross_entropy_problem():
    net, _, _ = mlp_net((4, 8, 3), ["relu", None], seed=12)
    prob = CrossEntropy(net, label=1, l2=0.1, box=(-2, 2))
    x0 = np.zeros(4)
    res = prob.solve("admm", dtype="float64", max_iter=300, start=x0)
    assert res.objective < prob.objective_of_input(x0)
    assert res.objective == prob.objective_of_input(res.x)
    assert res.certificate.verify(net)["ok"]
