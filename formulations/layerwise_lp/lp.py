r"""The layers of a network and the parametric LP that inverts one of them, solver-neutral.

* :func:`layers_of` splits an IR graph into invertible layers (a chain of linear ops composed into
  one matrix :math:`M`, then ``relu``, ``leaky_relu`` or nothing) and refuses, naming the node,
  every op the method cannot invert; the per-op rules are :data:`RULES`;
* :class:`LayerLP` is the parametric LP of one layer for one method, as a
  :class:`~netopt.model.LinearModel` whose row and column bounds (and costs) are functions of the
  tolerance :math:`\varepsilon` (:class:`~netopt.model.LPParams`). Only bounds and costs change
  with :math:`\varepsilon`, never the matrix, which is what lets a backend session keep one model
  per layer and re-solve it warm (:mod:`netopt.formulations.layerwise_lp.driver` drives it).

Notation for one layer: :math:`M \in \mathbb{R}^{n \times k}` with rows :math:`m_i`, bias
:math:`b`, target :math:`x \in \mathbb{R}^n`, pre-activation :math:`a = M z + b`, LeakyReLU slope
:math:`c \in (0, 1)` (:math:`\phi_c(a) = a` for :math:`a \ge 0`, :math:`c a` otherwise). A
hidden layer's input is a ReLU output, so :math:`z \ge 0` is imposed there; the latent gets the
problem's input box, if any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from netopt.errors import FormulationError, InputError
from netopt.formulations._base import Formulation
from netopt.ir import Graph, Op
from netopt.ir.chain import chain_refusals, split_chain
from netopt.ir.ops import linear_map
from netopt.model import LinearModel, LPParams

__all__ = [
    "METHODS",
    "RULES",
    "Layer",
    "LayerLP",
    "activate",
    "check_support",
    "layers_of",
]

#: the per-layer methods: Algorithm 1, Algorithm 2, the relaxation (8), Theorem 2
METHODS = ("linf", "l1", "relax", "exact")

#: linear IR ops that keep a layer invertible (a strided conv2d is refused separately)
_LINEAR_OK = ("affine", "conv2d", "scale", "reshape", "identity", "transpose", "pad")
_ACTIVATIONS = ("relu", "leaky_relu")


# --------------------------------------------------------------------------- the graph's layers
@dataclass(frozen=True, eq=False)
class Layer:
    r"""One invertible block :math:`x = \phi(M z + b)` of a network.

    Attributes
    ----------
    index : int
        Position from the input (0 is the layer that reads the latent).
    matrix : ndarray, shape (n, k)
        :math:`M`, the composition of the block's linear ops on flattened values.
    bias : ndarray, shape (n,)
        :math:`b`.
    activation : {"relu", "leaky_relu", "linear"}
        :math:`\phi`; ``"linear"`` is a block that ends without an activation.
    slope : float
        :math:`c`: 0 for ReLU, the LeakyReLU slope, 1 for ``"linear"``.
    input, output : str
        Value ids of :math:`z` and :math:`x`.
    ops : tuple of Op
        The IR ops of the block, in forward order.
    input_nonneg : bool
        Whether :math:`z` is a ReLU output (then :math:`z \ge 0` is a valid constraint).
    """

    index: int
    matrix: np.ndarray
    bias: np.ndarray
    activation: str
    slope: float
    input: str
    output: str
    ops: tuple[Op, ...] = field(default_factory=tuple)
    input_nonneg: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def where(self) -> str:
        """The block's ops for messages: ``fc1 (affine) + relu1 (relu) from ONNX node ...``."""
        if not self.ops:
            return f"layer {self.index}"
        parts = [o.id + f" ({o.op})" for o in self.ops]
        last = self.ops[-1]
        src = f" from ONNX {last.origin}" if last.origin else ""
        return f"layer {self.index} [{' + '.join(parts)}]{src}"

    def forward(self, z: np.ndarray) -> np.ndarray:
        r""":math:`\phi(M z + b)` in float64."""
        return activate(self.matrix @ np.asarray(z, dtype=np.float64) + self.bias, self.slope)


def activate(a: np.ndarray, slope: float) -> np.ndarray:
    r""":math:`\phi_c(a)`: ReLU for ``slope == 0``, identity for ``slope == 1``."""
    return np.where(a >= 0, a, slope * a)


def _refusal(op: Op) -> str | None:
    """Why the method cannot invert ``op`` (None if it can)."""
    if op.op in _ACTIVATIONS:
        if op.op == "leaky_relu":
            c = float(op.attrs["alpha"])
            if not 0.0 <= c < 1.0:
                return (
                    f"leaky_relu slope {c} is outside [0, 1): its preimage of an interval is not "
                    "convex, so no LP inverts it"
                )
        return None
    if op.op not in _LINEAR_OK:
        if op.op == "maxpool2d":
            return "max-pooling forgets which entry of each window was the maximum: not invertible"
        if op.op == "avgpool2d":
            return "average pooling maps many inputs to one output: not invertible"
        if op.op in ("add", "concat"):
            return f"'{op.op}' of several variable tensors breaks the chain of layers"
        return f"no layer-wise rule for '{op.op}' (only affine/conv2d + relu/leaky_relu chains)"
    if op.op == "conv2d" and any(int(s) != 1 for s in op.attrs["strides"]):
        return (
            f"conv2d with strides {tuple(int(s) for s in op.attrs['strides'])} downsamples; the "
            "layer-wise method needs an expansive (stride-1) layer"
        )
    if len(op.inputs) != 1:
        return f"'{op.op}' with {len(op.inputs)} variable inputs breaks the chain of layers"
    return None


def check_support(graph: Graph) -> list[tuple[str, str, str]]:
    """``(op id, IR op, reason)`` for every op the layer-wise method cannot invert."""
    return chain_refusals(
        graph,
        _ACTIVATIONS,
        linear=_LINEAR_OK,
        refusal=_refusal,
        method="the layer-wise method",
        branches=False,
    )


def _linear_rule(shapes: list[tuple[int, ...]], op: Op) -> tuple[sp.csr_matrix, np.ndarray]:
    """A linear op as ``(matrix, bias)`` on flattened values (:func:`netopt.ir.ops.linear_map`)."""
    mats, bias = linear_map(op, shapes)
    return mats[0], np.asarray(bias, dtype=np.float64)


def _activation_rule(shapes: list[tuple[int, ...]], op: Op) -> float:
    """The activation's slope on the negative side: 0 for ReLU, ``alpha`` for LeakyReLU."""
    return 0.0 if op.op == "relu" else float(op.attrs["alpha"])


#: IR op -> its rule: a linear op's ``(matrix, bias)``, an activation's negative-side slope
RULES: dict[str, Callable[[list[tuple[int, ...]], Op], Any]] = {
    **{k: _linear_rule for k in _LINEAR_OK},
    **{k: _activation_rule for k in _ACTIVATIONS},
}


def layers_of(graph: Graph, where: str = "") -> list[Layer]:
    """Split a chain-structured graph into invertible layers (forward order).

    Consecutive linear ops are composed into one matrix (:math:`M = M_2 M_1`,
    :math:`b = M_2 b_1 + b_2`, :func:`netopt.ir.chain.split_chain`); each activation closes a
    layer. A trailing chain of linear ops forms a ``"linear"`` layer.

    Raises
    ------
    FormulationError
        Listing every op that cannot be inverted (op id, IR op, ONNX node, reason), or a graph
        that is not a single chain from the input to the output.
    """
    bad = check_support(graph)
    if bad:
        # the message of Formulation.require_support for method 'layerwise_lp'
        lines = "\n".join(f"  - {i} ({op}): {why}" for i, op, why in bad)
        raise FormulationError(
            f"formulation 'layerwise_lp' cannot model {len(bad)} op(s){where}:\n"
            f"{lines}\n{Formulation.support_hint}"
        )
    layers: list[Layer] = []
    input_nonneg = False
    for c in split_chain(graph, where):
        m, bias = c.affine(where)
        slope = 1.0 if c.activation is None else float(_activation_rule([], c.activation))
        # a leaky_relu of slope 0 is a ReLU (its output is nonnegative too)
        act = "linear" if c.activation is None else ("relu" if slope == 0.0 else "leaky_relu")
        layers.append(
            Layer(
                c.index,
                np.asarray(m.todense(), dtype=np.float64),
                bias,
                act,
                slope,
                c.input,
                c.output,
                c.ops,
                input_nonneg,
            )
        )
        # a ReLU output is nonnegative: the next layer may impose z >= 0
        input_nonneg = act == "relu"
    return layers


# ------------------------------------------------------------------------------ one layer's LP
class LayerLP:
    r"""The parametric LP that inverts one layer :math:`x \approx \phi(M z + b)`.

    Columns are :math:`z` (first ``k``) followed by the method's auxiliaries. With
    :math:`r = x - b`, :math:`r^c = x - c\,b` and the active set
    :math:`I_\varepsilon = \{i : x_i > \varepsilon\}`:

    **linf** (Algorithm 1, the :math:`\ell_\infty` LP; columns :math:`z, t`)

    .. math::
        \min_{z,t}\ t \quad\text{s.t.}\quad
        m_i^\top z - t \le r_i\ (\forall i),\qquad
        m_i^\top z + t \ge r_i\ (i \in I_\varepsilon),\qquad 0 \le t \le \varepsilon.

    For LeakyReLU the rows are the preimage of :math:`[x_i - t, x_i + t]` under
    :math:`\phi_c`: the upper side :math:`\phi_c(a_i) \le x_i + t` is convex and imposed exactly
    (:math:`m_i^\top z - t \le r_i` and :math:`c\,m_i^\top z - t \le r^c_i`, always); the lower side
    uses the paper's sign estimate, :math:`m_i^\top z + t \ge r_i` on :math:`I_\varepsilon` and
    :math:`c\,m_i^\top z + t \ge r^c_i` elsewhere. At :math:`t = \varepsilon` the projection on
    :math:`z` is exactly :math:`\{z : \|\phi(Mz+b) - x\|_\infty \le \varepsilon\}` (for ReLU when
    :math:`x \ge -\varepsilon`), and at :math:`\varepsilon = 0` it is the preimage of :math:`x`.
    (The paper writes the case :math:`x_i < -\varepsilon` with only :math:`(x_i + t)/c` as the
    upper side; the added row :math:`a_i \le x_i + t` is implied there whenever the case estimate
    is right.)

    **l1** (Algorithm 2, the :math:`\ell_1` LP; columns :math:`z, e`): the same rows with a slack
    :math:`e_i \ge 0` per unit in place of :math:`t`,

    .. math::
        \min_{z,e}\ \textstyle\sum_i e_i \quad\text{s.t.}\quad
        m_i^\top z - e_i \le r_i\ (\forall i),\qquad m_i^\top z + e_i \ge r_i\
        (i \in I_\varepsilon),\qquad e \ge 0,

    (LeakyReLU: the two extra rows with :math:`c\,m_i^\top z`, as above). :math:`\varepsilon`
    only selects :math:`I_\varepsilon`.

    **relax** (the relaxation (8); columns :math:`z`; the authors' code's ``relax`` method)

    .. math::
        \max_z\ \textstyle\sum_i w_i\, (m_i^\top z + b_i) \quad\text{s.t.}\quad
        m_i^\top z + b_i \le \max(0, x_i + \varepsilon),\qquad
        m_i^\top z + b_i \ge \min(0, x_i - \varepsilon)/c\ \text{(LeakyReLU)},

    with :math:`w_i = x_i^+` if :math:`x_i^+ \ge 2\varepsilon` else 0 (ReLU) and :math:`w_i = x_i`
    (LeakyReLU). For :math:`x = \mathrm{ReLU}(M z^* + b)` and :math:`\varepsilon = 0`,
    :math:`x^\top a \le x^\top x` on the feasible set with equality iff :math:`a_i = x_i` on the
    support of :math:`x`, so the optimal set is the preimage. A ``"linear"`` layer (no activation)
    has no such objective; it gets the l1 LP.

    Parameters
    ----------
    layer : Layer
    target : array (n,)
        :math:`x`: the observation, or the previous layer's estimate.
    method : {"linf", "l1", "relax"}
    z_lo, z_hi : arrays (k,), optional
        Bounds on :math:`z` (default: :math:`z \ge 0` for a hidden layer, free for the latent).
    """

    def __init__(
        self,
        layer: Layer,
        target: np.ndarray,
        method: str,
        z_lo: np.ndarray | None = None,
        z_hi: np.ndarray | None = None,
    ) -> None:
        if method not in ("linf", "l1", "relax"):
            raise InputError(f"LP method must be 'linf', 'l1' or 'relax', got {method!r}")
        self.layer = layer
        self.method = "l1" if method == "relax" and layer.activation == "linear" else method
        n, k = layer.shape
        x = np.asarray(target, dtype=np.float64).reshape(-1)
        if x.shape != (n,):
            raise InputError(f"{layer.where}: target has {x.size} entries; the layer has {n}")
        self.x = x
        self.n, self.k = n, k
        lo = np.zeros(k) if layer.input_nonneg else np.full(k, -np.inf)
        hi = np.full(k, np.inf)
        self.z_lo = lo if z_lo is None else np.maximum(lo, np.asarray(z_lo, dtype=np.float64))
        self.z_hi = hi if z_hi is None else np.asarray(z_hi, dtype=np.float64)
        self._A = self._matrix()

    # -- structure (fixed for every eps)
    @property
    def leaky(self) -> bool:
        return self.layer.activation == "leaky_relu"

    @property
    def n_aux(self) -> int:
        return {"linf": 1, "l1": self.n, "relax": 0}[self.method]

    def _matrix(self) -> sp.csr_matrix:
        M = sp.csr_matrix(self.layer.matrix)
        n, c = self.n, self.layer.slope
        if self.method == "relax":
            return M
        # the auxiliary's column: one t for all rows (linf) or e_i for row i (l1)
        aux = (
            sp.csr_matrix(np.ones((n, 1)))
            if self.method == "linf"
            else sp.identity(n, format="csr")
        )
        blocks = [[M, aux], [M, -aux]]  # lower rows (A), upper rows (C)
        if self.leaky:
            blocks += [[c * M, aux], [c * M, -aux]]  # lower rows (B), upper rows (D)
        return sp.bmat(blocks, format="csr")

    def active(self, eps: float) -> np.ndarray:
        r""":math:`I_\varepsilon = \{i : x_i > \varepsilon\}` (every row for a linear layer)."""
        if self.layer.activation == "linear":
            return np.ones(self.n, dtype=bool)
        return self.x > eps

    # -- eps-dependent data
    def params(self, eps: float) -> LPParams:
        """Row bounds, column bounds and costs at tolerance ``eps``."""
        n, k, c = self.n, self.k, self.layer.slope
        x, b = self.x, self.layer.bias
        inf = np.full(n, np.inf)
        col_lo, col_hi = self.z_lo.copy(), self.z_hi.copy()
        cost = np.zeros(k + self.n_aux)
        if self.method == "relax":
            hi = np.maximum(0.0, x + eps) - b
            lo = np.minimum(0.0, x - eps) / c - b if self.leaky else -inf
            w = self._relax_weights(eps)
            # maximize w^T (M z + b): minimize -(M^T w)^T z (the constant w^T b is dropped)
            cost[:k] = -(self.layer.matrix.T @ w)
            return LPParams(lo, hi, col_lo, col_hi, cost)
        act = self.active(eps)
        r = x - b
        row_lo = [np.where(act, r, -np.inf)]
        row_hi = [inf, r]
        row_lo.append(-inf)
        if self.leaky:
            rc = x - c * b
            row_lo += [np.where(act, -np.inf, rc), -inf]
            row_hi += [inf, rc]
        if self.method == "linf":
            col_lo = np.r_[col_lo, 0.0]
            col_hi = np.r_[col_hi, eps]
            cost[k] = 1.0
        else:
            col_lo = np.r_[col_lo, np.zeros(n)]
            col_hi = np.r_[col_hi, inf]
            cost[k:] = 1.0
        return LPParams(np.concatenate(row_lo), np.concatenate(row_hi), col_lo, col_hi, cost)

    def model(self, eps: float) -> LinearModel:
        """The whole LP at tolerance ``eps`` as a :class:`LinearModel` (minimized)."""
        p = self.params(eps)
        nv = self.k + self.n_aux
        blocks = {"z": np.arange(self.k)}
        if self.method == "linf":
            blocks["t"] = np.array([self.k])
        elif self.method == "l1":
            blocks["e"] = np.arange(self.k, nv)
        return LinearModel(
            c=p.cost,
            c0=0.0,
            A=self._A,
            row_lo=p.row_lo,
            row_hi=p.row_hi,
            lb=p.col_lo,
            ub=p.col_hi,
            integer=np.zeros(nv, dtype=bool),
            blocks=blocks,
            meta={"formulation": "layerwise_lp", "method": self.method, "eps": eps},
        )

    def z(self, v: np.ndarray) -> np.ndarray:
        """The layer input :math:`z` from a full LP solution vector."""
        return np.asarray(v[: self.k], dtype=np.float64)

    def lp_value(self, v: np.ndarray, eps: float) -> float:
        """The LP's own objective at ``v``: ``t``, ``sum e``, or ``w^T (M z + b)`` for relax."""
        if self.method == "linf":
            return float(v[self.k])
        if self.method == "l1":
            return float(np.sum(v[self.k :]))
        p = self.params(eps)
        return float(-(p.cost[: self.k] @ v[: self.k]) + self._relax_weights(eps) @ self.layer.bias)

    def _relax_weights(self, eps: float) -> np.ndarray:
        if self.leaky:
            return self.x
        xp = np.maximum(self.x, 0.0)
        return np.where(xp >= 2 * eps, xp, 0.0)
