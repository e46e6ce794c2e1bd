r"""Symbolic linear bounds by back-substitution (CROWN), rigorous in floating point.

CROWN (Zhang et al. 2018; DeepPoly, Singh et al. 2019) bounds ``C @ value`` by carrying linear
coefficients back to the input through every op: a linear op exactly (its ``linear_map``),
any other op through its ``relax`` rule (:mod:`netopt.ir.ops`): a ReLU with pre-activation
bounds :math:`l < 0 < u` is relaxed by :math:`\alpha x \le y \le \frac{u}{u-l}(x - l)` with the
adaptive :math:`\alpha = [u > -l]`; a LeakyReLU likewise; a max-pool window by
:math:`x_{j^*} \le y \le \max_i u_i`, exact when one cell dominates; ops without a
relaxation (the smooth ones) by their interval bounds. A relaxation is one of

* ``("lines", lo_s, lo_b, up_s, up_b)`` -- elementwise lines;
* ``("select", sel, sel_u, tsel, best)`` -- a selection matrix and constants.

:func:`backsub` carries a rigorous rounding-error term per row, :func:`concretize` rounds the
final bound outward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

from netopt.bounds.interval import AffineMap
from netopt.ir.graph import Graph, Op
from netopt.ir.ops import OPS, is_linear
from netopt.ir.ops.activations import relu_relaxation
from netopt.rounding import _ETA2, _FLOOR, _gam, _mag, _mv, _pos_neg, _rmul

if TYPE_CHECKING:
    from netopt.bounds.compute import Bounds

__all__ = ["backsub", "concretize", "linear_bounds", "linear_gauge", "relu_relaxation"]


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
    lead = L.shape[:-1]
    if isinstance(m, np.ndarray):
        if L.ndim > 2 and L.flags.c_contiguous:
            # one product of (rows, s_out) by m: numpy's stacked matmul makes one call per
            # leading index, slow for many short stacks (a row per box); a view, no copy
            return (L.reshape(-1, L.shape[-1]) @ m).reshape(*lead, -1)
        return L @ m
    return np.asarray(m.T @ L.reshape(-1, L.shape[-1]).T).T.reshape(*lead, -1)


def linear_gauge(
    graph: Graph,
    op: Op,
    maps: dict[str, AffineMap],
    lo: Mapping[str, np.ndarray],
    hi: Mapping[str, np.ndarray],
) -> tuple[AffineMap, np.ndarray, np.ndarray]:
    r"""A linear op's map, its error gauge :math:`g` and its underflow count, for :func:`backsub`.

    Back-substituting :math:`\hat\Lambda` through the op errs by at most :math:`|\hat\Lambda| g`
    with :math:`g = \gamma_{s+2}|b| + \sum_i \gamma_{c_i} (|M_i| Z_i + 2^{-900} c_i)`
    (:math:`Z_i` the magnitude bounds of input :math:`i` from ``lo``, ``hi``, :math:`c_i` the
    most entries of a column of :math:`M_i`); the count :math:`\sum_i c_i \sum Z_i` sizes the
    underflow term. Batched inputs give ``(B, size)`` gauges and ``(B, 1)`` counts.
    """
    amap = maps.get(op.id)
    if amap is None:
        amap = maps[op.id] = AffineMap.of(op, [graph.value(i).shape for i in op.inputs])
    g = _gam(len(amap.bias) + 2) * np.abs(amap.bias)
    ab = 0.0
    for am, c, i in zip(amap.absm, amap.ncol, op.inputs, strict=True):
        zi = _mag(lo[i], hi[i])
        g = g + _gam(c) * (_rmul(zi, am) + _FLOOR * max(c, 1))
        ab = ab + c * zi.sum(axis=-1, keepdims=True)
    return amap, g, ab


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
    relax: Mapping[str, tuple] | None = None,
    extra_lower: Mapping[str, np.ndarray] | None = None,
    gauges: dict[str, tuple] | None = None,
    start_const: np.ndarray | None = None,
    upper: bool = True,
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
    relax : mapping, optional
        ``op id -> relaxation`` used instead of the op's own ``relax`` rule (e.g. ``("lines",
        *relu_relaxation(l, u, alpha, lower=slopes))`` for alpha-CROWN's slopes). Any
        relaxation whose lines hold on the bounds ``lo``, ``hi`` keeps the bound sound.
    extra_lower : mapping, optional
        ``value id -> (..., n, size)`` coefficients added to the *lower* bound's coefficients
        of that value (beta-CROWN's split terms :math:`-\beta_j s_j z_j`). The caller
        guarantees that :math:`\sum_v E_v z_v \le 0` at every point the bound is about (for
        beta-CROWN: :math:`\beta \ge 0` and every point satisfies its splits
        :math:`s_j z_j \ge 0`), so :math:`q^\top z_{vid} \ge q^\top z_{vid} + \sum_v E_v
        z_v`, which is where the lower back-substitution starts. The values must lie between
        the inputs and ``vid``.
    gauges : dict, optional
        A cache of the linear ops' error gauges (op id -> map, gauge, underflow count), filled
        in as they are computed and read back. A gauge depends only on the bounds of its op's
        inputs: the caller shares one cache between calls only while those bounds stay the same
        (the successive layers of one CROWN pass, :meth:`netopt.bounds.bab.BatchCrown.bound`).
    start_const : (..., n) array, optional
        Exact constants of the rows: ``start @ vid + start_const`` is bounded. A caller that
        takes a first linear step itself, with no rounding, passes its result here: the rows
        of the identity through :math:`z = M x + b` are :math:`M` and :math:`b` (each entry
        one product by 1 and sums with exact zeros) when :math:`M` is the op's exact matrix
        (not average pooling's :math:`\mathrm{fl}(1/k)`), so they start at :math:`x` with no
        error term and without the product of the identity by :math:`M`.
    upper : bool
        Also the upper bounds (default); without, only the lower side is carried through the
        linear and ReLU steps (half the work) and the upper bounds are :math:`+\infty`.

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

    (upper bounds alike, with :math:`\le` and :math:`+`; with ``start_const`` :math:`c_0`,
    read :math:`q^\top z_{\mathrm{vid}} + c_0` on the left). Initially :math:`\hat\Lambda = q`
    and :math:`\hat c = c_0` (or 0) exactly, and :math:`\varepsilon = 0`. With :math:`Z_v =
    \max(|l_v|, |u_v|) \ge |z_v|` from the (sound) interval bounds, each step adds its
    rounding error, bounded by Higham's
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
    * (leaky) ReLU with the relaxation of
      :func:`~netopt.ir.ops.activations.relu_relaxation` (whose lines hold exactly for the
      float slopes and intercepts): the products :math:`\hat\Lambda^\pm s` round
      once, :math:`\varepsilon \mathrel{+}= u |\hat\Lambda| (|s| Z) + \gamma_{s+2}
      |\hat\Lambda| |b_{line}|`;
    * max-pool (selection matrices, sums of at most twice the overlap :math:`k`):
      :math:`\gamma_{2k}|\hat\Lambda| Z_{best}`; smooth ops (interval constants):
      :math:`\gamma_{s+2}` times the constants' magnitudes;
    * the final concretization: :func:`concretize`.

    With ``extra_lower``, the start is :math:`\hat\Lambda = q` on ``vid`` plus
    :math:`\hat\Lambda_v = E_v` on the other values, exactly (the invariant holds with
    :math:`\varepsilon = 0` by the caller's guarantee); reaching such a value, the coefficients
    of its consumers are added to :math:`E_v` (a rounded sum, charged as any two branches'
    sum). The ReLU step's shortcut for the next linear step's gauge is skipped for these values
    (their coefficient is not the step's own). ``relax`` changes the chosen lines only; the
    error terms of a lines step hold for any float slopes and intercepts.

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
    # without ``upper`` the upper side is not carried (its bound is +inf)
    coef_u: dict[str, np.ndarray] = {vid: start.copy()} if upper else {}
    lead = start.shape[:-1]
    cl, cu = np.zeros(lead), np.zeros(lead)
    if start_const is not None:
        cl = cl + start_const
        cu = cu + start_const
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
        if gauges is not None and op.id in gauges:
            return gauges[op.id]
        out = linear_gauge(graph, op, maps, lo, hi)
        if gauges is not None:
            gauges[op.id] = out
        return out

    op_list = graph.ops if ops is None else ops
    uses: dict[str, int] = {}
    for op in op_list:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1
    # |Lambda| @ g of a linear step, computed ahead by the (leaky) ReLU step that produced
    # Lambda (see there): op id -> (lower, upper)
    ahead: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for v, e in (extra_lower or {}).items():
        e = np.array(e, dtype=np.float64)  # a copy: the steps may write in place
        if v in coef_l:
            # the value bounded itself (an output that also feeds an activation): the extra
            # coefficients add to the start's, and the sum rounds once (merge's error term)
            coef_l[v] = coef_l[v] + e
            el = el + _gam(1) * _mv(np.abs(coef_l[v]), _mag(lo[v], hi[v]) + _FLOOR)
        else:
            # exact: the caller's chosen coefficients (see the Notes); the upper side has none
            coef_l[v] = e

    with np.errstate(invalid="ignore", over="ignore"):
        for op in reversed(op_list):
            out = op.outputs[0]
            if out not in coef_l:
                continue
            Ll = coef_l.pop(out)
            # a value with extra lower coefficients only may have no upper ones yet
            if out in coef_u:
                Lu = coef_u.pop(out)
            else:
                Lu = np.zeros_like(Ll) if upper else None
            s_o = Ll.shape[-1]
            x = op.inputs[0]
            xl, xh = (None, None) if is_linear(op) else (lo[x], hi[x])
            if relax is not None and op.id in relax:
                rel = relax[op.id]
            else:
                rel = OPS[op.op].relax
                rel = None if rel is None else rel(op, graph.value(x).shape, xl, xh)
            if rel == "linear":
                amap, g, ab = lin_gauge(op)
                ab = tiny * (ab + 2 * s_o + 4)
                gl_, gu_ = ahead.pop(op.id, (None, None))
                gl_ = abs_mv(Ll, g) if gl_ is None else gl_
                el = el + const_err(cl) + gl_ + ab
                cl = cl + Ll @ amap.bias
                if Lu is not None:
                    gu_ = abs_mv(Lu, g) if gu_ is None else gu_
                    eu = eu + const_err(cu) + gu_ + ab
                    cu = cu + Lu @ amap.bias
                for m, i in zip(amap.mats, op.inputs, strict=True):
                    el = merge(coef_l, i, _matmul_right(Ll, m), el)
                    if Lu is not None:
                        eu = merge(coef_u, i, _matmul_right(Lu, m), eu)
                continue
            if rel is not None and rel[0] == "lines":
                # an elementwise relaxation lo_s x + lo_b <= y <= up_s x + up_b ((leaky) ReLU)
                _, lo_s, lo_b, up_s, up_b = rel
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
                sides = [(Ll, gl, gu, sl, su, 0)]
                if Lu is not None:
                    sides.append((Lu, gu, gl, su, sl, 1))
                for L, gp, gn, sp_, sn, side in sides:
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
                    ahead[nxt.id] = (nxt_err[0], nxt_err[1] if Lu is not None else None)
            elif rel is not None and rel[0] == "select":
                # a selection x_best <= y <= sel_u x + tsel (max-pool)
                _, sel, sel_u, tsel, best = rel
                Lu = np.zeros_like(Ll) if Lu is None else Lu  # (rare: both sides)
                lp, ln = _pos_neg(Ll)
                up, un = _pos_neg(Lu)
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
                # no relaxation (smooth ops, LeakyReLU with alpha outside [0, 1]): the interval
                # bounds as constants; the errors use the bound actually taken by each sign
                ol, oh = lo[out], hi[out]
                Lu = np.zeros_like(Ll) if Lu is None else Lu  # (rare: both sides)
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
            if Lu is not None:
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
        ui = (
            concretize(coef_u[i], c0u, e0u, in_lo[i], in_hi[i], upper=True)
            if upper
            else np.full(lead, np.inf)
        )
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
    if not upper:
        ru = np.full(lead, np.inf)
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
