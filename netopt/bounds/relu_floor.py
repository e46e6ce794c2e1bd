r"""What a ReLU-splitting decision that ran out of time still proves.

A decision "is there :math:`x` in the box with :math:`C f(x) \le d` (every row)?" stopped by its
time limit leaves open domains, each with the slopes and multipliers it inherited and a lower
bound :math:`b \le 0` of one row's (or the rows' combination's) :math:`C_i f - d_i` on it. With
:math:`s` the least of those bounds, every open domain closes for the rows' right-hand sides
lowered to :math:`d' = d + s`, and every leaf closed for :math:`d` is closed for :math:`d'` too.
So the tree, its open domains made leaves, is an "unsat" proof of :math:`C f(x) \le d'`: for an
optimization's decision at threshold :math:`t` (:mod:`netopt.bounds.opt_decide`), a proof that
the objective exceeds :math:`t + s` everywhere, which the proof check re-checks like any other.

Each open domain is bounded once more in rigorous float64 (with its root-box activation bounds,
as the check first tries), and :math:`s` is the least of those bounds, less a margin far above
their rounding; nothing is claimed where any is not finite, where the domains are too many to
bound in the time (:data:`FLOOR_MAX_OPEN`, :data:`FLOOR_SECONDS`), or where several rows are
searched without their combination.

Why: a decision at the incumbent that runs out of time would otherwise prove nothing, and the
bound would stay at what the steps before it proved. Measured on the shared benchmark's
10-32-32-2 ``beyond_ia`` (optimum 3.534209) at 30 s: the decision at the incumbent stops after
13.8 s and its tree proves 3.5027, where the bound stayed at input splitting's 3.2305 without
this and bisection alone proved 3.4521 (``benchmarks/RESULTS.md``). The floor is not monotone
in the search's time (the open domains' inherited parameters), so a later stop may prove less.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from netopt.bounds.relu_domains import betas_of, combination_rows, leaf_params, slopes_of

__all__ = ["FLOOR_MAX_OPEN", "FLOOR_SECONDS", "floor_open"]

#: open domains bounded at most (each a float64 back-substitution)
FLOOR_MAX_OPEN = 65536
#: seconds the float64 bounds of the open domains may take past the time limit; where they
#: take longer nothing is claimed
FLOOR_SECONDS = 3.0
#: domains per float64 call
_CHUNK = 512


def floor_open(
    search: Any, splits: list, slopes: list | None, betas: list | None, mixes: Any, ids: Any
) -> float | None:
    r"""Close the open domains of a stopped ReLU-splitting ``search`` for its rows lowered by
    the least float64 bound among them: the shift :math:`s \le 0` (``search.d`` becomes
    :math:`d + s` and its tree gets the leaves), or None, and nothing changed, where no shift
    is proved.

    ``splits``, ``slopes``, ``betas`` (per layer, rows of every open domain: ``(N, n_j)``,
    ``(N, n_j)``, ``(N, k', n_j)``), ``mixes`` (``(N, k)`` or None) and ``ids`` (the domains'
    tree ids) are the search's open domains as its rounds keep them.
    """
    k = search.C.shape[0]
    N = len(ids)
    if (
        N == 0
        or N > FLOOR_MAX_OPEN
        or slopes is None
        or (k > 1 and mixes is None)
        or search.updating
        or search.n_groups != 1
        or search.stats["stuck"]  # (domains set aside, neither split nor closed)
    ):
        return None
    t0 = time.perf_counter()
    # the row each domain is bounded on: the combination where there are several rows
    rows = np.full(N, k if k > 1 else 0, dtype=np.int64)
    sp = [s.cpu().numpy().astype(np.int64) for s in splits]
    every = slice(None)
    sl = slopes_of(slopes, every)
    bt = betas_of(betas, every, rows, sp)
    mu = None
    if mixes is not None:
        # weights summing to 1 in float64: the float32 ones sum to 1 within about 1e-7, and a
        # combination's claim moves by s times their sum when d moves by s
        mu = mixes.detach().cpu().double().numpy().clip(min=0.0)
        total = mu.sum(axis=1, keepdims=True)
        if not (total > 0).all():
            return None
        mu = mu / total
    gaps = np.empty(N)
    for c0 in range(0, N, _CHUNK):
        took = time.perf_counter() - t0
        if c0 and took * (1 + _CHUNK / c0) > FLOOR_SECONDS:
            return None  # (the next chunk would end past the allowance)
        c = slice(c0, c0 + _CHUNK)
        gaps[c] = search._confirm(
            rows[c],
            [s[c] for s in sp],
            [s[c] for s in sl],
            None if bt is None else [b[c] for b in bt],
            None if mu is None else mu[c],
            gaps=True,
        )
    if np.isnan(gaps).any() or np.isneginf(gaps).any():
        return None
    s = min(float(gaps.min()), 0.0)
    # far above the rounding of d + s and of the combination's slack at d + s (about 1e-15
    # relative): the check, which bounds the same way, finds each leaf closed at d + s
    s -= 1e-9 * (1.0 + abs(s) + float(np.abs(search.d).max()))
    params = leaf_params(sl, bt, np.ones(N, dtype=bool), sp)
    leaf_rows = combination_rows(params, rows, mu, k)
    search.d = search.d + s
    search.tree.close(np.asarray(ids), leaf_rows, params)
    search.stats["leaves"] += N
    search.stats["floor_shift"] = s
    search.stats["t_floor"] = time.perf_counter() - t0
    return s
