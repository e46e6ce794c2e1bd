r"""A graph as a chain of layers: runs of linear ops, each closed by one activation.

The chain methods (layer-wise LPs, ADMM, ADR-GD, lifted Bregman) all see a network as

.. math::

    x_{j+1} = \sigma_j(M_j x_j + b_j), \qquad j = 0, \dots, K - 1,

where :math:`M_j, b_j` compose the linear IR ops between two activations (their ``linear_map``
rules in :mod:`netopt.ir.ops`, on flattened row-major samples) and :math:`\sigma_j` is one
non-linear op (``relu``, ``leaky_relu``, ``maxpool2d``, a smooth op, ...). A trailing run of linear
ops without an activation is a last layer with :math:`\sigma = \mathrm{id}`.

* :func:`split_chain` cuts a graph into :class:`ChainLayer` objects; a layer composes its map
  on demand (:meth:`ChainLayer.affine`), so a method that keeps a convolution as a convolution
  never pays for the sparse product;
* :func:`dense_chain` gives a chain of linear ops and (leaky) ReLUs as dense float64 arrays, and
  :func:`pattern_map` its affine map on a region of fixed activation signs;
* :func:`chain_refusals` lists, before any work, every op a method cannot take: an activation
  outside the method's set, a linear op outside its set, an op with several variable inputs
  (``add``/``concat`` of two branches), an op whose output feeds several ops, and a graph with
  several inputs or outputs.

Each method keeps its own representation on top of the layers (sparse matrices, dense arrays,
linear operators).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from netopt.errors import FormulationError
from netopt.ir.graph import Graph, Op
from netopt.ir.ops import OPS, linear_map

# scipy is imported where a sparse map is built: small dense chains never need it
if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = [
    "ChainLayer",
    "Refusal",
    "chain_refusals",
    "dense_chain",
    "is_chain_linear",
    "pattern_map",
    "split_chain",
]


class Refusal(NamedTuple):
    """One op a method cannot take: ``(op id, IR op, reason)``; the reason names the ONNX node.

    ``op_id`` is ``"<graph>"`` (and ``op`` ``"-"``) for a refusal of the whole graph.
    """

    op_id: str
    op: str
    why: str

    def __str__(self) -> str:
        return f"{self.op_id} ({self.op}): {self.why}"


def is_chain_linear(op: Op) -> bool:
    """Whether ``op`` composes into a layer's linear map (a linear op with a ``linear_map``)."""
    spec = OPS.get(op.op)
    return spec is not None and spec.kind == "linear" and spec.linear_map is not None


@dataclass(eq=False)
class ChainLayer:
    r"""One layer :math:`y = \sigma(M x + b)` of a chain.

    Attributes
    ----------
    index : int
        Position from the input (0 reads the graph's input).
    linear : tuple of Op
        The linear ops composed into :math:`M, b`, in forward order (possibly none:
        :math:`M = I`, :math:`b = 0`).
    activation : Op or None
        :math:`\sigma` with its attrs; None for a trailing layer of linear ops only.
    input, output : str
        Value ids of :math:`x` and :math:`y`.
    pre : str
        Value id of :math:`M x + b` (the activation's input; ``output`` without one).
    n_in, n_out : int
        Sizes of :math:`x` and :math:`y`.
    """

    index: int
    linear: tuple[Op, ...]
    activation: Op | None
    input: str
    output: str
    pre: str
    n_in: int
    n_out: int
    graph: Graph = field(repr=False)
    _map: tuple[sp.csr_matrix, np.ndarray] | None = field(default=None, repr=False)
    _dense: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def ops(self) -> tuple[Op, ...]:
        """Every op of the layer, in forward order."""
        return self.linear + ((self.activation,) if self.activation is not None else ())

    @property
    def act(self) -> str:
        """The activation's IR op name, ``"linear"`` for a layer without one."""
        return "linear" if self.activation is None else self.activation.op

    @property
    def node(self) -> str:
        """The op id that names the layer in messages: its activation's, else its last op's."""
        return self.ops[-1].id if self.ops else f"layer {self.index}"

    def affine(self, where: str = "") -> tuple[sp.csr_matrix, np.ndarray]:
        r"""The composed map :math:`(M, b)`: a CSR matrix (n_pre, n_in) and a float64 bias.

        Composition starts from :math:`M = I`, :math:`b = 0` and applies each op's map
        :math:`(M_o, b_o)` in turn: :math:`M \leftarrow M_o M`, :math:`b \leftarrow M_o b + b_o`.
        Computed once, then cached.

        Raises
        ------
        FormulationError
            An op's ``linear_map`` rule failed (naming the op and its ONNX node).
        """
        if self._map is None:
            import scipy.sparse as sp

            mat, bias = self._compose(where, sparse=True)
            self._map = (sp.csr_matrix(mat), bias)
        return self._map

    def dense_affine(self, where: str = "") -> tuple[np.ndarray, np.ndarray]:
        """:meth:`affine` with a dense float64 ``M``. Where every op's rule builds its matrix
        dense (dense layers, small reshapes), it is composed by numpy alone: a small
        network's chain then never imports scipy.sparse (0.15 s of a fresh process)."""
        if self._dense is None:
            if self._map is None:
                mat, bias = self._compose(where, sparse=False)
            else:
                mat, bias = self._map
            mat = mat if isinstance(mat, np.ndarray) else mat.toarray()
            self._dense = (np.asarray(mat, dtype=np.float64), bias)
        return self._dense

    def _compose(self, where: str, sparse: bool) -> tuple:
        """The composition of :meth:`affine`; ``M`` dense while every op's matrix is."""
        mat = None  # the identity, kept implicit: M_o I = M_o exactly
        bias = np.zeros(self.n_in)
        for o in self.linear:
            shapes = [self.graph.value(i).shape for i in o.inputs]
            try:
                (m,), b = linear_map(o, shapes, sparse=sparse)
            except Exception as e:  # re-raise with the node's context
                raise FormulationError(f"the linear map of {o.where}{where} failed: {e}") from e
            if mat is None:
                mat = m
            elif isinstance(m, np.ndarray) and isinstance(mat, np.ndarray):
                mat = m @ mat
            else:
                import scipy.sparse as sp

                mat = sp.csr_matrix(m) @ sp.csr_matrix(mat)
            bias = m @ bias + np.asarray(b, dtype=np.float64)
        if mat is None and not sparse:
            mat = np.eye(self.n_in)
        elif mat is None:
            import scipy.sparse as sp

            mat = sp.identity(self.n_in, format="csr")
        return mat, np.asarray(bias, dtype=np.float64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        r""":math:`M x + b` then the activation's float64 forward, on flat rows ``(B, n_in)``."""
        mat, bias = self.affine()
        rows = np.asarray(x, dtype=np.float64).reshape(-1, self.n_in)
        pre = np.asarray(mat @ rows.T).T + bias
        if self.activation is None:
            return pre
        shape = tuple(self.graph.value(self.pre).shape)
        y = OPS[self.activation.op].forward([pre.reshape(-1, *shape)], self.activation.attrs)
        return np.asarray(y, dtype=np.float64).reshape(pre.shape[0], -1)


def split_chain(graph: Graph, where: str = "") -> list[ChainLayer]:
    """Cut a chain-structured graph into layers, from its input to its output.

    Every linear op (:func:`is_chain_linear`) joins the current run; every other op closes the
    layer as its activation. The graph is walked from its output back to its input, so the
    order of ``graph.ops`` does not matter.

    Parameters
    ----------
    graph : Graph
    where : str
        Appended to messages (e.g. ``" of net.onnx"``).

    Raises
    ------
    FormulationError
        The graph is not a single chain: several inputs or outputs, an op with several
        variable inputs, a value without a producer, or an op whose output feeds several ops.
        (:func:`chain_refusals` lists these before any work, one row per op.)
    """
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise FormulationError(
            f"the graph{where} has {len(graph.inputs)} inputs / {len(graph.outputs)} outputs; "
            "a chain of layers has one of each"
        )
    chain: list[Op] = []
    v = graph.outputs[0]
    while v != graph.inputs[0]:
        op = graph.producer(v)
        if op is None:
            raise FormulationError(f"value '{v}'{where} has no producer")
        if len(op.inputs) != 1:
            raise FormulationError(
                f"{op.where}{where} reads {len(op.inputs)} variable inputs; not a chain of layers"
            )
        chain.append(op)
        v = op.inputs[0]
    chain.reverse()
    for o in chain[:-1]:
        if len(graph.consumers(o.outputs[0])) != 1:
            raise FormulationError(f"{o.where}{where} feeds several ops; not a chain of layers")
    layers: list[ChainLayer] = []
    run: list[Op] = []
    start = graph.inputs[0]
    for op in chain:
        if is_chain_linear(op):
            run.append(op)
            continue
        layers.append(
            ChainLayer(
                len(layers),
                tuple(run),
                op,
                start,
                op.outputs[0],
                op.inputs[0],
                graph.value(start).size,
                graph.value(op.outputs[0]).size,
                graph,
            )
        )
        start, run = op.outputs[0], []
    if run:
        end = run[-1].outputs[0]
        layers.append(
            ChainLayer(
                len(layers),
                tuple(run),
                None,
                start,
                end,
                end,
                graph.value(start).size,
                graph.value(end).size,
                graph,
            )
        )
    return layers


def _default_refusal(
    op: Op, activations: Collection[str], linear: Collection[str] | None, method: str
) -> str | None:
    """The generic reason ``method`` cannot take ``op`` (None if it can)."""
    if op.op in activations:
        return None
    spec = OPS.get(op.op)
    if spec is not None and spec.kind == "linear" and (linear is None or op.op in linear):
        if spec.linear_map is None:
            return f"'{op.op}' has no linear map to compose into a layer"
        if len(op.inputs) != 1:
            return f"'{op.op}' with {len(op.inputs)} variable inputs breaks the chain of layers"
        return None
    allowed = ", ".join(activations) or "no activation"
    if spec is not None and spec.kind == "smooth":
        return f"'{op.op}' is smooth; {method} handles chains of linear ops and {allowed}"
    return f"{method} has no rule for '{op.op}' (it handles linear ops and {allowed})"


def chain_refusals(
    graph: Graph,
    activations: Collection[str],
    *,
    linear: Collection[str] | None = None,
    refusal: Callable[[Op], str | None] | None = None,
    method: str = "this method",
    branches: bool = True,
) -> list[Refusal]:
    """Every op that keeps ``graph`` from being a chain ``method`` can take, with the reason.

    Parameters
    ----------
    graph : Graph
    activations : collection of str
        The IR ops the method allows to close a layer.
    linear : collection of str, optional
        The linear IR ops it allows (default: every op with a ``linear_map``).
    refusal : callable, optional
        ``refusal(op) -> reason or None``: the method's own reasons, asked first; an op it
        passes is then checked against ``activations`` and ``linear``.
    method : str
        The method's name in the generic reasons.
    branches : bool
        Also refuse an op whose output feeds several ops (a fork of the chain).

    Returns
    -------
    list of Refusal
        One per refused op, in graph order, each reason followed by the op's ONNX node; plus one
        ``"<graph>"`` row for a graph with several inputs or outputs. Empty: the graph is a chain
        the method takes, and :func:`split_chain` splits it.
    """
    bad = []
    for o in graph.ops:
        why = refusal(o) if refusal is not None else None
        if why is None:
            why = _default_refusal(o, activations, linear, method)
        if why is None and branches and o.outputs[0] not in graph.outputs:
            if len(graph.consumers(o.outputs[0])) > 1:
                why = f"its output feeds several ops; {method} inverts a single chain"
        if why:
            bad.append(Refusal(o.id, o.op, why + (f" (from ONNX {o.origin})" if o.origin else "")))
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        bad.append(
            Refusal(
                "<graph>",
                "-",
                f"{len(graph.inputs)} inputs / {len(graph.outputs)} outputs; {method} inverts "
                "single-input, single-output chains",
            )
        )
    return bad


def dense_chain(graph: Graph, who: str = "dense chains") -> tuple[list, list, list]:
    """A chain of linear ops and (leaky) ReLUs as dense float64 arrays: ``(Ws, bs, leaks)``,
    layer by layer, ``leaks[j]`` the activation's slope below 0 (``0.0`` for a ReLU) and None
    on a last layer without an activation. Max pooling is taken in its exact ReLU form
    (:func:`netopt.ir.relu_form.relu_form`): its layers are among the chain's.

    Raises
    ------
    FormulationError
        If the graph is not such a chain (every refusal listed, the message starting with
        ``who``: the method that needs the chain).
    """
    from netopt.ir.relu_form import relu_form

    graph = relu_form(graph)  # max pooling as ReLUs: the units the bounds and proofs know
    bad = chain_refusals(graph, ("relu", "leaky_relu"))
    if bad:
        raise FormulationError(
            f"{who} take chains of linear ops and (leaky) ReLUs: " + "; ".join(map(str, bad))
        )
    Ws, bs, leaks = [], [], []
    for layer in split_chain(graph):
        M, bias = layer.dense_affine()
        Ws.append(M)
        bs.append(np.asarray(bias, dtype=np.float64))
        act = layer.activation
        leaks.append(None if act is None else float(act.attrs.get("alpha", 0.0)))
    return Ws, bs, leaks


def pattern_map(
    chain: tuple[list, list, list], n: int, active: list[np.ndarray], units: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""A :func:`dense_chain` on a region of fixed signs: :math:`f(x) = A x + c` where the
    units of ``active`` (per activation layer, bool) pass their input and the others its
    leak, and each unit of ``units`` (``(layer, unit)``, in layer order) has input
    :math:`a_k^\top x + b_k`. Returns ``(A, c, a, b)``, ``a`` ``(len(units), n)``."""
    Ws, bs, leaks = chain
    M, c = np.eye(n), np.zeros(n)
    a_rows, b_vals = [], []
    for j in range(len(Ws) - 1):
        Z, z0 = Ws[j] @ M, Ws[j] @ c + bs[j]
        for lj, u in units:
            if lj == j:
                a_rows.append(Z[u])
                b_vals.append(z0[u])
        slope = np.where(active[j], 1.0, leaks[j])
        M, c = slope[:, None] * Z, slope * z0
    k = len(units)
    return (
        Ws[-1] @ M,
        Ws[-1] @ c + bs[-1],
        np.asarray(a_rows).reshape(k, n),
        np.asarray(b_vals).reshape(k),
    )
