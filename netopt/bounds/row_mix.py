r"""A disjunct's rows combined: the weights that best close a box where no row alone does.

A disjunct of a property is violated at :math:`x` when every one of its rows is,
:math:`C_i f(x) \le d_i` for all :math:`i`; a box is free of violations when, at every point,
*some* row holds strictly. No single row need hold on the whole box: where two outputs cross
(ACAS Xu's tightest points often sit where two advisories score within 1e-5 of each other),
each row dips below its threshold on one side of the crossing, and splitting the box until each
piece lies on one side costs depth without end near the crossing. A nonnegative combination
:math:`\lambda^\top (C f - d) > 0` on the whole box suffices instead (at a violation every term
is :math:`\le 0`), and its CROWN bound can be positive where no row's is.

:func:`best_mix` chooses the weights from the rows' linear lower bounds that the search has
already (each row's :math:`\ell_i(x) = a_i^\top x + b_i \le C_i f(x) - d_i` on the box): the
combination of two rows whose lower bound over the box is largest,

.. math::

    \max_{t \in [0, 1]} \; \min_{x \in [l, u]} \; t\,\ell_i(x) + (1 - t)\,\ell_j(x),

a concave, piecewise-linear function of :math:`t`, whose maximum is at an end or where a
coefficient of :math:`t a_i + (1 - t) a_j` changes sign (one breakpoint per input): exact
for the pair, a handful of candidates per box. Pairs, not the whole simplex: the crossings
that stop a search are of two outputs; the best combination of more rows is an LP per box,
which the pieces' LPs solve where a box is nearly linear
(:func:`~netopt.bounds.input_relu.close_by_pieces`).

The weights are a choice, never a claim: the box closes only when the rigorous float64 bound of
the combined row, with what rounding can take from combining (:func:`combination_over`), is
positive, as :func:`netopt.bounds.proof.check_proof` re-checks it.
"""

from __future__ import annotations

import time
from itertools import combinations
from typing import Any

import numpy as np

__all__ = ["MIX_MAX_INPUTS", "MIX_MAX_ROWS", "best_mix", "close_by_mix", "combination_over"]

#: Inputs up to which :func:`best_mix` is tried (it evaluates one candidate per input and pair
#: of rows, each over every input: quadratic in the inputs); input splitting is for low
#: dimensions.
MIX_MAX_INPUTS = 16

#: The rows of a box paired by :func:`best_mix`: those of the highest bounds (the pairs grow
#: with the square of the rows, and a row far below the best rarely helps a combination).
MIX_MAX_ROWS = 6


def _box_min(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """:math:`\\min_{x \\in [lo, hi]} a^\\top x` over the last axis (``lo``, ``hi``
    broadcast)."""
    return np.minimum(a * lo, a * hi).sum(axis=-1)


def best_mix(
    s: np.ndarray, coef: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""Per box, the weights of the best combination of two of its rows, and its bound.

    Parameters
    ----------
    s : (B, k)
        Each row's lower bound over the box, :math:`\min_x \ell_i(x)` (``C f - d`` less any
        margin the caller wants).
    coef : (B, k, n)
        Each row's input coefficients :math:`a_i` (the linear bound whose minimum ``s`` is).
    lo, hi : (B, n)
        The boxes.

    Returns
    -------
    lam : (B, k)
        Weights, nonnegative, summing to 1, on at most two rows.
    value : (B,)
        The combination's lower bound over the box,
        :math:`\min_x \sum_i \lambda_i \ell_i(x)` (at least the best row's ``s``): a
        float estimate for choosing, not a rigorous bound.
    """
    # (a NaN bound is no bound: -inf, never chosen; infinities stay as they are)
    s = np.asarray(s, dtype=np.float64)
    s = np.where(np.isnan(s), -np.inf, s)
    A = np.asarray(coef, dtype=np.float64)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    B, k = s.shape
    ar = np.arange(B)
    best = s.argmax(axis=1)
    lam = np.zeros((B, k))
    lam[ar, best] = 1.0
    value = s[ar, best]
    if k < 2 or B == 0:
        return lam, value
    # the rows paired: each box's MIX_MAX_ROWS of the highest bounds
    top = np.argsort(-s, axis=1, kind="stable")[:, :MIX_MAX_ROWS]
    kt = top.shape[1]
    s_t, A_t = s[ar[:, None], top], A[ar[:, None], top]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        # each row's constant: l_i(x) = a_i x + c_i with min_x l_i = s_i
        c = s_t - _box_min(A_t, lo[:, None, :], hi[:, None, :])
        pairs = np.array(list(combinations(range(kt), 2)))
        Ai, Aj = A_t[:, pairs[:, 0]], A_t[:, pairs[:, 1]]  # (B, P, n)
        ci, cj = c[:, pairs[:, 0]], c[:, pairs[:, 1]]  # (B, P)
        # where t a_i + (1 - t) a_j changes sign, input by input
        t = Aj / (Aj - Ai)
        t = np.where(np.isfinite(t) & (t > 0) & (t < 1), t, 0.0)  # (B, P, n); 0: a row alone
        T = t[..., None]  # (B, P, K=n, 1)
        mix = T * Ai[:, :, None, :] + (1 - T) * Aj[:, :, None, :]  # (B, P, K, n)
        val = (
            _box_min(mix, lo[:, None, None, :], hi[:, None, None, :])
            + t * ci[..., None]
            + (1 - t) * cj[..., None]
        )
    flat = val.reshape(B, -1)
    flat = np.where(np.isnan(flat), -np.inf, flat)
    q = flat.argmax(axis=1)
    v = flat[ar, q]
    better = v > value
    p, kk = np.divmod(q, t.shape[2])
    tb = t[ar, p, kk]
    b = np.nonzero(better)[0]
    lam[b] = 0.0
    lam[b, top[b, pairs[p[b], 0]]] = tb[b]
    lam[b, top[b, pairs[p[b], 1]]] = 1.0 - tb[b]
    value = np.where(better, v, value)
    return lam, value


def combination_over(
    bc: Any,
    C: np.ndarray,
    d: np.ndarray,
    margin: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    lams: np.ndarray,
) -> np.ndarray:
    r"""By how much each box's combination :math:`\lambda^\top (C f - d)` is rigorously above
    its margin: positive where the box closes on it (for the exact network).

    ``C``, ``d``, ``margin`` are the disjunct's rows (a proof's ``C``, ``d``) and ``lams``
    ``(B, k)`` their weights. The rigorous float64 CROWN bound
    (:class:`~netopt.bounds.bab.BatchCrown`) of the row :math:`\mathrm{fl}(\lambda^\top C)`,
    formed leaf by leaf as the proof check forms it (the same rounding), less
    :math:`\mathrm{fl}(\lambda^\top (d + \text{margin}))` and
    :func:`~netopt.bounds.proof.combination_slack`'s rounding term, as
    :func:`~netopt.bounds.proof.combination_claim` and the check take it; the output bounds
    :math:`F` the slack needs come from the same pass (rows :math:`\pm e_j` beside the combined
    row: the intermediate bounds are the box's either way). The margin also takes
    :math:`10^{-9} (|\lambda|^\top |C|) F`: the check bounds the row in a pass of its own,
    whose float products may round otherwise, by a share of the outputs' scale rather than of
    ``d``'s.
    """
    from netopt.bounds.proof import leaf_rows, slack_of

    m = C.shape[1]
    B = len(lo)
    if B == 0:
        return np.zeros(0)
    eye = np.eye(m)
    rows = np.concatenate(
        [leaf_rows(lams, C)[:, None, :], np.broadcast_to(np.vstack([eye, -eye]), (B, 2 * m, m))],
        axis=1,
    )
    low, _, _ = bc.bound(lo, hi, rows)
    F = np.maximum(np.abs(low[:, 1 : 1 + m]), np.abs(low[:, 1 + m :]))
    scale = 1e-9 * ((np.abs(lams) @ np.abs(C)) * F).sum(axis=1)
    need = lams @ (d + margin) + slack_of(low[:, 1:], C, d, lams) + scale
    with np.errstate(invalid="ignore"):
        over = low[:, 0] - need
    # (NaN, from an infinite bound and slack: not above)
    return np.where(np.isnan(over), -np.inf, over)


def close_by_mix(
    search: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    s: np.ndarray,
    coef: np.ndarray,
    P: np.ndarray,
    opn: np.ndarray,
    ids: np.ndarray,
    depth: np.ndarray,
) -> np.ndarray:
    r"""The open (box, disjunct) pairs (``(B, G)``) of a round of input splitting that a
    combination of the disjunct's rows closes where none of its rows does.

    ``search`` is the run (:class:`netopt.bounds.branch_input._InputSearch`: its rows, engines,
    tree and statistics); ``s``, ``coef``, ``P`` the boxes' float32 bounds ``C f - d``, their
    input coefficients and activation bounds. The weights come from the rows' linear bounds
    (:func:`best_mix`), the combined row's float32 bound (``final_rows``) chooses which boxes
    float64 checks, and the claim :math:`\lambda^\top (C f - d) > 0` is
    :func:`combination_over`'s. Each box closed becomes a leaf carrying its weights
    (``"lam"``, over the disjunct's rows).
    """
    t = time.perf_counter()
    st = search.stats
    shut = np.zeros_like(opn)
    for g in range(search.n_groups):
        rg = search._rows_of(g)
        idx = np.nonzero(opn[:, g])[0]
        if len(rg) < 2 or not len(idx):
            continue
        Cg, dg, mg = search.C[rg], search.d[rg], search.margin[rg]
        lam, _ = best_mix(s[idx][:, rg] - mg, coef[idx][:, rg], lo[idx], hi[idx])
        # a real mix: one better than the best row (each row alone was tried)
        real = lam.max(axis=1) < 1
        j, lam = idx[real], lam[real]
        if len(j) and search.np_engine is not None:
            # the combined row's own float32 bound (tighter than the rows' combined: its
            # relaxation lines are chosen for it) chooses what float64 confirms
            low = search.np_engine.final_rows(lo[j], hi[j], P[j], (lam @ Cg)[:, None])
            c = low[:, 0] - lam @ (dg + mg) > 0
            j, lam = j[c], lam[c]
        if not len(j):
            continue
        st["mix_tried"] += len(j)
        tc = time.perf_counter()
        ok = combination_over(search.bc, Cg, dg, mg, lo[j], hi[j], lam) > 0
        st["t_check"] += time.perf_counter() - tc
        st["float64_reopened"] += int((~ok).sum())
        if not ok.any():
            continue
        jj, lam = j[ok], lam[ok]
        search.tree.close(ids[jj], lam.argmax(axis=1), [{"lam": w.tolist()} for w in lam], g)
        shut[jj, g] = True
        st["leaves"] += len(jj)
        st["mix_closed"] += len(jj)
        st["depth"] = max(st["depth"], int(depth[jj].max()))
    st["t_mix"] += time.perf_counter() - t
    return shut
