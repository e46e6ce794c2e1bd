"""Every linear IR op as sparse matrices on flattened (row-major) samples.

``linear_map(op, shapes)`` returns ``(mats, bias)`` with ``y = sum_i mats[i] @ x_i + bias`` for the
flattened per-sample input(s) ``x_i`` and output ``y``. Bounds (interval and symbolic) and the MILP
formulation are written once against this form, so every linear op of the vocabulary is covered by
them as soon as it has a matrix here. The matrices are built with vectorized index arithmetic — no
Python loop per weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from netopt.ir import Op
from netopt.ops import OPS, _window_geometry, _windows

__all__ = ["linear_map", "window_index", "is_linear"]

Shape = tuple[int, ...]


def is_linear(op: Op) -> bool:
    """Whether the op is affine in its inputs."""
    return OPS[op.op].kind == "linear"


def _size(s: Shape) -> int:
    return int(np.prod(s, dtype=np.int64))


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


def _conv(shape: Shape, a) -> tuple[sp.csr_matrix, np.ndarray]:
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


def _avgpool(shape: Shape, a) -> sp.csr_matrix:
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
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n_out, _size(shape)))


def linear_map(op: Op, shapes: Sequence[Shape]) -> tuple[list[sp.csr_matrix], np.ndarray]:
    """Sparse matrices and bias of a linear IR op (see the module docstring)."""
    a = op.attrs
    name = op.op
    out = tuple(OPS[name].infer(shapes, a))
    n_out = _size(out)
    n_in = [_size(s) for s in shapes]
    zero = np.zeros(n_out)
    if name == "affine":
        w = a["weight"]
        lead = _size(shapes[0][:-1])
        mat = sp.kron(sp.identity(lead, format="csr"), sp.csr_matrix(w), format="csr")
        return [mat], np.tile(a["bias"], lead)
    if name == "scale":
        src = np.broadcast_to(np.arange(n_in[0]).reshape(shapes[0]), out).reshape(-1)
        mul = np.broadcast_to(a["mul"], out).reshape(-1)
        mat = sp.csr_matrix((mul, (np.arange(n_out), src)), shape=(n_out, n_in[0]))
        return [mat], np.broadcast_to(a["add"], out).reshape(-1).astype(np.float64)
    if name == "conv2d":
        mat, bias = _conv(shapes[0], a)
        return [mat], bias
    if name == "avgpool2d":
        return [_avgpool(shapes[0], a)], zero
    if name in ("reshape", "identity"):
        return [sp.identity(n_out, format="csr")], zero
    if name == "transpose":
        src = np.arange(n_in[0]).reshape(shapes[0]).transpose(a["perm"]).reshape(-1)
        return [
            sp.csr_matrix((np.ones(n_out), (np.arange(n_out), src)), shape=(n_out, n_in[0]))
        ], zero
    if name == "select":
        src = np.asarray(a["index"]).reshape(-1)
        return [
            sp.csr_matrix((np.ones(n_out), (np.arange(n_out), src)), shape=(n_out, n_in[0]))
        ], zero
    if name == "add":
        return [sp.identity(n_out, format="csr"), sp.identity(n_out, format="csr")], zero
    if name == "concat":
        ax = int(a["axis"])
        pos = np.arange(n_out).reshape(out)
        mats, start = [], 0
        for s, n in zip(shapes, n_in, strict=True):
            sl = [slice(None)] * len(out)
            sl[ax] = slice(start, start + s[ax])
            rows = pos[tuple(sl)].reshape(-1)
            mats.append(sp.csr_matrix((np.ones(n), (rows, np.arange(n))), shape=(n_out, n)))
            start += s[ax]
        return mats, zero
    if name == "pad":
        r = len(shapes[0])
        p = [int(t) for t in a["pads"]]
        pos = np.arange(n_out).reshape(out)
        sl = tuple(slice(p[i], p[i] + shapes[0][i]) for i in range(r))
        rows = pos[sl].reshape(-1)
        mat = sp.csr_matrix((np.ones(n_in[0]), (rows, np.arange(n_in[0]))), shape=(n_out, n_in[0]))
        bias = np.full(n_out, float(a["value"]))
        bias[rows] = 0.0
        return [mat], bias
    raise ValueError(f"{op.where} is not a linear op")
