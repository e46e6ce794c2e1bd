"""The IR graph as a batched ``torch.nn.Module``, for the first-order solvers.

:class:`GraphModule` runs a :class:`netopt.ir.Graph` in torch, on any device and
in any floating dtype, on a batch of samples at once: a graph whose input has the
per-sample shape ``s`` takes a tensor ``(B, *s)``. It is what the first-order
formulations (projected gradient inversion, ADMM, lifted Bregman) differentiate
through, so it is differentiable with respect to its inputs, while the network's
weights are constants.

Design
------
* **One torch rule per IR op.** :data:`TORCH_RULES` maps every key of
  :data:`netopt.ir.ops.OPS` to a builder registered with :func:`torch_rule`. A
  builder receives the op and the per-sample shapes of its inputs and output and
  returns a small ``torch.nn.Module`` whose ``forward(*xs)`` maps batched inputs
  to the batched output. Adding an IR op means adding one builder here (a
  convolution or pooling op: :mod:`netopt.ir.torch_windows`; a meta-test lists the
  ops that still lack one).
* **Exactly the reference semantics.** Each rule reproduces the float64 numpy
  forward of :mod:`netopt.ir.ops` — the interpreter every result is re-checked with —
  not torch's own conventions where they differ. Windows are padded explicitly
  (``F.pad``) before a pad-free torch kernel, because torch's pooling padding is
  symmetric, bounded by half the kernel, and (for average pooling) counts cells
  differently; the divisor of average pooling is a precomputed buffer.
* **Weights are buffers.** Weights are registered buffers (never ``Parameter``),
  so ``module.to(device)``/``module.double()`` move and cast them, they never
  require gradients, and an optimizer over ``module.parameters()`` finds nothing
  to train. Inputs are cast to the module's dtype and device on entry.
* **Memory.** Intermediate values are released as soon as their last reader has
  run, like the reference interpreter, so large batches fit.

Examples
--------
>>> net = netopt.load("model.onnx")                     # doctest: +SKIP
>>> f = net.torch_module(dtype=torch.float64)           # doctest: +SKIP
>>> x = torch.zeros(16, *net.input_shape, dtype=torch.float64, requires_grad=True)
>>> f(x).sum().backward()                               # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import netopt.ir.torch_windows  # noqa: F401  (registers the convolution and pooling rules)
from netopt.errors import InputError, UnsupportedOpError
from netopt.ir.graph import Graph, Op
from netopt.ir.ops import OPS
from netopt.ir.torch_rules import TORCH_RULES, Shape, _f64, torch_rule

log = logging.getLogger("netopt")

__all__ = ["GraphModule", "TORCH_RULES", "torch_rule", "missing_rules"]


def missing_rules() -> list[str]:
    """IR ops of :data:`netopt.ir.ops.OPS` without a torch rule (empty when complete)."""
    return sorted(set(OPS) - set(TORCH_RULES))


class _Fn(nn.Module):
    """A parameter-free op: ``forward(*xs) = fn(*xs)``."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str) -> None:
        super().__init__()
        self.fn = fn
        self.name = name

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)

    def extra_repr(self) -> str:
        return self.name


# ----------------------------------------------------------------------- linear
class _Affine(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.linear acts on the last axis and carries leading axes, as ops.Affine
        return F.linear(x, self.weight, self.bias)


@torch_rule("affine")
def _affine(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`y = x W^\top + b` on the last axis."""
    return _Affine(_f64(op.attrs["weight"]), _f64(op.attrs["bias"]))


class _Scale(nn.Module):
    def __init__(self, mul: torch.Tensor, add: torch.Tensor, in_shape: Shape, out: Shape) -> None:
        super().__init__()
        r = len(out)
        # align every operand to the sample rank of the output, plus the batch axis:
        # the constants broadcast against the *sample*, never against the batch axis
        self.register_buffer("mul", mul.reshape((1,) * (1 + r - mul.dim()) + tuple(mul.shape)))
        self.register_buffer("add", add.reshape((1,) * (1 + r - add.dim()) + tuple(add.shape)))
        self.lift = (1,) * (r - len(in_shape)) + tuple(in_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.lift) * self.mul + self.add


@torch_rule("scale")
def _scale(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`y = x \odot a + c`, numpy broadcasting over the sample axes."""
    return _Scale(_f64(op.attrs["mul"]), _f64(op.attrs["add"]), ins[0], out)


@torch_rule("reshape")
def _reshape(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    """Row-major reshape of each sample."""
    shape = tuple(int(d) for d in op.attrs["shape"])
    return _Fn(lambda x: x.reshape(x.shape[0], *shape), f"shape={shape}")


@torch_rule("transpose")
def _transpose(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    """Permute the sample axes (the batch axis stays first)."""
    perm = (0, *(1 + int(p) for p in op.attrs["perm"]))
    return _Fn(lambda x: x.permute(perm), f"perm={perm}")


@torch_rule("select")
def _select(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    """Gather flat sample entries: ``y.flat[k] = x.flat[index.flat[k]]``."""
    idx = torch.tensor(np.asarray(op.attrs["index"]).reshape(-1), dtype=torch.long)
    shape = tuple(int(d) for d in out)
    mod = _Fn(
        lambda x: (
            x.reshape(x.shape[0], -1)
            .index_select(1, mod.index.to(x.device))
            .reshape(x.shape[0], *shape)
        ),
        f"n={idx.numel()}",
    )
    mod.register_buffer("index", idx)
    return mod


@torch_rule("identity")
def _identity(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    """The identity."""
    return _Fn(lambda x: x, "")


@torch_rule("pad")
def _pad(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    """Constant padding; ONNX pads (all begins, then all ends) over the sample axes."""
    p = [int(t) for t in op.attrs["pads"]]
    r = len(p) // 2
    # F.pad lists (begin, end) pairs from the last axis backwards
    tp = tuple(q for i in reversed(range(r)) for q in (p[i], p[i + r]))
    value = float(op.attrs["value"])
    return _Fn(lambda x: F.pad(x, tp, value=value), f"pads={tp}, value={value}")


@torch_rule("add")
def _add(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    """Sum of two variable tensors."""
    return _Fn(torch.add, "")


@torch_rule("concat")
def _concat(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    """Concatenation along a sample axis."""
    dim = 1 + int(op.attrs["axis"])
    return _Fn(lambda *xs: torch.cat(xs, dim=dim), f"dim={dim}")


# ---------------------------------------------------------- piecewise linear
@torch_rule("relu")
def _relu(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`\max(x, 0)`."""
    return _Fn(F.relu, "")


@torch_rule("leaky_relu")
def _leaky_relu(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`x` for :math:`x \ge 0`, :math:`\alpha x` otherwise."""
    alpha = float(op.attrs["alpha"])
    # F.leaky_relu takes x > 0 as the linear side; both sides give 0 at x = 0
    return _Fn(lambda x: F.leaky_relu(x, alpha), f"alpha={alpha}")


@torch_rule("sigmoid")
def _sigmoid(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`1 / (1 + e^{-x})`."""
    return _Fn(torch.sigmoid, "")


@torch_rule("tanh")
def _tanh(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`\tanh x`."""
    return _Fn(torch.tanh, "")


class _JointSoftmax(nn.Module):
    r"""(Log-)softmax normalized jointly over a tuple of sample axes :math:`A`.

    The axes of :math:`A` are moved to the end and flattened into one, so torch's
    stable single-axis kernel does the work. With :math:`A = \emptyset` the new
    last axis has length 1: softmax is 1 and log-softmax 0, and the autograd graph
    stays connected to the input (a zero gradient, not a detached constant).
    """

    def __init__(self, axes: Sequence[int], rank: int, log: bool) -> None:
        super().__init__()
        ax = [1 + int(a) for a in axes]
        rest = [d for d in range(1, rank + 1) if d not in ax]
        self.perm = (0, *rest, *ax)
        self.inv = tuple(int(i) for i in np.argsort(self.perm))
        self.n_keep = 1 + len(rest)
        self.log = log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = x.permute(self.perm)
        shape = xt.shape
        flat = xt.reshape(*shape[: self.n_keep], -1) if shape.numel() else xt
        y = F.log_softmax(flat, dim=-1) if self.log else F.softmax(flat, dim=-1)
        return y.reshape(shape).permute(self.inv)

    def extra_repr(self) -> str:
        return f"perm={self.perm}, log={self.log}"


@torch_rule("softmax")
def _softmax(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`e^x / \sum_A e^x` over the sample axes :math:`A` (1 when :math:`A` is empty)."""
    return _JointSoftmax(op.attrs["axes"], len(ins[0]), log=False)


@torch_rule("log_softmax")
def _log_softmax(op: Op, ins: Sequence[Shape], out: Shape) -> nn.Module:
    r""":math:`x - \log \sum_A e^x` over the sample axes :math:`A` (0 when :math:`A` is empty)."""
    return _JointSoftmax(op.attrs["axes"], len(ins[0]), log=True)


# ------------------------------------------------------------------- module
class GraphModule(nn.Module):
    """An IR graph as a batched, differentiable ``torch.nn.Module``.

    Parameters
    ----------
    graph : Graph
        The IR graph (normally ``net.graph`` of a loaded :class:`netopt.Network`).
    dtype : torch.dtype, optional
        Floating dtype of the weights and the computation (default ``torch.float32``).
    device : str or torch.device, optional
        Default ``"cuda"`` when available, else ``"cpu"``.

    Attributes
    ----------
    graph : Graph
        The graph it runs.
    steps : torch.nn.ModuleList
        One module per IR op, in topological order.

    Raises
    ------
    UnsupportedOpError
        If an op of the graph has no torch rule (naming the op id and IR op).

    Notes
    -----
    ``forward(x)`` takes ``(B, *input_shape)`` for a single-input graph and returns
    ``(B, *output_shape)``; with several inputs it takes one positional tensor per
    graph input (in ``graph.inputs`` order), and with several outputs it returns a
    tuple in ``graph.outputs`` order. The result equals the reference interpreter
    (:func:`netopt.ir.interpret.interpret`) up to the rounding of ``dtype``.
    """

    def __init__(
        self,
        graph: Graph,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        dtype = torch.float32 if dtype is None else dtype
        if not dtype.is_floating_point:
            raise InputError(f"GraphModule needs a floating dtype, got {dtype}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        missing = [o for o in graph.ops if o.op not in TORCH_RULES]
        if missing:
            listed = "; ".join(o.where for o in missing)
            raise UnsupportedOpError(
                f"torch module: no torch rule for {listed}; add one with "
                "@netopt.ir.torch_module.torch_rule(<IR op>), or use a formulation that does not "
                "need torch",
                [(o.id, o.op, "no torch rule") for o in missing],
            )
        self.graph = graph
        steps = []
        for o in graph.ops:
            ins = [graph.value(i).shape for i in o.inputs]
            out = graph.value(o.outputs[0]).shape
            try:
                steps.append(TORCH_RULES[o.op](o, ins, out))
            except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as e:
                raise UnsupportedOpError(
                    f"torch module: {o.where} cannot be built in torch ({type(e).__name__}: {e})",
                    [(o.id, o.op, str(e))],
                ) from e
        self.steps = nn.ModuleList(steps)
        self._plan = [(o.inputs, o.outputs[0]) for o in graph.ops]
        # free every intermediate value right after its last reader (graph outputs never)
        last: dict[str, int] = {}
        for k, o in enumerate(graph.ops):
            for i in o.inputs:
                last[i] = k
        outs = set(graph.outputs)
        self._free: list[tuple[str, ...]] = [() for _ in graph.ops]
        for vid, k in last.items():
            if vid not in outs:
                self._free[k] = (*self._free[k], vid)
        self._in_shapes = [graph.value(i).shape for i in graph.inputs]
        # an empty buffer whose dtype/device follow .to()/.double(): inputs are cast to it
        self.register_buffer("_anchor", torch.empty(0, dtype=torch.float64), persistent=False)
        self.to(device=device, dtype=dtype)
        log.debug("torch module for %r on %s, %s", graph, device, dtype)

    @property
    def dtype(self) -> torch.dtype:
        """The current floating dtype of the weights and the computation."""
        return self._anchor.dtype

    @property
    def device(self) -> torch.device:
        """The current device of the weights."""
        return self._anchor.device

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Run the graph on a batch.

        Parameters
        ----------
        *xs : torch.Tensor
            One tensor ``(B, *shape)`` per graph input, in ``graph.inputs`` order;
            cast to the module's dtype and device (differentiably).

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            ``(B, *output_shape)``; a tuple when the graph has several outputs.

        Raises
        ------
        InputError
            On a wrong number of inputs or a wrong per-sample shape.
        """
        g = self.graph
        if len(xs) != len(g.inputs):
            raise InputError(
                f"the graph has {len(g.inputs)} input(s) {list(g.inputs)}, got {len(xs)} tensor(s)"
            )
        env: dict[str, torch.Tensor] = {}
        anchor = self._anchor
        for vid, shape, x in zip(g.inputs, self._in_shapes, xs, strict=True):
            if not isinstance(x, torch.Tensor):
                x = torch.as_tensor(x)
            if tuple(x.shape[1:]) != shape or x.dim() != len(shape) + 1:
                raise InputError(
                    f"input '{vid}' has shape {tuple(x.shape)}; expected (batch, "
                    f"{', '.join(map(str, shape))})"
                )
            if x.dtype != anchor.dtype or x.device != anchor.device:
                x = x.to(device=anchor.device, dtype=anchor.dtype)
            env[vid] = x
        for step, (ins, out), free in zip(self.steps, self._plan, self._free, strict=True):
            env[out] = step(*(env[i] for i in ins))
            for vid in free:
                del env[vid]
        if len(g.outputs) == 1:
            return env[g.outputs[0]]
        return tuple(env[o] for o in g.outputs)

    def extra_repr(self) -> str:
        return repr(self.graph)
