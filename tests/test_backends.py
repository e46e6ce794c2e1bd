"""Backend conformance: small models with known optima on every registered backend, then end to end.

Every backend (and, for the Pyomo backend, every solver it drives) runs the same models built with
:class:`~netopt.model.ModelBuilder`; one that is not installed is skipped with the reason, one
that lacks a feature a model needs is skipped as not applicable. A meta-test makes sure a new
backend is added to :data:`CONFIGS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from helpers.nets import make_model
from onnx import helper

import netopt
from netopt import solvers
from netopt.errors import (
    FormulationError,
    IncompatibleBackendError,
    OptionError,
    SolverUnavailableError,
)
from netopt.model import LinearModel, ModelBuilder
from netopt.problems import Inversion

TOL = 1e-6


# --------------------------------------------------------------------------- backend configs
@dataclass(frozen=True)
class Config:
    """One backend (with fixed options) the suite runs on."""

    id: str
    backend: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def cls(self) -> Any:
        return solvers.get(self.backend)

    @property
    def features(self) -> frozenset[str]:
        if self.backend == "pyomo":
            from netopt.solvers.pyomo_backend import PyomoBackend

            return PyomoBackend.spec(self.options["solver"]).features
        return self.cls.features

    def available(self) -> tuple[bool, str]:
        if self.backend == "pyomo":
            return self.cls.solver_available(self.options["solver"])
        return self.cls.available()

    def skip_unless_available(self) -> None:
        ok, why = self.available()
        if not ok:
            pytest.skip(f"{self.id} unavailable: {why}")

    def solve(self, model: LinearModel, **opts: Any) -> Any:
        o = dict(opts)
        if self.options:
            o["options"] = {**self.options, **(o.get("options") or {})}
        return self.cls().solve(model, **o)

    def problem_solve(self, prob: Inversion, **opts: Any) -> Any:
        if self.options:
            opts["options"] = {**self.options, **(opts.get("options") or {})}
        return prob.solve(solver=self.backend, **opts)


CONFIGS = [
    Config("highs", "highs"),
    Config("pyomo-highs", "pyomo", {"solver": "highs"}),
    Config("pyomo-scip", "pyomo", {"solver": "scip"}),
    Config("pyomo-cbc", "pyomo", {"solver": "cbc"}),
    Config("pyomo-glpk", "pyomo", {"solver": "glpk"}),
    Config("gurobi", "gurobi"),
]
CONFIG_IDS = [c.id for c in CONFIGS]


def test_every_backend_is_in_the_suite() -> None:
    # every backend that takes a LinearModel runs this suite; backends of other model types
    # (torch: first-order models, cvxpy: convex subproblems) have their own tests
    linear = {b for b in solvers.available() if "LinearModel" in solvers.get(b).model_types}
    assert {"highs", "gurobi", "pyomo"} <= linear
    missing = sorted(linear - {c.backend for c in CONFIGS})
    assert not missing, (
        f"add a Config for backend(s) {missing} to CONFIGS in tests/test_backends.py"
    )


def test_every_pyomo_solver_is_in_the_suite() -> None:
    from netopt.solvers.pyomo_backend import SOLVERS

    covered = {c.options.get("solver") for c in CONFIGS if c.backend == "pyomo"}
    assert set(SOLVERS) <= covered, f"add Configs for Pyomo solvers {set(SOLVERS) - covered}"


# ------------------------------------------------------------------------------ the models
@dataclass
class Case:
    """A model, its known optimum and status, and the features a backend needs for it."""

    model: LinearModel
    status: str
    objective: float | None = None
    needs: frozenset[str] = frozenset()


def _needs(model: LinearModel) -> frozenset[str]:
    need = set()
    if model.is_mip:
        need.add("integer")
    if model.is_quadratic:
        need.add("quadratic_integer" if model.is_mip else "quadratic")
    if model.start is not None:
        need.add("start")
    return frozenset(need)


def _case(model: LinearModel, status: str, objective: float | None = None) -> Case:
    return Case(model, status, objective, _needs(model))


def _brute_force(model: LinearModel) -> float:
    """The optimum of a pure-integer model by enumeration (the reference for the knapsacks)."""
    assert model.integer.all()
    best = np.inf
    ranges = [
        range(int(np.ceil(lo)), int(np.floor(hi)) + 1)
        for lo, hi in zip(model.lb, model.ub, strict=True)
    ]
    for v in itertools.product(*ranges):
        x = np.asarray(v, dtype=np.float64)
        if model.violation(x) <= 1e-9:
            best = min(best, model.objective_of(x))
    return best


def lp() -> Case:
    """min -x - 2y, x + y <= 4, x + 3y <= 6: the vertex (3, 1), value -5."""
    b = ModelBuilder()
    v = b.add_vars(2, 0.0, 10.0, name="xy")
    b.add_rows([0, 0, 1, 1], [v[0], v[1], v[0], v[1]], [1, 1, 1, 3], -np.inf, [4, 6], 2, name="cap")
    return _case(b.build(np.array([-1.0, -2.0])), "optimal", -5.0)


def binary_milp() -> Case:
    """max 5a + 4b + 3c over binaries with three knapsack rows: 9 at (1, 1, 0); LP relaxation 10.67."""
    b = ModelBuilder()
    z = b.add_vars(3, 0.0, 1.0, integer=True, name="z")
    A = sp.csr_matrix([[2.0, 3, 1], [4, 1, 2], [3, 4, 2]])
    b.add_matrix_rows(A, z, -np.inf, [5.0, 11.0, 8.0], name="knap")
    m = b.build(-np.array([5.0, 4, 3]))
    return _case(m, "optimal", -9.0)


def infeasible_milp() -> Case:
    """2a + 2b = 1 with integer a, b: LP-feasible, integer-infeasible."""
    b = ModelBuilder()
    v = b.add_vars(2, 0.0, 5.0, integer=True, name="ab")
    b.add_rows([0, 0], v, [2.0, 2.0], 1.0, 1.0, 1, name="parity")
    return _case(b.build(np.array([1.0, 1.0])), "infeasible")


def rows_and_fixed() -> Case:
    """Equality, range, free and one-sided rows and a fixed column.

    x0 + x1 + x3 = 3 with x3 fixed at 2, 1 <= x0 - x1 <= 2, min x0 + 2 x1 - x2 over x2 in [0, 1]:
    x0 + x1 = 1, so the objective is 1 + x1 - x2, least at x0 - x1 = 2: x = (1.5, -0.5, 1, 2), -0.5.
    """
    b = ModelBuilder()
    x = b.add_vars(3, [-5.0, -5.0, 0.0], [5.0, 5.0, 1.0], name="x")
    fixed = b.add_vars(1, 2.0, 2.0, name="fixed")
    b.add_rows([0, 0, 0], [x[0], x[1], fixed[0]], [1, 1, 1], 3.0, 3.0, 1, name="eq")
    b.add_rows([0, 0], [x[0], x[1]], [1, -1], 1.0, 2.0, 1, name="range")
    b.add_rows([0, 0], [x[0], x[2]], [1, 1], -np.inf, np.inf, 1, name="free")
    b.add_rows([0, 0], [x[1], x[2]], [1, 1], -np.inf, 10.0, 1)  # in no row block
    return _case(b.build(np.array([1.0, 2.0, -1.0, 0.0])), "optimal", -0.5)


def objective_constant() -> Case:
    """min 3k + 10 over integer k in [-2, 4] with k >= -1.5: k = -1, value 7."""
    b = ModelBuilder()
    k = b.add_vars(1, -2.0, 4.0, integer=True, name="k")
    b.add_rows([0], k, [1.0], -1.5, np.inf, 1, name="floor")
    return _case(b.build(np.array([3.0]), c0=10.0), "optimal", 7.0)


def integer_knapsack() -> Case:
    """max 7a + 9b + 4c, 3a + 4b + 2c <= 17, 5a + 2b + 3c <= 19, integers in [0, 5] (brute force)."""
    b = ModelBuilder()
    v = b.add_vars(3, 0.0, 5.0, integer=True, name="items")
    b.add_matrix_rows(sp.csr_matrix([[3.0, 4, 2], [5, 2, 3]]), v, -np.inf, [17.0, 19.0], name="cap")
    m = b.build(-np.array([7.0, 9, 4]))
    return _case(m, "optimal", _brute_force(m))


def miqp() -> Case:
    """min (x - 1.3)^2 + (y + 0.6)^2 + (z - 0.25)^2, x, y integer, x + y >= 1: 0.45 at (1, 0, 0.25)."""
    b = ModelBuilder()
    xy = b.add_vars(2, -3.0, 3.0, integer=True, name="xy")
    b.add_vars(1, -1.0, 1.0, name="z")  # continuous, in the quadratic term only
    b.add_rows([0, 0], xy, [1.0, 1.0], 1.0, np.inf, 1, name="sum")
    c = np.array([-2.6, 1.2, -0.5])
    m = b.build(c, c0=1.69 + 0.36 + 0.0625, Q=sp.identity(3, format="csr"))
    assert abs(m.objective_of(np.array([1.0, 0.0, 0.25])) - 0.45) < 1e-12
    return _case(m, "optimal", 0.45)


def qp() -> Case:
    """min (x - 0.3)^2 + y over x in [0, 1], y >= x - 0.2: on y = x - 0.2 the slope 2x + 0.4 > 0,
    so x = 0, y = -0.2, value 0.09 - 0.2 = -0.11."""
    b = ModelBuilder()
    v = b.add_vars(2, [0.0, -1.0], [1.0, 1.0], name="xy")
    b.add_rows([0, 0], v, [-1.0, 1.0], -0.2, np.inf, 1, name="link")
    Q = sp.csr_matrix(([1.0], ([0], [0])), shape=(2, 2))
    return _case(b.build(np.array([-0.6, 1.0]), c0=0.09, Q=Q), "optimal", -0.11)


def milp_with_start() -> Case:
    """The integer knapsack with a feasible (non-optimal) starting point."""
    case = integer_knapsack()
    case.model.start = np.array([0.0, 4.0, 0.0])
    assert case.model.violation(case.model.start) == 0
    case.needs = _needs(case.model)
    return case


CASES: dict[str, Callable[[], Case]] = {
    "lp": lp,
    "binary_milp": binary_milp,
    "infeasible_milp": infeasible_milp,
    "rows_and_fixed": rows_and_fixed,
    "objective_constant": objective_constant,
    "integer_knapsack": integer_knapsack,
    "miqp": miqp,
    "qp": qp,
    "milp_with_start": milp_with_start,
}


HIGHS = Config("highs", "highs")


def test_binary_milp_relaxation_differs() -> None:
    """The binary case exercises branching: its LP relaxation is strictly better than 9."""
    HIGHS.skip_unless_available()
    raw = solvers.get("highs")().solve(binary_milp().model.relaxed())
    assert raw.status == "optimal" and raw.objective < -9.0 - 1.0


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_conformance(cfg: Config, case: str) -> None:
    cfg.skip_unless_available()
    c = CASES[case]()
    need = c.needs - {"start"}  # a backend without MIP starts ignores the start
    if not need <= cfg.features:
        pytest.skip(f"{cfg.id} lacks {sorted(need - cfg.features)} (not applicable)")
    raw = cfg.solve(c.model)
    assert raw.status == c.status, raw.message
    assert raw.seconds >= 0 and isinstance(raw.solver_version, str) and raw.solver_version
    if c.status == "infeasible":
        assert raw.x is None and raw.objective is None
        return
    assert raw.x is not None and raw.x.shape == (c.model.n_vars,)
    assert c.model.violation(raw.x) <= TOL
    assert abs(raw.objective - c.objective) <= TOL * max(1.0, abs(c.objective))
    assert abs(c.model.objective_of(raw.x) - raw.objective) <= TOL * max(1.0, abs(c.objective))
    if raw.bound is not None:
        assert raw.bound <= raw.objective + TOL * max(1.0, abs(c.objective))
    if "dual_bound" in cfg.features:
        assert raw.bound is not None, "a backend with dual_bound must report the optimum's bound"


# ----------------------------------------------------------------------- limits and errors
def market_split(m: int = 4, n: int = 30, seed: int = 3) -> LinearModel:
    """A market-split instance (Cornuéjols & Dawande): hard for branch and bound at any size here.

    min sum |s_i| with ``A z + s = d``, binary z; ``z = 0`` (s = d) is a feasible start.
    """
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 100, size=(m, n)).astype(float)
    d = np.floor(A.sum(axis=1) / 2)
    b = ModelBuilder()
    z = b.add_vars(n, 0.0, 1.0, integer=True, name="z")
    sp_ = b.add_vars(m, 0.0, np.inf, name="s_plus")
    sm = b.add_vars(m, 0.0, np.inf, name="s_minus")
    mat = sp.hstack([sp.csr_matrix(A), sp.identity(m), -sp.identity(m)], format="csr")
    b.add_matrix_rows(mat, np.concatenate([z, sp_, sm]), d, d, name="split")
    c = np.r_[np.zeros(n), np.ones(2 * m)]
    model = b.build(c)
    start = np.r_[np.zeros(n), d, np.zeros(m)]
    assert model.violation(start) == 0
    model.start = start
    return model


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_time_limit_returns_incumbent_and_bound(cfg: Config) -> None:
    cfg.skip_unless_available()
    model = market_split()
    raw = cfg.solve(model, time_limit=0.5)
    assert raw.status == "time_limit", raw.message
    assert raw.x is not None and model.violation(raw.x) <= TOL
    if "start" in cfg.features:
        assert raw.objective <= model.objective_of(model.start) + TOL
    if "dual_bound" in cfg.features:
        assert raw.bound is not None and raw.bound <= raw.objective + TOL


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_unknown_common_option(cfg: Config) -> None:
    cfg.skip_unless_available()
    # one error class for every option mistake, naming the option and the valid names
    with pytest.raises(OptionError, match="unknown option.*timelimit.*did you mean time_limit"):
        cfg.solve(lp().model, timelimit=1)


@pytest.mark.parametrize(
    ("cfg", "bad"),
    [
        (Config("pyomo-highs", "pyomo", {"solver": "highs"}), {"no_such_highs_option": 1}),
        (Config("pyomo-scip", "pyomo", {"solver": "scip"}), {"limits/no_such_limit": 1}),
        (Config("gurobi", "gurobi"), {"NoSuchParameter": 1}),
    ],
    ids=["pyomo-highs", "pyomo-scip", "gurobi"],
)
def test_unknown_solver_option(cfg: Config, bad: dict[str, Any]) -> None:
    cfg.skip_unless_available()
    with pytest.raises(OptionError, match=next(iter(bad))):
        cfg.solve(lp().model, options=bad)


def test_pyomo_unknown_solver() -> None:
    Config("pyomo-highs", "pyomo", {"solver": "highs"}).skip_unless_available()
    with pytest.raises(SolverUnavailableError, match="unknown solver 'nosuch'.*pip install"):
        solvers.get("pyomo")().solve(lp().model, options={"solver": "nosuch"})


def test_pyomo_missing_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A solver whose executable is not on PATH names the command that installs it."""
    Config("pyomo-highs", "pyomo", {"solver": "highs"}).skip_unless_available()
    import shutil

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(SolverUnavailableError, match="apt-get install -y coinor-cbc"):
        solvers.get("pyomo")().solve(lp().model, options={"solver": "cbc"})


def test_pyomo_refuses_miqp_on_highs() -> None:
    Config("pyomo-highs", "pyomo", {"solver": "highs"}).skip_unless_available()
    with pytest.raises(IncompatibleBackendError, match="scip"):
        solvers.get("pyomo")().solve(miqp().model)


def test_pyomo_progress_is_called_after_the_solve() -> None:
    """Pyomo has no solver callbacks: progress gets one report, with the final numbers."""
    cfg = Config("pyomo-highs", "pyomo", {"solver": "highs"})
    cfg.skip_unless_available()
    seen: list[dict] = []
    raw = cfg.solve(integer_knapsack().model, progress=seen.append)
    assert (
        len(seen) == 1 and seen[0]["incumbent"] == raw.objective and seen[0]["bound"] == raw.bound
    )


def _gurobi_limited() -> Any:
    cfg = Config("gurobi", "gurobi")
    cfg.skip_unless_available()
    from netopt.solvers.gurobi_backend import licence

    if not licence().size_limited:
        pytest.skip("Gurobi runs on a full licence here: no size limit to hit")
    return cfg


def test_gurobi_over_licence_size() -> None:
    cfg = _gurobi_limited()
    b = ModelBuilder()
    v = b.add_vars(2001, 0.0, 1.0, integer=True, name="v")
    b.add_rows(np.zeros(2001), v, np.ones(2001), -np.inf, 3.0, 1, name="cap")
    with pytest.raises(
        SolverUnavailableError, match=r"2001 variables > 2000.*licence.*solver='highs'"
    ):
        cfg.solve(b.build(-np.ones(2001)))


def test_gurobi_over_licence_quadratic() -> None:
    cfg = _gurobi_limited()
    b = ModelBuilder()
    v = b.add_vars(201, -1.0, 1.0, name="v")
    with pytest.raises(SolverUnavailableError, match=r"201 variables > 200"):
        cfg.solve(b.build(np.zeros(201), Q=sp.identity(201, format="csr")))
    assert v.shape == (201,)


def test_gurobi_inf_or_unbd_with_free_variable() -> None:
    """An unbounded LP comes back 'unbounded' (INF_OR_UNBD is resolved by a re-solve)."""
    cfg = Config("gurobi", "gurobi")
    cfg.skip_unless_available()
    b = ModelBuilder()
    v = b.add_vars(2, -np.inf, np.inf, integer=[True, False], name="v")
    b.add_rows([0, 0], v, [1.0, -1.0], 0.0, np.inf, 1, name="r")
    raw = cfg.solve(b.build(np.array([-1.0, 0.0])))
    assert raw.status == "unbounded"


def test_progress_callback() -> None:
    """Gurobi reports progress from its MIP callback, about once a second, while it runs."""
    cfg = Config("gurobi", "gurobi")
    cfg.skip_unless_available()
    seen: list[dict] = []
    raw = cfg.solve(market_split(), time_limit=1.2, progress=seen.append)
    assert raw.status == "time_limit"
    assert seen and {"incumbent", "bound", "gap", "nodes", "time"} <= set(seen[0])


# ------------------------------------------------------------------------------ end to end
def relu_net(
    sizes: tuple[int, ...], seed: int
) -> tuple[netopt.Network, list[tuple[np.ndarray, np.ndarray]]]:
    """A ReLU MLP (Gemm, then Relu after every hidden layer) built in memory, and its weights."""
    rng = np.random.default_rng(seed)
    nodes, inits, layers, cur = [], {}, [], "x"
    last = len(sizes) - 2
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        W, bias = rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) * 0.3
        inits[f"W{k}"], inits[f"b{k}"] = W, bias
        layers.append(
            (W.astype(np.float32).astype(np.float64), bias.astype(np.float32).astype(np.float64))
        )
        pre = "y" if k == last else f"g{k}"
        nodes.append(
            helper.make_node("Gemm", [cur, f"W{k}", f"b{k}"], [pre], transB=1, name=f"gemm{k}")
        )
        if k < last:
            nodes.append(helper.make_node("Relu", [pre], [f"h{k}"], name=f"relu{k}"))
            cur = f"h{k}"
    return netopt.load(make_model(nodes, [1, sizes[0]], [1, sizes[-1]], inits)), layers


@pytest.fixture(scope="module")
def small_net() -> tuple[netopt.Network, np.ndarray]:
    net, _ = relu_net((3, 8, 6, 2), seed=1)
    # a target the net cannot reach: the output of an input outside the box, pushed further
    y = net.forward(np.full((1, 3), 1.7))[0] + np.array([0.4, -0.3])
    return net, y


E2E = [c for c in CONFIGS if c.id in ("highs", "pyomo-highs", "pyomo-scip", "gurobi")]


@pytest.mark.parametrize("norm", [1, "inf"])
def test_inversion_same_optimum_on_every_backend(small_net: Any, norm: Any) -> None:
    HIGHS.skip_unless_available()
    net, y = small_net
    vals: dict[str, float] = {}
    for cfg in E2E:
        if not cfg.available()[0]:
            continue
        res = cfg.problem_solve(Inversion(net, y, norm=norm, box=(-1.0, 1.0)))
        assert res.status.name == "OPTIMAL", (cfg.id, res.message)
        assert res.bound <= res.objective + TOL
        vals[cfg.id] = res.objective
    assert "highs" in vals
    ref = vals["highs"]
    assert ref > 1e-3  # the target is out of reach: a non-trivial optimum
    for k, v in vals.items():
        assert abs(v - ref) <= TOL * max(1.0, ref), (k, v, ref)


def _pattern_qp_brute_force(layers: list, y: np.ndarray, lo: float, hi: float) -> float:
    """min ||f(x) - y||_2 for a one-hidden-layer ReLU net: one convex QP per activation pattern.

    On the polytope where the pattern ``s`` holds, ``f(x) = W2 D_s (W1 x + b1) + b2`` is affine,
    so each piece is a QP (solved by HiGHS's QP solver, independent of Gurobi's MIQP).
    """
    import highspy

    (W1, b1), (W2, b2) = layers
    n_in, n_h = W1.shape[1], W1.shape[0]
    best = np.inf
    for s in itertools.product((0.0, 1.0), repeat=n_h):
        D = np.diag(s)
        M = W2 @ D @ W1
        m = W2 @ D @ b1 + b2 - y
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.addVars(n_in, np.full(n_in, lo), np.full(n_in, hi))
        h.changeColsCost(n_in, np.arange(n_in, dtype=np.int32), 2 * M.T @ m)
        for i in range(n_h):  # active: W1 x + b1 >= 0, inactive: <= 0
            lo_r, hi_r = (-b1[i], highspy.kHighsInf) if s[i] else (-highspy.kHighsInf, -b1[i])
            h.addRow(lo_r, hi_r, n_in, np.arange(n_in, dtype=np.int32), W1[i])
        H = 2 * M.T @ M
        low = sp.csc_matrix(np.tril(H))  # HiGHS takes the lower triangle, column-wise
        hess = highspy.HighsHessian()
        hess.dim_, hess.format_ = n_in, highspy.HessianFormat.kTriangular
        hess.start_, hess.index_, hess.value_ = (
            low.indptr.tolist(),
            low.indices.tolist(),
            low.data.tolist(),
        )
        h.passHessian(hess)
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            val = h.getInfo().objective_function_value + float(m @ m)
            best = min(best, np.sqrt(max(val, 0.0)))
    return float(best)


def test_norm2_on_gurobi_is_between_inf_and_1_and_matches_brute_force() -> None:
    net, layers = relu_net((2, 5, 2), seed=4)
    y = net.forward(np.full((1, 2), 2.0))[0] + np.array([0.3, -0.2])
    gur = Config("gurobi", "gurobi")
    gur.skip_unless_available()
    HIGHS.skip_unless_available()
    r2 = gur.problem_solve(Inversion(net, y, norm=2, box=(-1.0, 1.0)))
    rinf = Inversion(net, y, norm="inf", box=(-1.0, 1.0)).solve(solver="highs")
    r1 = Inversion(net, y, norm=1, box=(-1.0, 1.0)).solve(solver="highs")
    assert r2.status.name == "OPTIMAL", r2.message
    assert rinf.objective - TOL <= r2.objective <= r1.objective + TOL
    ref = _pattern_qp_brute_force(layers, y, -1.0, 1.0)
    assert abs(r2.objective - ref) <= 1e-5 * max(1.0, ref), (r2.objective, ref)
    assert r2.bound <= r2.objective + 1e-5
    # SCIP's MIQP through Pyomo agrees
    scip = Config("pyomo-scip", "pyomo", {"solver": "scip"})
    if scip.available()[0]:
        rs = scip.problem_solve(Inversion(net, y, norm=2, box=(-1.0, 1.0)))
        assert abs(rs.objective - r2.objective) <= 1e-5 * max(1.0, ref)


def test_norm2_on_highs_is_refused(small_net: Any) -> None:
    net, y = small_net
    with pytest.raises(FormulationError, match="gurobi"):
        Inversion(net, y, norm=2, box=(-1.0, 1.0)).solve(solver="highs")


def test_unknown_option_end_to_end(small_net: Any) -> None:
    net, y = small_net
    Config("pyomo-highs", "pyomo", {"solver": "highs"}).skip_unless_available()
    with pytest.raises(OptionError, match="time_limt.*did you mean time_limit"):
        Inversion(net, y, norm=1, box=(-1.0, 1.0)).solve(solver="pyomo", time_limt=3)


def _milp_model(net: netopt.Network, y: np.ndarray, box: tuple[Any, Any]) -> LinearModel:
    from netopt.bounds import compute_bounds
    from netopt.formulations.milp import MILP

    prob = Inversion(net, y, norm=1, box=box)
    return MILP().build(prob, compute_bounds(net.graph, prob.domain.lo, prob.domain.hi, "crown"))


def test_pyomo_model_is_readable(small_net: Any) -> None:
    Config("pyomo-highs", "pyomo", {"solver": "highs"}).skip_unless_available()
    from netopt.solvers.pyomo_backend import to_pyomo

    net, y = small_net
    model = _milp_model(net, y, (-1.0, 1.0))
    pm = to_pyomo(model)
    names = {c.local_name for c in pm.component_objects(descend_into=False)}
    values = {v for o in net.graph.ops for v in o.outputs} | set(net.graph.inputs)
    assert values <= names, values - names
    assert values <= set(pm.netopt_values)
    for vid in values:  # the indexed Var (or Reference) of a value is in its flattened order
        comp = pm.netopt_values[vid]
        assert len(comp) == model.blocks[vid].size
        assert pm.component(vid).component(vid) is comp
    assert any(n.endswith(".z") for n in names)  # the ReLUs' binaries
    assert {op.id for op in net.graph.ops if op.op in ("affine", "relu")} <= {
        n.removesuffix("_rows") for n in pm.netopt_rows
    }
    # every column has exactly one VarData, and every row is in exactly one block
    assert len({id(v) for v in pm.netopt_columns}) == model.n_vars
    assert sum(len(r) for r in pm.netopt_rows.values()) == model.n_rows


def test_pyomo_user_constraint_changes_the_optimum(small_net: Any) -> None:
    """x[0] >= a added in Pyomo gives the optimum of the problem whose box starts at a."""
    Config("pyomo-highs", "pyomo", {"solver": "highs"}).skip_unless_available()
    import pyomo.environ as pyo

    from netopt.solvers.pyomo_backend import PyomoBackend, to_pyomo

    HIGHS.skip_unless_available()
    net, y = small_net
    base = Inversion(net, y, norm=1, box=(-1.0, 1.0)).solve(solver="highs")
    a = float(np.clip(base.x[0] + 0.8, -1.0, 1.0)) if base.x[0] < 0.2 else float(base.x[0] - 0.8)
    model = _milp_model(net, y, (-1.0, 1.0))
    pm = to_pyomo(model)
    x = pm.netopt_values[model.meta["input"]]
    if a > base.x[0]:
        pm.mine = pyo.Constraint(expr=x[0] >= a)
        lo, hi = np.array([a, -1.0, -1.0]), np.ones(3)
    else:
        pm.mine = pyo.Constraint(expr=x[0] <= a)
        lo, hi = -np.ones(3), np.array([a, 1.0, 1.0])
    raw = PyomoBackend().solve_pyomo(pm, model)
    assert raw.status == "optimal"
    cols = model.blocks[model.meta["input"]].reshape(-1)
    assert (raw.x[cols[0]] - a) * np.sign(a - base.x[0]) >= -TOL
    ref = Inversion(net, y, norm=1, box=(lo, hi)).solve(solver="highs")
    assert ref.objective > base.objective + 1e-4  # the constraint cuts the old optimum off
    assert abs(raw.objective - ref.objective) <= TOL * max(1.0, ref.objective)
    assert (
        abs(
            Inversion(net, y, norm=1, box=(-1.0, 1.0)).objective_of_input(raw.x[cols])
            - raw.objective
        )
        <= 1e-5
    )


def test_gurobi_over_licence_size_end_to_end() -> None:
    """An inversion whose MILP exceeds the pip licence fails before Gurobi is called, clearly."""
    cfg = _gurobi_limited()
    net, _ = relu_net((4, 1100, 2), seed=0)
    # an unreachable target: a reachable one is certified by the local search alone (bound 0)
    prob = Inversion(net, np.full(2, 1e3), norm=1, box=(-1.0, 1.0))
    with pytest.raises(SolverUnavailableError, match=r"variables > 2000.*full licence.*'highs'"):
        # a short time limit also keeps any bound tightening before the build short
        cfg.problem_solve(prob, bounds="interval", time_limit=3.0)
