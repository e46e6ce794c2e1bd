"""The intermediate representation: an immutable, bipartite computation graph.

A :class:`Graph` wraps a :class:`networkx.DiGraph` whose nodes are either *value
nodes* (tensors, carrying a :class:`Value`) or *op nodes* (carrying an
:class:`Op`), like ONNX itself. The ordered ``Op.inputs``/``Op.outputs`` are the
authoritative argument order; the edges are derived from them and serve topology
only.

Shapes are *per-sample*: the batch dimension of the ONNX model is removed at
import, and every IR op acts on arrays with one extra leading batch axis (see
:mod:`netopt.ir.ops`). The graph is immutable: passes return new graphs, and bounds
live with problems, never in the graph.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import networkx as nx
import numpy as np

from netopt.errors import OnnxImportError

__all__ = ["Origin", "Value", "Op", "SourceInfo", "Graph", "sanitize", "freeze_attrs"]


@dataclass(frozen=True)
class Origin:
    """Where an IR op came from, for error messages and ``netopt info``.

    Attributes
    ----------
    node : str
        ONNX node name (or a generated one when the file has none).
    op_type : str
        ONNX op type, e.g. ``"Gemm"``.
    opset : int
        The opset version the node was read under.
    domain : str
        ONNX domain, ``""`` for the default one.
    """

    node: str
    op_type: str
    opset: int = 0
    domain: str = ""

    def __str__(self) -> str:
        return f"node '{self.node}' ({self.op_type}, opset {self.opset})"


@dataclass(frozen=True)
class Value:
    """A tensor of the graph: a sanitized unique id and its per-sample shape."""

    id: str
    shape: tuple[int, ...]
    onnx_name: str | None = None

    @property
    def size(self) -> int:
        """Number of scalar entries of one sample."""
        return int(np.prod(self.shape, dtype=np.int64))


def _freeze(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        a = np.array(v, dtype=np.float64 if v.dtype.kind == "f" else v.dtype, copy=True)
        a.setflags(write=False)
        return a
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def freeze_attrs(attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Return a read-only copy of ``attrs``: arrays become read-only float64, lists tuples."""
    return MappingProxyType({k: _freeze(v) for k, v in (attrs or {}).items()})


@dataclass(frozen=True, eq=False)
class Op:
    """An op node of the IR.

    Attributes
    ----------
    id : str
        Unique id within the graph.
    op : str
        A key of the IR vocabulary (:data:`netopt.ir.ops.OPS`), not an ONNX op.
    inputs, outputs : tuple of str
        Value ids, in argument order.
    attrs : mapping
        Read-only attributes; weights are read-only float64 arrays.
    origin : Origin or None
        The ONNX node it was converted from.
    """

    id: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    origin: Origin | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", freeze_attrs(self.attrs))

    @property
    def where(self) -> str:
        """A human description of the op for error messages."""
        src = f" from ONNX {self.origin}" if self.origin else ""
        return f"IR op '{self.id}' ({self.op}){src}"

    def replace(self, **changes: Any) -> Op:
        """A copy with some fields changed (ops are immutable)."""
        fields = {
            "id": self.id,
            "op": self.op,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "attrs": dict(self.attrs),
            "origin": self.origin,
        }
        fields.update(changes)
        return Op(**fields)


@dataclass(frozen=True)
class SourceInfo:
    """Where the graph came from; certificates cite it."""

    path: str | None = None
    sha256: str | None = None
    opsets: tuple[tuple[str, int], ...] = ()
    producer: str = ""
    ir_version: int = 0

    @property
    def name(self) -> str:
        """The file name, or ``<in-memory model>``."""
        return self.path or "<in-memory model>"


_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.]")


def sanitize(name: str, taken: set[str], fallback: str = "t") -> str:
    """A readable, unique identifier derived from an ONNX name.

    Characters outside ``[A-Za-z0-9_.]`` become ``_``; a leading digit or an
    empty name gets a prefix; clashes get a numeric suffix. ``taken`` is updated.
    """
    base = _BAD_CHARS.sub("_", name) or fallback
    if base[0].isdigit() or base[0] == ".":
        base = f"{fallback}_{base}"
    cand, k = base, 1
    while cand in taken:
        cand = f"{base}_{k}"
        k += 1
    taken.add(cand)
    return cand


class Graph:
    """An immutable computation graph of IR ops over per-sample tensors.

    Parameters
    ----------
    values : iterable of Value
        Every tensor of the graph (inputs, intermediate values, outputs).
    ops : iterable of Op
        The op nodes; stored in a topological order that keeps the given order
        where the dependencies allow it.
    inputs, outputs : sequence of str
        Ordered ids of the graph's input and output values.
    source : SourceInfo, optional
        Provenance (file, sha256, opsets, producer).

    Raises
    ------
    OnnxImportError
        If the graph is malformed: a dangling or doubly produced value, a cycle,
        an unknown IR op, or a shape that does not follow from the op's inputs.
    """

    def __init__(
        self,
        values: Iterable[Value],
        ops: Iterable[Op],
        inputs: Iterable[str],
        outputs: Iterable[str],
        source: SourceInfo | None = None,
    ) -> None:
        self._values: dict[str, Value] = {}
        for v in values:
            if v.id in self._values:
                raise OnnxImportError(f"IR graph: value id '{v.id}' is defined twice")
            self._values[v.id] = v
        self._inputs = tuple(inputs)
        self._outputs = tuple(outputs)
        self.source = source or SourceInfo()
        ops = list(ops)
        self._producer: dict[str, Op] = {}
        self._consumers: dict[str, list[Op]] = {v: [] for v in self._values}
        op_ids: set[str] = set()
        g = nx.DiGraph()
        for v in self._values.values():
            g.add_node(("v", v.id), kind="value", data=v)
        for o in ops:
            if o.id in op_ids:
                raise OnnxImportError(f"IR graph: op id '{o.id}' is used twice")
            op_ids.add(o.id)
            g.add_node(("o", o.id), kind="op", data=o)
            for i in o.inputs:
                if i not in self._values:
                    raise OnnxImportError(
                        f"IR graph: {o.where} reads value '{i}', which does not exist"
                    )
                g.add_edge(("v", i), ("o", o.id))
                self._consumers[i].append(o)
            for out in o.outputs:
                if out not in self._values:
                    raise OnnxImportError(
                        f"IR graph: {o.where} writes value '{out}', which does not exist"
                    )
                if out in self._producer or out in self._inputs:
                    raise OnnxImportError(f"IR graph: value '{out}' is produced twice")
                self._producer[out] = o
                g.add_edge(("o", o.id), ("v", out))
        for i in self._inputs + self._outputs:
            if i not in self._values:
                raise OnnxImportError(f"IR graph: graph input/output '{i}' is not a value")
        order = {("o", o.id): k for k, o in enumerate(ops)}
        try:
            topo = list(
                nx.lexicographical_topological_sort(g, key=lambda n: (order.get(n, -1), n[1]))
            )
        except nx.NetworkXUnfeasible as e:
            raise OnnxImportError("IR graph: the graph has a cycle") from e
        self._ops = tuple(g.nodes[n]["data"] for n in topo if n[0] == "o")
        self._op_by_id = {o.id: o for o in self._ops}
        self._nx = nx.freeze(g)
        self._validate()

    # ------------------------------------------------------------------ access
    @property
    def values(self) -> Mapping[str, Value]:
        """Every value by id (read-only)."""
        return MappingProxyType(self._values)

    @property
    def ops(self) -> tuple[Op, ...]:
        """The ops in topological order."""
        return self._ops

    @property
    def inputs(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        return self._outputs

    @property
    def nx(self) -> nx.DiGraph:
        """The frozen networkx graph (nodes ``("v", id)`` and ``("o", id)``)."""
        return self._nx

    def value(self, vid: str) -> Value:
        return self._values[vid]

    def op(self, oid: str) -> Op:
        return self._op_by_id[oid]

    def producer(self, vid: str) -> Op | None:
        """The op that writes ``vid`` (None for graph inputs)."""
        return self._producer.get(vid)

    def consumers(self, vid: str) -> tuple[Op, ...]:
        """The ops that read ``vid``."""
        return tuple(self._consumers.get(vid, ()))

    def op_counts(self) -> dict[str, int]:
        """How many ops of each IR kind the graph has."""
        counts: dict[str, int] = {}
        for o in self._ops:
            counts[o.op] = counts.get(o.op, 0) + 1
        return counts

    def rebuild(
        self,
        ops: Iterable[Op],
        *,
        values: Iterable[Value] | None = None,
        outputs: Iterable[str] | None = None,
    ) -> Graph:
        """A new graph with other ops (and values); unused values are dropped."""
        ops = list(ops)
        outs = tuple(outputs) if outputs is not None else self._outputs
        pool = {v.id: v for v in (values if values is not None else self._values.values())}
        used = set(self._inputs) | set(outs)
        for o in ops:
            used.update(o.inputs)
            used.update(o.outputs)
        return Graph([pool[v] for v in pool if v in used], ops, self._inputs, outs, self.source)

    # -------------------------------------------------------------- validation
    def _validate(self) -> None:
        from netopt.ir.ops import OPS

        for vid in self._values:
            if vid not in self._producer and vid not in self._inputs and self._consumers[vid]:
                raise OnnxImportError(
                    f"IR graph: value '{vid}' is read but never produced and is no graph input"
                )
        for o in self._ops:
            spec = OPS.get(o.op)
            if spec is None:
                raise OnnxImportError(f"IR graph: {o.where} is not an IR op")
            try:
                shapes = spec.infer([self._values[i].shape for i in o.inputs], o.attrs)
            except (ValueError, TypeError, KeyError, IndexError) as e:
                raise OnnxImportError(f"IR graph: {o.where}: {e}") from e
            if len(o.outputs) != 1:
                raise OnnxImportError(f"IR graph: {o.where} must have exactly one output")
            got = self._values[o.outputs[0]].shape
            if tuple(shapes) != tuple(got):
                raise OnnxImportError(
                    f"IR graph: {o.where} gives shape {tuple(shapes)}, but its output "
                    f"value '{o.outputs[0]}' is declared {got}"
                )

    def __repr__(self) -> str:
        ins = ", ".join(f"{i}{list(self._values[i].shape)}" for i in self._inputs)
        outs = ", ".join(f"{i}{list(self._values[i].shape)}" for i in self._outputs)
        return f"<Graph {len(self._ops)} ops: ({ins}) -> ({outs})>"
