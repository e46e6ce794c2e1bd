"""The smooth ops: ``sigmoid``, ``tanh``, ``softmax``, ``log_softmax``.

Their interval bounds hold for the exact functions, not only their float64 evaluation:
sigmoid and tanh are increasing (the function at the input's bounds), softmax and
log-softmax take corner rules in log-sum-exp form (:func:`_softmax_interval`); every bound
is rounded outward and clipped to the op's range (:func:`_widen`).
CROWN uses these interval bounds as constants (the ops have no ``relax`` rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from netopt.ir.ops.spec import check_arity, register_op, same_shape

__all__ = ["Sigmoid", "Tanh", "Softmax", "LogSoftmax", "SMOOTH_RANGE"]

Shape = tuple[int, ...]

#: The range of each smooth op: its interval bounds are clipped to it, and a NaN bound (from
#: ``inf - inf`` on infinite input bounds) becomes the range's end.
SMOOTH_RANGE: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "softmax": (0.0, 1.0),
    "log_softmax": (-np.inf, 0.0),
}


#: Machine epsilon of float64 (:math:`2u`).
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


def _sigmoid(t: np.ndarray) -> np.ndarray:
    """The logistic function to an ulp or so, down into the subnormals, without overflow.

    ``scipy.special.expit`` is no substitute: it returns 0 below about -709, where
    :math:`e^t` is still a positive subnormal. The exact value at :math:`t = -800` is below
    the smallest subnormal, so 0 is then within the absolute margin of :func:`_widen`.
    """
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(t))
        return np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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


def _widened(op, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi]`` rounded outward and clipped to the op's range (never NaN)."""
    return _widen(lo, hi, SMOOTH_RANGE[op.op])


def _check_axes(name: str, shapes: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    check_arity(name, shapes, 1, 1)
    r = len(shapes[0])
    axes = tuple(int(t) for t in a["axes"])
    if any(not 0 <= t < r for t in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"{name} axes {axes} invalid for rank {r}")
    return tuple(shapes[0])


@register_op("sigmoid", "smooth")
class Sigmoid:
    r""":math:`y = 1 / (1 + e^{-x})` elementwise."""

    infer = staticmethod(same_shape("sigmoid"))

    @staticmethod
    def forward(xs, a):
        x = xs[0]
        # the two-branch form avoids overflow of exp for large |x|
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    @staticmethod
    def vjp(op, shapes, out_shape, g, env):
        s = env[op.outputs[0]].reshape(len(g), -1)
        return [g * s * (1 - s)]

    @staticmethod
    def interval(op, shapes, xls, xhs, maps):
        # sigmoid(40) is 1.0, sigmoid(-800) 0.0: see _widen
        return _widened(op, _sigmoid(xls[0]), _sigmoid(xhs[0]))


@register_op("tanh", "smooth")
class Tanh:
    r""":math:`y = \tanh(x)` elementwise."""

    infer = staticmethod(same_shape("tanh"))

    @staticmethod
    def forward(xs, a):
        return np.tanh(xs[0])

    @staticmethod
    def vjp(op, shapes, out_shape, g, env):
        t = env[op.outputs[0]].reshape(len(g), -1)
        return [g * (1 - t**2)]

    @staticmethod
    def interval(op, shapes, xls, xhs, maps):
        return _widened(op, np.tanh(xls[0]), np.tanh(xhs[0]))


def _softmax_vjp(op, shapes, out_shape, g, env):
    B = len(g)
    shape = (B, *out_shape)
    ax = tuple(1 + int(a) for a in op.attrs["axes"])
    y = env[op.outputs[0]].reshape(shape)
    gg = g.reshape(shape)
    if op.op == "softmax":
        return [(y * (gg - (gg * y).sum(axis=ax, keepdims=True))).reshape(B, -1)]
    p = np.exp(y)
    return [(gg - p * gg.sum(axis=ax, keepdims=True)).reshape(B, -1)]


def _softmax_rule(op, shapes, xls, xhs, maps):
    axes = tuple(int(t) for t in op.attrs["axes"])
    lo, hi = _softmax_interval(op.op == "log_softmax", tuple(shapes[0]), axes, xls[0], xhs[0])
    return _widened(op, lo, hi)


@register_op("softmax", "smooth", attrs=("axes",))
class Softmax:
    r""":math:`y = e^{x} / \sum_{A} e^{x}`, normalized jointly over the sample axes ``axes``."""

    @staticmethod
    def infer(shapes, a):
        return _check_axes("softmax", shapes, a)

    @staticmethod
    def forward(xs, a):
        ax = tuple(1 + int(t) for t in a["axes"])
        z = xs[0] - xs[0].max(axis=ax, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=ax, keepdims=True)

    vjp = staticmethod(_softmax_vjp)
    interval = staticmethod(_softmax_rule)


@register_op("log_softmax", "smooth", attrs=("axes",))
class LogSoftmax:
    r""":math:`y = x - \log \sum_{A} e^{x}` over the sample axes ``axes``."""

    @staticmethod
    def infer(shapes, a):
        return _check_axes("log_softmax", shapes, a)

    @staticmethod
    def forward(xs, a):
        ax = tuple(1 + int(t) for t in a["axes"])
        m = xs[0].max(axis=ax, keepdims=True)
        return xs[0] - m - np.log(np.exp(xs[0] - m).sum(axis=ax, keepdims=True))

    vjp = staticmethod(_softmax_vjp)
    interval = staticmethod(_softmax_rule)
