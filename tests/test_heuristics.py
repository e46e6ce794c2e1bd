"""The primal heuristics: the pattern LP and the local search, through the LPs they are lent.

References: the network's own forward pass (a point's activation pattern and objective) and
sampling (no sampled point of a linear region beats the pattern LP's optimum over that region).
"""

from __future__ import annotations

import numpy as np
from helpers.nets import mlp_net

from netopt.formulations.milp import lp_context
from netopt.heuristics import local_search, pattern_lp
from netopt.ir.interpret import interpret
from netopt.model import LPContext
from netopt.problems import OutputObjective
from netopt.solvers._base import RawSolution


def _problem(seed: int = 5) -> OutputObjective:
    net, _, _ = mlp_net((3, 10, 10, 1), ["relu", "relu", None], seed=seed)
    return OutputObjective(net, np.ones(1), box=(-np.ones(3), np.ones(3)))  # minimized


def _pattern(problem: OutputObjective, X: np.ndarray) -> np.ndarray:
    """Each row's ReLU pattern (pre-activation >= 0), all layers concatenated."""
    g = problem.net.graph
    env = interpret(g, {g.inputs[0]: X}, keep=True)
    pre = [env[o.inputs[0]].reshape(len(X), -1) for o in g.ops if o.op == "relu"]
    return np.concatenate(pre, axis=1) >= 0


class _Recording:
    """An :class:`LPContext` around another that records the bounds it builds over."""

    def __init__(self, inner: LPContext, fail: bool = False) -> None:
        self.inner, self.fail = inner, fail
        self.bounds: list = []
        self.solves = 0

    def context(self) -> LPContext:
        return LPContext(build=self.build, solve=self.solve, open=self.inner.open, name="rec")

    def build(self, problem, bounds):
        self.bounds.append(bounds)
        return self.inner.build(problem, bounds)

    def solve(self, model, time_limit=None):
        self.solves += 1
        return (
            RawSolution("error", message="the solver failed")
            if self.fail
            else (self.inner.solve(model, time_limit=time_limit))
        )


def test_pattern_lp_finds_the_best_point_of_the_region():
    prob = _problem()
    g = prob.net.graph
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 3)
    rec = _Recording(lp_context())
    y = pattern_lp(prob, x, lp=rec.context())
    assert y is not None and rec.solves == 1
    # the model was built with every ReLU held on x's side
    (b,) = rec.bounds
    env = interpret(g, {g.inputs[0]: x[None]}, keep=True)
    for op in g.ops:
        if op.op == "relu":
            z = env[op.inputs[0]].reshape(-1)
            lo, hi = b[op.inputs[0]]
            assert np.all(np.where(z >= 0, lo >= 0, hi <= 0))
    assert np.all(y >= -1) and np.all(y <= 1)
    fy = float(prob.evaluate(prob.net.forward(y[None]))[0])
    fx = float(prob.evaluate(prob.net.forward(x[None]))[0])
    assert fy <= fx + 1e-9
    # no sampled point of the same region does better (the network is affine there)
    X = rng.uniform(-1, 1, (20000, 3))
    same = np.all(_pattern(prob, X) == _pattern(prob, x[None]), axis=1)
    assert same.sum() > 0
    assert fy <= float(prob.evaluate(prob.net.forward(X[same])).min()) + 1e-9


def test_pattern_lp_without_a_solution_is_none():
    prob = _problem()
    rec = _Recording(lp_context(), fail=True)
    assert pattern_lp(prob, np.zeros(3), lp=rec.context()) is None
    assert rec.solves == 1


def test_local_search_uses_the_lent_lps_and_returns_its_own_score():
    prob = _problem()
    starts = np.random.default_rng(1).uniform(-1, 1, (6, 3))
    rec = _Recording(lp_context())
    x, v = local_search(prob, starts, lp=rec.context(), time_budget=1e9)
    assert rec.solves > 0
    assert np.all(x >= -1) and np.all(x <= 1)
    assert v == float(prob.evaluate(prob.net.forward(x[None]))[0])
    assert v <= float(prob.evaluate(prob.net.forward(starts)).min())


def test_local_search_survives_failing_lps():
    """Failed pattern LPs cost the polish only: descent's best point still comes back."""
    prob = _problem()
    starts = np.random.default_rng(1).uniform(-1, 1, (6, 3))
    rec = _Recording(lp_context(), fail=True)
    x, v = local_search(prob, starts, lp=rec.context(), time_budget=1e9)
    assert rec.solves > 0
    assert v == float(prob.evaluate(prob.net.forward(x[None]))[0])
    assert v <= float(prob.evaluate(prob.net.forward(starts)).min())
