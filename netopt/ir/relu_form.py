r"""Max pooling rewritten exactly as ReLUs: the form the batched bounds and their proofs take.

The batched bounds (:class:`netopt.bounds.bab.BatchCrown`, :class:`~netopt.bounds.batched.ChainBounds`,
:class:`~netopt.bounds.chain_numpy.NumpyChainCrown`), branch and bound over ReLU signs, and the
proof checker (:func:`netopt.bounds.proof.check_proof`) know two piecewise-linear ops: ``relu``
and ``leaky_relu``. A ``maxpool2d`` is a maximum of linear functions, and a maximum is ReLUs:

.. math::

    \max(a, b) = a + \mathrm{relu}(b - a), \qquad a = \mathrm{relu}(a) - \mathrm{relu}(-a),

so :func:`relu_form` replaces each window's maximum by a tournament: a ``select`` gathers the
:math:`k` cells of every window (a padding cell, which never wins, replaced by a cell of the same
window: a repeated cell leaves the maximum unchanged), and each round pairs the values left,
``affine`` (on the last axis: the same small matrix for every window) then ``relu``, until one
value per window remains; a last ``affine`` and a ``reshape`` give the pooled tensor under the
max-pool's own output id. Where the pooled tensor is a ``relu``'s output, every value is
:math:`\ge 0`, so :math:`a = \mathrm{relu}(a)` and a pair takes two units,
:math:`(a, b) \mapsto (\mathrm{relu}(a), \mathrm{relu}(b - a))`, a value left over one. A pool
read only by a ``relu`` (convolution, pool, ReLU) takes that ReLU first, since
:math:`\mathrm{relu}(\max_i z_i) = \max_i \mathrm{relu}(z_i)`, and then the same. Any other
pool's pairs take three units, :math:`(\mathrm{relu}(a), \mathrm{relu}(-a), \mathrm{relu}(b -
a))`, and a value left over two: exact, but loose to bound.

The rewrite is the same function of the input (exact, for every real input: no bound enters it),
so a bound or a proof about the rewritten graph is one about the network. Every method that
needs it calls :func:`relu_form` on the graph it was given, the checker included, so the search
and the check see the same units in the same order. Why a rewrite and not a max-pool rule in
each engine: the splits, the optimized slopes and multipliers, the proof format and its checker
are all about ReLU units, and a ReLU split of :math:`b - a` is the branching on which cell of a
window is the larger that a max-pool rule would need anyway. A window of :math:`k` cells adds
:math:`\lceil \log_2 k \rceil` activation layers; units the bounds show stable cost nothing in
the relaxation.
"""

from __future__ import annotations

import weakref

import numpy as np

from netopt.ir.graph import Graph, Op, Value

__all__ = ["MAX_UNITS", "added_units", "relu_form", "tournament"]

#: The rewrite is made only where the tournaments add at most this many ReLU units in all.
#: The batched float64 bounds back-substitute every activation layer's units to the input (a
#: dense start of one row per unit), and the differences :math:`b - a` of a window's cells are
#: mostly unstable: on VNN-COMP's Convnet_maxpool (1152 windows of 16 cells: 34560 units) one
#: pass took 149 s where CROWN's selection rule for max pooling takes a fraction of a second.
#: Such a network keeps its ``maxpool2d`` (the MILP and the general CROWN of
#: :func:`netopt.bounds.compute_bounds` take it; branch and bound and its proofs do not).
MAX_UNITS = 4096

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def relu_form(graph: Graph) -> Graph:
    """``graph`` with every ``maxpool2d`` replaced by its ReLU tournament (see the module
    docstring); ``graph`` itself when it has none, or when the tournaments would add more
    than :data:`MAX_UNITS` units. Computed once per graph."""
    if not any(o.op == "maxpool2d" for o in graph.ops):
        return graph
    # (the limit it was decided under, the rewritten graph or None: the graph itself; a
    # cached graph never refers to its own key, which would keep it alive)
    limit, got = _CACHE.get(graph, (None, None))
    if limit != MAX_UNITS:
        got = _rewrite(graph) if added_units(graph) <= MAX_UNITS else None
        _CACHE[graph] = (MAX_UNITS, got)
    return graph if got is None else got


def added_units(graph: Graph) -> int:
    """How many ReLU units the rewrite adds to ``graph`` (the tournaments', and where a ReLU
    moves before a pool, its units on the pool's input less those on its output)."""
    total = 0
    for o in graph.ops:
        if o.op == "maxpool2d":
            nonneg, after = _plan(graph, o)
            k = int(np.prod(o.attrs["kernel"]))
            n_out = graph.value(o.outputs[0]).size
            total += n_out * sum(W.shape[0] for W in tournament(k, nonneg)[:-1])
            if after is not None:
                total += graph.value(o.inputs[0]).size - n_out
    return total


def _plan(graph: Graph, o: Op) -> tuple[bool, Op | None]:
    r"""Whether the pool's values are :math:`\ge 0`, and the ReLU that moves before it.

    A pool read only by a ReLU becomes that ReLU on the pool's input, then the pool:
    :math:`\mathrm{relu}(\max_i z_i) = \max_i \mathrm{relu}(z_i)` (the ReLU is nondecreasing),
    so its values are :math:`\ge 0`, and its tournament takes two units a pair instead of
    three (the three-unit form carries each value as :math:`\mathrm{relu}(a) -
    \mathrm{relu}(-a)`, two units whose relaxations are loose together, and in a measured case
    a search of 95 000 domains did not close a net of 80 such units).
    """
    prod = graph.producer(o.inputs[0])
    if prod is not None and prod.op == "relu":
        return True, None
    out = o.outputs[0]
    readers = graph.consumers(out)
    if out not in graph.outputs and len(readers) == 1 and readers[0].op == "relu":
        return True, readers[0]
    return False, None


def tournament(k: int, nonneg: bool) -> list[np.ndarray]:
    r"""The weights of the rounds that take the maximum of :math:`k` values.

    Returns ``[W_1, ..., W_R, w]``: round :math:`r` maps the previous round's ReLU outputs
    (the :math:`k` values for :math:`r = 1`) to its units' inputs by :math:`W_r`, and
    :math:`w` (``(1, n_R)``) the last round's outputs to the maximum; ``[w]`` alone
    (:math:`w = 1`) for :math:`k = 1`. With ``nonneg`` the values are taken to be
    :math:`\ge 0` (the outputs of a ReLU).
    """
    if k < 1:
        raise ValueError(f"a window holds at least one cell, not {k}")
    A = np.eye(k)  # the values left, as rows over the previous round's outputs
    mats: list[np.ndarray] = []
    while A.shape[0] > 1:
        rows: list[np.ndarray] = []
        out: list[list[tuple[int, float]]] = []  # each new value: (unit, sign) terms
        m = A.shape[0]
        for i in range(0, m - 1, 2):
            a, b = A[i], A[i + 1]
            base = len(rows)
            if nonneg:
                rows += [a, b - a]
                out.append([(base, 1.0), (base + 1, 1.0)])
            else:
                rows += [a, -a, b - a]
                out.append([(base, 1.0), (base + 1, -1.0), (base + 2, 1.0)])
        if m % 2:
            a = A[-1]
            base = len(rows)
            if nonneg:
                rows.append(a)
                out.append([(base, 1.0)])
            else:
                rows += [a, -a]
                out.append([(base, 1.0), (base + 1, -1.0)])
        mats.append(np.stack(rows))
        A = np.zeros((len(out), len(rows)))
        for v, terms in enumerate(out):
            for u, s in terms:
                A[v, u] = s
    mats.append(A)
    return mats


class _Builder:
    """The rewritten graph's ops and values as they are made, with fresh ids."""

    def __init__(self, graph: Graph) -> None:
        self.taken = set(graph.values) | {o.id for o in graph.ops}
        self.values = list(graph.values.values())
        self.ops: list[Op] = []

    def fresh(self, base: str) -> str:
        cand, n = base, 1
        while cand in self.taken:
            cand, n = f"{base}_{n}", n + 1
        self.taken.add(cand)
        return cand

    def add(self, like: Op, op: str, inp: str, shape: tuple, attrs: dict, out: str = "") -> str:
        """An op reading ``inp`` (its id and origin from ``like``); its output ``out``, or a
        new value of ``shape``."""
        if not out:
            out = self.fresh(f"{like.outputs[0]}.relu_form")
            self.values.append(Value(out, tuple(int(s) for s in shape)))
        self.ops.append(
            Op(self.fresh(f"{like.id}.relu_form"), op, (inp,), (out,), attrs, like.origin)
        )
        return out


def _rewrite(graph: Graph) -> Graph:
    from netopt.ir.ops.conv import window_index

    b = _Builder(graph)
    moved: set[str] = set()  # ReLUs now before their pool
    for o in graph.ops:
        if o.id in moved:
            continue
        if o.op != "maxpool2d":
            b.ops.append(o)
            continue
        src, dst = o.inputs[0], o.outputs[0]
        shape = graph.value(src).shape
        out_shape = graph.value(dst).shape
        nonneg, after = _plan(graph, o)
        if after is not None:
            # relu(max z) = max relu(z): the ReLU on the input, the pool's output is the ReLU's
            moved.add(after.id)
            src, dst = b.add(after, "relu", src, shape, {}), after.outputs[0]
        k = int(np.prod(o.attrs["kernel"]))
        idx = window_index(shape, o.attrs).reshape(-1, k)
        # a padding cell never wins: the window's first cell in its place (every window has
        # one: the op's shape rule refuses windows of padding only)
        if not (idx >= 0).any(axis=1).all():
            raise ValueError(f"{o.where}: a pooling window covers padding only")
        first = idx[np.arange(len(idx)), np.argmax(idx >= 0, axis=1)]
        idx = np.where(idx >= 0, idx, first[:, None])
        mats = tournament(k, nonneg)
        n_w = len(idx)
        cur = b.add(o, "select", src, (n_w, k), {"index": idx.astype(np.int64)})
        for W in mats[:-1]:
            z = b.add(o, "affine", cur, (n_w, len(W)), {"weight": W, "bias": np.zeros(len(W))})
            cur = b.add(o, "relu", z, (n_w, len(W)), {})
        w = mats[-1]
        cur = b.add(o, "affine", cur, (n_w, 1), {"weight": w, "bias": np.zeros(1)})
        b.add(o, "reshape", cur, out_shape, {"shape": tuple(out_shape)}, out=dst)
    return graph.rebuild(b.ops, values=b.values)
