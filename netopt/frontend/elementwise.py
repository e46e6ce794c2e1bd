"""Converters for arithmetic with constants, residual adds, activations and BatchNorm."""

from __future__ import annotations

import numpy as np

from netopt.frontend.context import Const, NodeContext, Unsupported, Var
from netopt.frontend.helpers import elementwise, f64, same_view
from netopt.frontend.registry import converter

_BINARY = (7, 13, 14)


def _broadcast_var(ctx: NodeContext, v: Var, shape: tuple[int, ...]) -> Var:
    """Expand a variable to a broadcast ONNX shape (a ``scale`` by ones)."""
    if v.shape == shape:
        return v
    return elementwise(ctx, v, np.ones(shape), 0.0)


def _var_var(ctx: NodeContext, a: Var, b: Var, sign: float) -> Var:
    a, b = same_view(ctx, [a, b])
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = _broadcast_var(ctx, a, shape), _broadcast_var(ctx, b, shape)
    a, b = same_view(ctx, [a, b])
    if sign < 0:
        b = elementwise(ctx, b, -1.0, 0.0)
    return ctx.emit("add", [a, b])


@converter("Add", since=_BINARY, ir_ops=("scale", "add"))
def add(ctx: NodeContext) -> Var:
    """``x + c`` (a ``scale``) or ``x + z`` of two variables (a residual ``add``)."""
    a, b = ctx.input(0), ctx.input(1)
    if isinstance(a, Var) and isinstance(b, Var):
        return _var_var(ctx, a, b, 1.0)
    x, c = (a, b) if isinstance(a, Var) else (b, a)
    return elementwise(ctx, x, 1.0, f64(c.value))


@converter("Sub", since=_BINARY, ir_ops=("scale", "add"))
def sub(ctx: NodeContext) -> Var:
    """``x - c``, ``c - x`` or ``x - z``."""
    a, b = ctx.input(0), ctx.input(1)
    if isinstance(a, Var) and isinstance(b, Var):
        return _var_var(ctx, a, b, -1.0)
    if isinstance(a, Var):
        return elementwise(ctx, a, 1.0, -f64(b.value))
    return elementwise(ctx, b, -1.0, f64(a.value))


@converter("Mul", since=_BINARY, ir_ops=("scale",))
def mul(ctx: NodeContext) -> Var:
    """``x * c`` for a constant ``c``."""
    a, b = ctx.input(0), ctx.input(1)
    if isinstance(a, Var) and isinstance(b, Var):
        raise Unsupported("multiplies two tensors that depend on the input (not piecewise linear)")
    x, c = (a, b) if isinstance(a, Var) else (b, a)
    return elementwise(ctx, x, f64(c.value), 0.0)


@converter("Div", since=_BINARY, ir_ops=("scale",))
def div(ctx: NodeContext) -> Var:
    """``x / c`` for a constant, non-zero ``c``."""
    a, b = ctx.input(0), ctx.input(1)
    if not (isinstance(a, Var) and isinstance(b, Const)):
        raise Unsupported("divides by a tensor that depends on the input (only x / constant)")
    c = f64(b.value)
    if np.any(c == 0):
        raise ctx.fail("divides by a constant that contains 0")
    return elementwise(ctx, a, 1.0 / c, 0.0)


def _unary(op: str):
    def conv(ctx: NodeContext) -> Var:
        return ctx.emit(op, [ctx.var(0)])

    conv.__doc__ = f"Elementwise ``{op}``."
    return conv


converter("Relu", since=(6, 13, 14), ir_ops=("relu",))(_unary("relu"))
converter("Sigmoid", since=(6, 13), ir_ops=("sigmoid",))(_unary("sigmoid"))
converter("Tanh", since=(6, 13), ir_ops=("tanh",))(_unary("tanh"))


@converter("LeakyRelu", since=(6, 16), ir_ops=("leaky_relu",))
def leaky_relu(ctx: NodeContext) -> Var:
    """``max(x, 0) + alpha * min(x, 0)``, alpha defaults to 0.01."""
    return ctx.emit("leaky_relu", [ctx.var(0)], {"alpha": float(ctx.attr("alpha", 0.01))})


def _softmax(op: str):
    def conv(ctx: NodeContext) -> Var:
        x = ctx.var(0)
        if ctx.opset < 13:
            # opsets < 13 coerce the input to 2-D at `axis`: normalize over axes axis..r-1
            ax = int(ctx.attr("axis", 1))
            ax = ax + x.rank if ax < 0 else ax
            onnx_axes = list(range(ax, x.rank))
        else:
            ax = int(ctx.attr("axis", -1))
            onnx_axes = [ax + x.rank if ax < 0 else ax]
        if any(not 0 <= a < x.rank for a in onnx_axes):
            raise ctx.fail(f"axis {ctx.attr('axis')} is out of range for rank {x.rank}")
        # the batch axis has size 1: normalizing over it too changes nothing
        axes = [a - 1 if x.batched else a for a in onnx_axes if not (x.batched and a == 0)]
        return ctx.emit(op, [x], {"axes": axes})

    conv.__doc__ = f"``{op}`` over the given axis (opset < 13: the flattened trailing axes)."
    return conv


converter("Softmax", since=(1, 11, 13), ir_ops=("softmax",))(_softmax("softmax"))
converter("LogSoftmax", since=(1, 11, 13), ir_ops=("log_softmax",))(_softmax("log_softmax"))


@converter("Clip", since=(6, 11, 12, 13), ir_ops=("relu", "scale"))
def clip(ctx: NodeContext) -> Var:
    r"""``min(max(x, lo), hi)``, lowered to ReLUs so every formulation handles it exactly.

    ``max(x, lo) = lo + relu(x - lo)`` and ``min(y, hi) = hi - relu(hi - y)``, so
    ``clip(x) = hi - relu((hi - lo) - relu(x - lo))``.
    """
    x = ctx.var(0)
    if ctx.opset < 11:
        lo = float(ctx.attr("min", -np.inf))
        hi = float(ctx.attr("max", np.inf))
    else:
        c1, c2 = ctx.const(1, "min"), ctx.const(2, "max")
        lo = -np.inf if c1 is None else float(f64(c1).reshape(-1)[0])
        hi = np.inf if c2 is None else float(f64(c2).reshape(-1)[0])
    # float32 extremes (the exporters' stand-ins for no bound) mean no bound
    lo = -np.inf if lo <= -3.4e38 else lo
    hi = np.inf if hi >= 3.4e38 else hi
    if lo == np.inf or hi == -np.inf:
        # not "no bound" but a constant output (onnxruntime gives +-FLT_MAX or -inf)
        raise ctx.fail(f"min {lo} / max {hi} make the output constant; fix the model's bounds")
    big = [t for t in (lo, hi) if np.isfinite(t) and abs(t) > 1e10]
    if big:
        # the ReLU form below shifts the input by the bounds, and in float64 a bound this
        # large rounds the input away: (1e30 - (1e30 - x)) == 0
        raise ctx.fail(
            f"a bound of {big[0]:g} is too large for netopt's exact ReLU form of Clip; "
            "leave the bound out (or use +-3.4e38, the float32 extremes) for no bound"
        )
    if lo > hi:
        raise ctx.fail(f"min {lo} exceeds max {hi}")
    y = x
    if np.isfinite(lo):
        y = ctx.emit("relu", [y if lo == 0 else elementwise(ctx, y, 1.0, -lo)])
        if np.isfinite(hi):
            u = elementwise(ctx, y, -1.0, hi - lo)
            return elementwise(ctx, ctx.emit("relu", [u]), -1.0, hi)
        return y if lo == 0 else elementwise(ctx, y, 1.0, lo)
    if np.isfinite(hi):
        u = elementwise(ctx, y, -1.0, hi)
        return elementwise(ctx, ctx.emit("relu", [u]), -1.0, hi)
    return ctx.emit("identity", [x])


@converter("BatchNormalization", since=(7, 9, 14, 15), ir_ops=("scale",))
def batchnorm(ctx: NodeContext) -> Var:
    r"""Inference BatchNorm per channel (axis 1): ``gamma (x - mean) / sqrt(var + eps) + beta``.

    .. math:: y = \gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta
    """
    x = ctx.var(0)
    if int(ctx.attr("training_mode", 0)):
        raise Unsupported("training_mode=1 (batch statistics); export the model in eval mode")
    if ctx.opset < 9 and int(ctx.attr("spatial", 1)) == 0:
        raise Unsupported("spatial=0 (per-activation statistics) is not supported")
    gamma, beta = f64(ctx.const(1, "scale")), f64(ctx.const(2, "B"))
    mean, var = f64(ctx.const(3, "mean")), f64(ctx.const(4, "var"))
    eps = float(ctx.attr("epsilon", 1e-5))
    if x.rank < 2:
        raise ctx.fail(f"input of rank {x.rank}; BatchNormalization needs (N, C, ...)")
    if np.any(var + eps <= 0):
        raise ctx.fail("variance + epsilon is not positive")
    a = gamma / np.sqrt(var + eps)
    c = beta - mean * a
    shape = (1, x.shape[1]) + (1,) * (x.rank - 2)
    return elementwise(ctx, x, a.reshape(shape), c.reshape(shape))
