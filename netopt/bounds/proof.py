r"""Branch-and-bound proofs of "no input in the box satisfies ``C f(x) <= d``", and their checker.

A proof is a tree over the input box :math:`[l, h]`. A split node divides its domain in two:

* ``["x", i, cut]`` -- an input split on flat coordinate ``i``: first the piece with
  :math:`h_i = cut`, then the piece with :math:`l_i = cut` (``cut`` is clipped into the
  parent's :math:`[l_i, h_i]`, so the two pieces always cover the parent);
* ``["r", layer, unit]`` -- a ReLU split of the input :math:`z` of activation op number
  ``layer`` (relu / leaky_relu, counted in ``graph.ops`` order of the graph's ReLU form,
  :func:`netopt.ir.relu_form.relu_form`: a max pool's units are its tournament's, in the order
  that function builds them, so a change to it invalidates earlier proofs of networks with max
  pooling — the checker then rejects them, never accepts a wrong one) at flat index ``unit``: first
  the points with :math:`z \le 0` (sign :math:`-1`), then those with :math:`z \ge 0` (sign
  :math:`+1`).

A leaf ``["leaf", row]`` or ``["leaf", row, p]`` claims that the lower bound of row ``row`` of
:math:`C f(x) - d` over its domain (its box, and the split constraints :math:`s_j z_j \ge 0` on
its path) is positive; ``params[p]`` may give alpha-CROWN slopes (``"slopes"``: per activation
op a list of its units' lower-line slopes, or null; or ``"alphas"``: ``[layer, unit, slope]``
triples, the units not named taking CROWN's adaptive slope) and beta-CROWN multipliers
(``"betas"``: ``[layer, unit, beta]`` triples) for that bound; with ``"lam"`` (one weight
per row) the leaf claims instead that :math:`\lambda^\top (C f(x) - d)` is positive, which
implies that some row is (a weight below 0 is clipped to 0; the check adds the worst case of
rounding :math:`\lambda^\top C` and :math:`\lambda^\top d`). The nodes are listed in pre-order.

A proof with ``form`` ``"chain"`` counts its units in the network's chain form on the root
box (:func:`netopt.ir.chain_form.chain_form`: a network with skip connections as a chain, the
values a later layer reads carried through the layers between by units that pass them
unchanged on the box), which the checker rebuilds from the network and ``lo``: the same
function on the box, so the claim is the network's.

A proof may also give ``pre`` (:attr:`~netopt.bounds.proof_format.BabProof.pre`): rows of
activation inputs, :math:`\pm z_{j,u}`, each with lower-line slopes of its own for the earlier
layers (alpha-CROWN's optimized intermediate bounds of a ReLU-splitting search's root). The
checker bounds each row by rigorous CROWN with those slopes, clipped like any, and tightens the
root's activation bounds where a row does better; the leaves of the root's box start from those
bounds. A slope can only loosen a row's bound, never make it false. A leaf of the root's box
that those bounds leave open is bounded again with its activation bounds recomputed for its
splits and intersected with the root's (as a search whose domains' bounds follow their
first-layer splits bounded it), and any leaf still open once more from scratch: each attempt
is sound, and the best counts.

A proof with ``inherit`` (the optimization search's, :mod:`netopt.bounds.optimize`) bounds every
box from the activation signs its nearest input-split ancestor's own bounds prove (a unit fixed
on a box is fixed on its pieces), back-substituting only the rows of the units still open
(:meth:`~netopt.bounds.bab.BatchCrown.bound`'s ``known`` and ``unstable_only``). The checker
derives those signs itself: it bounds each input-split node from the root down, a level at a
time (:func:`inherited_signs`), before the leaves; nothing of them is read from the proof.

:func:`check_proof` walks the tree (iteratively), derives each leaf's box and split signs, and
bounds the leaves in batches with :meth:`netopt.bounds.bab.BatchCrown.bound`: float64 CROWN with
outward rounding, so its bounds hold for the exact network. Nothing from the proof is trusted
but its choices: a slope is clipped into :math:`[\alpha, 1]` (any such lower line is valid), a
beta to :math:`\ge 0` (then :math:`\beta s z \ge 0` on the leaf, so subtracting it only lowers
the bound), a cut into the parent's interval. The tree is accepted iff it is well formed and
every leaf's bound of its row exceeds ``d[row]`` (or its domain is empty). Every point of the box
then lies in some leaf (each split covers its parent), where its row is positive: no input
satisfies :math:`C f(x) \le d`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.bounds.bab import BatchCrown
from netopt.bounds.proof_format import FORMS, BabProof, _node_error, _read_params
from netopt.errors import InputError
from netopt.ir.graph import Graph

__all__ = ["BabProof", "ProofCheck", "check_proof"]


@dataclass
class ProofCheck:
    """The outcome of :func:`check_proof`.

    Attributes
    ----------
    ok : bool
        The tree is well formed and every leaf is closed.
    leaves, closed : int
        Leaves found, and those whose bound closed them (or whose domain is empty).
    failed_node : int or None
        The index in ``nodes`` of the first failing node (a malformed one or an open leaf).
    reason : str
        Why the proof fails (empty when it holds).
    seconds : float
    """

    ok: bool
    leaves: int = 0
    closed: int = 0
    failed_node: int | None = None
    reason: str = ""
    seconds: float = 0.0


class _Malformed(Exception):
    def __init__(self, node: int | None, why: str) -> None:
        super().__init__(why)
        self.node, self.why = node, why


def check_proof(graph: Graph, proof: BabProof, *, batch: int = 256) -> ProofCheck:
    """Re-check a branch-and-bound proof on ``graph`` in rigorous float64.

    Parameters
    ----------
    graph : Graph
        One input, one output, linear ops, max pooling and (leaky) ReLUs with
        ``0 <= alpha <= 1``. A max pooling is checked in its exact ReLU form
        (:func:`netopt.ir.relu_form.relu_form`), whose units the proof's splits and
        parameters count among the activations.
    proof : BabProof
    batch : int
        Leaves (and an inheriting proof's input-split nodes) bounded together. An inheriting
        proof's leaves are all collected before any is bounded (their boxes are held, as
        many as the leaves times the inputs).

    Returns
    -------
    ProofCheck
    """
    t0 = time.perf_counter()

    def fail(node: int | None, why: str, leaves: int = 0, closed: int = 0) -> ProofCheck:
        return ProofCheck(False, leaves, closed, node, why, time.perf_counter() - t0)

    P = proof
    n_in = graph.value(graph.inputs[0]).size
    if P.lo.size != n_in or P.hi.size != n_in:
        return fail(None, f"the box has {P.lo.size} coordinates; the network's input {n_in}")
    if not (np.all(np.isfinite(P.lo)) and np.all(np.isfinite(P.hi)) and np.all(P.lo <= P.hi)):
        return fail(None, "the root box must be finite with lo <= hi")
    if P.form not in FORMS:
        return fail(None, f"unknown network form {P.form!r} (one of {FORMS})")
    if P.form == "chain":
        from netopt.ir.chain_form import exact_form

        # the form the search's float64 bounds took: the network's own ops, its activations
        # merged per layer with the carries (the proof's units), rebuilt from the proof's box
        exact = exact_form(graph, P.lo)
        if exact is None:
            return fail(None, "the proof is on the network's chain form; it has none on this box")
        graph = exact
    bc = BatchCrown(graph)
    if not bc.ok:
        return fail(None, "the network has ops the proof checker does not cover")
    graph = bc.graph  # max pooling as ReLUs (netopt.ir.relu_form): the units a proof splits
    acts = [o for o in graph.ops if o.op in ("relu", "leaky_relu")]
    sizes = [graph.value(o.inputs[0]).size for o in acts]
    n_out = graph.value(graph.outputs[0]).size
    if P.C.shape != (P.d.size, n_out):
        return fail(None, f"C has shape {P.C.shape}; expected ({P.d.size}, {n_out})")
    if not (np.all(np.isfinite(P.C)) and np.all(np.isfinite(P.d))):
        return fail(None, "C and d must be finite")
    try:
        params = [_leaf_arrays(p, k, sizes, P.d.size) for k, p in enumerate(P.params)]
    except InputError as e:
        return fail(None, str(e))
    bad = _pre_error(P.pre, sizes)
    if bad:
        return fail(None, bad)

    root: dict = {}  # the root box's activation bounds, computed once (for every flush)
    n_leaves = n_closed = 0
    first_bad: tuple[int, str] | None = None
    pending: list[tuple] = []

    # an inheriting proof's input-split nodes (k, lo, hi, signs, parent's entry here or -1)
    # and each leaf's parent entry: its bounds start from the signs that node's bounds prove
    internal: list[tuple] = []
    parent = -1
    known: np.ndarray | None = None

    def flush() -> None:
        nonlocal n_closed, first_bad
        if not pending:
            return
        kn = None
        if P.inherit:
            kn = np.zeros((len(pending), known.shape[1]), dtype=np.int8)
            for b, lf in enumerate(pending):
                if lf[6] >= 0:
                    kn[b] = known[lf[6]]
        ok, why = _bound_leaves(bc, P, pending, sizes, params, root, kn)
        n_closed += int(ok.sum())
        if first_bad is None and not ok.all():
            k = int(np.argmin(ok))
            first_bad = (pending[k][0], why[k])
        pending.clear()

    lo, hi = P.lo.copy(), P.hi.copy()
    signs: dict[tuple[int, int], int] = {}
    # actions, last first: ("visit",) takes the next node; ("x", i, lo_i, hi_i) sets a
    # coordinate's interval; ("r", key, sign) sets (or, with sign 0, drops) a split; ("p", e)
    # makes internal[e] the parent of the nodes that follow (an inheriting proof)
    stack: list[tuple] = [("visit",)]
    pos = 0
    nodes = P.nodes
    try:
        while stack:
            act = stack.pop()
            if act[0] == "x":
                lo[act[1]], hi[act[1]] = act[2], act[3]
                continue
            if act[0] == "r":
                if act[2]:
                    signs[act[1]] = act[2]
                else:
                    del signs[act[1]]
                continue
            if act[0] == "p":
                parent = act[1]
                continue
            if pos >= len(nodes):
                raise _Malformed(None, "the node list ends before the tree does")
            k, nd = pos, nodes[pos]
            pos += 1
            bad = _node_error(nd, n_in, P.d.size, len(params))
            if bad:
                raise _Malformed(k, bad)
            if nd[0] == "leaf":
                n_leaves += 1
                pending.append((k, lo.copy(), hi.copy(), dict(signs), nd[1], nd[2:], parent))
                if len(pending) >= batch and not P.inherit:
                    flush()
            elif nd[0] == "x":
                i = nd[1]
                li, hi_ = lo[i], hi[i]
                cut = min(max(float(nd[2]), li), hi_)
                # first child: hi_i = cut; then lo_i = cut; then the parent's interval again
                stack += [("x", i, li, hi_), ("visit",), ("x", i, cut, hi_), ("visit",)]
                if P.inherit:
                    internal.append((k, lo.copy(), hi.copy(), dict(signs), parent))
                    stack.insert(len(stack) - 4, ("p", parent))
                    parent = len(internal) - 1
                hi[i] = cut
            else:
                key = (nd[1], nd[2])
                if nd[1] >= len(sizes) or nd[2] >= sizes[nd[1]]:
                    raise _Malformed(k, f"ReLU split ({nd[1]}, {nd[2]}) out of range")
                if key in signs:
                    raise _Malformed(k, f"unit ({nd[1]}, {nd[2]}) is split twice on one path")
                stack += [("r", key, 0), ("visit",), ("r", key, 1), ("visit",)]
                signs[key] = -1
        if pos != len(nodes):
            raise _Malformed(pos, f"{len(nodes) - pos} node(s) after the end of the tree")
    except _Malformed as e:
        return fail(e.node, f"malformed tree: {e.why}", n_leaves, n_closed)
    if P.inherit:
        known = inherited_signs(bc, internal, sizes, batch)
        leaves = pending[:]
        for a in range(0, len(leaves), batch):
            pending[:] = leaves[a : a + batch]
            flush()
    flush()
    if first_bad is not None:
        return fail(first_bad[0], first_bad[1], n_leaves, n_closed)
    return ProofCheck(True, n_leaves, n_closed, None, "", time.perf_counter() - t0)


def inherited_signs(bc: Any, internal: list[tuple], sizes: list[int], batch: int) -> np.ndarray:
    """The activation signs each input-split node's own bounds prove (an inheriting proof).

    ``internal``: the nodes in pre-order, ``(k, lo, hi, signs, parent)`` with ``signs`` the
    ReLU splits on the node's path and ``parent`` its parent's entry (-1: none). A node's
    bounds start from its parent's signs (:meth:`~netopt.bounds.bab.BatchCrown.bound`'s
    ``known``; none at the root) with only the open units' rows (``unstable_only``), so the
    nodes are bounded a level at a time from the root down, in batches.
    Returns ``(len(internal), N)`` int8.
    """
    n, N = len(internal), int(sum(sizes))
    out = np.zeros((n, N), dtype=np.int8)
    if n == 0 or N == 0:
        return out
    depth = np.zeros(n, dtype=np.int64)
    for e, nd in enumerate(internal):
        depth[e] = 0 if nd[4] < 0 else depth[nd[4]] + 1
    n_out = bc.graph.value(bc.graph.outputs[0]).size
    for lv in range(int(depth.max()) + 1):
        level = np.nonzero(depth == lv)[0]
        for a in range(0, len(level), batch):
            idx = level[a : a + batch]
            B = len(idx)
            lo = np.stack([internal[e][1] for e in idx])
            hi = np.stack([internal[e][2] for e in idx])
            splits: list = [None] * len(sizes)
            for b, e in enumerate(idx):
                for (j, u), sg in internal[e][3].items():
                    if splits[j] is None:
                        splits[j] = np.zeros((B, sizes[j]), dtype=np.int8)
                    splits[j][b, u] = sg
            par = np.array([internal[e][4] for e in idx])
            kn = np.where(par[:, None] >= 0, out[np.maximum(par, 0)], 0).astype(np.int8)
            _, _, pre = bc.bound(
                lo,
                hi,
                np.zeros((1, n_out)),
                splits=splits if any(x is not None for x in splits) else None,
                unstable_only=True,
                known=kn,
            )
            out[idx] = bc.signs(pre, B)
    return out


def _pre_error(pre: list, sizes: list[int]) -> str:
    """What is wrong with a proof's ``pre`` given the network (empty when nothing): the
    indices' ranges, and the forms :func:`~netopt.bounds.proof_format.BabProof.from_dict`
    checks, again (a proof may be built in code)."""
    for k, e in enumerate(pre):
        try:
            j, units, sides, slopes = e
            j = int(j)
            units = np.asarray(units)
            sides = np.asarray(sides)
            if units.ndim != 1 or units.dtype.kind not in "iu" or sides.shape != units.shape:
                return f"pre[{k}]: units must be integers, one side each"
            if not np.all((sides == 1) | (sides == -1)):
                return f"pre[{k}]: every side is 1 (a lower bound) or -1 (an upper one)"
        except (TypeError, ValueError):
            return f"pre[{k}] must be (layer, units, sides, slopes)"
        if not 0 <= j < len(sizes):
            return f"pre[{k}]: activation op {j} out of range (the network has {len(sizes)})"
        if len(units) and (units.min() < 0 or units.max() >= sizes[j]):
            return f"pre[{k}]: a unit is out of range (activation op {j} has {sizes[j]})"
        if len(units) > 2 * sizes[j]:
            # each unit has two bounds: more rows only repeat them (and cost memory)
            return f"pre[{k}]: {len(units)} rows for {sizes[j]} units' two bounds"
        for t in slopes:
            try:
                i, cols, v = t
                i, cols, v = int(i), np.asarray(cols), np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                return f"pre[{k}]: each slopes entry is (layer, units, (rows, units) slopes)"
            if not 0 <= i < j:
                return f"pre[{k}]: slopes of activation op {i} do not bound op {j}'s input"
            if cols.ndim != 1 or (len(cols) and cols.dtype.kind not in "iu"):
                return f"pre[{k}]: the units of op {i}'s slopes must be integers"
            if len(cols) and (cols.min() < 0 or cols.max() >= sizes[i]):
                return f"pre[{k}]: a unit of op {i} is out of range ({sizes[i]} units)"
            if v.shape != (len(units), len(cols)):
                return f"pre[{k}]: op {i}'s slopes must be {len(units)} rows of {len(cols)}"
    return ""


def _leaf_arrays(p: Any, k: int, sizes: list[int], n_rows: int) -> tuple[list, dict, Any]:
    """``params[k]`` checked against the network: slopes per layer, betas by (layer, unit),
    the rows' weights (or None)."""
    where = f"params[{k}]"
    slopes, betas, alphas, lam = _read_params(p, "proof." + where)
    if lam is not None:
        if lam.size != n_rows:
            raise InputError(f"{where}.lam has {lam.size} weights; the property has {n_rows} rows")
        if not np.all(np.isfinite(lam)):
            raise InputError(f"{where}.lam must be finite")
        # a negative weight is clipped to 0: the combination's claim stays sound
        lam = np.maximum(lam, 0.0)
    if alphas:
        # the slopes of a few units; the others take CROWN's adaptive slope (NaN)
        slopes = [np.full(n, np.nan) for n in sizes]
        for layer, unit, a in alphas:
            if layer >= len(sizes) or unit >= sizes[layer]:
                raise InputError(f"{where}.alphas: unit ({layer}, {unit}) out of range")
            slopes[layer][unit] = float(a)
    if slopes is not None:
        if len(slopes) != len(sizes):
            raise InputError(
                f"{where}.slopes has {len(slopes)} entries; the network has {len(sizes)} "
                "activation ops"
            )
        for j, s in enumerate(slopes):
            if s is not None and s.size != sizes[j]:
                raise InputError(
                    f"{where}.slopes[{j}] has {s.size} entries; activation op {j} has "
                    f"{sizes[j]} units"
                )
    b: dict[tuple[int, int], float] = {}
    for layer, unit, beta in betas:
        if layer >= len(sizes) or unit >= sizes[layer]:
            raise InputError(f"{where}.betas: unit ({layer}, {unit}) out of range")
        b[(layer, unit)] = float(beta)
    return (slopes or [None] * len(sizes)), b, lam


def _bound_leaves(
    bc: Any,
    P: BabProof,
    leaves: list[tuple],
    sizes: list[int],
    params: list,
    root: dict,
    known: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Whether each leaf is closed (its row's rigorous lower bound > d[row]), and why not.
    ``known``: per leaf the activation signs its parent's bounds prove (an inheriting
    proof), where every bound of it starts, with only the open units' rows
    (``unstable_only``)."""
    B = len(leaves)
    lo = np.stack([lf[1] for lf in leaves])
    hi = np.stack([lf[2] for lf in leaves])
    rows = np.array([lf[4] for lf in leaves], dtype=np.int64)
    # each leaf's claim: its row of C f - d, or a combination of the rows ("lam")
    C3, d_leaf = P.C[rows][:, None, :].copy(), P.d[rows].copy()
    mixed = np.zeros(B, dtype=bool)
    lams = np.zeros((B, P.d.size))
    nl = len(sizes)
    splits: list = [None] * nl
    slopes: list = [None] * nl
    betas: list = [None] * nl
    for b, lf in enumerate(leaves):
        for (j, u), s in lf[3].items():
            if splits[j] is None:
                splits[j] = np.zeros((B, sizes[j]), dtype=np.int8)
            splits[j][b, u] = s
        if not lf[5]:
            continue
        sl, bt, lam = params[lf[5][0]]
        if lam is not None:
            C3[b], d_leaf[b], mixed[b], lams[b] = lam @ P.C, lam @ P.d, True, lam
        for j, s in enumerate(sl):
            if s is not None:
                if slopes[j] is None:
                    slopes[j] = np.full((B, sizes[j]), np.nan)
                slopes[j][b] = s
        for (j, u), v in bt.items():
            if betas[j] is None:
                betas[j] = np.zeros((B, sizes[j]))
            betas[j][b, u] = v
    any_split = any(s is not None for s in splits)

    def cut(a: list, sel: np.ndarray) -> list | None:
        return None if a is None else [None if x is None else x[sel] for x in a]

    def bound(
        sel: np.ndarray, fixed: dict | None, prev: dict | None = None, inherit: bool = True
    ) -> np.ndarray:
        inh = inherit and known is not None
        lower, _, _ = bc.bound(
            lo[sel],
            hi[sel],
            C3[sel],
            prev,
            splits=cut(splits, sel) if any_split else None,
            slopes=cut(slopes, sel) if any(s is not None for s in slopes) else None,
            # a beta without a split on its leaf multiplies nothing (its sign is 0)
            betas=cut(betas, sel) if any_split and any(b_ is not None for b_ in betas) else None,
            fixed=fixed,
            unstable_only=inh,
            known=known[sel] if inh else None,
        )
        return lower[:, 0]

    lower = np.full(B, -np.inf)
    # leaves of the root's own box (ReLU splits only) first take the root's activation bounds,
    # intersected with their splits (as the search does): one final pass each; the rest, and
    # any leaf that does not close so, are bounded from scratch (each attempt is sound: a leaf
    # is closed by the best of them; fmax: a NaN attempt counts for nothing)
    at_root = np.all(lo == P.lo, axis=1) & np.all(hi == P.hi, axis=1)
    if at_root.any():
        sel = np.nonzero(at_root)[0]
        if "fixed" not in root:
            _, _, root_pre = bc.bound(P.lo[None], P.hi[None], P.C, pre_slopes=P.pre or None)
            root["fixed"] = {v: (a[0], b_[0]) for v, (a, b_) in root_pre.items()}
        fixed = root["fixed"]
        lower[sel] = bound(sel, fixed)
        # then the bounds recomputed with the splits and intersected with the root's (a
        # search's domains split in the first layer are bounded so)
        sel = sel[~(lower[sel] > d_leaf[sel])]
        if len(sel):
            lower[sel] = np.fmax(lower[sel], bound(sel, None, fixed))
    again = np.nonzero(~(lower > d_leaf))[0]
    if len(again):
        lower[again] = np.fmax(lower[again], bound(again, None))
    if known is not None:
        # an inherited sign derived from a bound within rounding of 0 may differ from the
        # search's (a relaxation exact or not): such a leaf once more with every unit's own
        # CROWN bounds and no inherited signs
        again = np.nonzero(~(lower > d_leaf))[0]
        if len(again):
            lower[again] = np.fmax(lower[again], bound(again, None, inherit=False))
    # a combination's claim lam^T (C f - d) > 0 needs the worst case of rounding lam @ C and
    # lam @ d on top
    sel = np.nonzero(mixed & np.isfinite(lower))[0]
    if len(sel):
        d_leaf[sel] += combination_slack(
            bc, P.C, P.d, lo[sel], hi[sel], cut(splits, sel) if any_split else None, lams[sel]
        )
    ok = lower > d_leaf
    why = [
        ""
        if ok[b]
        else f"open leaf: the lower bound {lower[b]:.9g} of "
        + (f"row {rows[b]}" if not mixed[b] else "its combination of the rows")
        + f" is not above d = {d_leaf[b]:.9g}"
        for b in range(B)
    ]
    return ok, why


def combination_claim(
    bc: Any,
    C: np.ndarray,
    d: np.ndarray,
    margin: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    splits: list | None,
    lams: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The row :math:`\mathrm{fl}(\lambda^\top C)` to bound per domain (``(B, 1, m)``) and what
    its lower bound must exceed for the domain to close on :math:`\lambda^\top (C f - d) > 0`:
    :math:`\mathrm{fl}(\lambda^\top (d + \text{margin}))` plus :func:`combination_slack`.
    The searches close a domain by a combination of the rows only so, as the check does."""
    need = lams @ (d + margin) + combination_slack(bc, C, d, lo, hi, splits, lams)
    return leaf_rows(lams, C)[:, None, :], need


def leaf_rows(lams: np.ndarray, C: np.ndarray) -> np.ndarray:
    r"""Each domain's combined row :math:`\mathrm{fl}(\lambda^\top C)` (``(B, m)``), formed
    leaf by leaf as :func:`check_proof` forms a leaf's (a batched product may round otherwise):
    a search closes a domain on the row the check will bound."""
    return np.stack([w @ C for w in lams]) if len(lams) else np.zeros((0, C.shape[1]))


def combination_slack(
    bc: Any,
    C: np.ndarray,
    d: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    splits: list | None,
    lams: np.ndarray,
) -> np.ndarray:
    r"""What rounding can take from the claim of a combination of the rows, per domain.

    A domain closed by weights :math:`\lambda` (``lams`` ``(B, k)``, :math:`\ge 0`) is bounded
    with :math:`c = \mathrm{fl}(\lambda^\top C)` and compared with :math:`\mathrm{fl}(\lambda^\top
    d)`; each is a dot product of :math:`k` terms, within :math:`\gamma_k = k u / (1 - k u)`
    (Higham, Thm. 3.5) of its exact value relative to :math:`|\lambda|^\top |C|` and
    :math:`|\lambda|^\top |d|`. With :math:`|f_j| \le F_j` on the domain (its rigorous output
    bounds, the box ``lo``/``hi`` with ``splits``),

    .. math::

        \lambda^\top (C f - d) \;\ge\; c^\top f - \mathrm{fl}(\lambda^\top d)
        - \gamma_k \big( (|\lambda|^\top |C|) F + |\lambda|^\top |d| \big),

    and the slack returned is that last term, doubled (its own rounding): the claim holds where
    the bound of :math:`c^\top f` exceeds :math:`\mathrm{fl}(\lambda^\top d)` plus the slack. The
    search (:mod:`netopt.bounds.branch_relu`) closes a domain only so, as the check does.
    """
    m = C.shape[1]
    low, _, _ = bc.bound(lo, hi, np.vstack([np.eye(m), -np.eye(m)]), splits=splits)
    return slack_of(low, C, d, lams)


def slack_of(low: np.ndarray, C: np.ndarray, d: np.ndarray, lams: np.ndarray) -> np.ndarray:
    r""":func:`combination_slack` from the domains' rigorous lower bounds ``low`` (``(B, 2m)``)
    of the outputs and of their negations (rows :math:`e_j`, then :math:`-e_j`)."""
    k, m = C.shape
    F = np.maximum(np.abs(low[:, :m]), np.abs(low[:, m:]))
    # an empty domain has lower bounds +inf (and is closed whatever the slack); any other
    # infinite bound would leave the slack inf or NaN, and then nothing closes on it
    F[np.isposinf(low).all(axis=1)] = 0.0
    u = np.finfo(np.float64).eps / 2
    gamma = (k + 2) * u / (1 - (k + 2) * u)
    a = np.abs(lams)
    return 2 * gamma * (((a @ np.abs(C)) * F).sum(axis=1) + a @ np.abs(d))
