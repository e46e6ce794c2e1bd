r"""The lifted objective of a network: its dense layers and its convex blocks.

Objectives (:math:`z_0 = u` the input, :math:`J` the regularizer):

* single layer (objective (3) for one perceptron): :math:`B_\Psi(f^\delta, W u + b) + \alpha J(u)`;
* lifted, :math:`L` layers: :math:`\sum_{l=1}^{L-1} B_\Psi(z_l, W_l z_{l-1} + b_l) +
  B_\Psi(f^\delta, W_L z_{L-1} + b_L) + \alpha J(u)` (a linear last layer contributes
  :math:`\tfrac\lambda2\|W_L z_{L-1} + b_L - f^\delta\|^2` instead).

Each block of the lifted objective, the others held fixed, is convex: :func:`block` describes one
as a :class:`~netopt.model.ConvexBlock` (matrices, data, regularizer, box), and
:func:`certify_block` solves it exactly with the ``"cvxpy"`` backend to certify a first-order
iterate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt import solvers
from netopt.errors import FormulationError, InputError
from netopt.formulations.layerwise_lp import layers_of
from netopt.ir import Graph
from netopt.ir.chain import chain_refusals
from netopt.model.convex import ConvexBlock, bregman_penalty, regularizer_value
from netopt.network import Network, load
from netopt.problems import Inversion
from netopt.result import Outcome

__all__ = [
    "BregmanLayer",
    "bregman_layers",
    "check_support",
    "lifted_objective",
    "block",
    "certify_block",
    "as_problem",
    "setup",
    "outcome",
]

# ops the method handles: dense affine layers closed by ReLU/LeakyReLU; shape-only ops are trivial
LINEAR_OK = ("affine", "scale", "reshape", "identity")
ACTIVATIONS = ("relu", "leaky_relu")


# ----------------------------------------------------------------------- graph support/layers
def _refusal(op) -> str | None:
    """Why the method cannot handle ``op`` (None if it can)."""
    if op.op == "leaky_relu":
        c = float(op.attrs["alpha"])
        if not 0.0 < c < 1.0:
            return (
                f"leaky_relu slope {c} is outside (0, 1): it is not the proximal map of a "
                "convex function"
            )
        return None
    if op.op in ACTIVATIONS:
        return None
    if op.op in LINEAR_OK:
        if len(op.inputs) != 1:
            return f"'{op.op}' with {len(op.inputs)} variable inputs breaks the chain of layers"
        return None
    if op.op == "conv2d":
        return (
            "conv2d is not supported by the lifted Bregman formulation (dense affine layers "
            "only); export the layer as a Gemm/MatMul on the flattened image"
        )
    if op.op in ("add", "concat"):
        return f"'{op.op}' of several variable tensors breaks the chain of layers"
    if op.op in ("sigmoid", "tanh", "softmax", "log_softmax"):
        return (
            f"'{op.op}' is not one of the proximal-map activations implemented (relu, "
            "leaky_relu); remove it or use a first-order formulation ('adam')"
        )
    return f"no lifted Bregman rule for '{op.op}' (only affine [+ relu|leaky_relu] chains)"


def check_support(graph: Graph) -> list[tuple[str, str, str]]:
    """``(op id, IR op, reason)`` for every op outside the method's scope."""
    return chain_refusals(
        graph,
        ACTIVATIONS,
        linear=LINEAR_OK,
        refusal=_refusal,
        method="the lifted Bregman method",
        branches=True,
    )


@dataclass(frozen=True, eq=False)
class BregmanLayer:
    r"""One layer :math:`z_l = \sigma(W_l z_{l-1} + b_l)`; ``slope`` None for a linear layer."""

    W: np.ndarray
    b: np.ndarray
    slope: float | None
    where: str


def bregman_layers(graph: Graph, where: str = "") -> list[BregmanLayer]:
    """Split a supported graph into dense layers (consecutive linear ops composed).

    Raises
    ------
    FormulationError
        Listing every op outside scope with its ONNX node (see :func:`check_support`).
    """
    bad = check_support(graph)
    if bad:
        lines = "\n".join(f"  - {i} ({op}): {why}" for i, op, why in bad)
        raise FormulationError(
            f"formulation 'lifted_bregman' cannot model {len(bad)} op(s){where}:\n{lines}"
        )
    # the support check passed, so the graph is a chain the layer-wise splitter accepts as well
    return [
        BregmanLayer(
            L.matrix,
            L.bias,
            None if L.activation == "linear" else float(L.slope),
            L.where,
        )
        for L in layers_of(graph, where)
    ]


# -------------------------------------------------------------------------- lifted objective
def lifted_objective(
    layers: list[BregmanLayer],
    f: np.ndarray,
    zs: list[np.ndarray],
    reg: str,
    alpha: float,
    image_shape: tuple[int, int] | None = None,
    lam: float = 1.0,
) -> float:
    r""":math:`\sum_{l<L} B(z_l, W_l z_{l-1} + b_l) + D_L(z_{L-1}) + \alpha J(z_0)`."""
    val = alpha * regularizer_value(zs[0], reg, image_shape)
    for i, L in enumerate(layers):
        a = L.W @ zs[i] + L.b
        if i + 1 < len(layers):
            val += bregman_penalty(zs[i + 1], a, 1.0 if L.slope is None else L.slope)
        elif L.slope is None:
            val += 0.5 * lam * float(np.sum((a - f) ** 2))
        else:
            val += bregman_penalty(f, a, L.slope)
    return float(val)


def block(
    layers: list[BregmanLayer],
    f: np.ndarray,
    zs: list[np.ndarray],
    i: int,
    reg: str,
    alpha: float,
    image_shape: Any,
    lo: Any,
    hi: Any,
    lam: float,
) -> ConvexBlock:
    """The convex block of variable ``zs[i]`` with the others fixed."""
    nxt = layers[i]
    target = zs[i + 1] if i + 1 < len(layers) else f
    slope = nxt.slope
    if i + 1 < len(layers) and slope is None:
        slope = 1.0  # a linear hidden layer: B = 1/2 ||y - z||^2
    if i == 0:
        return ConvexBlock(
            nxt.W, nxt.b, target, slope, lam, None, 0.0, reg, alpha, image_shape, lo, hi, "u"
        )
    prev = layers[i - 1]
    ps = 1.0 if prev.slope is None else prev.slope
    return ConvexBlock(
        nxt.W, nxt.b, target, slope, lam, prev.W @ zs[i - 1] + prev.b, ps, name=f"z{i}"
    )


# ---------------------------------------------------------------------- certification (cvxpy)
def certify_block(
    sub: ConvexBlock, u: np.ndarray, solver_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    r"""Solve ``sub`` exactly with the ``"cvxpy"`` backend and compare with the point ``u``.

    Returns ``{"objective": first-order value, "exact": value at the exact solver's point
    (recomputed in float64 after projecting onto the block's domain), "solver_value": cvxpy's own
    value, "rel_gap": (objective - exact) / max(|exact|, 1e-9), "solver", "seconds",
    "certified": True}``. The floor keeps an optimum of 0 from making rounding a gap (with
    1e-12, objectives of 8.9e-16 and 0, both zero up to float64 rounding, read 8.9e-4). A
    negative gap means the first-order point is better than the solver's.

    When no cvxpy solver reaches an accurate optimum (an inaccurate, failed or stopped run),
    nothing is certified: ``exact``, ``solver_value`` and ``rel_gap`` are None, ``certified`` is
    False and ``message`` says why; the first-order point itself is kept.
    """
    B = solvers.get("cvxpy")
    raw = B().solve(sub, options=dict(solver_options or {}))
    if raw.status != "optimal" or raw.x is None or raw.objective is None:
        return {
            "block": sub.name,
            "objective": sub.objective(u),
            "exact": None,
            "solver_value": None,
            "rel_gap": None,
            "solver": raw.extra.get("solver", ""),
            "seconds": raw.seconds,
            "certified": False,
            "message": f"cvxpy could not solve block '{sub.name}' accurately "
            f"(status {raw.status}): {raw.message}",
        }
    x = raw.x.copy()
    if sub.lo is not None:
        x = np.maximum(x, sub.lo)
    if sub.hi is not None:
        x = np.minimum(x, sub.hi)
    if sub.in_pre is not None and sub.in_slope == 0.0:
        x = np.maximum(x, 0.0)  # interior-point round-off below 0 would make B infinite
    exact = min(sub.objective(x), float(raw.objective))
    obj = sub.objective(u)
    return {
        "block": sub.name,
        "objective": obj,
        "exact": exact,
        "solver_value": float(raw.objective),
        "rel_gap": (obj - exact) / max(abs(exact), 1e-9),
        "solver": raw.extra.get("solver", ""),
        "seconds": raw.seconds,
        "certified": True,
    }


# ------------------------------------------------------------------------- problem and outcome
def as_problem(problem_or_net: Any, target: Any = None) -> Inversion:
    """The :class:`~netopt.problems.Inversion` (2-norm) of a network, ONNX model or path and a
    target; an Inversion is taken as is."""
    if isinstance(problem_or_net, Inversion):
        if target is not None:
            raise InputError("pass the target in the Inversion problem or as target=, not both")
        return problem_or_net
    net = problem_or_net if isinstance(problem_or_net, Network) else load(problem_or_net)
    return Inversion(net, target, norm=2)


def setup(problem_or_net: Any, target: Any) -> tuple[Inversion, list[BregmanLayer], np.ndarray]:
    """The problem, its dense layers and the data :math:`f^\\delta` (flattened, float64)."""
    problem = as_problem(problem_or_net, target)
    layers = bregman_layers(problem.net.graph, f" of {problem.net.source.name}")
    f = problem.target.reshape(-1).astype(np.float64)
    return problem, layers, f


def outcome(
    problem: Inversion, u: np.ndarray, solver: str, info: dict[str, Any], seconds: float
) -> Outcome:
    """The method's Outcome: the point ``u``, no claim, ``info`` in ``extra["bregman"]``."""
    out = Outcome(
        [u],
        "none",
        formulation="lifted_bregman",
        solver=solver,
        timings={"solve": seconds},
        extra={"bregman": info},
        message=f"{solver}: {info.get('iterations')} iterations",
    )
    return out  # projected and re-checked in float64 by assemble
