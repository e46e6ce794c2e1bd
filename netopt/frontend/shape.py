"""Converters for shape and plumbing ops: index remaps, identities, padding, concat."""

from __future__ import annotations

import numpy as np

from netopt.frontend.context import Const, NodeContext, Unsupported, Var
from netopt.frontend.helpers import f64, reshape_to, same_view, transpose
from netopt.frontend.registry import converter


def _norm_axes(axes, rank: int, ctx: NodeContext) -> list[int]:
    out = []
    for a in axes:
        a = int(a)
        b = a + rank if a < 0 else a
        if not 0 <= b < rank:
            raise ctx.fail(f"axis {a} is out of range for rank {rank}")
        out.append(b)
    return out


@converter("Flatten", since=(1, 9, 11, 13, 21), ir_ops=("reshape",))
def flatten(ctx: NodeContext) -> Var:
    """``(d_0 ... d_{a-1}, d_a ... d_n) -> (prod d_{<a}, prod d_{>=a})``."""
    x = ctx.var(0)
    ax = int(ctx.attr("axis", 1))
    ax = ax + x.rank if ax < 0 else ax
    if not 0 <= ax <= x.rank:
        raise ctx.fail(f"axis {ctx.attr('axis')} is out of range for rank {x.rank}")
    return reshape_to(ctx, x, (int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax:]))))


@converter("Reshape", since=(5, 13, 14, 19, 21), ir_ops=("reshape",))
def reshape(ctx: NodeContext) -> Var:
    """Reshape to a constant shape (``0`` copies a dimension unless ``allowzero``; ``-1`` is inferred)."""
    x = ctx.var(0)
    target = [int(t) for t in np.asarray(ctx.const(1, "shape")).reshape(-1)]
    allowzero = int(ctx.attr("allowzero", 0))
    out = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= x.rank:
                raise ctx.fail(f"shape {target} copies axis {i}, which {list(x.shape)} lacks")
            d = x.shape[i]
        out.append(d)
    if out.count(-1) > 1:
        raise ctx.fail(f"shape {target} has more than one -1")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        total = int(np.prod(x.shape))
        if known == 0 or total % known:
            raise ctx.fail(f"cannot reshape {list(x.shape)} to {target}")
        out[out.index(-1)] = total // known
    return reshape_to(ctx, x, out)


def _axes_arg(ctx: NodeContext, since_input: int) -> list[int] | None:
    if ctx.opset >= since_input:
        c = ctx.const(1, "axes")
        return None if c is None else [int(t) for t in np.asarray(c).reshape(-1)]
    a = ctx.ints("axes")
    return None if a is None else list(a)


@converter("Squeeze", since=(1, 11, 13, 21), ir_ops=("reshape",))
def squeeze(ctx: NodeContext) -> Var:
    """Remove size-1 axes (all of them when no axes are given)."""
    x = ctx.var(0)
    axes = _axes_arg(ctx, 13)
    if not axes:
        # onnxruntime reads an empty axes list (attribute or input) as no axes given
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = _norm_axes(axes, x.rank, ctx)
    if any(x.shape[a] != 1 for a in axes):
        raise ctx.fail(f"cannot squeeze axes {axes} of shape {list(x.shape)}")
    out = [d for i, d in enumerate(x.shape) if i not in axes]
    return ctx.reshape(x, out, x.batched and 0 not in axes)


@converter("Unsqueeze", since=(1, 11, 13, 21), ir_ops=("reshape",))
def unsqueeze(ctx: NodeContext) -> Var:
    """Insert size-1 axes at the given output positions."""
    x = ctx.var(0)
    axes = _axes_arg(ctx, 13)
    if axes is None:
        raise ctx.fail("no axes given")
    r = x.rank + len(axes)
    axes = sorted(_norm_axes(axes, r, ctx))
    out, it = [], iter(x.shape)
    for i in range(r):
        out.append(1 if i in axes else next(it))
    return ctx.reshape(x, out, x.batched and 0 not in axes)


@converter("Transpose", since=(1, 13, 21), ir_ops=("transpose",))
def transpose_(ctx: NodeContext) -> Var:
    """Permute axes (default: reverse them)."""
    x = ctx.var(0)
    perm = ctx.ints("perm") or tuple(reversed(range(x.rank)))
    return transpose(ctx, x, perm)


def _identity(ctx: NodeContext) -> Var:
    """The identity (removed by the passes)."""
    return ctx.emit("identity", [ctx.var(0)])


converter("Identity", since=(1, 13, 14, 16, 19, 21), ir_ops=("identity",))(_identity)


@converter("Dropout", since=(7, 10, 12, 13), ir_ops=("identity",))
def dropout(ctx: NodeContext) -> Var:
    """Inference dropout is the identity (a used mask output is refused)."""
    if ctx.opset >= 12:
        t = ctx.const(2, "training_mode")
        if t is not None and bool(np.asarray(t).reshape(-1)[0]):
            raise Unsupported("training_mode=True (random masks); export in eval mode")
    return _identity(ctx)


_FLOATS = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
#: half-precision types: a cast to one rounds to 11 (8) significant bits, far beyond the
#: float32 rounding netopt's float64 model neglects, and overflows above 65504
_HALF = {10: "FLOAT16", 16: "BFLOAT16"}


@converter("Cast", since=(6, 9, 13, 19, 21), ir_ops=("identity",))
def cast(ctx: NodeContext) -> Var:
    """A cast to FLOAT or DOUBLE is the identity in float64 semantics.

    A cast of a variable to a half-precision type is refused: treating its rounding as the
    identity was off onnxruntime by 1e-4 relative (and more near float16's range limit).
    Casts of constants are folded exactly by the loader.
    """
    to = int(ctx.attr("to", 1))
    if to in _HALF:
        raise Unsupported(
            f"casts a value that depends on the input to {_HALF[to]}, whose rounding netopt "
            "does not model (it computes in float64); keep the model in float32 (e.g. remove "
            "the cast, or convert it with onnxconverter_common's float16 tools)"
        )
    if to not in _FLOATS:
        raise Unsupported(f"casts a value that depends on the input to the non-float type {to}")
    return _identity(ctx)


@converter("Shape", since=(1, 13, 15, 19, 21))
def shape(ctx: NodeContext) -> Const:
    """Shapes are static: the batch dimension reads as 1."""
    x = ctx.var(0)
    s = np.array(x.shape, dtype=np.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    return Const(s[start:end])


@converter("Size", since=(1, 13, 19, 21))
def size(ctx: NodeContext) -> Const:
    """The static number of elements (batch 1)."""
    return Const(np.array(int(np.prod(ctx.var(0).shape)), dtype=np.int64))


@converter("Concat", since=(4, 11, 13), ir_ops=("concat",))
def concat(ctx: NodeContext) -> Var:
    """Concatenate variable tensors along an axis."""
    ins = [t for t in ctx.inputs if t is not None]
    if any(isinstance(t, Const) for t in ins):
        raise Unsupported("concatenates a constant with input-dependent tensors")
    vs = same_view(ctx, ins)  # type: ignore[arg-type]
    ax = int(ctx.attr("axis", 1))
    ax = ax + vs[0].rank if ax < 0 else ax
    if vs[0].batched and ax == 0:
        vs = [ctx.unbatch(v) for v in vs]
    if len(vs) == 1:
        return _identity(ctx)
    return ctx.emit("concat", vs, {"axis": vs[0].sample_axis(ax)})


@converter("Pad", since=(2, 11, 13, 18, 19, 21), ir_ops=("pad",))
def pad(ctx: NodeContext) -> Var:
    """Constant padding (non-negative pads)."""
    x = ctx.var(0)
    if ctx.opset < 11:
        mode = ctx.attr("mode", "constant")
        pads = list(ctx.ints("pads") or ctx.ints("paddings") or ())
        value = float(ctx.attr("value", 0.0))
    else:
        mode = ctx.attr("mode", "constant")
        pads = [int(t) for t in np.asarray(ctx.const(1, "pads")).reshape(-1)]
        cv = ctx.const(2, "constant_value")
        value = 0.0 if cv is None or np.asarray(cv).size == 0 else float(f64(cv).reshape(-1)[0])
        axes_c = ctx.const(3, "axes") if ctx.opset >= 18 else None
        if axes_c is not None:
            axes = _norm_axes(np.asarray(axes_c).reshape(-1), x.rank, ctx)
            full = [0] * (2 * x.rank)
            for k, a in enumerate(axes):
                full[a], full[a + x.rank] = pads[k], pads[k + len(axes)]
            pads = full
    if mode != "constant":
        raise Unsupported(f"mode '{mode}' (only constant padding is supported)")
    if len(pads) != 2 * x.rank:
        raise ctx.fail(f"{len(pads)} pads for a rank-{x.rank} input")
    if min(pads) < 0:
        raise Unsupported(f"negative pads {pads} (cropping)")
    if not any(pads):
        return _identity(ctx)
    r = x.rank
    if x.batched and (pads[0] or pads[r]):
        x = ctx.unbatch(x)
    if x.batched:
        sp = pads[1:r] + pads[r + 1 :]
    else:
        sp = pads
    return ctx.emit("pad", [x], {"pads": sp, "value": value})
