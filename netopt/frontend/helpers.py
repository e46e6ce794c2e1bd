"""Lowering helpers shared by the converters (ONNX-view shape logic lives here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from netopt.frontend.context import NodeContext, Unsupported, Var

__all__ = [
    "f64",
    "elementwise",
    "matmul_right",
    "matmul_left",
    "reshape_to",
    "transpose",
    "same_view",
]


def f64(a: np.ndarray | float, what: str = "constant") -> np.ndarray:
    """A constant as float64 (weights of any numeric dtype are accepted)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise Unsupported(f"its {what} has dtype {arr.dtype}, not a number")
    return arr.astype(np.float64)


def _squeeze_lead(c: np.ndarray, rank: int) -> np.ndarray:
    # a constant of the variable's full ONNX rank carries the batch axis: drop it
    return c[0] if c.ndim == rank else c


def elementwise(
    ctx: NodeContext, x: Var, mul: np.ndarray | float = 1.0, add: np.ndarray | float = 0.0
) -> Var:
    r"""``y = x * mul + add`` with ONNX (numpy) broadcasting of the constants.

    Stays batched when the constants do not reach the batch axis; otherwise the
    tensor is unbatched first so that ONNX axes are sample axes.
    """
    mul, add = f64(mul), f64(add)
    out = np.broadcast_shapes(x.shape, mul.shape, add.shape)
    if x.batched:
        keep = len(out) == x.rank and out[0] == 1
        if keep:
            mul, add = _squeeze_lead(mul, x.rank), _squeeze_lead(add, x.rank)
        else:
            x = ctx.unbatch(x)
    # a uniform constant that does not widen the output is stored as a scalar
    full = np.broadcast_shapes(x.sample_shape, mul.shape, add.shape)
    if (
        mul.size
        and np.all(mul == mul.flat[0])
        and np.broadcast_shapes(x.sample_shape, add.shape) == full
    ):
        mul = np.asarray(mul.flat[0])
    if (
        add.size
        and np.all(add == add.flat[0])
        and np.broadcast_shapes(x.sample_shape, mul.shape) == full
    ):
        add = np.asarray(add.flat[0])
    return ctx.emit("scale", [x], {"mul": mul, "add": add})


def same_view(ctx: NodeContext, vs: Sequence[Var]) -> list[Var]:
    """Bring variables to one view: all batched, or all unbatched."""
    if all(v.batched for v in vs) or not any(v.batched for v in vs):
        return list(vs)
    return [ctx.unbatch(v) for v in vs]


def reshape_to(ctx: NodeContext, x: Var, onnx_shape: Sequence[int]) -> Var:
    """Reshape to a resolved ONNX shape; batched iff ``x`` is and the leading dim is 1."""
    shape = tuple(int(d) for d in onnx_shape)
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise ctx.fail(f"cannot reshape {list(x.shape)} to {list(shape)}")
    batched = x.batched and len(shape) >= 1 and shape[0] == 1
    return ctx.reshape(x, shape, batched)


def transpose(ctx: NodeContext, x: Var, perm: Sequence[int]) -> Var:
    """ONNX Transpose: a sample permutation if the batch axis stays first, else unbatch."""
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(x.rank)):
        raise ctx.fail(f"perm {perm} is not a permutation of {x.rank} axes")
    if perm == list(range(x.rank)):
        return x
    if x.batched and perm[0] == 0:
        return ctx.emit("transpose", [x], {"perm": [p - 1 for p in perm[1:]]})
    x = ctx.unbatch(x)
    return ctx.emit("transpose", [x], {"perm": perm}, batched=False)


def matmul_right(ctx: NodeContext, x: Var, w: np.ndarray, alpha: float = 1.0) -> Var:
    """``x @ (alpha * w)`` for a constant ``w`` (ONNX MatMul broadcasting, ``w`` of rank 1 or 2)."""
    w = f64(w, "weight") * alpha
    if w.ndim not in (1, 2):
        raise Unsupported(
            f"a constant operand of rank {w.ndim} (a batched matmul) is not supported"
        )
    if x.rank == 0:
        raise Unsupported("matmul of a scalar")
    if x.rank == 1 and x.batched:
        x = ctx.unbatch(x)
    w2 = w[:, None] if w.ndim == 1 else w
    if x.shape[-1] != w2.shape[0]:
        raise ctx.fail(f"matmul of {list(x.shape)} by a {list(w.shape)} weight: inner sizes differ")
    y = ctx.emit("affine", [x], {"weight": w2.T, "bias": np.zeros(w2.shape[1])})
    if w.ndim == 1:
        y = ctx.reshape(y, y.shape[:-1], y.batched and y.rank > 1)
    return y


def matmul_left(ctx: NodeContext, w: np.ndarray, x: Var, alpha: float = 1.0) -> Var:
    """``(alpha * w) @ x`` for a constant ``w``: acts on the second-to-last axis of ``x``."""
    w = f64(w, "weight") * alpha
    if w.ndim not in (1, 2):
        raise Unsupported(
            f"a constant operand of rank {w.ndim} (a batched matmul) is not supported"
        )
    w2 = w[None, :] if w.ndim == 1 else w
    if x.rank == 1:
        if x.batched:
            x = ctx.unbatch(x)
        if x.shape[0] != w2.shape[1]:
            raise ctx.fail(
                f"matmul of a {list(w.shape)} weight by {list(x.shape)}: inner sizes differ"
            )
        y = ctx.emit("affine", [x], {"weight": w2, "bias": np.zeros(w2.shape[0])})
        return ctx.reshape(y, (), False) if w.ndim == 1 else y
    if x.batched and x.rank == 2:
        x = ctx.unbatch(x)  # the contracted axis is the batch axis itself
    if x.shape[-2] != w2.shape[1]:
        raise ctx.fail(f"matmul of a {list(w.shape)} weight by {list(x.shape)}: inner sizes differ")
    r = x.rank
    swap = list(range(r - 2)) + [r - 1, r - 2]
    xt = transpose(ctx, x, swap)
    y = ctx.emit("affine", [xt], {"weight": w2, "bias": np.zeros(w2.shape[0])})
    y = transpose(ctx, y, swap)
    if w.ndim == 1:
        y = ctx.reshape(y, y.shape[:-2] + y.shape[-1:], y.batched)
    return y
