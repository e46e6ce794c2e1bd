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
  interval bounds.

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
    if op.op == "sigmoid":
        from netopt.ops import OPS

        f = OPS["sigmoid"].forward
        return f([xl], {}), f([xh], {})
    if op.op == "tanh":
        return np.tanh(xl), np.tanh(xh)
    if op.op in ("softmax", "log_softmax"):
        s = shapes[0]
        ax = tuple(int(t) for t in op.attrs["axes"])
        L, U = xl.reshape(s), xh.reshape(s)
        m = U.max(axis=ax, keepdims=True) if ax else U
        su = np.exp(U - m).sum(axis=ax, keepdims=True) if ax else np.exp(U - m)
        sl = np.exp(L - m).sum(axis=ax, keepdims=True) if ax else np.exp(L - m)
        # softmax_i >= e^{l_i} / (e^{l_i} + sum_{j!=i} e^{u_j}); <= e^{u_i} / (e^{u_i} + sum_{j!=i} e^{l_j})
        el, eu = np.exp(L - m), np.exp(U - m)
        lo_s = el / np.maximum(el + su - eu, 1e-300)
        hi_s = eu / np.maximum(eu + sl - el, 1e-300)
        lo_s, hi_s = np.clip(lo_s, 0, 1), np.clip(hi_s, 0, 1)
        if op.op == "softmax":
            return lo_s.reshape(-1), hi_s.reshape(-1)
        with np.errstate(divide="ignore"):
            return np.log(lo_s).reshape(-1), np.minimum(np.log(hi_s), 0).reshape(-1)
    raise NotImplementedError(f"no interval rule for IR op '{op.op}'")


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
