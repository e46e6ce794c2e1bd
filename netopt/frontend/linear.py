"""Converters for Gemm and MatMul: dense layers become ``affine``."""

from __future__ import annotations

import numpy as np

from netopt.frontend.context import Const, NodeContext, Unsupported, Var
from netopt.frontend.helpers import elementwise, f64, matmul_left, matmul_right, transpose
from netopt.frontend.registry import converter


def _bias(ctx: NodeContext, y: Var, c: np.ndarray | None) -> Var:
    """Add a constant ``c`` (broadcast) to ``y``, into the affine bias where it fits."""
    if c is None:
        return y
    c = f64(c, "bias")
    if not np.all(np.isfinite(c)):
        # the fold below edits the affine op in place, past emit's check of the weights
        raise ctx.fail("its bias holds a non-finite value; netopt needs finite weights")
    if not np.any(c):
        return y
    prod = ctx._ops[-1] if ctx._ops else None
    full = np.broadcast_shapes(y.shape, c.shape)
    if (
        prod is not None
        and prod.op == "affine"
        and prod.outputs[0] == y.vid
        and full == y.shape
        and (c.ndim <= 1 or np.all(c.reshape(-1, c.shape[-1]) == c.reshape(-1, c.shape[-1])[:1]))
    ):
        # a bias constant along the last axis only: fold it into the affine op
        b = np.broadcast_to(c, full).reshape(-1, full[-1])[0]
        ctx._ops[-1] = prod.replace(attrs={**prod.attrs, "bias": prod.attrs["bias"] + b})
        return y
    return elementwise(ctx, y, 1.0, c)


@converter("Gemm", since=(7, 9, 11, 13), ir_ops=("affine",))
def gemm(ctx: NodeContext) -> Var:
    """``Y = alpha * A' B' + beta * C`` with ``A' = A^T`` if transA, ``B' = B^T`` if transB."""
    a, b = ctx.input(0), ctx.input(1)
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    ta, tb = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
    c = ctx.const(2, "bias C")
    if isinstance(a, Var) and isinstance(b, Const):
        x = transpose(ctx, ctx.unbatch(a), (1, 0)) if ta else a
        w = f64(b.value, "weight B")
        y = matmul_right(ctx, x, w.T if tb else w, alpha)
    elif isinstance(a, Const) and isinstance(b, Var):
        x = transpose(ctx, ctx.unbatch(b), (1, 0)) if tb else b
        w = f64(a.value, "weight A")
        y = matmul_left(ctx, w.T if ta else w, x, alpha)
    else:
        raise Unsupported(
            "both operands depend on the network input (a bilinear product); netopt needs "
            "one constant operand (weights as initializers)"
        )
    if c is None or beta == 0:
        return y  # onnxruntime, like BLAS, ignores C when beta is 0 (even an inf or NaN C)
    try:
        full = np.broadcast_shapes(tuple(c.shape), tuple(y.shape))
    except ValueError:
        full = None
    if c.ndim > 2 or full != tuple(y.shape):
        # Gemm broadcasts C one way only, to (M, N); a C that would widen the output (a
        # (N, 1) column on a (1, N) row) is refused by onnxruntime when it runs
        raise ctx.fail(
            f"its bias C has shape {list(c.shape)}, which does not broadcast to the output's "
            f"shape {list(y.shape)} (Gemm broadcasts C one way only); fix the model's inputs"
        )
    return _bias(ctx, y, beta * f64(c, "bias C"))


@converter("MatMul", since=(1, 9, 13), ir_ops=("affine",))
def matmul(ctx: NodeContext) -> Var:
    """``Y = A @ B`` with one constant operand, on either side (``MatMul(W, x)`` too)."""
    a, b = ctx.input(0), ctx.input(1)
    if isinstance(a, Var) and isinstance(b, Const):
        return matmul_right(ctx, a, b.value)
    if isinstance(a, Const) and isinstance(b, Var):
        return matmul_left(ctx, a.value, b)
    raise Unsupported(
        "both operands depend on the network input (a bilinear product); netopt needs one "
        "constant operand (weights as initializers)"
    )
