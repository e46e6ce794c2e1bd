"""The piecewise-linear activations: ``relu`` and ``leaky_relu``."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from netopt.ir.ops.spec import register_op, same_shape

__all__ = ["Relu", "LeakyRelu", "relu_relaxation", "leaky_bound"]

#: Unit roundoff of float64 (round to nearest).
_U = 2.0**-53


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


def _namespace(x: Any) -> tuple[Any, float]:
    """The array module of ``x`` (numpy, or torch for a tensor) and its dtype's unit roundoff.

    One rule then serves the float64 numpy bounds and the batched torch bounds: the names used
    below (``where``, ``maximum``, ``abs``, ``isfinite``, ``zeros_like``) mean the same in both.
    """
    if type(x).__module__.startswith("torch"):
        import torch

        return torch, float(torch.finfo(x.dtype).eps) / 2
    return np, float(np.finfo(np.asarray(x).dtype).eps) / 2 if np.asarray(
        x
    ).dtype.kind == "f" else _U


def relu_relaxation(l: Any, u: Any, alpha: float = 0.0, lower: Any = None):  # noqa: E741
    r"""Linear bounds ``lo_s*x + lo_b <= f(x) <= up_s*x + up_b`` of (leaky) ReLU on ``[l, u]``.

    Returns ``(lo_s, lo_b, up_s, up_b)``, for ``0 <= alpha <= 1``. For the unstable units the
    upper line is the chord through ``(l, f(l))`` and ``(u, f(u))``; the lower line has slope 1
    or ``alpha``, whichever is closer to the chord (CROWN's adaptive choice), or the slope given
    in ``lower`` (alpha-CROWN's optimized slopes), clipped to :math:`[\alpha, 1]`: every line
    :math:`s x` with :math:`\alpha \le s \le 1` lies below :math:`\max(x, \alpha x)`, so a
    wrong slope can only loosen the bound, never make it false.

    ``l``, ``u`` (and ``lower``) are numpy arrays or torch tensors (of one shape); the result is
    of the same kind, so the float64 bounds and the batched torch search use one rule.

    The lines hold for the exact function with the returned float slopes and intercepts:

    * the lower lines :math:`s x` (intercept 0) and the stable units' lines are exact;
    * the chord's slope :math:`s` rounds, and its intercept is then *chosen* to lie above both
      ends: :math:`f` is convex, so a line above it at :math:`l` and :math:`u` is above it on
      :math:`[l, u]`. The intercept is :math:`\max(\alpha l - s l,\ u - s u)` computed in
      the arrays' precision (error below :math:`2u(|\alpha l| + |s l| + |u| + |s u|) + 2\eta`),
      plus a margin :math:`16u \max(|l|, |u|) \max(1, |s|) + 2^{-1070}` that exceeds that error
      and the rounding of the addition itself (:math:`u` the unit roundoff of the dtype).

    A unit with an infinite bound has no finite upper line: its intercept is :math:`+\infty`
    (the back-substitution then gives an infinite bound, which is sound).
    """
    xp, unit = _namespace(l)
    act = l >= 0
    dead = u <= 0
    unst = ~act & ~dead
    one = xp.ones_like(l)  # where() of two scalars would take torch's default dtype
    lo_s = xp.where(act, one, alpha * one)
    up_s = xp.where(act, one, alpha * one)
    lo_b = xp.zeros_like(l)
    up_b = xp.zeros_like(l)
    guard = (
        np.errstate(divide="ignore", invalid="ignore", over="ignore")
        if xp is np
        else (contextlib.nullcontext())
    )
    with guard:
        chord = xp.where(unst, (u - alpha * l) / (u - l), 0.0)
        fin = xp.isfinite(l) & xp.isfinite(u) & xp.isfinite(chord)
        chord = xp.where(fin, chord, 1.0)
        t = xp.maximum(alpha * l - chord * l, u - chord * u)
        big = xp.maximum(xp.abs(l), xp.abs(u)) * xp.where(xp.abs(chord) > 1.0, xp.abs(chord), 1.0)
        t = t + (16 * unit * big + 2.0**-1070)
    up_s = xp.where(unst, chord, up_s)
    up_b = xp.where(unst, xp.where(fin, t, np.inf), up_b)
    if lower is None:
        lower = xp.where(u > -l, one, alpha * one)
    else:
        lower = xp.where(lower > 1.0, 1.0, xp.where(lower < alpha, alpha, lower))
    lo_s = xp.where(unst, lower, lo_s)
    return lo_s, lo_b, up_s, up_b


@register_op("relu", "piecewise_linear")
class Relu:
    r""":math:`y = \max(x, 0)` elementwise."""

    infer = staticmethod(same_shape("relu"))

    @staticmethod
    def forward(xs, a):
        return np.maximum(xs[0], 0.0)

    @staticmethod
    def vjp(op, shapes, out_shape, g, env):
        """The subgradient 0 at the kink."""
        x = env[op.inputs[0]].reshape(len(g), -1)
        return [g * (x > 0)]

    @staticmethod
    def interval(op, shapes, xls, xhs, maps):
        """Exact in floating point (``max`` rounds nothing)."""
        return np.maximum(xls[0], 0), np.maximum(xhs[0], 0)

    @staticmethod
    def relax(op, shape, xl, xh):
        """CROWN's lines (:func:`relu_relaxation`): ``("lines", lo_s, lo_b, up_s, up_b)``."""
        return ("lines", *relu_relaxation(xl, xh, 0.0))


@register_op("leaky_relu", "piecewise_linear", attrs=("alpha",))
class LeakyRelu:
    r""":math:`y = x` for :math:`x \ge 0`, :math:`\alpha x` otherwise."""

    infer = staticmethod(same_shape("leaky_relu"))

    @staticmethod
    def forward(xs, a):
        x = xs[0]
        return np.where(x >= 0, x, float(a["alpha"]) * x)

    @staticmethod
    def vjp(op, shapes, out_shape, g, env):
        """The slope of the branch, 1 at the kink."""
        x = env[op.inputs[0]].reshape(len(g), -1)
        return [g * np.where(x >= 0, 1.0, float(op.attrs["alpha"]))]

    @staticmethod
    def interval(op, shapes, xls, xhs, maps):
        """The product :math:`\\alpha x` rounded outward (:func:`leaky_bound`)."""
        xl, xh = xls[0], xhs[0]
        a = float(op.attrs["alpha"])
        if a >= 0:
            return leaky_bound(xl, a, -1), leaky_bound(xh, a, +1)
        # not monotone: the minimum is 0 or an end, the maximum an end
        lo_ = np.minimum(leaky_bound(xl, a, -1), np.minimum(0, leaky_bound(xh, a, -1)))
        return lo_, np.maximum(leaky_bound(xl, a, +1), leaky_bound(xh, a, +1))

    @staticmethod
    def relax(op, shape, xl, xh):
        """CROWN's lines for ``0 <= alpha <= 1``; None otherwise (its interval bounds are used)."""
        alpha = float(op.attrs.get("alpha", 0.0))
        if not 0 <= alpha <= 1:
            return None
        return ("lines", *relu_relaxation(xl, xh, alpha))
