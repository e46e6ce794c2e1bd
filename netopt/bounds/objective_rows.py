r"""Linear minorants of an objective of the output, and the exact check that rows imply a bound.

Branch and bound proves a bound on an optimization problem through linear rows of the output.
With the *minimized* objective :math:`g = \sigma \cdot \mathrm{obj}` (:math:`\sigma = +1` when
minimizing, :math:`-1` when maximizing), a row :math:`v` is *valid* when

.. math::

    g(x) \;\ge\; v^\top f(x) + e(v) \qquad \text{for every output } f(x),

so a box on which :math:`v^\top f(x) > d` has :math:`g > d + e(v)` everywhere. The rows are
(``w`` the weights, ``y`` the target, ``r = f - y``):

* :math:`\|w \odot r\|_1`: :math:`|v_j| \le w_j` (then :math:`v^\top r \le \sum_j |v_j||r_j| \le
  \sum_j w_j |r_j|`), :math:`e(v) = -v^\top y`;
* :math:`\|w \odot r\|_\infty`: :math:`\sum_j |v_j| / w_j \le 1` and :math:`v_j = 0` where
  :math:`w_j = 0` (a convex combination of :math:`\pm w_j e_j`), :math:`e(v) = -v^\top y`;
* :math:`\|w \odot r\|_2`: :math:`\sum_j (v_j / w_j)^2 \le 1` and :math:`v_j = 0` where
  :math:`w_j = 0` (Cauchy-Schwarz), :math:`e(v) = -v^\top y`;
* :math:`c^\top f + c_0`: :math:`v = \sigma c` exactly, :math:`e(v) = \sigma c_0`.

:func:`rows_imply_bound` checks, in exact rational arithmetic (:class:`fractions.Fraction` of the
float64 values), that every row of a proof's ``C`` is valid and that its ``d`` implies the
claimed bound: :math:`d_i + e(C_i) \ge \sigma \cdot \text{bound}`. Together with
:func:`netopt.bounds.proof.check_proof` (every leaf of the tree has :math:`C_i f(x) > d_i`)
this proves :math:`g \ge \sigma \cdot \text{bound}` on the whole box. Exact arithmetic costs
microseconds here (a few rows of a few outputs) and leaves no rounding argument to make.

:class:`Minorant` gives the search its candidate rows for a box, from the box's output bounds
and the residual at its centre.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["Minorant", "minorant_of", "proof_rhs", "rows_imply_bound"]


class Minorant:
    r"""The valid rows of one problem's minimized objective, and candidate rows for boxes.

    Attributes
    ----------
    kind : {"l1", "l2", "linf", "linear"}
    sign : float
        :math:`\sigma`: the minimized objective is ``sign * objective``.
    m : int
        Flat output size.
    """

    def __init__(
        self,
        kind: str,
        sign: float,
        m: int,
        weights: np.ndarray | None = None,
        target: np.ndarray | None = None,
        c: np.ndarray | None = None,
        c0: float = 0.0,
    ) -> None:
        self.kind, self.sign, self.m = kind, float(sign), int(m)
        self.w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        self.y = None if target is None else np.asarray(target, dtype=np.float64).reshape(-1)
        self.c = None if c is None else np.asarray(c, dtype=np.float64).reshape(-1)
        self.c0 = float(c0)

    @property
    def floor(self) -> float:
        """A bound every value of the minimized objective has (0 for a norm, else -inf)."""
        return 0.0 if self.kind != "linear" else -np.inf

    def offsets(self, V: np.ndarray) -> np.ndarray:
        r""":math:`e(v)` for each row of ``V`` (``(..., m)``), in float64 (the search's use)."""
        if self.kind == "linear":
            return np.full(V.shape[:-1], self.sign * self.c0)
        return -(V @ self.y)

    def base_rows(self) -> np.ndarray:
        r"""Rows every box gets: :math:`\pm w_j e_j` (a norm's outputs' own bounds), or
        :math:`\sigma c`."""
        if self.kind == "linear":
            return (self.sign * self.c)[None]
        keep = np.nonzero(self.w > 0)[0]
        E = np.zeros((2 * len(keep), self.m))
        E[np.arange(len(keep)), keep] = self.w[keep]
        E[len(keep) + np.arange(len(keep)), keep] = -self.w[keep]
        return E

    def box_rows(self, lo_out: np.ndarray, hi_out: np.ndarray, y_mid: np.ndarray) -> np.ndarray:
        r"""Two candidate rows per box ``(B, 2, m)`` for a norm (none for a linear objective).

        ``lo_out``, ``hi_out``: bounds of the box's outputs (a parent's, or the box's own);
        ``y_mid``: the output at its centre. The first row takes :math:`w_j \,\mathrm{sign}(r_j)`
        where the bounds fix the sign of :math:`r_j` and 0 where they do not (each such
        :math:`|r_j|` may be 0 on the box); the second the direction of the centre's residual
        (for :math:`\ell_1` its signs; for :math:`\ell_2` the unit vector :math:`w \odot r /
        \|w \odot r\|`, scaled by :math:`w`; for :math:`\ell_\infty` the largest entry's).
        """
        B = len(y_mid)
        if self.kind == "linear":
            return np.zeros((B, 0, self.m))
        w, y = self.w, self.y
        det = np.where(lo_out > y, 1.0, np.where(hi_out < y, -1.0, 0.0))
        r = y_mid - y
        s = np.sign(r)
        if self.kind == "l1":
            v1, v2 = w * det, w * s
        elif self.kind == "l2":
            u = w * det * np.abs(r)
            v1 = w * u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
            u2 = w * r
            v2 = w * u2 / np.maximum(np.linalg.norm(u2, axis=1, keepdims=True), 1e-300)
            # shrink below the unit sphere by a hair, so that rounding never leaves the ball
            v1, v2 = v1 * (1 - 1e-12), v2 * (1 - 1e-12)
        else:  # linf: the residual of largest weighted size, determined or at the centre
            ar = np.arange(B)
            with np.errstate(invalid="ignore"):  # inf * 0 where a weight is 0: masked
                gap = np.where(
                    (det != 0) & (w > 0), np.maximum(lo_out - y, y - hi_out) * w, -np.inf
                )
            j1 = gap.argmax(axis=1)
            j2 = (w * np.abs(r)).argmax(axis=1)
            v1 = np.zeros((B, self.m))
            v2 = np.zeros((B, self.m))
            v1[ar, j1] = w[j1] * np.where(det[ar, j1] != 0, det[ar, j1], s[ar, j1])
            v2[ar, j2] = w[j2] * s[ar, j2]
        return np.stack([v1, v2], axis=1)

    def valid(self, V: np.ndarray) -> np.ndarray:
        r"""Rows ``V`` (``(..., m)``) mapped into the valid set (float64, with room to spare
        for the exact check): clipped to :math:`|v_j| \le w_j` (:math:`\ell_1`), scaled into
        the weighted :math:`\ell_1` / :math:`\ell_2` ball (:math:`\ell_\infty`,
        :math:`\ell_2`), or :math:`\sigma c` (linear)."""
        V = np.asarray(V, dtype=np.float64)
        if self.kind == "linear":
            return np.broadcast_to(self.sign * self.c, V.shape).copy()
        w = self.w
        V = np.where(w > 0, V, 0.0)
        if self.kind == "l1":
            return np.clip(V, -w, w)
        safe = np.where(w > 0, w, 1.0)
        if self.kind == "linf":
            size = (np.abs(V) / safe).sum(axis=-1, keepdims=True)
        else:
            size = np.sqrt(((V / safe) ** 2).sum(axis=-1, keepdims=True))
        room = 1.0 - 1e-9  # float64 sums err by far less than this
        return np.where(size > room, V * (room / np.maximum(size, 1e-300)), V)


def minorant_of(problem: Any) -> Minorant | None:
    """The :class:`Minorant` of ``problem``, or None for a kind without one."""
    from netopt.problems import Inversion, OutputObjective

    if isinstance(problem, Inversion):
        kind = {1.0: "l1", 2.0: "l2", np.inf: "linf"}[float(problem.norm)]
        m = problem.target.size
        return Minorant(kind, 1.0, m, weights=problem.weights, target=problem.target)
    if isinstance(problem, OutputObjective):
        sign = 1.0 if problem.sense == "min" else -1.0
        return Minorant("linear", sign, problem.c.size, c=problem.c, c0=problem.constant)
    return None


def _fr(v: float) -> Fraction:
    return Fraction(float(v))


def rows_imply_bound(problem: Any, C: np.ndarray, d: np.ndarray, bound: float) -> str | None:
    r"""Why rows ``C f(x) > d`` on every leaf do not prove ``bound`` on ``problem``; None if they do.

    Exact rational arithmetic: every row must be a valid minorant row of the minimized
    objective (the module's table) and :math:`d_i + e(C_i) \ge \sigma \cdot \text{bound}`.
    """
    mn = minorant_of(problem)
    if mn is None:
        return f"a {type(problem).__name__} has no linear minorant rows"
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    if C.shape != (len(d), mn.m):
        return f"C has shape {C.shape}; expected ({len(d)}, {mn.m})"
    if not (np.all(np.isfinite(C)) and np.all(np.isfinite(d)) and np.isfinite(bound)):
        return "C, d and the bound must be finite"
    target = _fr(mn.sign * bound)
    for i in range(len(d)):
        v = [_fr(a) for a in C[i]]
        if mn.kind == "linear":
            if not np.array_equal(C[i], mn.sign * mn.c):
                return f"row {i} is not the objective's c (times the sense's sign)"
            e = _fr(mn.sign) * _fr(mn.c0)
        else:
            w = [_fr(a) for a in mn.w]
            if any(wj == 0 and vj != 0 for vj, wj in zip(v, w, strict=True)):
                return f"row {i} has a nonzero entry where the weight is 0"
            pairs = [(vj, wj) for vj, wj in zip(v, w, strict=True) if wj != 0]
            if mn.kind == "l1":
                ok = all(abs(vj) <= wj for vj, wj in pairs)
            elif mn.kind == "linf":
                ok = sum((abs(vj) / wj for vj, wj in pairs), Fraction(0)) <= 1
            else:
                ok = sum(((vj / wj) ** 2 for vj, wj in pairs), Fraction(0)) <= 1
            if not ok:
                return f"row {i} is not a valid minorant row of the {mn.kind} objective"
            e = -sum((vj * _fr(yj) for vj, yj in zip(v, mn.y, strict=True)), Fraction(0))
        if _fr(d[i]) + e < target:
            return f"row {i}: d + e(row) is below the claimed bound"
    return None


def proof_rhs(mn: Minorant, V: np.ndarray, claim: float) -> np.ndarray:
    r"""``d`` for rows ``V`` that implies ``claim`` on the minimized objective: the least float64
    at or above :math:`\text{claim} - e(v)`, computed exactly."""
    d = np.empty(len(V))
    target = _fr(claim)
    for i in range(len(d)):
        if mn.kind == "linear":
            e = _fr(mn.sign) * _fr(mn.c0)
        else:
            e = -sum((_fr(a) * _fr(b) for a, b in zip(V[i], mn.y, strict=True)), Fraction(0))
        need = target - e
        d[i] = float(need)  # the nearest float64
        if _fr(d[i]) < need:
            d[i] = np.nextafter(d[i], np.inf)
    return d
