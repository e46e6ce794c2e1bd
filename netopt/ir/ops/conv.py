"""The windowed ops: ``conv2d``, ``avgpool2d`` (linear) and ``maxpool2d`` (piecewise linear).

All three slide a window over a ``(C, H, W)`` sample with ONNX padding, strides, dilations
and ``ceil_mode``; the window arithmetic (:func:`pool_output_size`, :func:`window_index`) is
shared by their forward passes, their sparse matrices and their bounds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from netopt.ir.ops.linear import LinearRules
from netopt.ir.ops.spec import check_arity, register_op, size

# scipy is imported where a map is built, so that `import netopt` does not load it
if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["Conv2d", "AvgPool2d", "MaxPool2d", "pool_output_size", "window_index", "conv_matrix"]

Shape = tuple[int, ...]


def _pair(v: Sequence[int]) -> tuple[int, int]:
    v = tuple(int(t) for t in v)
    if len(v) != 2:
        raise ValueError(f"expected 2 values, got {v}")
    return v  # type: ignore[return-value]


def pool_output_size(
    n: int, k: int, s: int, p0: int, p1: int, d: int = 1, ceil: bool = False
) -> int:
    """Output length of a sliding window (ONNX/torch rule, incl. ``ceil_mode``).

    With ``ceil_mode`` a last window that would start inside the end padding
    only is dropped (the rule of torch and onnxruntime).
    """
    ext = (k - 1) * d + 1
    span = n + p0 + p1 - ext
    if span < 0:
        raise ValueError(f"window of extent {ext} does not fit in length {n} with pads {p0},{p1}")
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p0:
        out -= 1
    return out


def _window_geometry(shape: Shape, a: Mapping[str, Any]) -> tuple[int, int]:
    if len(shape) != 3:
        raise ValueError(f"expects a (C, H, W) input, got shape {shape}")
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["strides"])
    dh, dw = _pair(a.get("dilations", (1, 1)))
    pt, pl, pb, pr = (int(t) for t in a["pads"])
    ceil = bool(a.get("ceil_mode", False))
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr) < 0:
        raise ValueError(f"invalid window kernel/strides/dilations/pads {dict(a)}")
    oh = pool_output_size(shape[1], kh, sh, pt, pb, dh, ceil)
    ow = pool_output_size(shape[2], kw, sw, pl, pr, dw, ceil)
    return oh, ow


def _check_pool_windows(shape: Shape, a: Mapping[str, Any], out: tuple[int, int]) -> None:
    r"""Refuse a pooling window that holds padding cells only.

    Only a dilation can skip over the whole input (pads are smaller than the kernel, and
    ``ceil_mode`` drops the windows that start in the end padding). Such a window has no
    defined value: onnxruntime returns 0 (average) or the lowest float32 (max), torch
    :math:`-\infty`. A window that covers no input cell is a constant, so no sensible
    model has one.
    """
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["strides"])
    dh, dw = _pair(a.get("dilations", (1, 1)))
    pt, pl = int(a["pads"][0]), int(a["pads"][1])
    for n, k, s, d, p0, o in (
        (shape[1], kh, sh, dh, pt, out[0]),
        (shape[2], kw, sw, dw, pl, out[1]),
    ):
        cells = (np.arange(o) * s - p0)[:, None] + np.arange(k)[None, :] * d
        hit = ((cells >= 0) & (cells < n)).any(axis=1)
        if not hit.all():
            raise ValueError(
                f"pooling window {int(np.argmin(hit))} (kernel {k}, stride {s}, dilation {d}, "
                f"pad {p0}) covers padding only on an axis of length {n}"
            )


def _windows(
    x: np.ndarray, a: Mapping[str, Any], fill: float, overhang_fill: float | None = None
) -> np.ndarray:
    """Windows of a batched (B, C, H, W) array: (B, C, OH, OW, kh, kw).

    The explicit pads hold ``fill``; the cells a ``ceil_mode`` window reaches
    beyond them hold ``overhang_fill`` (default: ``fill``).
    """
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["strides"])
    dh, dw = _pair(a.get("dilations", (1, 1)))
    pt, pl, pb, pr = (int(t) for t in a["pads"])
    oh, ow = _window_geometry(x.shape[1:], a)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    need_h = max(0, (oh - 1) * sh + eh - xp.shape[2])
    need_w = max(0, (ow - 1) * sw + ew - xp.shape[3])
    if need_h or need_w:
        xp = np.pad(
            xp,
            ((0, 0), (0, 0), (0, need_h), (0, need_w)),
            constant_values=fill if overhang_fill is None else overhang_fill,
        )
    v = sliding_window_view(xp, (eh, ew), axis=(2, 3))
    return v[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]


def window_index(shape: Shape, attrs) -> np.ndarray:
    """Flat input indices of every pooling/conv window: (C, OH, OW, kh*kw), -1 for padding.

    Rows follow the channel of the output cell; the ceil-mode overhang counts as padding.
    """
    c, h, w = shape
    kh, kw = (int(t) for t in attrs["kernel"])
    sh, sw = (int(t) for t in attrs["strides"])
    dh, dw = (int(t) for t in attrs.get("dilations", (1, 1)))
    pt, pl = int(attrs["pads"][0]), int(attrs["pads"][1])
    oh, ow = _window_geometry(shape, attrs)
    ii = (np.arange(oh) * sh - pt)[:, None, None, None] + (np.arange(kh) * dh)[None, None, :, None]
    jj = (np.arange(ow) * sw - pl)[None, :, None, None] + (np.arange(kw) * dw)[None, None, None, :]
    ii, jj = np.broadcast_arrays(ii, jj)  # (OH, OW, kh, kw)
    valid = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
    flat = np.where(valid, ii * w + jj, -1).reshape(oh, ow, kh * kw)
    base = (np.arange(c) * h * w)[:, None, None, None]
    return np.where(flat[None] >= 0, flat[None] + base, -1)


def conv_matrix(shape: Shape, a) -> tuple[sp.csr_matrix, np.ndarray]:
    """The sparse matrix and bias of ``conv2d`` on a ``(C, H, W)`` sample (flattened)."""
    import scipy.sparse as sp

    w, g = a["weight"], int(a["group"])
    m_out, cg, kh, kw = w.shape
    c, h, wd = shape
    idx = window_index((1, h, wd), {**a, "kernel": (kh, kw)})[0]  # (OH, OW, kh*kw) in one channel
    oh, ow = idx.shape[:2]
    mg = m_out // g
    # rows: (m, i, j); for each, columns (c_in, p) with c_in in the group of m
    m = np.arange(m_out)
    cin = (m // mg)[:, None] * cg + np.arange(cg)[None, :]  # (M, cg)
    rows = (
        m[:, None, None, None, None] * oh * ow
        + (np.arange(oh)[:, None] * ow + np.arange(ow)[None, :])[None, :, :, None, None]
    )
    cols = cin[:, None, None, :, None] * h * wd + idx[None, :, :, None, :]
    vals = w.reshape(m_out, 1, 1, cg, kh * kw)
    rows, cols, vals = np.broadcast_arrays(rows, cols, vals)
    # padding cells (index -1) contribute nothing
    keep = np.broadcast_to(idx[None, :, :, None, :] >= 0, cols.shape)
    mat = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(m_out * oh * ow, c * h * wd))
    bias = np.repeat(a["bias"], oh * ow)
    return mat, bias


@register_op("conv2d", "linear", attrs=("weight", "bias", "strides", "pads", "dilations", "group"))
class Conv2d(LinearRules):
    r"""2-D cross-correlation, ONNX ``Conv`` semantics.

    .. math:: y_{m,i,j} = b_m + \sum_{c \in G(m)} \sum_{p,q}
              W_{m,c,p,q}\, x_{c,\, i s_h + p d_h - p_t,\, j s_w + q d_w - p_l}

    with zero padding; ``weight`` is ``(M, C/group, kh, kw)``, ``pads`` is
    ``(top, left, bottom, right)``.
    """

    @staticmethod
    def infer(shapes, a):
        check_arity("conv2d", shapes, 1, 1)
        (s,) = shapes
        w, g = a["weight"], int(a["group"])
        if w.ndim != 4 or a["bias"].shape != (w.shape[0],):
            raise ValueError(f"conv2d weight {w.shape}/bias {a['bias'].shape} malformed")
        if len(s) != 3 or g < 1 or s[0] != w.shape[1] * g or w.shape[0] % g:
            raise ValueError(f"conv2d weight {w.shape} with group={g} does not fit input shape {s}")
        oh, ow = _window_geometry(s, {**a, "kernel": w.shape[2:]})
        return (w.shape[0], oh, ow)

    @staticmethod
    def forward(xs, a):
        w, g = a["weight"], int(a["group"])
        win = _windows(xs[0], {**a, "kernel": w.shape[2:]}, 0.0)  # B,C,OH,OW,kh,kw
        b, c, oh, ow, kh, kw = win.shape
        win = win.reshape(b, g, c // g, oh, ow, kh, kw)
        wg = w.reshape(g, w.shape[0] // g, c // g, kh, kw)
        y = np.einsum("bgcxyij,gmcij->bgmxy", win, wg, optimize=True)
        return y.reshape(b, w.shape[0], oh, ow) + a["bias"][None, :, None, None]

    @staticmethod
    def linear_map(shapes, a, out):
        mat, bias = conv_matrix(shapes[0], a)
        return [mat], bias


@register_op(
    "avgpool2d", "linear", attrs=("kernel", "strides", "pads", "ceil_mode", "count_include_pad")
)
class AvgPool2d(LinearRules):
    r"""2-D average pooling, ONNX ``AveragePool`` semantics.

    :math:`y = \frac{1}{|N|}\sum_{(p,q)\in N} x_{p,q}` over the window; the divisor
    :math:`|N|` counts the window's cells inside the input, plus the explicit
    padding when ``count_include_pad`` (never the extra cells of ``ceil_mode``).
    """

    @staticmethod
    def infer(shapes, a):
        check_arity("avgpool2d", shapes, 1, 1)
        oh, ow = _window_geometry(shapes[0], a)
        _check_pool_windows(shapes[0], a, (oh, ow))
        return (shapes[0][0], oh, ow)

    @staticmethod
    def forward(xs, a):
        x = xs[0]
        total = _windows(x, a, 0.0).sum(axis=(-2, -1))
        # the divisor: ones inside the input, padding counted iff count_include_pad,
        # ceil_mode overhang never counted
        ones = np.ones((1, 1, *x.shape[2:]))
        pad_fill = 1.0 if a["count_include_pad"] else 0.0
        cnt = _windows(ones, a, pad_fill, 0.0).sum(axis=(-2, -1))
        return total / cnt

    @staticmethod
    def linear_map(shapes, a, out):
        import scipy.sparse as sp

        shape = shapes[0]
        idx = window_index(shape, a)  # (C, OH, OW, k)
        n_out = idx.shape[0] * idx.shape[1] * idx.shape[2]
        # the divisor exactly as the reference forward computes it
        pad_fill = 1.0 if a["count_include_pad"] else 0.0
        cnt = _windows(np.ones((1, 1, *shape[1:])), a, pad_fill, 0.0).sum(axis=(-2, -1))[0, 0]
        div = np.broadcast_to(cnt, idx.shape[:3]).reshape(-1)
        rows = np.repeat(np.arange(n_out), idx.shape[3])
        cols = idx.reshape(-1)
        keep = cols >= 0
        vals = np.repeat(1.0 / div, idx.shape[3])
        mat = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n_out, size(shape)))
        return [mat], np.zeros(size(out))


@register_op("maxpool2d", "piecewise_linear", attrs=("kernel", "strides", "pads", "ceil_mode"))
class MaxPool2d:
    r"""2-D max pooling, ONNX ``MaxPool`` semantics: :math:`y = \max_{(p,q)\in N} x_{p,q}`.

    Padding cells never win (they are :math:`-\infty`).
    """

    @staticmethod
    def infer(shapes, a):
        check_arity("maxpool2d", shapes, 1, 1)
        oh, ow = _window_geometry(shapes[0], a)
        _check_pool_windows(shapes[0], a, (oh, ow))
        return (shapes[0][0], oh, ow)

    @staticmethod
    def forward(xs, a):
        return _windows(xs[0], a, -np.inf).max(axis=(-2, -1))

    @staticmethod
    def vjp(op, shapes, out_shape, g, env):
        """Routes the gradient to the first maximal cell of each window."""
        B = len(g)
        x = env[op.inputs[0]].reshape(B, -1)
        k = int(np.prod(op.attrs["kernel"]))
        idx = window_index(shapes[0], op.attrs).reshape(-1, k)
        vals = np.where(idx[None] >= 0, x[:, np.where(idx >= 0, idx, 0)], -np.inf)
        best = idx[np.arange(len(idx))[None, :], vals.argmax(axis=2)]  # (B, n_out)
        gi = np.zeros_like(x)
        np.add.at(gi, (np.arange(B)[:, None], best), g)
        return [gi]

    @staticmethod
    def interval(op, shapes, xls, xhs, maps):
        """The window maxima of the bounds (exact: max rounds nothing)."""
        xl, xh = xls[0], xhs[0]
        idx = window_index(shapes[0], op.attrs).reshape(-1, np.prod(op.attrs["kernel"]))
        valid = idx >= 0
        lw = np.where(valid, xl[np.where(valid, idx, 0)], -np.inf)
        hw = np.where(valid, xh[np.where(valid, idx, 0)], -np.inf)
        return lw.max(axis=1), hw.max(axis=1)

    @staticmethod
    def relax(op, shape, xl, xh):
        r"""CROWN's selection: :math:`x_{j^*} \le y \le \max_i u_i`, exact when one cell dominates.

        Returns ``("select", sel, sel_u, tsel, best)``: ``sel`` (``n_out x n_in``) picks each
        window's cell :math:`j^*` of largest lower bound (the lower line); ``sel_u`` is
        ``sel`` on the windows where :math:`l_{j^*}` is at least every other cell's upper
        bound (there :math:`y = x_{j^*}`), and elsewhere the upper line is the constant
        ``tsel`` :math:`= \max_i u_i`; ``best`` the flat index of :math:`j^*`.
        """
        k = int(np.prod(op.attrs["kernel"]))
        idx = window_index(shape, op.attrs).reshape(-1, k)
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
        tsel = np.where(exact, 0.0, top)
        return "select", sel, sel_u, tsel, best
