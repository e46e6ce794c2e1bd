"""Converters for 2-D convolution and pooling."""

from __future__ import annotations

import logging

import numpy as np

from netopt.frontend.context import NodeContext, Unsupported, Var
from netopt.frontend.helpers import f64
from netopt.frontend.registry import converter

log = logging.getLogger("netopt")


def _image(ctx: NodeContext, what: str) -> Var:
    """The (N=1, C, H, W) input as a batched variable with a (C, H, W) sample."""
    x = ctx.var(0)
    if x.rank != 4:
        raise Unsupported(f"{what} on a rank-{x.rank} input: only 2-D (N, C, H, W) is supported")
    if not x.batched:
        if x.shape[0] != 1:
            raise Unsupported(f"{what} over a leading axis of size {x.shape[0]} that is no batch")
        x = ctx.rebatch(x)
    return x


def _pads(
    ctx: NodeContext, hw, kernel, strides, dilations, ceil: bool = False
) -> tuple[int, int, int, int]:
    """Resolve ``auto_pad``/``pads`` into (top, left, bottom, right)."""
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        p = ctx.ints("pads", (0, 0, 0, 0))
        if len(p) != 4:
            raise ctx.fail(f"pads {list(p)} do not have 4 entries")
        return (p[0], p[1], p[2], p[3])
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for n, k, s, d in zip(hw, kernel, strides, dilations, strict=True):
            out = -(-n // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            small = total // 2
            if auto == "SAME_UPPER":
                begin.append(small)
                end.append(total - small)
            else:
                begin.append(total - small)
                end.append(small)
        return (begin[0], begin[1], end[0], end[1])
    raise ctx.fail(f"unknown auto_pad '{auto}'")


def _pair(ctx: NodeContext, key: str, default=(1, 1)) -> tuple[int, int]:
    v = ctx.ints(key, default)
    if len(v) != 2:
        raise Unsupported(f"{key}={list(v)}: only 2-D windows are supported")
    return (v[0], v[1])


@converter("Conv", since=(1, 11), ir_ops=("conv2d",))
def conv(ctx: NodeContext) -> Var:
    """2-D convolution with constant weights (pads, strides, dilations, groups, auto_pad)."""
    x = _image(ctx, "Conv")
    w = f64(ctx.const(1, "weight"), "weight")
    if w.ndim != 4:
        raise Unsupported(f"a rank-{w.ndim} kernel: only 2-D convolution is supported")
    b = ctx.const(2, "bias")
    b = np.zeros(w.shape[0]) if b is None else f64(b, "bias").reshape(-1)
    ks = ctx.ints("kernel_shape", w.shape[2:])
    if tuple(ks) != tuple(w.shape[2:]):
        raise ctx.fail(f"kernel_shape {list(ks)} disagrees with the weight's {list(w.shape[2:])}")
    strides, dil = _pair(ctx, "strides"), _pair(ctx, "dilations")
    pads = _pads(ctx, x.shape[2:], w.shape[2:], strides, dil)
    attrs = {
        "weight": w,
        "bias": b,
        "strides": strides,
        "pads": pads,
        "dilations": dil,
        "group": int(ctx.attr("group", 1)),
    }
    return ctx.emit("conv2d", [x], attrs)


def _pool_kernel(ctx: NodeContext, x: Var) -> tuple[int, int]:
    ks = ctx.ints("kernel_shape")
    if ks is None:
        raise ctx.fail("kernel_shape is missing")
    if len(ks) == 3 and ks[0] == x.shape[1]:
        # OMLT's convention (its test model maxpool_2d.onnx): the kernel is given as
        # (channels, kh, kw) and pools each channel separately. onnxruntime rejects such
        # a file; reading the trailing two entries as the spatial kernel reproduces the
        # output shape the file declares, which is the only sensible reading.
        log.warning(
            "%s: ONNX %s: kernel_shape %s has a leading channel entry (OMLT's convention); "
            "using the spatial kernel %s",
            ctx.file,
            ctx.origin,
            list(ks),
            list(ks[1:]),
        )
        ks = ks[1:]
    if len(ks) != 2:
        raise Unsupported(f"kernel_shape {list(ks)}: only 2-D pooling is supported")
    return (ks[0], ks[1])


@converter("MaxPool", since=(1, 8, 10, 11, 12), ir_ops=("maxpool2d",))
def maxpool(ctx: NodeContext) -> Var:
    """2-D max pooling (pads, strides, dilations, ceil_mode, auto_pad)."""
    x = _image(ctx, "MaxPool")
    k = _pool_kernel(ctx, x)
    strides, dil = _pair(ctx, "strides"), _pair(ctx, "dilations")
    ceil = bool(ctx.attr("ceil_mode", 0))
    pads = _pads(ctx, x.shape[2:], k, strides, dil)
    return ctx.emit(
        "maxpool2d",
        [x],
        {"kernel": k, "strides": strides, "pads": pads, "dilations": dil, "ceil_mode": ceil},
    )


@converter("AveragePool", since=(7, 10, 11, 19), ir_ops=("avgpool2d",))
def avgpool(ctx: NodeContext) -> Var:
    """2-D average pooling (pads, strides, ceil_mode, count_include_pad, dilations)."""
    x = _image(ctx, "AveragePool")
    k = _pool_kernel(ctx, x)
    strides, dil = _pair(ctx, "strides"), _pair(ctx, "dilations")
    ceil = bool(ctx.attr("ceil_mode", 0))
    pads = _pads(ctx, x.shape[2:], k, strides, dil)
    attrs = {
        "kernel": k,
        "strides": strides,
        "pads": pads,
        "dilations": dil,
        "ceil_mode": ceil,
        "count_include_pad": bool(ctx.attr("count_include_pad", 0)),
    }
    return ctx.emit("avgpool2d", [x], attrs)


def _global(ctx: NodeContext, op: str) -> Var:
    """A pool whose window is the whole (H, W) image."""
    x = _image(ctx, ctx.op_type)
    attrs = {
        "kernel": tuple(x.shape[2:]),
        "strides": (1, 1),
        "pads": (0, 0, 0, 0),
        "dilations": (1, 1),
        "ceil_mode": False,
    }
    if op == "avgpool2d":
        attrs["count_include_pad"] = False
    return ctx.emit(op, [x], attrs)


@converter("GlobalAveragePool", since=(1,), ir_ops=("avgpool2d",))
def global_avgpool(ctx: NodeContext) -> Var:
    """Mean over H and W: an ``avgpool2d`` with the whole image as window."""
    return _global(ctx, "avgpool2d")


@converter("GlobalMaxPool", since=(1,), ir_ops=("maxpool2d",))
def global_maxpool(ctx: NodeContext) -> Var:
    """Max over H and W: a ``maxpool2d`` with the whole image as window."""
    return _global(ctx, "maxpool2d")
