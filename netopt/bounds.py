"""Sound per-value intervals over an input domain: interval (IBP) and symbolic (CROWN) bounds.

``compute_bounds(graph, lo, hi, method)`` returns :class:`Bounds`, a mapping value id ->
``(lo, hi)`` (flattened float64 arrays). All methods are sound: for every input in the box, every
value of the network lies in its interval -- the network's *exact* value (real arithmetic on its
float64 weights), not only its float64 forward pass, because the bounds back claims ("unsat",
big-M constants, proven bounds). Every float64 computation here rounds, so each is widened by a
rigorous a-priori error term (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
§3.1: a dot product of :math:`n` terms computed in any order is within :math:`\\gamma_n
= nu/(1 - nu)` of the exact one relative to the dot product of the absolute values,
:math:`u = 2^{-53}`), plus underflow terms, and rounded outward (see :func:`affine_interval`,
:func:`backsub`, :func:`concretize`, :func:`relu_relaxation`). The tests check this against exact
rational arithmetic with weights from 1e-160 to 1e37. Scale rule: infinite or NaN weights and NaN
input bounds are refused (:class:`~netopt.errors.InputError`); any bound whose computation
overflows (a non-finite intermediate) is infinite, so no false finite bound ever comes out, at
any scale. Methods:

* ``"interval"`` — interval arithmetic through every op (linear ops in centre-radius form,
  :math:`y_c = M x_c + b`, :math:`y_r = |M| x_r`).
* ``"crown"`` — symbolic linear bounds by back-substitution to the input (CROWN, Zhang et al.
  2018; DeepPoly, Singh et al. 2019), intersected with the interval bounds. A ReLU with pre-activation
  bounds :math:`l < 0 < u` is relaxed by :math:`\\alpha x \\le y \\le \\frac{u}{u-l}(x - l)` with the
  adaptive :math:`\\alpha = [u > -l]`; a LeakyReLU likewise; a max-pool window by
  :math:`x_{j^*} \\le y \\le \\max_i u_i`, exact when one cell dominates; smooth ops by their
  interval bounds (monotone rules for sigmoid and tanh, corner rules in log-sum-exp form for
  (log-)softmax, all rounded outward so that they hold for the exact functions).

LP-based tightening (``netopt.bounds_lp``) and the output-side tightening used for inversion refine
these further.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx
import numpy as np

from netopt.errors import InputError
from netopt.ir import Graph, Op
from netopt.linear import is_linear, linear_map, window_index

__all__ = [
    "Bounds",
    "compute_bounds",
    "linear_bounds",
    "interval_op",
    "relu_relaxation",
    "METHODS",
    "AffineMap",
    "affine_interval",
    "leaky_bound",
    "backsub",
    "concretize",
]

METHODS = ("interval", "crown")


@dataclass
class Bounds(Mapping):
    """Flattened lower/upper bounds per IR value.

    Attributes
    ----------
    lo, hi : dict of str -> ndarray
        Flattened float64 bounds of each value.
    method : str
        How they were computed.
    """

    lo: dict[str, np.ndarray]
    hi: dict[str, np.ndarray]
    method: str = "interval"
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    def __getitem__(self, vid: str) -> tuple[np.ndarray, np.ndarray]:
        return self.lo[vid], self.hi[vid]

    def __iter__(self) -> Iterator[str]:
        return iter(self.lo)

    def __len__(self) -> int:
        return len(self.lo)

    def copy(self) -> Bounds:
        return Bounds(
            {k: v.copy() for k, v in self.lo.items()},
            {k: v.copy() for k, v in self.hi.items()},
            self.method,
            self.seconds,
            dict(self.stats),
        )

    def unstable(self, graph: Graph) -> dict[str, int]:
        """Number of unstable units (pre-activation interval containing 0 strictly) per ReLU op."""
        out = {}
        for op in graph.ops:
            if op.op in ("relu", "leaky_relu"):
                lo, hi = self[op.inputs[0]]
                out[op.id] = int(np.sum((lo < 0) & (hi > 0)))
        return out

    def tighten(self, vid: str, lo: np.ndarray, hi: np.ndarray) -> None:
        """Intersect the bounds of ``vid`` with ``[lo, hi]``."""
        self.lo[vid] = np.maximum(self.lo[vid], lo)
        self.hi[vid] = np.minimum(self.hi[vid], hi)


# ---------------------------------------------------------------------- floating-point rounding
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


def _check_finite_map(op: Op, mats, b: np.ndarray) -> None:
    """Refuse infinite or NaN weights: no float bound of such a map means anything."""
    for m in (*mats, b):
        data = m if isinstance(m, np.ndarray) else m.data
        if not np.all(np.isfinite(data)):
            raise InputError(
                f"{op.where} has an infinite or NaN weight: no sound bound exists; its weights "
                "must all be finite"
            )


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
    """

    mats: list
    absm: list
    bias: np.ndarray
    n: np.ndarray
    exact: bool
    rounded: bool

    @cached_property
    def ncol(self) -> list[int]:
        return [_nnz_cols_max(m) + int(self.rounded) for m in self.mats]

    @classmethod
    def of(cls, op: Op, shapes, dense_above: float | None = None) -> AffineMap:
        mats, b = linear_map(op, shapes)
        b = np.asarray(b, dtype=np.float64)
        mats = [m.tocsr().astype(np.float64, copy=False) for m in mats]
        _check_finite_map(op, mats, b)
        rows = [_nnz_rows(m) for m in mats]
        total = np.sum(rows, axis=0)
        exact = bool(
            np.all(total <= 1)
            and all(np.all(m.data == 1.0) for m in mats)
            and np.all(b[total > 0] == 0)
        )
        rounded = op.op == "avgpool2d"
        n = total + 1 + (total if rounded else 0)
        if dense_above is not None:
            # BLAS for dense layers; scipy's sparse x wide-dense product is slow
            mats = [
                m.toarray() if m.nnz > dense_above * m.shape[0] * m.shape[1] else m for m in mats
            ]
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
        # pure copies: y_j = x_k or y_j = b_j, so the bounds are copied exactly
        lo = b + sum(_rmul(xl, m) for m, xl in zip(amap.mats, xls, strict=True))
        hi = b + sum(_rmul(xh, m) for m, xh in zip(amap.mats, xhs, strict=True))
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


def leaky_bound(t: np.ndarray, alpha: float, direction: int) -> np.ndarray:
    r"""``f(t) = t`` (``t >= 0``) or ``alpha * t``, rounded down (``direction = -1``) or up.

    ``max`` and ``where`` are exact; the product :math:`\alpha t` rounds (by half an ulp, or
    :math:`\eta` among the subnormals), so it moves one ulp outward unless :math:`\alpha` is
    0 or 1 (exact).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        at = alpha * t
        if alpha not in (0.0, 1.0):
            at = np.nextafter(at, direction * np.inf)
        return np.where(t >= 0, t, at)


def interval_op(
    graph: Graph,
    op: Op,
    lo: Mapping[str, np.ndarray],
    hi: Mapping[str, np.ndarray],
    maps: dict[str, AffineMap] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of ``op``'s output from its inputs' bounds (flattened).

    They hold for the exact (real-arithmetic) op on the float64 weights: the linear ops'
    rounding is bounded by :func:`affine_interval`, ReLU and max-pool are exact in floating
    point, LeakyReLU's product is rounded outward (:func:`leaky_bound`), the smooth ops by
    :func:`_smooth_interval`. ``maps`` caches the linear ops' :class:`AffineMap` by op id.
    """
    shapes = [graph.value(i).shape for i in op.inputs]
    if is_linear(op):
        amap = None if maps is None else maps.get(op.id)
        if amap is None:
            amap = AffineMap.of(op, shapes)
            if maps is not None:
                maps[op.id] = amap
        return affine_interval(amap, [lo[i] for i in op.inputs], [hi[i] for i in op.inputs])
    xl, xh = lo[op.inputs[0]], hi[op.inputs[0]]
    if op.op == "relu":
        return np.maximum(xl, 0), np.maximum(xh, 0)
    if op.op == "leaky_relu":
        a = float(op.attrs["alpha"])
        if a >= 0:
            return leaky_bound(xl, a, -1), leaky_bound(xh, a, +1)
        # not monotone: the minimum is 0 or an end, the maximum an end
        lo_ = np.minimum(leaky_bound(xl, a, -1), np.minimum(0, leaky_bound(xh, a, -1)))
        return lo_, np.maximum(leaky_bound(xl, a, +1), leaky_bound(xh, a, +1))
    if op.op == "maxpool2d":
        idx = window_index(shapes[0], op.attrs).reshape(-1, np.prod(op.attrs["kernel"]))
        valid = idx >= 0
        lw = np.where(valid, xl[np.where(valid, idx, 0)], -np.inf)
        hw = np.where(valid, xh[np.where(valid, idx, 0)], -np.inf)
        return lw.max(axis=1), hw.max(axis=1)
    if op.op in _SMOOTH_RANGE:
        return _smooth_interval(op, shapes[0], xl, xh)
    raise NotImplementedError(f"no interval rule for IR op '{op.op}'")


# ---------------------------------------------------------------------------- smooth ops
#: The range of each smooth op: its interval bounds are clipped to it, and a NaN bound (from
#: ``inf - inf`` on infinite input bounds) becomes the range's end.
_SMOOTH_RANGE: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "softmax": (0.0, 1.0),
    "log_softmax": (-np.inf, 0.0),
}
_EPS = float(np.finfo(np.float64).eps)
#: The absolute margin: 20 ulps of the subnormal range (the smallest subnormal is 5e-324). It
#: covers a result that underflowed to 0 or lost its relative precision among the subnormals
#: (where exp's ulp error is an absolute error of a few 5e-324).
_TINY = 1e-322
#: The relative margin of every smooth op's bounds, far above the few ulps of error of
#: numpy's exp/log/tanh/logaddexp (the margins for the rounding of softmax's sums come on top).
_REL = 1e-12


def _nudge(x: np.ndarray, d: np.ndarray | float, direction: int) -> np.ndarray:
    """``x + direction * d`` on the finite entries; infinite entries stay (no ``inf - inf``)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(np.isfinite(x), x + direction * d, x)


def _sigmoid(t: np.ndarray) -> np.ndarray:
    """The logistic function to an ulp or so, down into the subnormals, without overflow.

    ``scipy.special.expit`` is no substitute: it returns 0 below about -709, where
    :math:`e^t` is still a positive subnormal. The exact value at :math:`t = -800` is below
    the smallest subnormal, so 0 is then within the absolute margin of :func:`_widen`.
    """
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(t))
        return np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _widen(
    lo: np.ndarray, hi: np.ndarray, rng: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    r"""Round ``[lo, hi]`` outward and clip it to the op's range ``rng``.

    The bounds were computed in float64; the widening by :math:`10^{-12}|t| + 10^{-322}`
    makes them sound for the exact function too. The absolute term matters where a result
    underflowed: ``sigmoid(-800)`` is 0.0 in float64 but positive, so its upper bound must
    be positive. NaN bounds (``inf - inf`` on infinite input bounds) become the range's
    ends, which is always sound. An upper bound is never :math:`-\infty` (nor a lower
    bound :math:`+\infty`).
    """
    lo = _nudge(lo, _REL * np.abs(lo) + _TINY, -1)
    hi = _nudge(hi, _REL * np.abs(hi) + _TINY, +1)
    lo = np.clip(np.where(np.isnan(lo), rng[0], lo), rng[0], rng[1])
    hi = np.clip(np.where(np.isnan(hi), rng[1], hi), rng[0], rng[1])
    # an upper bound of -inf would say the value is -inf; log-softmax's -(1e308 - (-1e308))
    # is merely below the float range, so the most negative float bounds it (likewise lo < inf)
    big = np.finfo(np.float64).max
    return np.minimum(lo, big), np.maximum(hi, -big)


def _lse_others_minus(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    r"""Leave-one-out log-sum-exp minus ``x``: :math:`D_i = \log\sum_{j \ne i} e^{v_j} - x_i`.

    ``v`` and ``x`` are ``(G, k)``, one group per row; :math:`-\infty` where the sum is
    empty (``k = 1``). It costs :math:`O(k)` per row, not :math:`O(k^2)`: with ``a`` the
    row's argmax, :math:`m_1 = v_a` and :math:`S = \sum_j e^{v_j - m_1}`,

    * for :math:`i \ne a`: :math:`D_i = (m_1 - x_i) + \log(S - e^{v_i - m_1})`. The
      subtraction is well conditioned: what remains of :math:`S` still holds the term
      :math:`e^0 = 1` of ``a``, so it is at least 1 and its relative error is that of
      :math:`S` (about :math:`k\epsilon`), an absolute error of the logarithm of that size;
    * for :math:`i = a`: the sum is recomputed around the second largest entry
      :math:`m_2`: :math:`D_a = (m_2 - x_a) + \log \sum_{j \ne a} e^{v_j - m_2}` (again
      a sum of at least 1).

    The large part :math:`m - x_i` is formed first and :math:`\log S' \in [0, \log k]`
    added last, so the absolute error of :math:`D` is below
    :math:`\epsilon(2|D| + 3k + 8)` however large the logits themselves are.

    Infinite entries: a :math:`+\infty` among the others makes the sum :math:`+\infty`,
    others all :math:`-\infty` make it :math:`-\infty`; ``inf - inf`` gives NaN, which
    the caller maps to the range of the op.
    """
    g, k = v.shape
    if k == 1:
        return np.full_like(v, -np.inf)
    rows = np.arange(g)
    a = np.argmax(v, axis=1)
    m1 = v[rows, a]
    rest = v.copy()
    rest[rows, a] = -np.inf
    m2 = rest.max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        s1 = np.where(np.isfinite(m1), m1, 0.0)[:, None]
        e1 = np.exp(v - s1)  # in [0, 1] where m1 is finite
        d = (s1 - x) + np.log(e1.sum(axis=1, keepdims=True) - e1)
        s2 = np.where(np.isfinite(m2), m2, 0.0)
        top = (s2 - x[rows, a]) + np.log(np.exp(rest - s2[:, None]).sum(axis=1))
        # an infinite maximum: the sum is that infinity
        d = np.where(np.isinf(m1)[:, None], m1[:, None] - x, d)
        top = np.where(np.isinf(m2), m2 - x[rows, a], top)
    d[rows, a] = top
    return d


def _softmax_interval(
    log: bool, shape: tuple[int, ...], axes: tuple[int, ...], xl: np.ndarray, xh: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""Bounds of (log-)softmax over the group ``axes`` (flattened, before outward rounding).

    With :math:`x \in [l, u]`, :math:`\mathrm{softmax}_i(x) = 1 / (1 + \sum_{j \ne i}
    e^{x_j - x_i})` increases with :math:`x_i` and decreases with every other
    :math:`x_j`, so its extremes over the box are at corners:

    .. math:: \mathrm{lo}_i = \frac{1}{1 + e^{D^l_i}},\quad D^l_i = \mathrm{LSE}_{j \ne i}(u_j) - l_i,
              \qquad \mathrm{hi}_i = \frac{1}{1 + e^{D^u_i}},\quad
              D^u_i = \mathrm{LSE}_{j \ne i}(l_j) - u_i,

    i.e. :math:`\sigma(-D)`, and log-softmax's bounds are
    :math:`-\log(1 + e^{D}) = -\mathrm{logaddexp}(0, D)`. Only differences of logits enter:
    no cancellation, no underflow to a wrong 0 or 1 in the log domain (the old rule
    :math:`e^{l_i}/(e^{l_i} + \sum_j e^{u_j} - e^{u_i})` lost :math:`\sum - e^{u_i}` once the
    other logits lay about 37 below, and underflowed past a spread of about 745).

    :math:`D` is computed by :func:`_lse_others_minus` in :math:`O(k)` per group; its error
    is below :math:`\epsilon(2|D| + 3k + 8)`, and it is widened by twice that before the
    monotone :math:`\sigma` (:func:`_sigmoid`) or :math:`\mathrm{logaddexp}`. A group of
    size 1 gives exactly 1 (log: 0).
    """
    r = len(shape)
    rest = [t for t in range(r) if t not in axes]
    perm = (*rest, *axes)
    k = int(np.prod([shape[t] for t in axes], dtype=np.int64))
    tshape = tuple(shape[t] for t in perm)

    def grouped(x: np.ndarray) -> np.ndarray:
        # the group's axes last, one group per row
        return x.reshape(shape).transpose(perm).reshape(-1, k)

    def ungrouped(x: np.ndarray) -> np.ndarray:
        return x.reshape(tshape).transpose(np.argsort(perm)).reshape(-1)

    if k == 1:
        one = np.full(xl.shape, 0.0 if log else 1.0)
        return one, one.copy()
    L, U = grouped(xl), grouped(xh)
    d_lo = _lse_others_minus(U, L)
    d_hi = _lse_others_minus(L, U)
    # rounding of D: widen by twice its error bound eps (2|D| + 3k + 8); the bounds decrease
    # with D, so the lower bound's D moves up and the upper bound's down
    pad = _EPS * (6 * k + 16)
    d_lo = _nudge(d_lo, 4 * _EPS * np.abs(d_lo) + pad, +1)
    d_hi = _nudge(d_hi, 4 * _EPS * np.abs(d_hi) + pad, -1)
    if log:
        with np.errstate(invalid="ignore"):
            lo, hi = -np.logaddexp(0.0, d_lo), -np.logaddexp(0.0, d_hi)
    else:
        lo, hi = _sigmoid(-d_lo), _sigmoid(-d_hi)
    return ungrouped(lo), ungrouped(hi)


def _smooth_interval(
    op: Op, shape: tuple[int, ...], xl: np.ndarray, xh: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sound interval bounds of a smooth op, rounded outward and clipped to its range.

    sigmoid and tanh are increasing, so their bounds are the function at the input's
    bounds; softmax and log-softmax see :func:`_softmax_interval`. The bounds hold for
    the exact function, not only its float64 evaluation (:func:`_widen`), and are never NaN.
    """
    if op.op == "sigmoid":
        lo, hi = _sigmoid(xl), _sigmoid(xh)  # sigmoid(40) is 1.0, sigmoid(-800) 0.0: see _widen
    elif op.op == "tanh":
        lo, hi = np.tanh(xl), np.tanh(xh)
    else:
        axes = tuple(int(t) for t in op.attrs["axes"])
        lo, hi = _softmax_interval(op.op == "log_softmax", tuple(shape), axes, xl, xh)
    return _widen(lo, hi, _SMOOTH_RANGE[op.op])


def relu_relaxation(l: np.ndarray, u: np.ndarray, alpha: float = 0.0):  # noqa: E741
    r"""Linear bounds ``lo_s*x + lo_b <= f(x) <= up_s*x + up_b`` of (leaky) ReLU on ``[l, u]``.

    Returns ``(lo_s, lo_b, up_s, up_b)``, for ``0 <= alpha <= 1``. For the unstable units the
    upper line is the chord through ``(l, f(l))`` and ``(u, f(u))``; the lower line has slope 1
    or ``alpha``, whichever is closer to the chord (CROWN's adaptive choice).

    The lines hold for the exact function with the returned float slopes and intercepts:

    * the lower lines :math:`x` and :math:`\alpha x` (intercept 0) and the stable units' lines
      are exact;
    * the chord's slope :math:`s` rounds, and its intercept is then *chosen* to lie above both
      ends: :math:`f` is convex, so a line above it at :math:`l` and :math:`u` is above it on
      :math:`[l, u]`. The intercept is :math:`\max(\alpha l - s l,\ u - s u)` computed in
      float64 (error below :math:`2u(|\alpha l| + |s l| + |u| + |s u|) + 2\eta`), plus a
      margin :math:`16u \max(|l|, |u|) \max(1, |s|) + 2^{-1070}` that exceeds that error and
      the rounding of the addition itself: a relative :math:`10^{-15}` nudge.

    A unit with an infinite bound has no finite upper line: its intercept is :math:`+\infty`
    (the back-substitution then gives an infinite bound, which is sound).
    """
    act = l >= 0
    dead = u <= 0
    unst = ~act & ~dead
    lo_s = np.where(act, 1.0, alpha)
    up_s = np.where(act, 1.0, alpha)
    lo_b = np.zeros_like(l)
    up_b = np.zeros_like(l)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        chord = np.where(unst, (u - alpha * l) / (u - l), 0.0)
        fin = np.isfinite(l) & np.isfinite(u) & np.isfinite(chord)
        chord = np.where(fin, chord, 1.0)
        t = np.maximum(alpha * l - chord * l, u - chord * u)
        margin = 16 * _U * np.maximum(np.abs(l), np.abs(u)) * np.maximum(1.0, np.abs(chord))
        t = t + (margin + 2.0**-1070)
    up_s = np.where(unst, chord, up_s)
    up_b = np.where(unst, np.where(fin, t, np.inf), up_b)
    lo_s = np.where(unst, np.where(u > -l, 1.0, alpha), lo_s)
    return lo_s, lo_b, up_s, up_b


def _pos_neg(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(L, 0), np.minimum(L, 0)


def concretize(
    A: np.ndarray,
    const: np.ndarray,
    err: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    upper: bool,
) -> np.ndarray:
    r"""Rigorous :math:`\min` (or :math:`\max`) of :math:`A z + c \mp \varepsilon` over the box.

    ``A`` is ``(..., n, s)``, ``const``, ``err`` ``(..., n)``, ``lo``, ``hi`` ``(..., s)``.
    The float value :math:`v = \mathrm{fl}(c + A^+ l + A^- h)` (upper: the reverse) is within
    :math:`\gamma_{s+2} |A| \max(|l|, |h|) + u|c| + 2 s \eta` of the exact one (Higham §3.1:
    each term goes through at most :math:`s + 2` roundings); that, and the accumulated
    ``err``, are subtracted (added), and ``nextafter`` covers the last rounding. Any
    non-finite intermediate (an overflow) gives :math:`-\infty` (:math:`+\infty`).
    """
    if upper:
        lo, hi = hi, lo
    ap, an = _pos_neg(A)
    with np.errstate(invalid="ignore", over="ignore"):
        v = const + (_mv(ap, lo) + _mv(an, hi))
        z = _mag(lo, hi) + _FLOOR
        e = err + _gam(A.shape[-1] + 2) * _mv(np.abs(A), z) + _gam(1) * np.abs(const)
        e = e + 4 * _ETA2 * (2 * A.shape[-1] + 4)
        if upper:
            res = np.nextafter(v + e, np.inf)
        else:
            res = np.nextafter(v - e, -np.inf)
    bad = ~(np.isfinite(v) & np.isfinite(e))
    return np.where(bad, np.inf if upper else -np.inf, res)


def _matmul_right(L: np.ndarray, m) -> np.ndarray:
    """``L @ m`` for ``L`` of shape ``(..., n, s_out)`` and a dense or sparse ``m``."""
    if isinstance(m, np.ndarray):
        return L @ m
    lead = L.shape[:-1]
    return np.asarray(m.T @ L.reshape(-1, L.shape[-1]).T).T.reshape(*lead, -1)


def backsub(
    graph: Graph,
    vid: str,
    start: np.ndarray,
    lo: Mapping[str, np.ndarray],
    hi: Mapping[str, np.ndarray],
    in_lo: Mapping[str, np.ndarray],
    in_hi: Mapping[str, np.ndarray],
    maps: dict[str, AffineMap],
    ops: list[Op] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    r"""CROWN bounds of ``start @ vid`` by back-substitution, rigorous in floating point.

    Parameters
    ----------
    start : (..., n, size) array
        The rows to bound; a leading batch axis (BaB's boxes) is carried through.
    lo, hi : mapping
        Sound bounds of every value between the inputs and ``vid``, ``(size,)`` or batched
        ``(B, size)``.
    in_lo, in_hi : mapping
        The input box, finite.
    maps : dict
        ``op id -> AffineMap`` of the linear ops (filled in as needed).
    ops : list of Op, optional
        The ops to go through, in topological order (default: all of the graph's).

    Returns
    -------
    lower, upper : (..., n) arrays, and the input coefficients of the lower bound (of the
    first input; empty if nothing reaches an input).

    Notes
    -----
    The coefficients :math:`\hat\Lambda` and constants :math:`\hat c` are float64 and
    every update rounds. The argument treats the computed :math:`\hat\Lambda` as the
    *chosen* linear function and keeps, per row, an error :math:`\varepsilon` with the
    invariant (for every input in the box, with exact values :math:`z`)

    .. math:: q^\top z_{\mathrm{vid}} \;\ge\; \textstyle\sum_v \hat\Lambda_v z_v + \hat c
              - \varepsilon

    (upper bounds alike, with :math:`\le` and :math:`+`). Initially :math:`\hat\Lambda = q`
    exactly and :math:`\varepsilon = 0`. With :math:`Z_v = \max(|l_v|, |u_v|) \ge |z_v|` from
    the (sound) interval bounds, each step adds its rounding error, bounded by Higham's
    :math:`\gamma_n` (§3.1: a dot product of :math:`n` nonzero terms in any order has error
    at most :math:`\gamma_n |a|^\top |b|`; :math:`\eta = 2^{-1075}` more per underflowing
    product):

    * linear :math:`z_o = \sum_i M_i z_i + b`: :math:`\hat\Lambda_i = \mathrm{fl}(\hat\Lambda
      M_i)` differs from :math:`\hat\Lambda M_i` by at most :math:`\gamma_{c_i} |\hat\Lambda|
      |M_i|` (:math:`c_i` the most entries of a column of :math:`M_i`), so
      :math:`\varepsilon \mathrel{+}= \gamma_{c_i} |\hat\Lambda| (|M_i| Z_i)` -- a
      matrix-*vector* product, cheap next to :math:`\hat\Lambda M_i` itself -- plus
      :math:`\gamma_{s+1} |\hat\Lambda| |b| + u|\hat c|` for the constant and
      :math:`u |\hat\Lambda_i^{new}| Z_i` when two branches' coefficients are added;
    * (leaky) ReLU with the relaxation of :func:`relu_relaxation` (whose lines hold exactly
      for the float slopes and intercepts): the products :math:`\hat\Lambda^\pm s` round
      once, :math:`\varepsilon \mathrel{+}= u |\hat\Lambda| (|s| Z) + \gamma_{s+2}
      |\hat\Lambda| |b_{line}|`;
    * max-pool (selection matrices, sums of at most twice the overlap :math:`k`):
      :math:`\gamma_{2k}|\hat\Lambda| Z_{best}`; smooth ops (interval constants):
      :math:`\gamma_{s+2}` times the constants' magnitudes;
    * the final concretization: :func:`concretize`.

    Cost: one matrix-vector product :math:`|\hat\Lambda| g` per step and side, next to the
    matrix-matrix products of CROWN itself; a ReLU step folds it into the products it makes
    anyway (:math:`\hat\Lambda^\pm` times its constants), and, when its input has a single
    consumer and a linear producer, also computes the next linear step's
    :math:`|\hat\Lambda_{new}| g_{next} = \hat\Lambda^+ (|s^+| g_{next}) - \hat\Lambda^-
    (|s^-| g_{next})` (plus :math:`\eta \sum g_{next}` for underflowing products).

    All gauges get a floor :math:`2^{-900}` (:data:`_FLOOR`), and a per-row absolute term
    :math:`2^{-1072}(c\sum Z + 2s + 4)` covers the underflows. The error terms are computed
    with :math:`2\gamma` (:func:`_gam`), which covers their own rounding. An overflow
    (an infinite or NaN coefficient or constant) makes the next gauge product, hence the
    error term, infinite or NaN, and the bound infinite.
    """
    start = np.asarray(start, dtype=np.float64)
    # coef_l[vid] is the caller's array (maybe a read-only broadcast view): never written to
    coef_l: dict[str, np.ndarray] = {vid: start}
    coef_u: dict[str, np.ndarray] = {vid: start.copy()}
    lead = start.shape[:-1]
    cl, cu = np.zeros(lead), np.zeros(lead)
    el, eu = np.zeros(lead), np.zeros(lead)
    tiny = 4 * _ETA2  # 2^-1072: eight underflow errors eta

    def mag(v: str) -> np.ndarray:
        return _mag(lo[v], hi[v])

    # scratch arrays by shape for the temporaries (|Lambda|, Lambda-): this is memory-bound,
    # and a fresh multi-megabyte array per step costs its page faults every time
    pool: dict[tuple, np.ndarray] = {}

    def scratch(shape: tuple) -> np.ndarray:
        buf = pool.get(shape)
        if buf is None:
            buf = pool[shape] = np.empty(shape)
        return buf

    def abs_mv(L: np.ndarray, g: np.ndarray) -> np.ndarray:
        return _mv(np.abs(L, out=scratch(L.shape)), g)

    def merge(coef: dict, v: str, new: np.ndarray, err: np.ndarray) -> np.ndarray:
        # adding two branches' coefficients rounds once: u |sum| <= 2u |fl(sum)|
        if v not in coef:
            coef[v] = new
            return err
        coef[v] = coef[v] + new
        return err + _gam(1) * abs_mv(coef[v], mag(v) + _FLOOR)

    def const_err(c: np.ndarray) -> np.ndarray:
        return _gam(1) * np.abs(c)

    def lin_gauge(op: Op) -> tuple[AffineMap, np.ndarray, np.ndarray]:
        """The linear op's map, its gauge g (error <= |Lambda| @ g) and underflow count."""
        amap = maps.get(op.id)
        if amap is None:
            amap = maps[op.id] = AffineMap.of(op, [graph.value(i).shape for i in op.inputs])
        g = _gam(len(amap.bias) + 2) * np.abs(amap.bias)
        ab = 0.0
        for am, c, i in zip(amap.absm, amap.ncol, op.inputs, strict=True):
            zi = mag(i)
            g = g + _gam(c) * (_rmul(zi, am) + _FLOOR * max(c, 1))
            ab = ab + c * zi.sum(axis=-1, keepdims=True)
        return amap, g, ab

    op_list = graph.ops if ops is None else ops
    uses: dict[str, int] = {}
    for op in op_list:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1
    # |Lambda| @ g of a linear step, computed ahead by the (leaky) ReLU step that produced
    # Lambda (see there): op id -> (lower, upper)
    ahead: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    with np.errstate(invalid="ignore", over="ignore"):
        for op in reversed(op_list):
            out = op.outputs[0]
            if out not in coef_l:
                continue
            Ll, Lu = coef_l.pop(out), coef_u.pop(out)
            s_o = Ll.shape[-1]
            if is_linear(op):
                amap, g, ab = lin_gauge(op)
                ab = tiny * (ab + 2 * s_o + 4)
                if op.id in ahead:
                    gl_, gu_ = ahead.pop(op.id)
                else:
                    gl_, gu_ = abs_mv(Ll, g), abs_mv(Lu, g)
                el = el + const_err(cl) + gl_ + ab
                eu = eu + const_err(cu) + gu_ + ab
                cl = cl + Ll @ amap.bias
                cu = cu + Lu @ amap.bias
                for m, i in zip(amap.mats, op.inputs, strict=True):
                    el = merge(coef_l, i, _matmul_right(Ll, m), el)
                    eu = merge(coef_u, i, _matmul_right(Lu, m), eu)
                continue
            x = op.inputs[0]
            xl, xh = lo[x], hi[x]
            alpha = float(op.attrs.get("alpha", 0.0))
            if op.op == "relu" or (op.op == "leaky_relu" and 0 <= alpha <= 1):
                lo_s, lo_b, up_s, up_b = relu_relaxation(xl, xh, alpha)
                zx = _mag(xl, xh)
                # each new coefficient is one rounded product (the other term is an exact 0)
                g = _gam(1) * (np.maximum(np.abs(lo_s), np.abs(up_s)) * zx + _FLOOR)
                g = g + _gam(s_o + 2) * np.maximum(np.abs(lo_b), np.abs(up_b))
                ab = tiny * (zx.sum(axis=-1, keepdims=True) + 2 * s_o + 4)
                el = el + const_err(cl) + ab
                eu = eu + const_err(cu) + ab
                # The constants and |Lambda| @ g (= Lambda+ @ g - Lambda- @ g) in one product
                # per sign, and the new coefficients in place: this step is memory-bound, so
                # each pass over (and each fresh allocation of) a coefficient array counts.
                cols_l, cols_u = [lo_b, g], [up_b, g]
                p = graph.producer(x)
                nxt = (
                    p
                    if p is not None and is_linear(p) and uses.get(x) == 1 and x not in coef_l
                    else None
                )
                if nxt is not None:
                    # x's coefficient will be exactly this step's new one, and the next step
                    # (x's producer) needs |new| @ g_next. |new| = Lambda+ |s+| - Lambda- |s-|
                    # entrywise (one rounded product each), so a third column gives it here
                    # and saves that step a pass. The slope is floored at 2^-60 (> 0, so an
                    # overflowed coefficient still shows, and s * g_next never underflows);
                    # an underflowing product new_j adds eta * g_next_j at most.
                    _, g_nxt, _ = lin_gauge(nxt)
                    cols_l.append(np.maximum(np.abs(lo_s), 2.0**-60) * g_nxt)
                    cols_u.append(np.maximum(np.abs(up_s), 2.0**-60) * g_nxt)
                    ab_nxt = tiny * g_nxt.sum(axis=-1, keepdims=True)
                gl, gu = np.stack(cols_l, axis=-1), np.stack(cols_u, axis=-1)
                sl, su = lo_s[..., None, :], up_s[..., None, :]
                nxt_err = []
                for L, gp, gn, sp_, sn, side in ((Ll, gl, gu, sl, su, 0), (Lu, gu, gl, su, sl, 1)):
                    neg = np.minimum(L, 0, out=scratch(L.shape))
                    # L is dead after this step: reuse its memory unless it is the caller's
                    pos = np.maximum(L, 0, out=None if L is start else L)
                    pc, nc = pos @ gp, neg @ gn
                    if side == 0:
                        cl, el = cl + (pc[..., 0] + nc[..., 0]), el + (pc[..., 1] - nc[..., 1])
                    else:
                        cu, eu = cu + (pc[..., 0] + nc[..., 0]), eu + (pc[..., 1] - nc[..., 1])
                    if nxt is not None:
                        nxt_err.append(pc[..., 2] - nc[..., 2] + ab_nxt)
                    pos *= sp_
                    neg *= sn
                    pos += neg  # one of the two terms is an exact 0
                    if side == 0:
                        new_l = pos
                    else:
                        new_u = pos
                if nxt is not None:
                    ahead[nxt.id] = (nxt_err[0], nxt_err[1])
            elif op.op == "maxpool2d":
                k = int(np.prod(op.attrs["kernel"]))
                idx = window_index(graph.value(x).shape, op.attrs).reshape(-1, k)
                valid = idx >= 0
                wl = np.where(valid, xl[np.where(valid, idx, 0)], -np.inf)
                wh = np.where(valid, xh[np.where(valid, idx, 0)], -np.inf)
                j = wl.argmax(axis=1)
                best = idx[np.arange(len(idx)), j]
                top = wh.max(axis=1)
                # y >= x_best (always); y <= x_best when it dominates, else y <= max u
                other = np.where(np.arange(k)[None, :] == j[:, None], -np.inf, wh).max(axis=1)
                exact = wl[np.arange(len(idx)), j] >= other
                sel = np.zeros((len(idx), xl.size))
                sel[np.arange(len(idx)), best] = 1.0
                sel_u = sel * exact[:, None]
                lp, ln = _pos_neg(Ll)
                up, un = _pos_neg(Lu)
                tsel = np.where(exact, 0.0, top)
                # products with 0/1 are exact; a column sums at most 2x its windows' terms
                cnt = 2 * int(sel.sum(axis=0).max(initial=0))
                g = _gam(cnt) * (_mag(xl, xh)[best] + _FLOOR) + _gam(s_o + 2) * np.abs(tsel)
                el = el + const_err(cl) + _mv(np.abs(Ll), g) + tiny * (2 * s_o + 4)
                eu = eu + const_err(cu) + _mv(np.abs(Lu), g) + tiny * (2 * s_o + 4)
                new_l = lp @ sel + ln @ sel_u
                cl = cl + _mv(ln, tsel)
                new_u = up @ sel_u + un @ sel
                cu = cu + _mv(up, tsel)
            else:
                # smooth op (or LeakyReLU with alpha outside [0, 1]): its interval bounds
                # as constants; the errors use the bound actually taken by each sign
                ol, oh = lo[out], hi[out]
                lp, ln = _pos_neg(Ll)
                up, un = _pos_neg(Lu)
                aol, aoh = np.abs(ol) + _FLOOR, np.abs(oh) + _FLOOR
                gs = _gam(s_o + 2)
                ab = tiny * (2 * s_o + 4)
                el = el + const_err(cl) + gs * (_mv(lp, aol) - _mv(ln, aoh)) + ab
                eu = eu + const_err(cu) + gs * (_mv(up, aoh) - _mv(un, aol)) + ab
                cl = cl + (_mv(lp, ol) + _mv(ln, oh))
                cu = cu + (_mv(up, oh) + _mv(un, ol))
                continue
            el = merge(coef_l, x, new_l, el)
            eu = merge(coef_u, x, new_u, eu)
    rl, ru = cl, cu
    first = True
    for i in list(coef_l):
        if i not in graph.inputs:
            raise RuntimeError(f"back-substitution stopped at value '{i}'")
        # the constant and the accumulated error enter once, with the first input
        c0l, c0u = (rl, ru) if first else (np.zeros(lead), np.zeros(lead))
        e0l, e0u = (el, eu) if first else (np.zeros(lead), np.zeros(lead))
        li = concretize(coef_l[i], c0l, e0l, in_lo[i], in_hi[i], upper=False)
        ui = concretize(coef_u[i], c0u, e0u, in_lo[i], in_hi[i], upper=True)
        if first:
            rl, ru = li, ui
        else:
            # a sum of sound bounds, rounded outward
            with np.errstate(invalid="ignore"):
                rl = np.nextafter(rl + li, -np.inf)
                ru = np.nextafter(ru + ui, np.inf)
        first = False
    if first:
        # nothing reached an input (a constant value)
        rl = concretize(np.zeros((*lead, 0)), cl, el, np.zeros(0), np.zeros(0), upper=False)
        ru = concretize(np.zeros((*lead, 0)), cu, eu, np.zeros(0), np.zeros(0), upper=True)
    # (not np.nan_to_num: it would also turn an infinite bound into a false finite one)
    rl = np.where(np.isnan(rl), -np.inf, rl)
    ru = np.where(np.isnan(ru), np.inf, ru)
    inp = graph.inputs[0]
    return rl, ru, coef_l.get(inp, np.zeros((*lead, 0)))


def _crown_value(
    graph: Graph,
    vid: str,
    lo: dict,
    hi: dict,
    rows: np.ndarray | None,
    in_lo: dict,
    in_hi: dict,
    start: np.ndarray | None = None,
    maps: dict[str, AffineMap] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-substitute linear bounds of ``vid[rows]`` (or of ``start @ vid``) to the inputs.

    Rigorous in floating point: see :func:`backsub`.
    """
    size = graph.value(vid).size
    if start is None:
        n = len(rows)
        eye = np.zeros((n, size))
        eye[np.arange(n), rows] = 1.0
    else:
        eye = np.asarray(start, dtype=np.float64).reshape(-1, size)
    prod = graph.producer(vid)
    if prod is None:
        if start is None:
            return lo[vid][rows], hi[vid][rows]
        zero = np.zeros(len(eye))
        return (
            concretize(eye, zero, zero, lo[vid], hi[vid], upper=False),
            concretize(eye, zero, zero, lo[vid], hi[vid], upper=True),
        )
    # the ops that lie between the inputs and vid
    ancestors = {n_[1] for n_ in nx.ancestors(graph.nx, ("o", prod.id)) if n_[0] == "o"} | {prod.id}
    ops = [op for op in graph.ops if op.id in ancestors]
    rl, ru, _ = backsub(graph, vid, eye, lo, hi, in_lo, in_hi, {} if maps is None else maps, ops)
    return rl, ru


def linear_bounds(
    graph: Graph, bounds: Bounds, vid: str, C: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds of ``C @ value`` (rows of ``C`` over the flattened value ``vid``).

    Back-substitutes ``C`` itself (much tighter than bounding ``C`` times the value's interval),
    and takes the better of that and the interval product. Both are rounded outward
    (:func:`concretize`, :func:`backsub`): they hold for the exact value of ``C @ value``.
    """
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    lo, hi = bounds[vid]
    zero = np.zeros(len(C))
    il = concretize(C, zero, zero, lo, hi, upper=False)
    ih = concretize(C, zero, zero, lo, hi, upper=True)
    ins = {i: bounds.lo[i] for i in graph.inputs}, {i: bounds.hi[i] for i in graph.inputs}
    if not all(
        np.all(np.isfinite(ins[0][i])) and np.all(np.isfinite(ins[1][i])) for i in graph.inputs
    ):
        return il, ih
    cl, cu = _crown_value(graph, vid, bounds.lo, bounds.hi, None, ins[0], ins[1], start=C)
    return np.maximum(il, cl), np.minimum(ih, cu)


def compute_bounds(
    graph: Graph,
    lo: np.ndarray | Mapping[str, np.ndarray],
    hi: np.ndarray | Mapping[str, np.ndarray],
    method: str = "crown",
    *,
    chunk: int = 1024,
) -> Bounds:
    """Bounds of every value of ``graph`` for inputs in the box ``[lo, hi]``.

    Parameters
    ----------
    graph : Graph
        The IR graph.
    lo, hi : array or mapping
        Input box (input's shape, or flattened), or ``{input id: array}`` for several inputs.
    method : {"interval", "crown"}
        See the module docstring. ``"crown"`` computes symbolic bounds for the inputs of the
        piecewise-linear and smooth ops and for the outputs, and interval bounds elsewhere.
    chunk : int
        Rows back-substituted at once (memory: ``chunk x size`` dense coefficients).
    """
    import time

    t0 = time.perf_counter()
    if method not in METHODS:
        raise InputError(f"unknown bound method '{method}'; choose one of {METHODS}")
    if not isinstance(lo, Mapping):
        lo = {graph.inputs[0]: lo}
    if not isinstance(hi, Mapping):
        hi = {graph.inputs[0]: hi}
    L: dict[str, np.ndarray] = {}
    H: dict[str, np.ndarray] = {}
    for i in graph.inputs:
        n = graph.value(i).size
        L[i] = np.broadcast_to(
            np.asarray(lo[i], dtype=np.float64).reshape(-1) if np.ndim(lo[i]) else lo[i], (n,)
        ).astype(np.float64)
        H[i] = np.broadcast_to(
            np.asarray(hi[i], dtype=np.float64).reshape(-1) if np.ndim(hi[i]) else hi[i], (n,)
        ).astype(np.float64)
        if np.any(np.isnan(L[i])) or np.any(np.isnan(H[i])):
            raise InputError(f"input box of '{i}' has a NaN bound")
        if np.any(L[i] > H[i]):
            k = int(np.argmax(L[i] > H[i]))
            raise InputError(f"input box has lo > hi at index {k} ({L[i][k]} > {H[i][k]})")
    needs = set(graph.outputs)
    if method == "crown":
        for op in graph.ops:
            if not is_linear(op):
                needs.add(op.inputs[0])
    finite_in = all(np.all(np.isfinite(L[i])) and np.all(np.isfinite(H[i])) for i in graph.inputs)
    # values affine in the input (no nonlinear op upstream): interval bounds are already exact
    affine_in = set(graph.inputs)
    for op in graph.ops:
        if is_linear(op) and all(i in affine_in for i in op.inputs):
            affine_in.add(op.outputs[0])
    maps: dict[str, AffineMap] = {}
    for op in graph.ops:
        out = op.outputs[0]
        L[out], H[out] = interval_op(graph, op, L, H, maps)
        if (
            method == "crown"
            and out in needs
            and finite_in
            and is_linear(op)
            and out not in affine_in
        ):
            size = graph.value(out).size
            for s in range(0, size, chunk):
                rows = np.arange(s, min(size, s + chunk))
                cl, cu = _crown_value(graph, out, L, H, rows, L, H, maps=maps)
                L[out][rows] = np.maximum(L[out][rows], cl)
                H[out][rows] = np.minimum(H[out][rows], cu)
    b = Bounds(L, H, method, time.perf_counter() - t0)
    b.stats["unstable"] = b.unstable(graph)
    return b
