"""The box's activation bounds that every domain of a ReLU-splitting search is relaxed on.

A ReLU-splitting search (:mod:`netopt.bounds.branch_relu`) keeps its box and fixes signs, so
the bounds of the activations' inputs over the box hold on every domain: computed once, they
are the relaxation each domain starts from (the torch search's and the float64 confirmation's,
which must be the same). On boxes of more than :data:`OPT_PRE_MIN_INPUTS` inputs they are
alpha-CROWN's optimized ones (each unit's two bounds with slopes of their own,
:meth:`~netopt.bounds.batched.ChainBounds.optimize_pre`), made rigorous in float64 by
:meth:`~netopt.bounds.bab.BatchCrown.bound` (``pre_slopes``) and recorded in the proof
(:attr:`~netopt.bounds.proof_format.BabProof.pre`); else CROWN's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["OPT_PRE_ITERS", "OPT_PRE_MIN_INPUTS", "root_bounds", "torch_bounds"]

#: Adam steps of alpha-CROWN's optimized bounds of the root's activation inputs, which every
#: domain's relaxation then uses; 0: CROWN's. Measured on MNIST 256x2 (a shifted image's
#: disjuncts): 10 steps reached the bounds of 60 within 0.1 %; a property's nine disjuncts took
#: 2921 domains against 53225 on CROWN's bounds (``benchmarks/RESULTS.md``).
OPT_PRE_ITERS = 20
#: ... on boxes of more than this many inputs only (where ``mode="auto"`` splits ReLUs). Measured
#: with ``mode="relu"`` on seeded random chains (2-core CPU, 20 s each): 12-24-24-2 and
#: 20-32-32-32-2 the same or fewer domains (907-9403 against 1205-11761), 4-24-24-24-2 two
#: of three fewer and one more, but 2-16-16-2 far more on two of three seeds (62357 against
#: 265; one undecided where the root's CROWN bounds decide in 19843): with two inputs the
#: branching (filtered smart branching; BaBSR alone gains there too) goes astray on the
#: optimized bounds, for reasons not pinned down.
OPT_PRE_MIN_INPUTS = 8
#: boxes whose bounds are kept per network (a property's disjuncts share one box)
KEEP = 8


def root_bounds(bc: Any, cb: Any, lo: np.ndarray, hi: np.ndarray, stats: dict) -> tuple[list, dict]:
    """``(rows, fixed)`` of the box ``lo``, ``hi`` (``(1, n_in)`` float64): the optimized
    rows (``pre_slopes`` form, empty when not optimized) and the rigorous float64 bounds
    ``{value: (l, u)}`` of every activation input. Kept per box on the network's float64
    engine ``bc`` (a torch engine ``cb`` is per run); the time optimizing goes to
    ``stats["t_pre"]``."""
    cache = bc.__dict__.setdefault("_root_pre", {})
    key = (lo.tobytes(), hi.tobytes(), OPT_PRE_ITERS, OPT_PRE_MIN_INPUTS)
    if key not in cache:
        if len(cache) >= KEEP:
            cache.clear()
        rows = _optimized_rows(cb, lo, hi, stats)
        # (the activations' bounds do not depend on the rows bounded: a zero row)
        n_out = bc.graph.value(bc.graph.outputs[0]).size
        _, _, pre = bc.bound(lo, hi, np.zeros((1, n_out)), pre_slopes=rows or None)
        cache[key] = (rows, {v: (a[0], b[0]) for v, (a, b) in pre.items()})
    return cache[key]


def _optimized_rows(cb: Any, lo: np.ndarray, hi: np.ndarray, stats: dict) -> list:
    if OPT_PRE_ITERS <= 0 or cb.n_act < 2 or lo.shape[1] <= OPT_PRE_MIN_INPUTS:
        return []
    t = time.perf_counter()
    rows = cb.optimize_pre(lo, hi, iters=OPT_PRE_ITERS)[1]
    stats["t_pre"] = time.perf_counter() - t
    # seven decimals (float32's precision, the search's): a shorter proof, and the float64
    # bounds here are the checker's to the last bit (the same slopes)
    return [(j, u, s, [(i, c, np.round(v, 7)) for i, c, v in sl]) for j, u, s, sl in rows]


def torch_bounds(bc: Any, cb: Any, fixed: dict, B: int) -> list:
    """``fixed`` as the torch search's activation bounds, ``(B, n_j)`` per layer."""
    import torch

    return [
        tuple(torch.as_tensor(a, dtype=cb.dtype, device=cb.device).expand(B, -1) for a in fixed[v])
        for v in bc.relu_inputs
    ]
