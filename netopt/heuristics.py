"""Primal heuristics: good inputs, fast, to seed exact solvers and to answer quickly.

* :func:`descent` — projected Adam on the problem's (sub)gradient from many starts at once, in
  float64 numpy (the reverse pass is :func:`netopt.ir.interpret.vjp`), so it needs no torch;
* :func:`pattern_lp` — fixes the activation pattern of a point and solves the LP over that
  linear region (the network is affine there): the best point of the region, exactly;
* :func:`local_search` — alternates the two from the best starts.

The pattern LP's model and solver come from the caller's :class:`~netopt.model.LPContext` (the
method's exact model and a backend): the heuristics know neither the formulation nor the solver.
Every point returned lies in the domain and is scored by the float64 reference interpreter.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from netopt.control import interrupted
from netopt.ir.interpret import interpret, vjp

if TYPE_CHECKING:  # pragma: no cover
    from netopt.model import LPContext
    from netopt.problems import Problem

log = logging.getLogger("netopt")

__all__ = ["descent", "pattern_lp", "local_search"]


def _scores(problem: Problem, X: np.ndarray) -> np.ndarray:
    v = problem.evaluate(problem.net.forward(X))
    return v if problem.sense == "min" else -v


def _out_grad(problem: Problem, y: np.ndarray) -> np.ndarray:
    """A subgradient of the (minimized) objective with respect to the flattened output."""
    from netopt.problems import Feasibility, Inversion, OutputObjective

    B = len(y)
    yf = y.reshape(B, -1)
    if isinstance(problem, Inversion):
        w, t = problem.weights.reshape(-1), problem.target.reshape(-1)
        r = w * (yf - t)
        if problem.norm == 1:
            return w * np.sign(r)
        if problem.norm == 2:
            n = np.sqrt((r**2).sum(axis=1, keepdims=True))
            return w * r / np.maximum(n, 1e-12)
        g = np.zeros_like(yf)
        j = np.abs(r).argmax(axis=1)
        g[np.arange(B), j] = (w * np.sign(r))[np.arange(B), j]
        return g
    if isinstance(problem, OutputObjective):
        c = problem.c.reshape(-1)
        return np.broadcast_to(c if problem.sense == "min" else -c, yf.shape).copy()
    if isinstance(problem, Feasibility):
        r = yf @ problem.C.T - problem.d
        j = r.argmax(axis=1)
        return problem.C[j]
    raise TypeError(type(problem).__name__)


def descent(
    problem: Problem, X: np.ndarray, iters: int = 200, lr: float | None = None
) -> np.ndarray:
    """Projected Adam from every row of ``X``; returns the final points (projected)."""
    dom = problem.domain
    g = problem.net.graph
    inp = g.inputs[0]
    X = np.array(X, dtype=np.float64)
    width = np.where(np.isfinite(dom.hi - dom.lo), dom.hi - dom.lo, 2.0)
    step = (0.02 * width) if lr is None else lr
    m = np.zeros_like(X)
    v = np.zeros_like(X)
    b1, b2 = 0.9, 0.999
    for k in range(1, iters + 1):
        env = interpret(g, {inp: X}, keep=True)
        gy = _out_grad(problem, env[g.outputs[0]])
        gx = vjp(g, env, {g.outputs[0]: gy})[inp]
        m = b1 * m + (1 - b1) * gx
        v = b2 * v + (1 - b2) * gx**2
        X = X - step * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + 1e-12)
        X = np.clip(X, dom.lo, dom.hi)
    return np.stack([dom.project(x) for x in X])


def pattern_lp(
    problem: Problem,
    x: np.ndarray,
    bounds=None,
    *,
    lp: LPContext,
    time_limit: float | None = None,
) -> np.ndarray | None:
    """The best point of ``x``'s linear region (its ReLU pattern fixed), by one LP.

    Every (leaky) ReLU input ``z_j`` is held on its side at ``x`` (``z_j >= 0`` or ``z_j <= 0``),
    by its bounds; the exact model over those bounds (``lp.build``) then has no binaries, and on
    that region the network is affine, so ``lp.solve`` returns the region's best point.

    Returns None when the region's LP cannot be solved (or the network has max-pools, whose
    pattern is not a box constraint, or the objective is quadratic).
    """
    from netopt.bounds import Bounds, compute_bounds

    g = problem.net.graph
    if any(o.op == "maxpool2d" for o in g.ops):
        return None
    dom = problem.domain
    if bounds is None:
        bounds = compute_bounds(g, dom.lo, dom.hi, "interval")
    env = interpret(g, {g.inputs[0]: np.asarray(x, dtype=np.float64)[None]}, keep=True)
    b = Bounds(
        {k: v.copy() for k, v in bounds.lo.items()},
        {k: v.copy() for k, v in bounds.hi.items()},
        "pattern",
    )
    for o in g.ops:
        if o.op in ("relu", "leaky_relu"):
            z = env[o.inputs[0]].reshape(-1)
            lo, hi = b[o.inputs[0]]
            # fix each unit to its side at x: the model then has no binaries
            b.lo[o.inputs[0]] = np.where(z >= 0, np.maximum(lo, 0.0), lo)
            b.hi[o.inputs[0]] = np.where(z >= 0, hi, np.minimum(hi, 0.0))
    try:
        model = lp.build(problem, b)
    except Exception as e:  # an empty region or a bound issue: no polish
        log.debug("pattern LP not built: %s", e)
        return None
    if model.is_quadratic:
        return None  # the 2-norm's region problem is a QP; descent alone serves it
    raw = lp.solve(model, time_limit=time_limit)  # stopped by the limit: no polish
    if raw.status != "optimal" or raw.x is None:
        return None
    return dom.project(raw.x[model.blocks[g.inputs[0]].reshape(-1)])


def local_search(
    problem: Problem,
    starts: np.ndarray,
    *,
    lp: LPContext,
    time_budget: float = 5.0,
    keep: int = 8,
    iters: int = 150,
    rounds: int = 4,
) -> tuple[np.ndarray, float]:
    """Descent from all ``starts``, then alternate pattern LPs and short descents on the best.

    ``lp`` builds and solves the pattern LPs (:func:`pattern_lp`). Returns the best point and its
    (minimized) objective.
    """
    t0 = time.perf_counter()
    X = descent(problem, starts, iters=iters)
    pool = np.concatenate([starts, X])
    s = _scores(problem, pool)
    order = np.argsort(s)[:keep]
    best_x, best = pool[order[0]], float(s[order[0]])
    for x in pool[order]:
        cur, cur_s = x, float(_scores(problem, x[None])[0])
        for _ in range(rounds):
            if time.perf_counter() - t0 > time_budget or interrupted():
                break
            left = max(0.01, time_budget - (time.perf_counter() - t0))
            y = pattern_lp(problem, cur, lp=lp, time_limit=left)
            if y is None:
                break
            cand = np.concatenate([y[None], descent(problem, y[None], iters=30)])
            cs = _scores(problem, cand)
            k = int(np.argmin(cs))
            if cs[k] >= cur_s - 1e-12:
                break
            cur, cur_s = cand[k], float(cs[k])
        if cur_s < best:
            best_x, best = cur, cur_s
        if time.perf_counter() - t0 > time_budget or interrupted():
            break
    return best_x, best
