"""LP-based bound tightening (optimization-based bound tightening, OBBT).

For each ReLU / LeakyReLU / max-pool layer in turn, every still-unstable input unit ``v_j`` is
minimized and maximized over the LP relaxation of the whole network's big-M model (whose
projection onto each unit is the triangle relaxation), using the current bounds; the new bounds
are propagated forward by interval arithmetic before the next layer. Units already proved stable
are skipped (progressive), values affine in the input need nothing (interval bounds are exact
there), and a time budget stops the work early — every intermediate state is sound.

With ``cutoff`` (the objective of a known point) or the problem's own output constraints
(Feasibility), the LPs also carry them: the bounds then hold on the set of inputs that can still
beat the cutoff (or satisfy the constraints), which is all an exact solve needs — every optimum
lies in that set and the big-M model stays exact on it. This is the tightening from the output
side: the target constrains the last layers, and the LPs carry that back to every layer.

The model and the solver come from the caller's :class:`~netopt.model.LPContext` (the method's
exact model and a warm backend session): the bounds know neither the formulation nor the solver.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from netopt.bounds.compute import Bounds
from netopt.bounds.interval import interval_op
from netopt.control import interrupted
from netopt.ir.ops import is_linear

if TYPE_CHECKING:  # pragma: no cover
    from netopt.model import LinearModel, LPContext
    from netopt.problems import Problem

log = logging.getLogger("netopt")

__all__ = ["tighten_lp", "propagate"]


def propagate(graph, bounds: Bounds, start_after: str | None = None) -> None:
    """Recompute interval bounds forward and intersect them with the current ones (in place)."""
    started = start_after is None
    for op in graph.ops:
        if not started:
            started = start_after in op.inputs
            if not started:
                continue
        lo, hi = interval_op(graph, op, bounds.lo, bounds.hi)
        out = op.outputs[0]
        bounds.lo[out] = np.maximum(bounds.lo[out], lo)
        bounds.hi[out] = np.minimum(bounds.hi[out], hi)


def _affine_in_input(graph) -> set[str]:
    aff = set(graph.inputs)
    for op in graph.ops:
        if is_linear(op) and all(i in aff for i in op.inputs):
            aff.add(op.outputs[0])
    return aff


def tighten_lp(
    problem: Problem,
    bounds: Bounds,
    *,
    lp: LPContext,
    cutoff: float | None = None,
    time_budget: float = 30.0,
    min_gain: float = 0.02,
    probe: float = 0.1,
) -> Bounds:
    """Tighten ``bounds`` (a copy is returned) by LPs over the relaxation; see the module doc.

    Parameters
    ----------
    problem : Problem
        Defines the network, the input domain and (for Feasibility) output constraints.
    bounds : Bounds
        Sound starting bounds (interval or CROWN).
    lp : LPContext
        The exact model (``lp.build``; its LP relaxation is tightened over) and the solver
        (``lp.open``: one warm session per layer, re-solved with a new cost for every unit). The
        solver options, e.g. the exact solve's thread count, are the context's.
    cutoff : float, optional
        Objective value of a known input (minimization sense of the model); adds
        ``objective <= cutoff`` to every LP.
    time_budget : float
        Seconds; the layers not reached keep their bounds.
    min_gain, probe : float
        Each layer's units are visited in a random (seeded) order; after the first ``probe``
        fraction of them (at least 16), if no unit became stable and their widths shrank by less
        than ``min_gain`` on average, the rest of the layer is skipped: its LPs would cost time
        and barely change the model. ``min_gain = 0`` always finishes every layer.

    A run the solver reports as failed proves nothing: the unit keeps its bound, and the number of
    such runs is ``stats["lp_failed"]``.
    """
    t0 = time.perf_counter()
    b = bounds.copy()
    graph = problem.net.graph
    targets = [op for op in graph.ops if op.op in ("relu", "leaky_relu", "maxpool2d")]
    affine = _affine_in_input(graph)
    output_side = cutoff is not None or problem.feasibility
    n_lp = 0
    failed = 0
    improved = 0
    skipped = 0
    for op in targets:
        v = op.inputs[0]
        if v in affine and not output_side:
            continue
        lo, hi = b[v]
        todo = np.nonzero((lo < 0) & (hi > 0))[0] if op.op != "maxpool2d" else np.arange(len(lo))
        if len(todo) == 0:
            continue
        if time.perf_counter() - t0 > time_budget or interrupted():
            break
        model = _relaxation(lp, problem, b, cutoff)
        # one warm session for the layer, re-solved from its basis for every unit
        session = lp.open(model)
        zero = np.zeros(model.n_vars)
        cols = model.blocks[v].reshape(-1)
        new_lo, new_hi = lo.copy(), hi.copy()
        infeasible = False
        todo = np.random.default_rng(0).permutation(todo)
        n_probe = max(16, int(probe * len(todo)))
        for k, j in enumerate(todo):
            if time.perf_counter() - t0 > time_budget or interrupted():
                break
            if k == n_probe and min_gain > 0 and k < len(todo):
                seen = todo[:k]
                gain = 1.0 - (new_hi[seen] - new_lo[seen]) / np.maximum(hi[seen] - lo[seen], 1e-300)
                stabilized = np.any((new_lo[seen] >= 0) | (new_hi[seen] <= 0))
                if not stabilized and float(np.mean(gain)) < min_gain:
                    skipped += len(todo) - k
                    break
            col = int(cols[j])
            for sense in (1.0, -1.0):
                cost = zero.copy()
                cost[col] = sense
                session.update(cost=cost)
                # the LP itself is bounded too: one large LP must not outlast the budget
                raw = session.solve(time_limit=max(0.01, time_budget - (time.perf_counter() - t0)))
                n_lp += 1
                if raw.status == "error":
                    # a failed run proves nothing: this unit keeps its bound
                    failed += 1
                    if failed == 1:
                        log.warning("LP bound tightening: %s (the bound is kept)", raw.message)
                    continue
                if raw.status == "infeasible":
                    infeasible = True
                    break
                if raw.status != "optimal":
                    continue
                # the LP optimum is a valid bound; shave a hair for the solver's tolerances
                val = sense * float(raw.objective)
                tol = 1e-7 * max(1.0, abs(val))
                if sense > 0:
                    new_lo[j] = max(new_lo[j], val - tol)
                else:
                    new_hi[j] = min(new_hi[j], val + tol)
            if infeasible:
                break
        if infeasible:
            # no input satisfies the constraints: an empty relaxation proves it
            b.stats["lp_infeasible"] = True
            break
        new_hi = np.maximum(new_hi, new_lo)
        improved += int(np.sum((new_lo > lo) | (new_hi < hi)))
        b.lo[v], b.hi[v] = new_lo, new_hi
        propagate(graph, b, start_after=v)
    b.method = bounds.method + "+lp"
    b.seconds = bounds.seconds + (time.perf_counter() - t0)
    b.stats["lp_solves"] = n_lp
    b.stats["lp_skipped_units"] = skipped
    b.stats["lp_failed"] = failed
    b.stats["unstable"] = b.unstable(graph)
    log.info(
        "LP tightening: %d LPs, %d intervals tightened, %d units skipped (no gain), %.2f s",
        n_lp,
        improved,
        skipped,
        time.perf_counter() - t0,
    )
    return b


def _relaxation(
    lp: LPContext, problem: Problem, bounds: Bounds, cutoff: float | None
) -> LinearModel:
    """The exact model's LP relaxation, no objective, plus the cutoff row ``c.v <= cutoff - c0``.

    Each LP of the tightening then sets the cost of one column. A tiny slack on the cutoff keeps
    the known point (whose objective is the cutoff) inside.
    """
    model = lp.build(problem, bounds).relaxed()
    c = np.asarray(model.c, dtype=np.float64)
    A, row_lo, row_hi = model.A, model.row_lo, model.row_hi
    if cutoff is not None and np.any(c):
        A = sp.vstack([A, sp.csr_matrix(c[None, :])], format="csr")
        row_lo = np.append(row_lo, -np.inf)
        row_hi = np.append(row_hi, cutoff - model.c0 + 1e-7 * max(1.0, abs(cutoff)))
    return dataclasses.replace(
        model, c=np.zeros(model.n_vars), c0=0.0, Q=None, A=A, row_lo=row_lo, row_hi=row_hi
    )
