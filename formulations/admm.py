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

This module is solver-neutral: :class:`SplitModel` holds numpy / scipy data only. The iterations
themselves (updates (8)-(12)) are in :mod:`netopt.solvers.firstorder.admm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from netopt.errors import FormulationError, InputError
from netopt.formulations import register
from netopt.formulations._batch import BatchedFormulation
from netopt.ir import Graph, Op
from netopt.linear import linear_map, window_index
from netopt.problems import Problem

__all__ = ["ADMM", "SplitModel", "Block", "LinearOperator"]

#: linear IR ops a block may compose (any op with a sparse matrix in netopt.linear)
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
        from netopt.linear import _conv

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


def _compose(graph: Graph, ops: list[Op], n_in: int) -> LinearOperator:
    """One operator for the linear ops ``ops`` (in order) acting on a flat ``n_in`` vector."""
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
    mat = sp.identity(n_in, format="csr")
    bias = np.zeros(n_in)
    for o in ops:
        shapes = [graph.value(i).shape for i in o.inputs]
        (m,), b = linear_map(o, shapes)
        mat = (m @ mat).tocsr()
        bias = m @ bias + b
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


@register("admm")
class ADMM(BatchedFormulation):
    """The ADMM splitting (Wong & Kolter 2017) as a :class:`SplitModel` for a first-order backend.

    A chain network of linear ops and ReLU / LeakyReLU / max-pool activations; every other op
    (smooth activations, residual ``add``, ``concat``) is refused by :meth:`check_support`
    naming the node, with the advice to use a gradient method (``"adam"``).
    """

    name = "admm"
    model_type = "SplitModel"
    support_verb = "split"
    support_hint = "Use a gradient method instead: prob.solve('adam')."

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        bad = []
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            bad.append(("<graph>", "-", "ADMM splits single-input, single-output chains only"))
        prev = graph.inputs[0] if graph.inputs else None
        for o in graph.ops:
            origin = f" (from ONNX {o.origin})" if o.origin else ""
            if o.op not in _LINEAR and o.op not in _ACTIVATIONS:
                bad.append((o.id, o.op, f"ADMM has no graph projection for '{o.op}'{origin}"))
            elif len(o.inputs) != 1 or o.inputs[0] != prev:
                bad.append((o.id, o.op, f"not a chain: it reads {list(o.inputs)}{origin}"))
            prev = o.outputs[0]
        return bad

    def build(self, problem: Problem | list[Problem], bounds: Any = None) -> SplitModel:
        """Split the network of ``problem`` (or of a list of problems on one network).

        Raises
        ------
        FormulationError
            An op that cannot be split (naming the node), or overlapping max-pool windows.
        InputError
            Problems on different networks or of different kinds, or a domain with linear
            constraints or integer coordinates (no closed-form projection).
        """
        from netopt.problems import Feasibility

        problems = check_batch(problem, "admm")
        if isinstance(problems[0], Feasibility):
            raise FormulationError(
                "formulation 'admm' has no output update (proximal map) for a Feasibility "
                "problem's max-violation objective; use prob.solve('adam'), or prob.solve('milp') "
                "for a proof"
            )
        net = problems[0].net
        graph = net.graph
        self.require_support(graph, f" of {net.source.name}")
        n0 = int(np.prod(net.input_shape))
        blocks = [Block(0, LinearOperator("identity", n0, n0, np.zeros(n0)), "box", node="<input>")]
        pending: list[Op] = []
        n_cur = n0
        for o in graph.ops:
            if o.op in _LINEAR:
                pending.append(o)
                continue
            lin = _compose(graph, pending, n_cur)
            shape = graph.value(o.inputs[0]).shape
            if o.op == "maxpool2d":
                windows = _pool_windows(o, shape)
                blk = Block(len(blocks), lin, "maxpool", windows=windows, node=o.id)
                n_cur = len(windows)
            else:
                alpha = float(o.attrs.get("alpha", 0.0)) if o.op == "leaky_relu" else 0.0
                blk = Block(len(blocks), lin, o.op, alpha=alpha, node=o.id)
                n_cur = lin.n_out
            blocks.append(blk)
            pending = []
        if pending:
            lin = _compose(graph, pending, n_cur)
            blocks.append(Block(len(blocks), lin, "linear", node=pending[-1].id))
        return SplitModel(
            blocks,
            problems,
            tuple(net.input_shape),
            tuple(net.output_shape),
            meta={"network": net.source.name},
        )


def check_batch(problem: Problem | list[Problem], formulation: str) -> list[Problem]:
    """The problems of one batch: one network, one kind, a box domain without extras.

    Shared by every first-order formulation (the batch rows differ in targets, labels, cost
    vectors and boxes only).
    """
    from netopt.problems import CrossEntropy, Inversion

    problems = [problem] if isinstance(problem, Problem) else list(problem)
    if not problems:
        raise InputError(f"formulation '{formulation}': no problem given")
    p0 = problems[0]
    for p in problems:
        if p.net is not p0.net:
            raise InputError(
                f"formulation '{formulation}': a batch must share one network "
                f"({p.net.source.name} vs {p0.net.source.name})"
            )
        if type(p) is not type(p0):
            raise InputError(
                f"formulation '{formulation}': a batch must hold one problem kind "
                f"({type(p).__name__} vs {type(p0).__name__})"
            )
        if isinstance(p, Inversion) and p.norm != p0.norm:
            raise InputError(f"formulation '{formulation}': a batch must share one norm")
        if isinstance(p, CrossEntropy) and p.l2 != p0.l2:
            raise InputError(f"formulation '{formulation}': a batch must share one l2 weight")
        if getattr(p, "sense", "min") != p0.sense:
            raise InputError(f"formulation '{formulation}': a batch must share one sense")
        d = p.domain
        if d.A is not None or d.integer is not None:
            raise InputError(
                f"formulation '{formulation}': the domain has "
                f"{'linear constraints A x <= b' if d.A is not None else 'integer coordinates'}, "
                "which first-order methods cannot project onto; use prob.solve('milp')"
            )
    return problems
