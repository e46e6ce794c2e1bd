r"""Rigorous interval arithmetic of the linear ops: the ``interval`` rule they share.

A linear op is :math:`y = \sum_i M_i x_i + b` (its ``linear_map`` rule). Over boxes it goes
through :func:`affine_interval`: centre-radius form, :math:`y_c = M x_c + b`,
:math:`y_r = |M| x_r`, widened by Higham's a-priori error term (:mod:`netopt.rounding`) and
rounded outward, so the bounds hold for the exact (real-arithmetic) op on the float64 weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from netopt.errors import InputError
from netopt.ir.ops.spec import DENSE_EYE, linear_map
from netopt.rounding import _ETA2, _gam, _nnz_cols_max, _nnz_rows, _rmul

if TYPE_CHECKING:
    from netopt.ir.graph import Op

__all__ = ["AffineMap", "affine_interval", "linear_interval"]


def _check_finite_map(op: Op, mats, b: np.ndarray) -> None:
    """Refuse infinite or NaN weights: no float bound of such a map means anything."""
    for m in (*mats, b):
        data = m if isinstance(m, np.ndarray) else m.data
        if not np.all(np.isfinite(data)):
            raise InputError(
                f"{op.where} has an infinite or NaN weight: no sound bound exists; its weights "
                "must all be finite"
            )


#: A matrix with more than this share of non-zeros is kept dense (BLAS), one with fewer goes
#: to CSR, unless it is small (at most ``_SMALL`` entries: dense, and no scipy import; the
#: identities the rules build dense among them).
_DENSE_SHARE = 0.2
_SMALL = DENSE_EYE * DENSE_EYE


def _by_density(m, dense_above: float | None):
    """``m`` dense or CSR by its share of non-zeros: a dense one stays dense unless it is
    large with at most :data:`_DENSE_SHARE` of them (or ``dense_above``); a sparse one goes
    dense only above ``dense_above`` (None: never)."""
    if isinstance(m, np.ndarray):
        share = _DENSE_SHARE if dense_above is None else dense_above
        if m.size <= _SMALL or np.count_nonzero(m) > share * m.size:
            return m
        import scipy.sparse as sp

        return sp.csr_matrix(m)
    if dense_above is not None and m.nnz > dense_above * m.shape[0] * m.shape[1]:
        return m.toarray()
    return m


def _copy_source(m) -> np.ndarray:
    """Per row of a matrix with at most one non-zero per row, that entry's column (-1: none)."""
    if isinstance(m, np.ndarray):
        nz = m != 0
        return np.where(nz.any(axis=1), nz.argmax(axis=1), -1)
    m = m.tocsr()  # (an exact map stores no zeros: every stored entry is 1)
    one = np.diff(m.indptr) == 1
    src = np.full(m.shape[0], -1)
    src[one] = m.indices[m.indptr[:-1][one]]
    return src


def _stored(m) -> np.ndarray:
    """The entries a matrix stores: a sparse matrix's data, a dense one's non-zeros."""
    return m[m != 0] if isinstance(m, np.ndarray) else m.data


@dataclass
class AffineMap:
    r"""A linear op's matrices prepared for rigorous interval bounds (see :func:`affine_interval`).

    Attributes
    ----------
    mats, absm : list of matrix
        ``M_i`` (dense or scipy.sparse) and ``|M_i|``.
    bias : ndarray
    n : ndarray
        Per output row, the number of terms of its sum: stored entries of every ``M_i``'s row,
        plus 1 for the bias, plus 1 per term if the matrix entries are themselves rounded
        (avg-pool's :math:`1/k`), which adds one more :math:`(1 + \delta)` factor to each.
    ncol : list of int
        Per matrix, the most stored entries of a column (+1 for avg-pool): the length of the
        dot products of the back-substitution ``Lambda @ M_i`` (computed when first needed).
    exact : bool
        Every row copies at most one input entry with weight 1, or is a constant (reshape,
        flatten, transpose, concat, pad, select, identity): the bounds are copied, no
        rounding at all.
    copies : list of ndarray or None
        Where ``exact``, per matrix the input entry each row copies (-1: none), so that the
        bounds are copied by indexing: a product with a dense 0/1 matrix would turn an
        infinite bound into NaN (``0 * inf``) in every row.
    """

    mats: list
    absm: list
    bias: np.ndarray
    n: np.ndarray
    exact: bool
    rounded: bool
    copies: list | None = None

    def __post_init__(self) -> None:
        # derived here, in one place, whatever the matrices' format
        if self.exact and self.copies is None:
            self.copies = [_copy_source(m) for m in self.mats]

    @cached_property
    def ncol(self) -> list[int]:
        return [_nnz_cols_max(m) + int(self.rounded) for m in self.mats]

    @classmethod
    def of(cls, op: Op, shapes, dense_above: float | None = None) -> AffineMap:
        # the matrices as the op's rule builds them (dense layers dense): a small network's
        # bounds then never import scipy.sparse (0.15 s of a fresh process)
        mats, b = linear_map(op, shapes, sparse=False)
        b = np.asarray(b, dtype=np.float64)
        mats = [
            m.astype(np.float64, copy=False)
            if isinstance(m, np.ndarray)
            else m.tocsr().astype(np.float64, copy=False)
            for m in mats
        ]
        _check_finite_map(op, mats, b)
        rows = [_nnz_rows(m) for m in mats]
        total = np.sum(rows, axis=0)
        exact = bool(
            np.all(total <= 1)
            and all(np.all(_stored(m) == 1.0) for m in mats)
            and np.all(b[total > 0] == 0)
        )
        rounded = op.op == "avgpool2d"
        n = total + 1 + (total if rounded else 0)
        # BLAS for dense layers (scipy's sparse x wide-dense product is slow), CSR for sparse
        # ones (a pruned layer's zeros cost BLAS time and memory): by the share of non-zeros
        mats = [_by_density(m, dense_above) for m in mats]
        return cls(mats, [abs(m) for m in mats], b, n, exact, rounded)


def affine_interval(
    amap: AffineMap, xls: list[np.ndarray], xhs: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    r"""Interval bounds of :math:`y = \sum_i M_i x_i + b`, rigorous in floating point.

    ``xls[i]``, ``xhs[i]`` are ``(s_i,)`` or batched ``(B, s_i)``; so is the result.

    Centre-radius form with a rigorous error term. For each input, any float
    :math:`x_c` (here :math:`x_l/2 + x_h/2`, which cannot overflow) and
    :math:`x_r = \mathrm{fl}(\max(x_h - x_c, x_c - x_l))` give
    :math:`|x - x_c| \le x_r / (1 - u)` for all :math:`x \in [x_l, x_h]` (one rounding of a
    subtraction, which never underflows). With :math:`c = \mathrm{fl}(b + \sum M_i x_c)`,
    :math:`r = \mathrm{fl}(\sum |M_i| x_r)` and :math:`T = |b| + \sum |M_i| (|x_c| + x_r)`,
    each of :math:`c, r` is a sum of at most :math:`N` terms (the row's stored entries and
    the bias), so by Higham §3.1 (with an absolute :math:`\eta = 2^{-1075}` per underflowing
    product)

    .. math:: |y - c| \le \tfrac{1}{1-u} \sum |M_i| x_r + |C - c|
              \le r + (\gamma_N + 2u)\, T + 4 N \eta,

    :math:`C` the exact value of :math:`c`'s expression. :math:`T` is computed as
    :math:`S = \mathrm{fl}(T) \ge (1-u)^{N+1} T - N\eta`, and the two final roundings of
    :math:`c \mp (r + E)` are covered by :math:`E = 2\gamma_{2N+8} S + (8N + 16) 2^{-1074}`
    and one ``nextafter`` outward. Rows touching an infinite input bound are
    :math:`(-\infty, \infty)`; a row with any non-finite intermediate (an overflow) too, so
    that no false finite bound ever comes out. Cost: one more product, :math:`|M| (|x_c| +
    x_r)`, taken together with :math:`|M| x_r`.
    """
    b = amap.bias
    if amap.exact:
        # pure copies: y_j = x_k or y_j = b_j (then b_j = 0 where a row copies), so the bounds
        # are copied exactly, by indexing
        lead = np.broadcast_shapes(*(np.shape(x)[:-1] for x in (*xls, *xhs)))
        lo = np.broadcast_to(b, (*lead, len(b))).copy()
        hi = lo.copy()
        for src, xl, xh in zip(amap.copies, xls, xhs, strict=True):
            rows = np.nonzero(src >= 0)[0]
            lo[..., rows] = np.asarray(xl)[..., src[rows]]
            hi[..., rows] = np.asarray(xh)[..., src[rows]]
        return lo, hi
    c = b
    r = 0.0
    s = np.abs(b)
    bad = False
    with np.errstate(invalid="ignore", over="ignore"):
        for m, am, xl, xh in zip(amap.mats, amap.absm, xls, xhs, strict=True):
            fin = np.isfinite(xl) & np.isfinite(xh)
            if not np.all(fin):
                # an infinite input bound: the rows that touch it are unbounded
                bad = bad | (_rmul((~fin).astype(np.float64), am) > 0)
                xl, xh = np.where(fin, xl, 0.0), np.where(fin, xh, 0.0)
            xc = 0.5 * xl + 0.5 * xh
            xr = np.maximum(xh - xc, xc - xl)
            lead = xr.shape[:-1]
            both = _rmul(np.stack([xr, np.abs(xc) + xr]).reshape(-1, xr.shape[-1]), am)
            both = both.reshape(2, *lead, -1)
            c = c + _rmul(xc, m)
            r = r + both[0]
            s = s + both[1]
        n = amap.n
        e = _gam(2 * n + 8) * s + (8 * n + 16) * _ETA2
        t = r + e
        lo = np.nextafter(c - t, -np.inf)
        hi = np.nextafter(c + t, np.inf)
    # an overflow anywhere leaves c or t infinite or NaN (never a wrong finite number)
    bad = bad | ~(np.isfinite(c) & np.isfinite(t))
    lo, hi = np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi)
    # rows with no input term are their bias, exactly (a zero row stays a stable 0)
    const = amap.n == 1
    if np.any(const):
        lo, hi = np.where(const, b, lo), np.where(const, b, hi)
    return lo, hi


def linear_interval(op, shapes, xls, xhs, maps):
    """Interval bounds of a linear op (:func:`affine_interval`)."""
    amap = None if maps is None else maps.get(op.id)
    if amap is None:
        amap = AffineMap.of(op, shapes)
        if maps is not None:
            maps[op.id] = amap
    return affine_interval(amap, list(xls), list(xhs))
