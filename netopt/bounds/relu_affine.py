"""ReLU-splitting domains with every unit's sign fixed: the network is affine on them, and a
domain no single row closed may still be closed by a combination of the rows (an LP per
domain), or hold a counterexample at the LP's point.

A part of :class:`netopt.bounds.branch_relu._ReluSearch`'s rounds, kept apart for size.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from netopt.bounds.proof import combination_claim

#: Domains with every sign fixed closed by an LP over the rows' combinations (one LP each),
#: per round at most (:func:`close_affine`); the rest count as stuck.
AFFINE_PER_ROUND = 4096


def close_affine(
    search: Any,
    idx: np.ndarray,
    sp: list,
    sb: Any,
    ids: np.ndarray,
    depth: np.ndarray,
    t0: float,
) -> np.ndarray | None:
    """The domains of ``search``'s round with every unit's sign fixed that no row closed: each
    closed, where an LP finds one, by a combination of the rows with multipliers of its splits
    (:func:`~netopt.bounds.pieces.affine_rows`), confirmed in rigorous float64 and
    recorded as a leaf with ``"lam"`` and ``"betas"``; the rest are counted ``stuck``.
    Where none closes a domain, the primal LP's point is tried: a counterexample (in the
    float64 interpreter) is returned. ``idx``: the domains' places in the round's batch,
    whose tree ids and depths are ``ids`` and ``depth``; ``t0``: when the search began."""
    from netopt.bounds.opt_tighten import chain64
    from netopt.bounds.pieces import affine_rows, piece_arrays

    t = time.perf_counter()
    if search.chain is None:
        search.chain = chain64(search.net)
    n_all = len(idx)  # every one not closed here stays stuck (the search ends "unknown")
    idx = idx[:AFFINE_PER_ROUND] if search.chain is not None else idx[:0]
    signs = [s[idx].cpu().numpy() for s in sp]
    lows = [p[0].detach()[idx].cpu().double().numpy() for p in sb.pre]
    found: list[tuple] = []
    points: list[np.ndarray] = []
    for q in range(len(idx)):
        if search.dl.expired():
            break  # (one LP each, slower on wide inputs: the time limit and Ctrl-C hold)
        split = [
            (j, int(u), int(s[q, u])) for j, s in enumerate(signs) for u in np.nonzero(s[q])[0]
        ]
        active = [
            (s[q] > 0) | ((s[q] == 0) & (low[q] >= 0)) for s, low in zip(signs, lows, strict=True)
        ]
        res = affine_rows(
            search.C, search.d, search.chain, search.lo[0], search.hi[0], split, active
        )
        if res is not None and res[2] is not None:
            points.append(res[2])
        elif res is not None:
            found.append((idx[q], split, res[0], res[1]))
    closed = np.zeros(len(found), dtype=bool)
    if found:
        splits, betas = piece_arrays(
            [([(j, u) for j, u, _ in sl], [s for _, _, s in sl], bt) for _, sl, _, bt in found],
            search.widths,
        )
        lams = np.stack([f[2] for f in found])
        n = len(found)
        box_lo, box_hi = np.repeat(search.lo, n, axis=0), np.repeat(search.hi, n, axis=0)
        C3, dl = combination_claim(
            search.bc, search.C, search.d, search.margin, box_lo, box_hi, splits, lams
        )
        low, _, _ = search.bc.bound(
            box_lo, box_hi, C3, splits=splits, betas=betas, fixed=search._root_pre()
        )
        closed = low[:, 0] > dl
        # as the proof check does: the activations' bounds recomputed with the splits
        search._reclose(closed, box_lo, box_hi, C3, dl, splits, None, betas)
        ok = np.nonzero(closed)[0]
        params = []
        for q in ok.tolist():
            _, sl, lam, bt = found[q]
            bl = [[j, u, float(v)] for (j, u, _), v in zip(sl, bt, strict=True) if v > 0]
            params.append({"lam": lam.tolist(), **({"betas": bl} if bl else {})})
        if len(ok):
            dom = np.array([found[q][0] for q in ok], dtype=np.int64)
            search.tree.close(ids[dom], lams[ok].argmax(axis=1), params)
            search.stats["leaves"] += len(ok)
            search.volume.add(depth[dom], time.perf_counter() - t0)
    search.stats["affine_closed"] += int(closed.sum())
    search.stats["stuck"] += n_all - int(closed.sum())
    search.stats["t_affine"] += time.perf_counter() - t
    # the primal LPs' points, in the float64 interpreter: one satisfying C f <= d is "sat"
    return search._points(np.stack(points)) if points else None
