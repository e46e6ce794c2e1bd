"""Converters for ReduceMean and ReduceSum: linear reductions over constant axes."""

from __future__ import annotations

import numpy as np

from netopt.frontend.context import NodeContext, Var
from netopt.frontend.helpers import transpose
from netopt.frontend.registry import converter


def _reduce(ctx: NodeContext, mean: bool) -> Var:
    x = ctx.var(0)
    if ctx.opset >= (18 if ctx.op_type in ("ReduceMean",) else 13):
        c = ctx.const(1, "axes")
        axes = (
            None
            if c is None or np.asarray(c).size == 0
            else [int(t) for t in np.asarray(c).reshape(-1)]
        )
    else:
        a = ctx.ints("axes")
        axes = None if a is None else list(a)
    keep = int(ctx.attr("keepdims", 1))
    if axes is None:
        if int(ctx.attr("noop_with_empty_axes", 0)):
            return ctx.emit("identity", [x])
        axes = list(range(x.rank))
    axes = sorted({a + x.rank if a < 0 else a for a in axes})
    if any(not 0 <= a < x.rank for a in axes):
        raise ctx.fail(f"axes {axes} out of range for rank {x.rank}")
    out_shape = [1 if i in axes else d for i, d in enumerate(x.shape)]
    if not keep:
        out_shape = [d for i, d in enumerate(x.shape) if i not in axes]
    n = int(np.prod([x.shape[a] for a in axes]))
    rest = [i for i in range(x.rank) if i not in axes]
    # the reduced axes to the end, flattened, then one affine row of 1/n (or 1) weights
    moved = transpose(ctx, x, rest + axes) if rest + axes != list(range(x.rank)) else x
    lead = [moved.shape[i] for i in range(len(rest))]
    flat = ctx.reshape(
        moved, [*lead, n], moved.batched and bool(lead) and lead[0] == 1 and moved.batched
    )
    w = np.full((1, n), 1.0 / n if mean else 1.0)
    red = ctx.emit("affine", [flat], {"weight": w, "bias": np.zeros(1)})
    batched = red.batched and len(out_shape) > 0 and out_shape[0] == 1
    return ctx.reshape(red, out_shape, batched)


@converter("ReduceMean", since=(1, 11, 13, 18), ir_ops=("affine", "reshape", "transpose"))
def reduce_mean(ctx: NodeContext) -> Var:
    """Mean over constant axes (``keepdims``; axes an input from opset 18)."""
    return _reduce(ctx, True)


@converter("ReduceSum", since=(1, 11, 13), ir_ops=("affine", "reshape", "transpose"))
def reduce_sum(ctx: NodeContext) -> Var:
    """Sum over constant axes (``keepdims``; axes an input from opset 13)."""
    return _reduce(ctx, False)
