r"""The ADMM splitting of Wong & Kolter (2017): a network as a chain of graph constraints.

A feed-forward network :math:`f` is cut at its activations into blocks
:math:`z_{j+1} = a_j(W_j z_j + b_j)`, :math:`j = 0, \dots, K-1`, where :math:`W_j` is the
composition of the linear IR ops between two activations (dense, a convolution, or any sparse
linear map) and :math:`a_j` one activation (ReLU, LeakyReLU, max-pool, or none). Each block gets a
pre-/post-activation pair :math:`(\tilde v_j, v_j)` and the problem

.. math::

    \min_{z, \tilde v, v} \; \ell(z_K) + r(z_0) \quad \text{s.t.} \quad
    \tilde v_j = W_j z_j + b_j, \; v_j = z_{j+1}, \;
    (\tilde v_j, v_j) \in \mathcal{A}_j = \{(p, q) : q = a_j(p)\}

(paper equations (4)-(7)). Block 0 is an *input block* this module adds: :math:`W_0 = I`,
:math:`b_0 = 0` and :math:`\mathcal{A}_0 = \{(p, p) : p \in \text{box}\}`, so that the box is a
projection and the input update :math:`z_0 = \operatorname{prox}_{r/\rho}` only carries the L2
term, in closed form (the paper's update (10) has no closed form with a box).

This module holds numpy / scipy data only (no torch): :class:`SplitModel` and its blocks. The
iterations themselves (updates (8)-(12)) are in :mod:`netopt.formulations.admm.iterations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from netopt.errors import FormulationError
from netopt.ir import Graph, Op
from netopt.ir.chain import ChainLayer
from netopt.ir.ops import window_index
from netopt.problems import Problem

__all__ = ["SplitModel", "Block", "LinearOperator"]

#: linear IR ops a block may compose (any op with a sparse matrix in netopt.ir.ops)
_LINEAR = (
    "affine",
    "conv2d",
    "avgpool2d",
    "scale",
    "reshape",
    "identity",
    "transpose",
    "select",
    "pad",
)
#: activations with a closed-form graph projection
_ACTIVATIONS = ("relu", "leaky_relu", "maxpool2d")
#: a composed sparse operator with at most this many entries is stored dense (one GEMM is faster)
DENSE_LIMIT = 4_000_000


@dataclass
class LinearOperator:
    """The linear part :math:`x \\mapsto W x + b` of a block, on flattened samples.

    Attributes
    ----------
    kind : {"identity", "dense", "conv", "sparse"}
        ``dense``: ``weight`` is :math:`W` (n_out, n_in); ``conv``: ``conv`` holds the IR
        ``conv2d`` attributes (the weight, strides, pads, dilations, group) and ``in_shape`` /
        ``conv_out_shape`` the (C, H, W) shapes; ``sparse``: ``matrix`` is a scipy CSR :math:`W`.
    n_in, n_out : int
    bias : ndarray, shape (n_out,)
    ops : tuple of str
        The IR op ids it composes (for messages).
    """

    kind: str
    n_in: int
    n_out: int
    bias: np.ndarray
    weight: np.ndarray | None = None
    matrix: sp.csr_matrix | None = None
    conv: dict[str, Any] | None = None
    in_shape: tuple[int, ...] = ()
    conv_out_shape: tuple[int, ...] = ()
    ops: tuple[str, ...] = ()

    def to_sparse(self) -> sp.csr_matrix:
        """:math:`W` as a scipy CSR matrix (for references and tests)."""
        if self.kind == "identity":
            return sp.identity(self.n_in, format="csr")
        if self.kind == "dense":
            return sp.csr_matrix(self.weight)
        if self.kind == "sparse":
            return self.matrix
        from netopt.ir.ops.conv import conv_matrix as _conv

        return _conv(self.in_shape, self.conv)[0]


@dataclass
class Block:
    r"""One block :math:`v_j = a_j(W_j z_j + b_j)` of the split chain.

    Attributes
    ----------
    index : int
    linear : LinearOperator
    activation : {"box", "relu", "leaky_relu", "maxpool", "linear"}
        ``box`` is the input block's (identity within the input box); ``linear`` a block that
        ends without an activation (the logits).
    alpha : float
        The LeakyReLU slope.
    windows : ndarray or None
        Max-pool only: (n_out, k) flat indices into the pre-activation of each window's cells,
        -1 for padding. Windows are disjoint (checked); cells in no window are unconstrained.
    node : str
        The activation's op id (or the last linear op's), for messages.
    """

    index: int
    linear: LinearOperator
    activation: str
    alpha: float = 0.0
    windows: np.ndarray | None = None
    node: str = ""


@dataclass
class SplitModel:
    """A network split into a chain of blocks, with the problems whose objective it carries.

    Attributes
    ----------
    blocks : list of Block
        Block 0 is the input block (identity within the input box).
    problems : list of Problem
        One per batch row group (same network, same problem kind; targets/labels may differ).
    input_shape, output_shape : tuple of int
    """

    blocks: list[Block]
    problems: list[Problem]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        """Sizes of the chain variables :math:`z_0, \\dots, z_K`."""
        return [self.blocks[0].linear.n_in] + [b.linear.n_out for b in self.blocks]

    def size(self) -> dict[str, int]:
        return {
            "blocks": len(self.blocks),
            "chain_variables": int(sum(self.sizes)),
            "pairs": int(2 * sum(b.linear.n_out for b in self.blocks)),
        }


def _compose(graph: Graph, layer: ChainLayer) -> LinearOperator:
    """One operator for the linear ops of ``layer`` (:func:`netopt.ir.chain.split_chain`).

    A lone dense ``affine`` stays a dense weight and a convolution followed by reshapes only
    stays a convolution (their torch forms are faster than a sparse product); anything else is
    the layer's composed sparse map, stored dense below :data:`DENSE_LIMIT` entries.
    """
    ops = list(layer.linear)
    n_in = layer.n_in
    ids = tuple(o.id for o in ops)
    real = [o for o in ops if o.op not in ("reshape", "identity")]
    if not real:
        return LinearOperator("identity", n_in, n_in, np.zeros(n_in), ops=ids)
    if len(real) == 1 and real[0].op == "affine":
        o = real[0]
        shp = graph.value(o.inputs[0]).shape
        if len(shp) == 1 or int(np.prod(shp[:-1])) == 1:
            w = np.asarray(o.attrs["weight"], dtype=np.float64)
            return LinearOperator(
                "dense", w.shape[1], w.shape[0], np.asarray(o.attrs["bias"], np.float64), w, ops=ids
            )
    if len(real) == 1 and real[0].op == "conv2d" and ops.index(real[0]) == 0:
        # a convolution followed by reshapes only: keep it a convolution (conv2d / CG in torch)
        o = real[0]
        ish = tuple(graph.value(o.inputs[0]).shape)
        osh = tuple(graph.value(o.outputs[0]).shape)
        n_out = int(np.prod(osh))
        bias = np.repeat(np.asarray(o.attrs["bias"], np.float64), osh[1] * osh[2])
        return LinearOperator(
            "conv",
            int(np.prod(ish)),
            n_out,
            bias,
            conv=dict(o.attrs),
            in_shape=ish,
            conv_out_shape=osh,
            ops=ids,
        )
    mat, bias = layer.affine()
    if mat.shape[0] * mat.shape[1] <= DENSE_LIMIT:
        w = mat.toarray()
        return LinearOperator("dense", w.shape[1], w.shape[0], bias, w, ops=ids)
    return LinearOperator("sparse", mat.shape[1], mat.shape[0], bias, matrix=mat, ops=ids)


def _pool_windows(op: Op, shape: tuple[int, ...]) -> np.ndarray:
    """(n_out, k) flat indices of every max-pool window; refuses overlapping windows."""
    idx = window_index(tuple(shape), op.attrs).reshape(-1, int(np.prod(op.attrs["kernel"])))
    cells = idx[idx >= 0]
    if len(np.unique(cells)) != len(cells):
        raise FormulationError(
            f"ADMM formulation: {op.where} has overlapping windows (kernel "
            f"{tuple(op.attrs['kernel'])}, strides {tuple(op.attrs['strides'])}); the graph "
            "projection is closed-form only for disjoint windows. Use prob.solve('adam') instead."
        )
    return idx
