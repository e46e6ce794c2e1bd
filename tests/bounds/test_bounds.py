"""Bounds are sound on real networks: sampled inputs never leave their intervals.

The LP tightening solves its LPs through the context it is given (:class:`netopt.model.LPContext`):
the tests check its bounds against scipy's LP solver on the same relaxation, count what it asks
of the context, and give it a solver that fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from helpers.nets import REAL_NETS, mlp_net, net_id, require_nets

import netopt
from netopt.bounds import compute_bounds, linear_bounds
from netopt.bounds.lp import tighten_lp
from netopt.formulations.milp import MILP, lp_context
from netopt.ir.interpret import interpret
from netopt.model import LPContext
from netopt.problems import OutputObjective
from netopt.solvers._base import RawSolution

# the conv nets are bounded too, but their CROWN pass is the slow part of the suite
SOUND_NETS = [p for p in REAL_NETS if p.name not in ("cifar_base_kw.onnx",)]


def _violations(graph, b, x) -> int:
    env = interpret(graph, {graph.inputs[0]: x}, keep=True)
    bad = 0
    for v, a in env.items():
        a = a.reshape(len(x), -1)
        bad += int(np.sum(a < b.lo[v] - 1e-9) + np.sum(a > b.hi[v] + 1e-9))
    return bad


@pytest.mark.parametrize("path", SOUND_NETS, ids=[net_id(p) for p in SOUND_NETS])
def test_bounds_are_sound(path):
    require_nets()
    net = netopt.load(path)
    g = net.graph
    rng = np.random.default_rng(0)
    lo = rng.uniform(-1, 0.5, net.input_shape)
    hi = lo + rng.uniform(0.01, 0.5, net.input_shape)
    x = rng.uniform(lo, hi, (300, *net.input_shape))
    # corners too: extreme inputs are where unsound bounds show first
    x = np.concatenate([x, np.where(rng.random((100, *net.input_shape)) < 0.5, lo, hi)])
    for method in ("interval", "crown"):
        b = compute_bounds(g, lo, hi, method)
        assert _violations(g, b, x) == 0, method
    crown = compute_bounds(g, lo, hi, "crown")
    itv = compute_bounds(g, lo, hi, "interval")
    for v in g.values:
        assert np.all(crown.lo[v] >= itv.lo[v] - 1e-9) and np.all(crown.hi[v] <= itv.hi[v] + 1e-9)


@pytest.mark.parametrize(
    "name", ["mlp_10-32-32-2_seed0.onnx", "ACASXU_run2a_1_1_batch_2000.onnx", "conv_mp1.onnx"]
)
def test_lp_tightening_is_sound_and_tighter(name):
    require_nets()
    net = netopt.load(next(p for p in REAL_NETS if p.name == name))
    g = net.graph
    rng = np.random.default_rng(1)
    lo = rng.uniform(-1, 0, net.input_shape)
    hi = lo + 0.5
    prob = OutputObjective(net, np.ones(net.output_shape), box=(lo, hi))
    b = compute_bounds(g, lo, hi, "crown")
    t = tighten_lp(prob, b, lp=lp_context(), time_budget=20)
    x = rng.uniform(lo, hi, (500, *net.input_shape))
    assert _violations(g, t, x) == 0
    assert sum(t.unstable(g).values()) <= sum(b.unstable(g).values())
    for v in g.values:
        assert np.all(t.lo[v] >= b.lo[v] - 1e-9) and np.all(t.hi[v] <= b.hi[v] + 1e-9)


def test_linear_bounds_of_output_combinations():
    require_nets()
    net = netopt.load(next(p for p in REAL_NETS if p.name == "mnist-net_256x2.onnx"))
    g = net.graph
    rng = np.random.default_rng(2)
    x0 = rng.uniform(0, 1, net.input_shape)
    lo, hi = np.clip(x0 - 0.02, 0, 1), np.clip(x0 + 0.02, 0, 1)
    b = compute_bounds(g, lo, hi, "crown")
    C = rng.normal(size=(5, 10))
    cl, cu = linear_bounds(g, b, g.outputs[0], C)
    y = net(rng.uniform(lo, hi, (500, *net.input_shape))) @ C.T
    assert np.all(y >= cl - 1e-9) and np.all(y <= cu + 1e-9)
    # back-substituting C itself beats bounding C times the output's interval
    ol, oh = b[g.outputs[0]]
    il = np.maximum(C, 0) @ ol + np.minimum(C, 0) @ oh
    assert np.all(cl >= il - 1e-9) and np.any(cl > il + 1e-6)


def _small_problem(seed: int = 3):
    """A 3-8-8-1 ReLU network maximized over a box, with its CROWN bounds."""
    net, _, _ = mlp_net((3, 8, 8, 1), ["relu", "relu", None], seed=seed)
    lo, hi = -np.ones(3), np.ones(3)
    prob = OutputObjective(net, np.ones(1), box=(lo, hi), sense="max")
    return prob, compute_bounds(net.graph, lo, hi, "crown")


class _Counting:
    """An :class:`LPContext` around another that counts builds, sessions and re-solves."""

    def __init__(self, inner: LPContext, fail: bool = False) -> None:
        self.inner, self.fail = inner, fail
        self.builds = self.opens = self.solves = 0
        self.limits: list = []

    def context(self) -> LPContext:
        return LPContext(build=self.build, solve=self.solve_once, open=self.open, name="counting")

    def build(self, problem, bounds):
        self.builds += 1
        return self.inner.build(problem, bounds)

    def solve_once(self, model, time_limit=None):
        self.solves += 1
        if self.fail:
            return RawSolution("error", message="no solver")
        return self.inner.solve(model, time_limit=time_limit)

    def open(self, model):
        self.opens += 1
        session = self.inner.open(model)
        outer = self

        class _Session:
            def update(self, **kw):
                session.update(**kw)

            def solve(self, time_limit=None):
                outer.solves += 1
                outer.limits.append(time_limit)
                if outer.fail:
                    return RawSolution("error", message="the solver failed")
                return session.solve(time_limit=time_limit)

        return _Session()


def test_lp_tightening_bounds_are_the_lp_optima():
    """With a cutoff, the first layer's new bounds are min / max of each unit over the LP.

    The reference: the big-M model's relaxation plus the cutoff row, each unit minimized and
    maximized by scipy's ``linprog`` (not the backend session the tightening uses).
    """
    prob, b = _small_problem()
    g = prob.net.graph
    x0 = np.zeros(3)
    # the model minimizes; the cutoff of a maximization is the negated value at a known point
    cutoff = -float(prob.evaluate(prob.net.forward(x0[None]))[0])
    t = tighten_lp(prob, b, lp=lp_context(), cutoff=cutoff, min_gain=0.0, time_budget=1e9)
    assert t.stats["lp_failed"] == 0 and t.stats["lp_solves"] > 0
    v = next(op.inputs[0] for op in g.ops if op.op == "relu")
    m = MILP().build(prob, b).relaxed()
    A = sp.vstack([m.A, sp.csr_matrix(np.asarray(m.c)[None, :])], format="csr")
    row_hi = np.append(m.row_hi, cutoff - m.c0 + 1e-7 * max(1.0, abs(cutoff)))
    row_lo = np.append(m.row_lo, -np.inf)
    fin_hi, fin_lo = np.isfinite(row_hi), np.isfinite(row_lo)
    A_ub = sp.vstack([A[fin_hi], -A[fin_lo]], format="csr")
    b_ub = np.concatenate([row_hi[fin_hi], -row_lo[fin_lo]])
    lo, hi = b[v]
    unstable = np.flatnonzero((lo < 0) & (hi > 0))  # stable units are not tightened
    assert len(unstable) > 0
    for j in unstable:
        col = m.blocks[v].reshape(-1)[j]
        cost = np.zeros(m.n_vars)
        cost[col] = 1.0
        ref = []
        for sense in (1.0, -1.0):
            r = scipy.optimize.linprog(
                sense * cost,
                A_ub=A_ub,
                b_ub=b_ub,
                bounds=np.column_stack([m.lb, m.ub]),
                method="highs",
            )
            assert r.status == 0
            ref.append(sense * r.fun)
        assert t.lo[v][j] == pytest.approx(ref[0], abs=1e-6)
        assert t.hi[v][j] == pytest.approx(max(ref[1], t.lo[v][j]), abs=1e-6)
        assert t.lo[v][j] <= ref[0] and t.hi[v][j] >= ref[1] - 1e-9  # shaved outwards: sound


def test_lp_tightening_solves_through_its_context():
    """Every LP of the tightening is a re-solve of a session the context opened."""
    prob, b = _small_problem()
    c = _Counting(lp_context())
    t = tighten_lp(prob, b, lp=c.context(), min_gain=0.0, time_budget=1e9)
    assert c.opens >= 1 and c.builds == c.opens  # one relaxation and one session per layer
    assert c.solves == t.stats["lp_solves"] > 0
    assert t.stats["lp_failed"] == 0
    assert sum(t.unstable(prob.net.graph).values()) <= sum(b.unstable(prob.net.graph).values())


def test_failed_lps_prove_nothing():
    """A solver that fails every LP leaves every bound as it was and counts the failures."""
    prob, b = _small_problem()
    c = _Counting(lp_context(), fail=True)
    t = tighten_lp(prob, b, lp=c.context(), min_gain=0.0, time_budget=1e9)
    assert t.stats["lp_failed"] == t.stats["lp_solves"] == c.solves > 0
    for v in prob.net.graph.values:
        np.testing.assert_array_equal(t.lo[v], b.lo[v])
        np.testing.assert_array_equal(t.hi[v], b.hi[v])


def test_exact_solve_lends_its_lps_with_its_thread_count(monkeypatch):
    """The MILP's local search and tightening run on the context it builds with ``threads``."""
    prob, _ = _small_problem()
    made: list[_Counting] = []
    threads_seen: list[int | None] = []
    original = MILP.lp_context.__func__

    def spy(cls, backend="highs", *, threads=None):
        threads_seen.append(threads)
        made.append(_Counting(original(cls, backend, threads=threads)))
        return made[-1].context()

    monkeypatch.setattr(MILP, "lp_context", classmethod(spy))
    r = prob.solve("milp", threads=1, n_samples=4)
    assert threads_seen == [1]
    (c,) = made
    assert c.solves > 0 and c.opens > 0  # pattern LPs and tightening LPs went through it
    assert r.status == netopt.Status.OPTIMAL
    # the optimum of a 3-input network: no sampled point beats it
    X = np.random.default_rng(0).uniform(-1, 1, (4000, 3))
    assert r.objective >= float(prob.net.forward(X).max()) - 1e-9


def test_each_lp_gets_what_remains_of_the_budget():
    """Every LP of the tightening is itself bounded by the time left (one large LP must not
    outlast the budget): the limits handed to the sessions are finite and never above it."""
    from netopt.formulations.milp import lp_context

    prob, b = _small_problem()
    c = _Counting(lp_context())
    budget = 1e6
    tighten_lp(prob, b, lp=c.context(), min_gain=0.0, time_budget=budget)
    assert c.limits and all(lim is not None and 0 < lim <= budget for lim in c.limits)
    assert c.limits == sorted(c.limits, reverse=True)  # what remains only shrinks


def test_a_warm_highs_solve_stopped_by_its_limit_is_not_an_answer():
    """HiGHS stopped by a solve's time limit: status time_limit, no point, and not re-run."""
    from netopt.formulations.milp import lp_context

    prob, b = _small_problem()
    lp = lp_context()
    model = lp.build(prob, b).relaxed()
    s = lp.open(model)
    s.update(cost=np.eye(model.n_vars)[0])
    raw = s.solve(time_limit=1e-9)
    assert raw.status == "time_limit" and raw.x is None and raw.bound is None
    assert s.solve().status == "optimal"  # the session's own (unlimited) limit again
