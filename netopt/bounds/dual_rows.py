r"""The exact minorant row of a box on which the network is affine: one LP per box, batched.

Where every ReLU is stable on a box :math:`D = [\text{mid} - r, \text{mid} + r]`, the network
is affine there, :math:`f(x) = f(\text{mid}) + A (x - \text{mid})`, and for a norm objective

.. math::

    \min_{x \in D} \| w \odot (f(x) - y) \| \;=\; \max_{v \in \mathcal{V}} \Big( v^\top
    (f(\text{mid}) - y) - \sum_i |(A^\top v)_i|\, r_i \Big)

(LP duality: the inner minimum over the box of the linear :math:`v^\top (f(x) - y)` is the
bracket). The maximizing row :math:`v` makes CROWN exact on the box. Gradient steps reach it
only to about their step size, while a gap of :math:`10^{-6}` needs it nearly exactly, so it is
solved as a linear program (for :math:`\ell_1`: :math:`|v_j| \le w_j`; for
:math:`\ell_\infty`: :math:`\sum_j |v_j| / w_j \le 1`), all boxes at once as one block-diagonal
LP on HiGHS (:func:`netopt.model.highs_lp.dense_lp`). The rows are proposals: the search bounds each
again in rigorous float64 and keeps it only where that is better.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["dual_rows"]


def dual_rows(
    kind: str, w: np.ndarray, resid: np.ndarray, A: np.ndarray, radius: np.ndarray
) -> np.ndarray | None:
    r"""The LP-optimal rows :math:`v` of boxes on which the network is affine.

    Parameters
    ----------
    kind : {"l1", "linf"}
    w : (m,)
        Weights; rows are 0 where a weight is 0.
    resid : (B, m)
        :math:`f(\text{mid}) - y` per box.
    A : (B, m, n)
        The affine map's matrix per box.
    radius : (B, n)
        Half the box's widths.

    Returns
    -------
    (B, m) rows, or None when the LP was not solved to optimality.
    """
    from netopt.model.highs_lp import dense_lp

    B, m, n = A.shape
    keep = np.nonzero(w > 0)[0]
    q = len(keep)
    if q == 0 or B == 0:
        return np.zeros((B, m))
    Ak = A[:, keep, :]  # (B, q, n)
    wk = w[keep]
    # per box the variables are v (q), t (n) with t >= |A^T v|, and for linf s (q) >= |v|
    nv = q + n + (q if kind == "linf" else 0)
    blocks_ub = []
    rhs = []
    for b in range(B):
        At = Ak[b].T  # (n, q)
        eye_n = np.eye(n)
        rows = [np.hstack([At, -eye_n]), np.hstack([-At, -eye_n])]
        if kind == "linf":
            rows = [np.hstack([r, np.zeros((n, q))]) for r in rows]
            eye_q = np.eye(q)
            z = np.zeros((q, n))
            rows += [
                np.hstack([eye_q, z, -eye_q]),
                np.hstack([-eye_q, z, -eye_q]),
                np.hstack([np.zeros((1, q + n)), (1.0 / wk)[None]]),
            ]
        M = np.vstack(rows)
        blocks_ub.append(sp.csr_matrix(M))
        rhs.append(np.zeros(len(M)))
        if kind == "linf":
            rhs[-1][-1] = 1.0
    A_ub = sp.block_diag(blocks_ub, format="csr")
    b_ub = np.concatenate(rhs)
    cost = np.zeros((B, nv))
    cost[:, :q] = -resid[:, keep]
    cost[:, q : q + n] = radius
    lo_v = -wk if kind == "l1" else -np.full(q, np.inf)
    hi_v = wk if kind == "l1" else np.full(q, np.inf)
    bounds_b = (
        [(a, b) for a, b in zip(lo_v, hi_v, strict=True)]
        + [(0, None)] * n
        + ([(0, None)] * q if kind == "linf" else [])
    )
    res = dense_lp(cost.reshape(-1), A_ub=A_ub, b_ub=b_ub, bounds=bounds_b * B)
    if res is None:
        return None
    v = res.x.reshape(B, nv)[:, :q]
    out = np.zeros((B, m))
    out[:, keep] = v
    return out
