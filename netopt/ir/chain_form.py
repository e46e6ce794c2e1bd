r"""A network with skip connections rewritten exactly as a chain, on a box: the form branch and
bound, its batched bounds and its proofs take.

The batched bounds of branch and bound (:class:`netopt.bounds.batched.ChainBounds` and input
splitting's :class:`~netopt.bounds.chain_numpy.NumpyChainCrown`, and their float64 side
:class:`netopt.bounds.bab.BatchCrown` with the proof checker) index their units
layer by layer, :math:`x_{j+1} = \sigma_j(W_j x_j + b_j)`. A residual block or a concatenation
of branches (``add``/``concat`` of values from different depths) is not such a chain, but it is
one once every value a later layer reads is carried through the layers in between. A carried
value passes through the layer's activation unchanged when its input is :math:`\ge 0`: with
:math:`c` a lower bound of the value :math:`v`,

.. math::

    \sigma(v - c) = v - c \quad (v \ge c), \qquad v = \sigma(v - c) + c,

so the carry is the identity, exactly, and its unit is stable, which the bounds see (its
input's interval lower bound is about 1: above 0 unless ``lo`` is so large that rounding eats
the margin, where a carry may look unstable and be relaxed or split, soundly and uselessly),
so it is never split and relaxes exactly. The
lower bounds are exact, not estimated: the network's input :math:`x \ge` ``lo`` on the box
(:math:`c = \mathrm{fl}(\mathrm{lo} - 1) \le \mathrm{lo}`), a ReLU's output :math:`\ge 0`
(:math:`c = -1`); a carried value then stays :math:`\ge 1` through further layers with no new
offset. A leaky ReLU's output has no bound without the box's propagated bounds, and is not
carried (such a graph has no chain form here).

Each activation op goes to the layer of its depth (1 + the deepest activation its input reads;
the network's input has depth 0), and every layer is one kind of activation (a depth with
ReLUs and leaky ReLUs of different slopes: no chain form). Layer :math:`j`'s units are its
activations' units in graph order, then its carries in order of their values. (Depths follow
the graph's edges, not the weights: a path whose weights cancel still counts.)

:func:`chain_form` gives the layering in two graphs with the same units in the same order:

* ``chain``: dense layers, each the composition of the linear ops between two activation
  layers (:func:`netopt.ir.chain.dense_chain` takes it). Composing weights rounds (a sum of
  :math:`2^{54}` and :math:`-2^{54}` paths loses a term of 1), so this graph is for the search
  alone (:class:`~netopt.bounds.batched.ChainBounds`, the LPs that propose multipliers): its
  bounds are never a claim.
* ``exact``: the network's own ops, unchanged, with each depth's activations merged into one
  op over a ``concat`` of their inputs and of that layer's carries (``reshape``, ``scale`` by
  :math:`-c`, ``select``), the activations' outputs taken back out of it by ``select`` +
  ``reshape`` under their own ids. Every linear op still reads what it read: the carries are
  units only the next layer's carries read (their bounds are the chain's carries' bounds),
  never the network's ops, so the graph is the network's function op for op, for every input
  and whatever the offsets, and the rigorous float64 bounds
  (:class:`~netopt.bounds.bab.BatchCrown`, which rounds each op outward) bound the network
  itself. The search confirms its leaves on it, and :func:`netopt.bounds.proof.check_proof`
  rebuilds it from a proof's root box (a proof made on it says so: ``BabProof.form``).

Why a rewrite and not a DAG rule in each engine: every engine of ReLU splitting (the torch
bounds, alpha and beta optimization, the children's incremental bounds of filtered smart
branching, the LPs of affine domains, the proof format and its checker) is written for the
chain, and the carried units cost only width (their rows are exact and never branched on).
The layout ties the two graphs, so a search on the first is checked on the second unit for
unit.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from netopt.ir.graph import Graph, Op, Value
from netopt.ir.ops import OPS, linear_map

__all__ = ["MAX_WEIGHTS", "ChainForm", "chain_form", "exact_form"]

#: No chain form when its dense layers would hold more than this many weights in all (the
#: batched bounds keep every layer dense: a convolutional ResNet's flattened layers would not
#: fit).
MAX_WEIGHTS = 50_000_000

#: Chain forms kept per graph (one per box ``lo``; a property's disjuncts share one box).
CACHE_BOXES = 4

_ACTS = ("relu", "leaky_relu")
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ChainForm(NamedTuple):
    """A network's layering as a chain: ``chain`` (composed dense layers: for the search) and
    ``exact`` (the network's own ops, its activations merged per layer: for the claims), with
    the same activation units in the same order."""

    chain: Graph
    exact: Graph


def chain_form(graph: Graph, lo: np.ndarray) -> ChainForm | None:
    """``graph`` as a chain on inputs ``x >= lo`` (see the module docstring).

    Parameters
    ----------
    graph : Graph
        One input and one output, linear ops and (leaky) ReLUs; max pooling is taken in its
        ReLU form first (:func:`netopt.ir.relu_form.relu_form`).
    lo : array
        The box's lower bound, flattened like the input (only the carried input uses it).

    Returns
    -------
    ChainForm or None
        ``(g, g)`` with ``g = relu_form(graph)`` when that is a chain already; None when the
        graph has other ops (or a leaky ReLU's slope outside [0, 1]), several inputs or
        outputs, a carried leaky ReLU's output, a depth with two kinds of activation, a ``lo``
        not finite or not of the input's size, or composed layers of more than
        :data:`MAX_WEIGHTS` weights or of a non-finite one. Cached per graph, ``lo`` and
        :data:`MAX_WEIGHTS`. (:func:`exact_form`: the ``exact`` graph alone.)
    """
    from netopt.ir.chain import chain_refusals
    from netopt.ir.relu_form import relu_form

    graph = relu_form(graph)
    if not chain_refusals(graph, _ACTS):
        return ChainForm(graph, graph)
    got = _cached(graph, lo)
    if got is None:
        return None
    plan, exact, composed = got
    if MAX_WEIGHTS not in composed:
        composed[MAX_WEIGHTS] = _composed(graph, plan)
    chain = composed[MAX_WEIGHTS]
    return None if chain is None else ChainForm(chain, exact)


def exact_form(graph: Graph, lo: np.ndarray) -> Graph | None:
    """The ``exact`` graph of :func:`chain_form` alone (what a proof's check needs: no
    composed layers, so no :data:`MAX_WEIGHTS`); ``relu_form(graph)`` for a chain."""
    from netopt.ir.chain import chain_refusals
    from netopt.ir.relu_form import relu_form

    graph = relu_form(graph)
    if not chain_refusals(graph, _ACTS):
        return graph
    got = _cached(graph, lo)
    return None if got is None else got[1]


def _cached(graph: Graph, lo: np.ndarray) -> tuple | None:
    """``(plan, exact graph, {MAX_WEIGHTS: composed chain})`` of ``graph`` on ``lo``, kept
    for :data:`CACHE_BOXES` boxes per graph; None without a plan."""
    lo = np.asarray(lo, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(lo)):
        return None
    entry = _CACHE.setdefault(graph, {})
    key = lo.tobytes()
    if key not in entry:
        while len(entry) >= CACHE_BOXES:
            entry.pop(next(iter(entry)))
        plan = _plan(graph, lo)
        entry[key] = None if plan is None else (plan, _exact(graph, plan), {})
    return entry[key]


@dataclass
class _Plan:
    """The layering: activations by depth, carries by layer, each layer's blocks (no
    reference to the graph: the cache is keyed on it weakly)."""

    acts: dict[str, Op]  # activation output id -> its op
    depth: dict[str, int]  # source id -> depth (the input 0)
    at: list[list[str]]  # activation outputs by depth (graph order)
    kinds: list[Op]  # an activation op of each layer 1..D (its op and attrs)
    carried: list[list[str]]  # sources carried through layer j, in source order
    # layout[j][s] = (offset in layer j's output, shift: the block holds s + shift)
    layout: list[dict[str, tuple[int, np.ndarray]]]
    widths: list[int]  # layer j's width (layer 0: the input)
    offset: dict[str, np.ndarray]  # source -> c, its carries' lower bound
    size: dict[str, int]  # source -> its size


def _sources(graph: Graph) -> tuple[dict, dict, dict] | None:
    """Which sources (the input, each activation's output) each value depends on, through the
    graph's edges; each source's depth; the activations by output id. None for an op outside
    the vocabulary."""
    x = graph.inputs[0]
    deps: dict[str, frozenset] = {x: frozenset([x])}
    depth: dict[str, int] = {x: 0}
    acts: dict[str, Op] = {}
    for o in graph.ops:
        if o.op in _ACTS:
            if len(o.inputs) != 1 or not 0.0 <= float(o.attrs.get("alpha", 0.0)) <= 1.0:
                return None
            out = o.outputs[0]
            depth[out] = 1 + max((depth[s] for s in deps[o.inputs[0]]), default=0)
            deps[out] = frozenset([out])
            acts[out] = o
            continue
        spec = OPS.get(o.op)
        if spec is None or spec.kind != "linear" or spec.linear_map is None:
            return None
        deps[o.outputs[0]] = frozenset().union(*(deps[i] for i in o.inputs))
    return deps, depth, acts


def _plan(graph: Graph, lo: np.ndarray) -> _Plan | None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return None
    got = _sources(graph)
    if got is None:
        return None
    deps, depth, acts = got
    x, y = graph.inputs[0], graph.outputs[0]
    n_x = graph.value(x).size
    if lo.size != n_x:
        return None
    D = max((depth[a] for a in acts), default=0)
    at: list[list[str]] = [[] for _ in range(D + 2)]
    for a in acts:  # graph (topological) order
        at[depth[a]].append(a)
    kinds = []
    for j in range(1, D + 1):
        k = {(acts[a].op, float(acts[a].attrs.get("alpha", 0.0))) for a in at[j]}
        if len(k) != 1:
            return None
        kinds.append(acts[at[j][0]])
    # the deepest reader of each source: an activation, or the output (depth D + 1)
    last: dict[str, int] = {}
    for j, reads in [(depth[a], deps[acts[a].inputs[0]]) for a in acts] + [(D + 1, deps[y])]:
        for s in reads:
            last[s] = max(last.get(s, 0), j)
    order = [x, *acts]
    carried = [[s for s in order if depth[s] < j < last.get(s, 0)] for j in range(D + 1)]
    if any(s in acts and acts[s].op == "leaky_relu" for c in carried for s in c):
        return None
    size = {s: graph.value(s).size for s in order}
    # fl(lo - 1) <= lo whatever lo; a ReLU's output is >= 0 > -1
    offset = {s: (lo - 1.0 if s == x else -np.ones(size[s])) for s in order}
    layout: list[dict] = [{x: (0, np.zeros(n_x))}]
    for j in range(1, D + 1):
        pos, k = {}, 0
        for s in at[j]:
            pos[s], k = (k, np.zeros(size[s])), k + size[s]
        for s in carried[j]:
            pos[s], k = (k, -offset[s]), k + size[s]
        layout.append(pos)
    widths = [sum(size[s] for s in lay) for lay in layout]
    return _Plan(acts, depth, at, kinds, carried, layout, widths, offset, size)


def _expressions(graph: Graph) -> dict:
    """Every value as an affine map of the sources it reads: ``{value: ({source: csr},
    bias)}`` (composed in float64: for the search's chain only)."""
    import scipy.sparse as sp

    x = graph.inputs[0]
    n = graph.value(x).size
    expr: dict[str, tuple[dict, np.ndarray]] = {x: ({x: sp.identity(n, format="csr")}, np.zeros(n))}
    for o in graph.ops:
        out = o.outputs[0]
        if o.op in _ACTS:
            m = graph.value(out).size
            expr[out] = ({out: sp.identity(m, format="csr")}, np.zeros(m))
            continue
        ms, b = linear_map(o, [graph.value(i).shape for i in o.inputs])
        acc: dict = {}
        bias = np.asarray(b, dtype=np.float64).copy()
        for m, i in zip(ms, o.inputs, strict=True):
            src, c = expr[i]
            bias += m @ c
            for s, ms_ in src.items():
                t = (m @ ms_).tocsr()
                acc[s] = t if s not in acc else (acc[s] + t).tocsr()
        expr[out] = (acc, bias)
    return expr


def _composed(g: Graph, p: _Plan) -> Graph | None:
    """The chain of dense layers (the search's), or None over :data:`MAX_WEIGHTS` weights or
    with a weight that overflowed."""
    x, y = g.inputs[0], g.outputs[0]
    n_y = g.value(y).size
    D = len(p.widths) - 1
    weights = sum(a * b for a, b in zip(p.widths[1:], p.widths[:-1], strict=True))
    if weights + n_y * p.widths[-1] > MAX_WEIGHTS:
        return None
    expr = _expressions(g)

    def rows(mats: dict, bias: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
        """An affine map of sources as one of layer ``j``'s output: ``(W, b)``."""
        W = np.zeros((len(bias), p.widths[j]))
        b = bias.copy()
        for s, m in mats.items():
            k, shift = p.layout[j][s]
            W[:, k : k + p.size[s]] += m.toarray()
            b -= m @ shift  # the block holds s + shift
        return W, b

    b = _Builder(g)
    cur = b.op("reshape", x, (p.size[x],), {"shape": (p.size[x],)})
    for j in range(1, D + 1):
        Ws, bs = [], []
        for s in p.at[j]:
            W, bias = rows(*expr[p.acts[s].inputs[0]], j - 1)
            Ws.append(W)
            bs.append(bias)
        for s in p.carried[j]:
            k, _ = p.layout[j - 1][s]
            W = np.zeros((p.size[s], p.widths[j - 1]))
            W[:, k : k + p.size[s]] = np.eye(p.size[s])
            # the first carry takes v - c (its block held v); later ones pass v - c along
            Ws.append(W)
            bs.append(-p.offset[s] if p.depth[s] == j - 1 else np.zeros(p.size[s]))
        W, bias = np.vstack(Ws), np.concatenate(bs)
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(bias))):
            return None
        z = b.op("affine", cur, (p.widths[j],), {"weight": W, "bias": bias})
        cur = b.op(p.kinds[j - 1].op, z, (p.widths[j],), dict(p.kinds[j - 1].attrs))
    W, bias = rows(*expr[y], D)
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(bias))):
        return None
    flat = b.op("affine", cur, (n_y,), {"weight": W, "bias": bias})
    b.op("reshape", flat, g.value(y).shape, {"shape": g.value(y).shape}, out=y)
    return Graph([g.value(x), g.value(y), *b.values], b.ops, g.inputs, g.outputs, g.source)


def _exact(g: Graph, p: _Plan) -> Graph:
    """The network's ops with each depth's activations merged into one op (and that layer's
    carries, which only the next layer's carries read)."""
    b = _Builder(g)
    b.ops = [o for o in g.ops if o.op not in _ACTS]
    b.values = list(g.values.values())
    prev = ""  # layer j - 1's merged activation output
    for j in range(1, len(p.widths)):
        parts = []
        for s in p.at[j]:
            v = p.acts[s].inputs[0]
            parts.append(b.op("reshape", v, (p.size[s],), {"shape": (p.size[s],)}))
        for s in p.carried[j]:
            n = p.size[s]
            if p.depth[s] == j - 1:  # its first carry: v - c
                flat = b.op("reshape", s, (n,), {"shape": (n,)})
                attrs = {"mul": np.ones(n), "add": -p.offset[s]}
                parts.append(b.op("scale", flat, (n,), attrs))
            else:  # already v - c in layer j - 1's output
                k, _ = p.layout[j - 1][s]
                parts.append(b.op("select", prev, (n,), {"index": np.arange(k, k + n)}))
        z = b.op("concat", tuple(parts), (p.widths[j],), {"axis": 0})
        like = p.kinds[j - 1]
        prev = b.op(like.op, z, (p.widths[j],), dict(like.attrs), origin=like)
        for s in p.at[j]:
            k, _ = p.layout[j][s]
            n = p.size[s]
            sel = b.op("select", prev, (n,), {"index": np.arange(k, k + n)})
            b.op("reshape", sel, g.value(s).shape, {"shape": g.value(s).shape}, out=s)
    return Graph(b.values, b.ops, g.inputs, g.outputs, g.source)


class _Builder:
    """A rewritten graph's new ops and values, with ids not taken in the source graph."""

    def __init__(self, graph: Graph) -> None:
        self.taken = set(graph.values) | {o.id for o in graph.ops}
        self.values: list[Value] = []
        self.ops: list[Op] = []

    def _fresh(self, base: str) -> str:
        cand, n = base, 1
        while cand in self.taken:
            cand, n = f"{base}_{n}", n + 1
        self.taken.add(cand)
        return cand

    def op(
        self,
        op: str,
        inputs: str | tuple,
        shape: tuple,
        attrs: dict,
        *,
        out: str = "",
        origin: Op | None = None,
    ) -> str:
        """An op reading ``inputs``, writing ``out`` (an existing value) or a new value of
        ``shape``; returns the output's id."""
        ins = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        if not out:
            out = self._fresh(f"chain_form.{op}")
            self.values.append(Value(out, tuple(int(d) for d in shape)))
        oid = self._fresh(f"chain_form.{op}.op")
        self.ops.append(Op(oid, op, ins, (out,), attrs, None if origin is None else origin.origin))
        return out
