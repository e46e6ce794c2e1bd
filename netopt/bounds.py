"""Sound per-value intervals over an input domain: interval (IBP) and symbolic (CROWN) bounds.

``compute_bounds(graph, lo, hi, method)`` returns :class:`Bounds`, a mapping value id ->
``(lo, hi)`` (flattened float64 arrays). All methods are sound: for every input in the box, every
value of the forward pass lies in its interval (the tests sample inputs to check this on real
networks). Methods:

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

import networkx as nx
import numpy as np

from netopt.errors import InputError
from netopt.ir import Graph, Op
from netopt.linear import is_linear, linear_map, window_index

__all__ = ["Bounds", "compute_bounds", "linear_bounds", "interval_op", "relu_relaxation", "METHODS"]

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


def _split(m):
    pos = m.maximum(0) if hasattr(m, "maximum") else np.maximum(m, 0)
    return pos, m - pos


def interval_op(
    graph: Graph, op: Op, lo: Mapping[str, np.ndarray], hi: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of ``op``'s output from its inputs' bounds (flattened)."""
    shapes = [graph.value(i).shape for i in op.inputs]
    if is_linear(op):
        mats, b = linear_map(op, shapes)
        c = b.astype(np.float64).copy()
        r = np.zeros_like(c)
        for m, i in zip(mats, op.inputs, strict=True):
            xl, xh = lo[i], hi[i]
            xc, xr = (xl + xh) / 2, (xh - xl) / 2
            # infinite bounds stay infinite (centre-radius would give inf - inf)
            if not (np.all(np.isfinite(xl)) and np.all(np.isfinite(xh))):
                mp, mn = _split(m)
                with np.errstate(invalid="ignore"):
                    low = np.nan_to_num(mp @ np.where(np.isfinite(xl), xl, 0)) + np.nan_to_num(
                        mn @ np.where(np.isfinite(xh), xh, 0)
                    )
                    up = np.nan_to_num(mp @ np.where(np.isfinite(xh), xh, 0)) + np.nan_to_num(
                        mn @ np.where(np.isfinite(xl), xl, 0)
                    )
                inf_lo = (
                    mp @ (~np.isfinite(xl)).astype(float) + (-mn) @ (~np.isfinite(xh)).astype(float)
                ) > 0
                inf_hi = (
                    mp @ (~np.isfinite(xh)).astype(float) + (-mn) @ (~np.isfinite(xl)).astype(float)
                ) > 0
                c, r = c + (low + up) / 2, r + (up - low) / 2
                c = np.where(inf_lo | inf_hi, 0.0, c)
                r = np.where(inf_lo | inf_hi, np.inf, r)
                continue
            c = c + m @ xc
            r = r + abs(m) @ xr
        return c - r, c + r
    xl, xh = lo[op.inputs[0]], hi[op.inputs[0]]
    if op.op == "relu":
        return np.maximum(xl, 0), np.maximum(xh, 0)
    if op.op == "leaky_relu":
        a = float(op.attrs["alpha"])

        def f(t: np.ndarray) -> np.ndarray:
            return np.where(t >= 0, t, a * t)

        if a >= 0:
            return f(xl), f(xh)
        return np.minimum(f(xl), np.minimum(0, f(xh))), np.maximum(f(xl), f(xh))
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
    """Linear bounds ``lo_s*x + lo_b <= f(x) <= up_s*x + up_b`` of (leaky) ReLU on ``[l, u]``.

    Returns ``(lo_s, lo_b, up_s, up_b)``. For the unstable units the upper line is the chord
    through ``(l, f(l))`` and ``(u, f(u))``; the lower line has slope 1 or ``alpha``, whichever
    is closer to the chord (CROWN's adaptive choice).
    """
    act = l >= 0
    dead = u <= 0
    unst = ~act & ~dead
    lo_s = np.where(act, 1.0, alpha)
    up_s = np.where(act, 1.0, alpha)
    lo_b = np.zeros_like(l)
    up_b = np.zeros_like(l)
    with np.errstate(divide="ignore", invalid="ignore"):
        chord = np.where(unst, (u - alpha * l) / (u - l), 0.0)
    up_s = np.where(unst, chord, up_s)
    up_b = np.where(unst, l * (alpha - chord), up_b)  # passes through (l, alpha*l)
    lo_s = np.where(unst, np.where(u > -l, 1.0, alpha), lo_s)
    return lo_s, lo_b, up_s, up_b


def _crown_value(
    graph: Graph,
    vid: str,
    lo: dict,
    hi: dict,
    rows: np.ndarray | None,
    in_lo: dict,
    in_hi: dict,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Back-substitute linear bounds of ``vid[rows]`` (or of ``start @ vid``) to the inputs."""
    size = graph.value(vid).size
    if start is None:
        n = len(rows)
        eye = np.zeros((n, size))
        eye[np.arange(n), rows] = 1.0
    else:
        eye = np.asarray(start, dtype=np.float64).reshape(-1, size)
        n = len(eye)
    coef_l: dict[str, np.ndarray] = {vid: eye}
    coef_u: dict[str, np.ndarray] = {vid: eye.copy()}
    cl = np.zeros(n)
    cu = np.zeros(n)
    # the ops that lie between the inputs and vid, in reverse topological order
    prod = graph.producer(vid)
    if prod is None:
        if start is None:
            return lo[vid][rows], hi[vid][rows]
        sp_, sn = np.maximum(eye, 0), np.minimum(eye, 0)
        return sp_ @ lo[vid] + sn @ hi[vid], sp_ @ hi[vid] + sn @ lo[vid]
    ancestors = {n_[1] for n_ in nx.ancestors(graph.nx, ("o", prod.id)) if n_[0] == "o"} | {prod.id}
    for op in reversed(graph.ops):
        if op.id not in ancestors:
            continue
        out = op.outputs[0]
        if out not in coef_l:
            continue
        Ll, Lu = coef_l.pop(out), coef_u.pop(out)
        shapes = [graph.value(i).shape for i in op.inputs]
        if is_linear(op):
            mats, b = linear_map(op, shapes)
            cl = cl + Ll @ b
            cu = cu + Lu @ b
            for m, i in zip(mats, op.inputs, strict=True):
                ml, mu = (m.T @ Ll.T).T, (m.T @ Lu.T).T
                coef_l[i] = coef_l[i] + ml if i in coef_l else ml
                coef_u[i] = coef_u[i] + mu if i in coef_u else mu
            continue
        x = op.inputs[0]
        xl, xh = lo[x], hi[x]
        if op.op in ("relu", "leaky_relu"):
            alpha = float(op.attrs.get("alpha", 0.0))
            if op.op == "leaky_relu" and not 0 <= alpha <= 1:
                lo_s = up_s = None
            else:
                lo_s, lo_b, up_s, up_b = relu_relaxation(xl, xh, alpha)
        else:
            lo_s = up_s = None
        if lo_s is not None:
            lp, ln = np.maximum(Ll, 0), np.minimum(Ll, 0)
            up, un = np.maximum(Lu, 0), np.minimum(Lu, 0)
            new_l = lp * lo_s + ln * up_s
            new_u = up * up_s + un * lo_s
            cl = cl + lp @ lo_b + ln @ up_b
            cu = cu + up @ up_b + un @ lo_b
        elif op.op == "maxpool2d":
            k = int(np.prod(op.attrs["kernel"]))
            idx = window_index(shapes[0], op.attrs).reshape(-1, k)
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
            lp, ln = np.maximum(Ll, 0), np.minimum(Ll, 0)
            up, un = np.maximum(Lu, 0), np.minimum(Lu, 0)
            new_l = lp @ sel + ln @ sel_u
            cl = cl + ln @ np.where(exact, 0.0, top)
            new_u = up @ sel_u + un @ sel
            cu = cu + up @ np.where(exact, 0.0, top)
        else:
            # smooth op: use its interval bounds as constants
            ol, oh = lo[out], hi[out]
            lp, ln = np.maximum(Ll, 0), np.minimum(Ll, 0)
            up, un = np.maximum(Lu, 0), np.minimum(Lu, 0)
            cl = cl + lp @ ol + ln @ oh
            cu = cu + up @ oh + un @ ol
            continue
        coef_l[x] = coef_l[x] + new_l if x in coef_l else new_l
        coef_u[x] = coef_u[x] + new_u if x in coef_u else new_u
    rl, ru = cl, cu
    for i in list(coef_l):
        if i not in graph.inputs:
            raise RuntimeError(f"back-substitution stopped at value '{i}'")
        al, bl = in_lo[i], in_hi[i]
        Ll, Lu = coef_l[i], coef_u[i]
        with np.errstate(invalid="ignore"):
            rl = rl + np.maximum(Ll, 0) @ al + np.minimum(Ll, 0) @ bl
            ru = ru + np.maximum(Lu, 0) @ bl + np.minimum(Lu, 0) @ al
    return np.nan_to_num(rl, nan=-np.inf), np.nan_to_num(ru, nan=np.inf)


def linear_bounds(
    graph: Graph, bounds: Bounds, vid: str, C: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds of ``C @ value`` (rows of ``C`` over the flattened value ``vid``).

    Back-substitutes ``C`` itself (much tighter than bounding ``C`` times the value's interval),
    and takes the better of that and the interval product.
    """
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    lo, hi = bounds[vid]
    cp, cn = np.maximum(C, 0), np.minimum(C, 0)
    with np.errstate(invalid="ignore"):
        il, ih = cp @ lo + cn @ hi, cp @ hi + cn @ lo
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
    for op in graph.ops:
        out = op.outputs[0]
        L[out], H[out] = interval_op(graph, op, L, H)
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
                cl, cu = _crown_value(graph, out, L, H, rows, L, H)
                L[out][rows] = np.maximum(L[out][rows], cl)
                H[out][rows] = np.minimum(H[out][rows], cu)
    b = Bounds(L, H, method, time.perf_counter() - t0)
    b.stats["unstable"] = b.unstable(graph)
    return b
