r"""The sigmoid-surrogate network of ADR-GD: the dense layers, the gate, the constraint loss.

The math is in :mod:`netopt.formulations.adr_gd`. The pieces work on torch tensors (and the gate
on numpy arrays); torch is imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.errors import FormulationError
from netopt.ir.chain import chain_refusals, split_chain

__all__ = ["DenseNet", "dense_layers", "offset_sigmoid", "surrogate_forward", "constraint_loss"]


# ------------------------------------------------------------------------------ the network
@dataclass(frozen=True)
class DenseNet:
    """The network as dense layers: hidden ``(W_l, b_l)`` closed by ReLU, then ``(W_L, b_L)``."""

    hidden: tuple[tuple[np.ndarray, np.ndarray], ...]
    last: tuple[np.ndarray, np.ndarray]

    @property
    def n_in(self) -> int:
        W = self.hidden[0][0] if self.hidden else self.last[0]
        return int(W.shape[1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """True ReLU forward in float64 of a batch ``(B, n_in)``."""
        h = np.asarray(x, dtype=np.float64)
        for W, b in self.hidden:
            h = np.maximum(h @ W.T + b, 0.0)
        return h @ self.last[0].T + self.last[1]


#: ops that keep the network a chain of dense layers (shape-only ops compose into the matrices)
LINEAR_OPS = ("affine", "scale", "reshape", "identity")
#: the only activation the activation variables model
ACTIVATION_OPS = ("relu",)


def _refusal(op) -> str | None:
    """Why ADR-GD cannot handle ``op`` (None if it can)."""
    if op.op in ACTIVATION_OPS:
        return None
    if op.op in LINEAR_OPS:
        if len(op.inputs) != 1:
            return f"'{op.op}' with {len(op.inputs)} variable inputs breaks the chain of layers"
        return None
    if op.op == "leaky_relu":
        return "ADR-GD's activation variables model ReLU on/off states only, not LeakyReLU"
    if op.op in ("sigmoid", "tanh", "softmax", "log_softmax"):
        return (
            f"'{op.op}' is smooth and has no on/off activation pattern; ADR-GD handles ReLU "
            "chains (use a gradient method: 'adam', 'pgd')"
        )
    if op.op == "conv2d":
        return "conv2d is not dense; ADR-GD handles chains of dense (affine) layers and ReLU"
    if op.op in ("add", "concat"):
        return f"'{op.op}' of several variable tensors breaks the chain of layers"
    return f"ADR-GD handles chains of affine + relu only, not '{op.op}'"


#: the pipeline's hint for an unsupported op (``Formulation.support_hint``)
SUPPORT_HINT = "Smooth activations (sigmoid, tanh, softmax) need a first-order method."


def support_refusals(graph: Any) -> list:
    """``(op id, IR op, reason)`` for every op outside ADR-GD's scope (chains of affine + ReLU)."""
    return chain_refusals(
        graph, ACTIVATION_OPS, linear=LINEAR_OPS, refusal=_refusal, method="ADR-GD", branches=True
    )


def dense_layers(problem_or_graph: Any) -> DenseNet:
    """Weights of a chain of affine + ReLU as :class:`DenseNet`; refuses anything else.

    Raises
    ------
    FormulationError
        Naming every op outside ADR-GD's scope with its ONNX node.
    """
    net = getattr(problem_or_graph, "net", None)
    graph = net.graph if net is not None else getattr(problem_or_graph, "graph", problem_or_graph)
    where = f" of {net.source.name}" if net is not None else ""
    bad = support_refusals(graph)
    if bad:  # before any work: one message listing every op (as the pipeline words it)
        lines = "\n".join(f"  - {i} ({op}): {why}" for i, op, why in bad)
        raise FormulationError(
            f"formulation 'adr_gd' cannot model {len(bad)} op(s){where}:\n{lines}\n" + SUPPORT_HINT
        )
    layers = [(c, *c.affine(where)) for c in split_chain(graph, where)]
    hidden = [(m.toarray(), b) for c, m, b in layers if c.act == "relu"]
    c, m, b = layers[-1]
    if c.activation is None:
        last = (m.toarray(), b)
    else:  # the network ends in a ReLU: the read-out is the identity on its output
        n = c.n_out
        last = (np.eye(n), np.zeros(n))
    return DenseNet(tuple(hidden), last)


# ---------------------------------------------------------------------------- the pieces
def offset_sigmoid(eta: Any, beta: float = 2000.0) -> Any:
    r"""The gate :math:`s(\eta) = 1 - \mathrm{sigmoid}(\beta(\eta - 0.5 + 10^{-6}))`.

    Works on numpy arrays and torch tensors: about 1 (unit on) below 0.5, about 0 above.
    """
    if isinstance(eta, np.ndarray | float | int):
        z = beta * (np.asarray(eta, dtype=np.float64) - 0.5 + 1e-6)
        return 1.0 - 0.5 * (1.0 + np.tanh(0.5 * z))  # tanh form: no overflow for large |z|
    import torch

    return 1.0 - torch.sigmoid(beta * (eta - 0.5 + 1e-6))


def surrogate_forward(net: DenseNet, x: Any, etas: list[Any], beta: float = 2000.0) -> Any:
    r""":math:`\tilde f(x, \eta)` in torch, batched: ``x`` ``(B, n_in)``, ``etas[l]``
    ``(B, n_l)``."""
    hidden, (WL, bL) = _to_torch(net, x)
    h = x
    for (W, b), eta in zip(hidden, etas, strict=True):
        h = offset_sigmoid(eta, beta) * (h @ W.T + b)
    return h @ WL.T + bL


def constraint_loss(pre: list[Any], row_norms: list[Any], etas: list[Any], floor: float = 0.0):
    r""":math:`C(x, \eta)` ("(8)") per batch row, torch.

    ``pre[l]`` are the true pre-activations :math:`g^l(x)` ``(B, n_l)``, ``row_norms[l]``
    :math:`\|P^l_j\|` ``(B, n_l)``, ``etas[l]`` ``(B, n_l)``; :math:`\hat g = g / \max(\|P_j\|,
    \nu)` with :math:`\nu` = ``floor`` (0: plain division, guarded against a zero row).
    """
    import torch

    total = 0.0
    for g, r, eta in zip(pre, row_norms, etas, strict=True):
        den = torch.clamp(r, min=floor) if floor > 0 else torch.clamp(r, min=1e-12)
        gn = g / den
        off = torch.relu(gn * torch.relu(eta - 0.5)).amax(dim=1)  # marked off, truly on
        on = torch.relu(-gn * torch.relu(0.5 - eta)).amax(dim=1)  # marked on, truly off
        total = total + off + on
    return total


# ------------------------------------------------------------------------ torch plumbing
def _to_torch(net: DenseNet, like: Any) -> tuple[list, tuple]:
    """The layers as tensors on ``like``'s device and dtype: (hidden [(W, b), ...], (W_L, b_L))."""
    import torch

    conv = [
        (
            torch.as_tensor(W, dtype=like.dtype, device=like.device),
            torch.as_tensor(b, dtype=like.dtype, device=like.device),
        )
        for W, b in (*net.hidden, net.last)
    ]
    return conv[:-1], conv[-1]
