r"""A box's exact bound through its few unstable ReLUs: one LP per sign pattern.

On a box where only the units :math:`U` (one or two) are unstable, every sign pattern
:math:`s \in \{-1, +1\}^U` gives a *piece* of the box, :math:`\{x : s_k z_k(x) \ge 0\}`, on
which the network is affine, :math:`f(x) = A_s x + c_s`, as is each :math:`z_k(x) = a_k^\top x +
b_k` (the layers below a split unit are stable). For a norm objective the piece's minimum is, by
LP duality (:math:`v` the minorant row, :math:`\beta_k \ge 0` the multipliers of the split
constraints, :math:`r` the box's radius around its centre :math:`m`),

.. math::

    \max_{v \in \mathcal{V},\, \beta \ge 0} \; v^\top (A_s m + c_s - y)
    - \sum_k \beta_k s_k z_k(m) - \sum_i \Big| \big(A_s^\top v - \textstyle\sum_k \beta_k s_k
    a_k\big)_i \Big| r_i,

the Lagrangian bound that beta-CROWN computes with the row :math:`v` and the multipliers
:math:`\beta` (on the piece :math:`\beta_k s_k z_k \ge 0`, so subtracting it only lowers the
bound). So a ReLU split of the box into its pieces, each a leaf with its row and betas, proves
the box's exact minimum: the input splits alone approach it only as fast as the box shrinks
(an optimum on a ReLU's boundary keeps that unit unstable in every box around it).

:func:`piece_rows` solves the pieces' LPs (HiGHS, :func:`~netopt.model.highs_lp.dense_lp`)
from the chain's float64 weights; the search then bounds every piece again in rigorous float64
(:class:`~netopt.bounds.bab.BatchCrown` with the splits and betas) and keeps what that confirms.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from netopt.ir.chain import pattern_map

__all__ = [
    "MAX_UNSTABLE",
    "PIECES_PER_ROUND",
    "affine_rows",
    "piece_arrays",
    "piece_rows",
]

#: a box is split into its pieces when at most this many ReLUs are unstable on it (2^k LPs)
MAX_UNSTABLE = 2
#: boxes split into pieces per round at most (their LPs are solved one by one)
PIECES_PER_ROUND = 64
#: the multipliers' cap: an empty piece makes the LP unbounded; a large multiplier closes it
BETA_CAP = 1e6


def piece_arrays(parts: list[tuple], sizes: list[int]) -> tuple[list, list]:
    """Pieces' split signs and multipliers as the bounds take them (``splits=``, ``betas=`` of
    :meth:`netopt.bounds.bab.BatchCrown.bound`): per activation layer a ``(P, n_j)`` array each.
    ``parts`` holds one ``(unstable units, signs, betas)`` per piece (:func:`piece_rows`)."""
    splits = [np.zeros((len(parts), n)) for n in sizes]
    betas = [np.zeros((len(parts), n)) for n in sizes]
    for p, (uns, signs, beta) in enumerate(parts):
        for (j, u), sg, be in zip(uns, signs, beta, strict=True):
            splits[j][p, u], betas[j][p, u] = sg, be
    return splits, betas


def piece_rows(
    mn: Any,
    chain: tuple[list, list, list],
    lo: np.ndarray,
    hi: np.ndarray,
    unstable: list[tuple[int, int]],
    active: list[np.ndarray],
) -> list[tuple[tuple[int, ...], np.ndarray, np.ndarray]] | None:
    r"""Each piece's LP-optimal row and multipliers, for one box.

    Parameters
    ----------
    mn : Minorant
        The objective's rows (:class:`~netopt.bounds.objective_rows.Minorant`, kind "l1",
        "linf" or "linear"; for "linear" the row is fixed, :math:`\sigma c`, and only the
        multipliers are optimized).
    chain : (Ws, bs, leaks)
        The chain's float64 layers: ``Ws[j]`` ``(n_{j+1}, n_j)``, ``bs[j]``, and the slope
        below 0 of the activation after layer ``j`` (None for the output layer).
    lo, hi : (n,)
        The box.
    unstable : list of (layer, unit)
        The unstable units, in layer order (the activation op's index and the unit).
    active : list of (n_j,) bool
        Per activation layer, the stable units that are active (the rest of the stable
        units are inactive; the unstable ones are set by the pattern).

    Returns
    -------
    One ``(signs, v, betas)`` per pattern, in the order of
    :func:`itertools.product` over ``(-1, +1)`` (the proof's order: ``z <= 0`` first), or None
    where an LP failed.
    """
    from netopt.model.highs_lp import dense_lp

    Ws = chain[0]
    n = lo.size
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    kind = mn.kind
    fixed = kind == "linear"
    m = Ws[-1].shape[0]
    # the optimized entries of v: none for a linear objective, the weighted outputs for a norm
    keep = np.zeros(0, dtype=np.int64) if fixed else np.nonzero(mn.w > 0)[0]
    v_fix = mn.sign * mn.c if fixed else np.zeros(m)
    target = np.zeros(m) if fixed else mn.y
    q, k = len(keep), len(unstable)
    extra = q if kind == "linf" else 0
    out = []
    for signs in itertools.product((-1, 1), repeat=k):
        act = [a.copy() for a in active]
        for (j, u), s in zip(unstable, signs, strict=True):
            act[j][u] = s > 0
        A, c_out, a_rows, b_vals = pattern_map(chain, n, act, unstable)
        Ak = A[keep]  # (q, n)
        S = np.asarray(signs, dtype=np.float64)
        Ka = a_rows * S[:, None]  # s_k a_k
        kb = b_vals * S  # s_k b_k
        g0 = A.T @ v_fix  # the fixed part of the input coefficient
        # variables: v (q), beta (k), t (n), and for linf sv (q) >= |v|
        nv = q + k + n + extra
        G = np.hstack([Ak.T, -Ka.T])  # the input coefficient: g0 + A^T v - sum beta s a
        rows = [
            np.hstack([G, -np.eye(n), np.zeros((n, extra))]),
            np.hstack([-G, -np.eye(n), np.zeros((n, extra))]),
        ]
        rhs = [-g0, g0]
        if kind == "linf":
            eye, zq = np.eye(q), np.zeros((q, k + n))
            rows += [
                np.hstack([eye, zq, -eye]),
                np.hstack([-eye, zq, -eye]),
                np.hstack([np.zeros((1, q + k + n)), (1.0 / mn.w[keep])[None]]),
            ]
            rhs += [np.zeros(q), np.zeros(q), np.ones(1)]
        cost = np.concatenate(
            [
                -(Ak @ mid + c_out[keep] - target[keep]),
                kb + Ka @ mid,  # beta_k s_k z_k(mid)
                rad,
                np.zeros(extra),
            ]
        )
        vb = [(-a, a) for a in mn.w[keep]] if kind == "l1" else [(None, None)] * q
        bounds = vb + [(0, BETA_CAP)] * k + [(0, None)] * (nv - q - k)
        res = dense_lp(cost, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), bounds=bounds)
        if res is None:
            return None
        v = v_fix.copy()
        v[keep] = res.x[:q]
        out.append((signs, v, res.x[q : q + k]))
    return out


def affine_rows(
    C: np.ndarray,
    d: np.ndarray,
    chain: tuple[list, list, list],
    lo: np.ndarray,
    hi: np.ndarray,
    split: list[tuple[int, int, int]],
    active: list[np.ndarray],
) -> tuple | None:
    r"""Row weights and multipliers closing a domain on which the network is affine, if any do.

    ReLU splitting can end at a domain with every unit's sign fixed (by a split or by its
    bounds) where no single row of :math:`C f(x) - d` has a positive bound, though no point of
    the domain satisfies every row: then some combination does, by LP duality. On the domain
    :math:`f(x) = A x + c` and each split unit's input is :math:`z_k(x) = a_k^\top x + b_k`
    with :math:`s_k z_k \ge 0`; with :math:`m, r` the box's centre and radius this solves

    .. math::

        \max_{\lambda \ge 0,\ \sum\lambda = 1,\ \beta \ge 0}\;
        \lambda^\top (C (A m + c) - d) - \sum_k \beta_k s_k z_k(m)
        - \sum_i \Big|\big(A^\top C^\top \lambda - \textstyle\sum_k \beta_k s_k a_k\big)_i\Big| r_i,

    the bound beta-CROWN computes for the row :math:`\lambda^\top C` with multipliers
    :math:`\beta`. A positive optimum closes the domain: every point of it has
    :math:`\lambda^\top (C f - d) > 0`, so some row of :math:`C f - d` is positive.

    Parameters
    ----------
    C, d : (k, m), (k,)
    chain : (Ws, bs, leaks)
        As :func:`piece_rows` takes it.
    lo, hi : (n,)
    split : list of (layer, unit, sign)
        The domain's split units.
    active : list of (n_j,) bool
        Per activation layer, the units whose input is :math:`\ge 0` on the domain (split
        units by their sign, the others by their bounds).

    Returns
    -------
    ``(lam, betas, None)`` (betas in the order of ``split``) where the optimum is positive;
    else ``(None, None, x)`` with ``x`` a point of the domain satisfying every row (the
    primal LP's, to be re-checked), or None where an LP failed.
    """
    from netopt.model.highs_lp import dense_lp

    n = lo.size
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    A, c_out, a_rows, b_vals = pattern_map(chain, n, active, [(j, u) for j, u, _ in split])
    k, q = len(d), len(split)
    S = np.asarray([s for _, _, s in split], dtype=np.float64)
    Ka = a_rows * S[:, None]  # s_k a_k
    kb = b_vals * S
    G = np.hstack([(C @ A).T, -Ka.T])  # the input coefficient, (n, k + q)
    # variables: lam (k), beta (q), t (n) >= |G [lam; beta]|
    cost = np.concatenate([-(C @ (A @ mid + c_out) - d), kb + Ka @ mid, rad])
    A_ub = np.vstack([np.hstack([G, -np.eye(n)]), np.hstack([-G, -np.eye(n)])])
    A_eq = np.concatenate([np.ones(k), np.zeros(q + n)])[None]
    bounds = [(0, None)] * k + [(0, BETA_CAP)] * q + [(0, None)] * n
    res = dense_lp(cost, A_ub=A_ub, b_ub=np.zeros(2 * n), A_eq=A_eq, b_eq=np.ones(1), bounds=bounds)
    if res is not None and -res.fun > 0:
        # (the solver's tolerance can leave a weight a hair below 0: the checker clips it)
        return np.maximum(res.x[:k], 0.0), res.x[k : k + q], None
    # no combination closes it: a point of the domain satisfying every row, by the primal LP
    # (a candidate: the caller re-checks it in float64)
    # (minimizing the largest row's excess t: the deepest point, not one on a row's boundary)
    pt = dense_lp(
        np.concatenate([np.zeros(n), [1.0]]),
        A_ub=np.vstack([np.hstack([C @ A, -np.ones((k, 1))]), np.hstack([-Ka, np.zeros((q, 1))])]),
        b_ub=np.concatenate([d - C @ c_out, kb]),
        bounds=[*zip(lo, hi, strict=True), (None, None)],
    )
    if pt is not None and pt.x[-1] <= 0:
        # (the solver may leave a variable a hair past its bound: the point is put back in
        # the box, and the caller re-checks the rows there)
        return None, None, np.clip(pt.x[:n], lo, hi)
    return None
