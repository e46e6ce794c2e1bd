r"""Outward rounding: the a-priori error terms that make float64 bounds hold for exact values.

Every float64 computation of a bound rounds, so each is widened by a rigorous a-priori error
term (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1: a dot product
of :math:`n` terms computed in any order is within :math:`\gamma_n = nu/(1 - nu)` of the exact
one relative to the dot product of the absolute values, :math:`u = 2^{-53}`), plus underflow
terms, and rounded outward. This module holds the constants and the small exact helpers that
the linear ops' interval rule (:mod:`netopt.ir.ops.affine`), CROWN (:mod:`netopt.bounds.crown`)
and the batched bounds of branch and bound (:mod:`netopt.bounds.bab`) share. The ops' own
interval rules round outward with their own margins (:mod:`netopt.ir.ops.activations`,
:mod:`netopt.ir.ops.smooth`).
"""

from __future__ import annotations

import numpy as np

__all__: list[str] = []

#: Unit roundoff of float64 (round to nearest): a result that neither overflows nor underflows is
#: the exact one times :math:`1 + \delta`, :math:`|\delta| \le u`.
_U = 2.0**-53
#: The smallest positive (subnormal) float64, twice the absolute error :math:`\eta = 2^{-1075}`
#: that an underflowing product (or division by 2) can make. Sums never underflow: a sum that
#: lands among the subnormals is exact.
_ETA2 = 2.0**-1074
#: A positive floor added to every error gauge of the back-substitution (:func:`backsub`):
#: an overflowed (infinite or NaN) coefficient then always makes its row's error term infinite
#: or NaN, never ``inf * 0`` lost by a BLAS that skips zero entries. It also keeps the gauges
#: normal, so that scaling them by :math:`\gamma` never underflows. Its own contribution,
#: :math:`2^{-900} \gamma \sum_j |\Lambda_{qj}|`, is far below any meaningful bound.
_FLOOR = 2.0**-900


def _gam(n: int | np.ndarray) -> float | np.ndarray:
    r"""Twice Higham's :math:`\gamma_n = nu / (1 - nu)` (for ``n`` rounded operations).

    Higham (*Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1, Lemma 3.1 and
    (3.5)): a dot product of length :math:`n` computed in float64, in *any* order, with or
    without FMA, satisfies :math:`|\mathrm{fl}(a^\top b) - a^\top b| \le \gamma_n |a|^\top |b|`
    (no underflow). The factor 2 is slack that absorbs the rounding of the error terms
    themselves: each is a sum of :math:`k` nonnegative rounded terms, computed as at least
    :math:`(1 - u)^k` times its exact value, and :math:`2 (1 - u)^k \ge 1` for every
    :math:`k < 2^{51}` -- far beyond any layer or depth here.
    """
    n = np.asarray(n, dtype=np.float64) if np.ndim(n) else float(n)
    return 2.0 * n * _U / (1.0 - n * _U)


def _mag(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``max(|lo|, |hi|)``: a bound on ``|z|`` for every ``z`` in ``[lo, hi]`` (exact)."""
    return np.maximum(np.abs(lo), np.abs(hi))


def _mv(A, x: np.ndarray) -> np.ndarray:
    """``A @ x`` over the last axis of both: ``A`` is ``(..., n, s)``, ``x`` ``(..., s)``."""
    return (A @ x[..., None])[..., 0]


def _rmul(X: np.ndarray, m) -> np.ndarray:
    """``X @ m.T`` for a dense or scipy.sparse ``m``; ``X`` is ``(s,)`` or ``(B, s)``."""
    return np.asarray(m @ X.T).T


def _nnz_rows(m) -> np.ndarray:
    """Stored entries per row of a dense or sparse matrix (the length of each row's dot)."""
    if isinstance(m, np.ndarray):
        return np.count_nonzero(m, axis=1)
    m = m.tocsr()
    return np.diff(m.indptr)


def _nnz_cols_max(m) -> int:
    """The most stored entries of any column: the length of the dots in ``Lambda @ m``."""
    if isinstance(m, np.ndarray):
        return int(np.count_nonzero(m, axis=0).max(initial=0))
    m = m.tocsr()
    return int(np.bincount(m.indices, minlength=m.shape[1]).max(initial=0))


def _pos_neg(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(L, 0), np.minimum(L, 0)
