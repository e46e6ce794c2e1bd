r"""The falsifier's engines: a batch of float32 margins and their leaky gradients.

Each engine takes flat points ``X`` ``(B, n)``, each start's constraints ``C`` ``(B, k, n_out)``
and limits ``D`` ``(B, k)`` and its ReLU leak ``(B,)``, and returns the margins
:math:`\max_i (C f(x) - d)_i` ``(B,)`` and (``grad``) their gradients with every ReLU's backward
pass leaking (:mod:`netopt.attack`). Two of them, because start-up matters as much as speed:
:class:`_NumpyChain` runs an MLP in numpy without importing torch, :class:`_TorchEngine` runs any
graph with a torch rule on any device. Kept apart from the search loop
(:mod:`netopt.attack.search`), which only calls an engine and never needs to know which one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

#: Batches of at most this many input entries (starts x inputs) run on one CPU thread.
_ONE_THREAD_ENTRIES = 2**20


class _NumpyChain:
    """A chain of flattening reshapes, affine maps and ReLUs (an MLP: ACAS Xu, MNIST FC) in
    float32 numpy: the margin and its leaky gradient without torch, whose import alone costs
    about a second.
    """

    def __init__(self, layers: list[tuple[str, Any, Any]]) -> None:
        self.layers = layers

    @classmethod
    def build(cls, net: Any) -> _NumpyChain | None:
        """The chain of ``net``, or None when its graph is anything else."""
        g = net.graph
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            return None
        layers: list[tuple[str, Any, Any]] = []
        cur = g.inputs[0]
        for op in g.ops:
            if tuple(op.inputs) != (cur,) or len(op.outputs) != 1:
                return None
            out_shape = tuple(g.value(op.outputs[0]).shape)
            if op.op == "reshape" and len(out_shape) == 1:
                pass  # a flat sample is already flat: row-major order is kept
            elif op.op == "affine" and len(tuple(g.value(cur).shape)) == 1:
                W = np.asarray(op.attrs["weight"], dtype=np.float32)
                b = np.asarray(op.attrs["bias"], dtype=np.float32)
                layers.append(("affine", W, b))
            elif op.op == "relu" and len(out_shape) == 1:
                layers.append(("relu", None, None))
            else:
                return None
            cur = op.outputs[0]
        return cls(layers) if cur == g.outputs[0] else None

    def __call__(
        self, X: np.ndarray, C: np.ndarray, D: np.ndarray, leak: np.ndarray, grad: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Margins ``(B,)`` of the flat points ``X`` and (``grad``) their leaky gradients."""
        h = X.astype(np.float32, copy=False)
        masks = []
        for kind, W, b in self.layers:
            if kind == "affine":
                h = h @ W.T + b
            else:
                masks.append(h > 0)
                h = np.maximum(h, 0)
        V = np.einsum("bko,bo->bk", C, h) - D
        row = np.argmax(V, axis=1)
        m = V[np.arange(len(V)), row]
        if not grad:
            return m, None
        # the max's subgradient: the winning row of C, back through the chain
        g = C[np.arange(len(V)), row]
        lk = leak[:, None].astype(np.float32)
        for kind, W, _ in reversed(self.layers):
            if kind == "affine":
                g = g @ W
            else:
                g = np.where(masks.pop(), g, lk * g)
        return m, g


class _TorchEngine:
    """The network as a torch module (float32, any op with a torch rule) on ``dev``, with
    every ReLU's backward pass leaking (:mod:`netopt.attack`); points and gradients cross as numpy."""

    def __init__(self, net: Any, dev: Any, C: np.ndarray, D: np.ndarray, leak: np.ndarray):
        import torch

        self.torch, self.dev, self.shape = torch, dev, tuple(net.input_shape)
        self.mod = _leaky_module(net, dev)
        self.state = self.mod.__dict__["_leak_state"]
        f32 = torch.float32
        self.C = torch.tensor(C, dtype=f32, device=dev)
        self.D = torch.tensor(D, dtype=f32, device=dev)
        self.leak = torch.tensor(leak, dtype=f32, device=dev)

    def __call__(
        self, X: np.ndarray, C: np.ndarray, D: np.ndarray, leak: np.ndarray, grad: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self.torch
        x = torch.as_tensor(X, dtype=torch.float32).to(self.dev)
        B = len(x)
        if not grad:
            with torch.no_grad():
                y = self.mod(x.reshape(B, *self.shape)).reshape(B, -1)
                m = (self.C @ y.unsqueeze(-1)).squeeze(-1).sub(self.D).max(dim=1).values
            return m.cpu().numpy(), None
        x.requires_grad_(True)
        self.state["leak"] = self.leak
        try:
            y = self.mod(x.reshape(B, *self.shape)).reshape(B, -1)
        finally:
            self.state["leak"] = None
        m = (self.C @ y.unsqueeze(-1)).squeeze(-1).sub(self.D).max(dim=1).values
        (g,) = torch.autograd.grad(m.sum(), x)
        return m.detach().cpu().numpy(), g.cpu().numpy()


def _leaky_module(net: Any, dev: Any) -> Any:
    """The network in torch (float32) with every ReLU's backward pass leaking
    (:mod:`netopt.attack`).

    The forward values are torch's exact ReLU; the leak is read from ``_leak_state["leak"]``, a
    ``(B,)`` tensor set before a forward (None: no leak). Cached per device on the network: a
    check attacks every disjunct of a property, a branch and bound many boxes.
    """
    import torch
    from torch import nn

    cache = net.__dict__.setdefault("_attack_modules", {})
    key = f"leaky:{dev}"
    if key in cache:
        return cache[key]
    mod = net.torch_module(dtype=torch.float32, device=dev)
    state: dict[str, Any] = {"leak": None}

    class _LeakyGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, z: torch.Tensor, leak: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(z, leak)
            return torch.relu(z)

        @staticmethod
        def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
            z, leak = ctx.saved_tensors
            lk = leak.reshape(-1, *([1] * (z.dim() - 1)))
            # the derivative 1[z > 0] (torch's at 0 too) plus the leak where the unit is off
            return torch.where(z > 0, g, lk * g), None

    class _Relu(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            lk = state["leak"]
            if lk is None or not torch.is_grad_enabled() or lk.shape[0] != z.shape[0]:
                return torch.relu(z)
            return _LeakyGrad.apply(z, lk)

    for k, op in enumerate(net.graph.ops):
        if op.op == "relu":
            mod.steps[k] = _Relu()
    mod.__dict__["_leak_state"] = state
    cache[key] = mod
    return mod


@contextmanager
def _few_threads(torch_engine: bool, small: bool) -> Iterator[None]:
    """One BLAS / torch thread for a small batch on the CPU: its matmuls take a millisecond on
    one core, while on a loaded machine more threads wait on each other and a step takes ten
    times as long."""
    if not small:
        yield
        return
    if torch_engine:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional helper: without it numpy keeps its threads
        yield
        return
    with threadpool_limits(1):
        yield
