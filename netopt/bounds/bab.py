"""Branch and bound over the input box with batched symbolic (CROWN) bounds.

For networks with few inputs (ACAS Xu has five), splitting the input box and bounding each piece
with CROWN decides most properties faster than any MILP: a piece is discarded once a bound proves
that no input in it satisfies the constraints, a piece whose centre satisfies them is a
counterexample, and the rest are split in two along the input with the largest influence on the
bound ("smear": coefficient times width). All pieces of one round are bounded together in numpy,
batched over the pieces.

Supported ops: the linear ones, ReLU and LeakyReLU (``0 <= alpha <= 1``). Other networks return
None from :func:`bab_feasibility`, and callers fall back to the exact MILP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.bounds.crown import backsub
from netopt.bounds.interval import AffineMap, affine_interval
from netopt.ir.graph import Graph
from netopt.ir.ops import is_linear
from netopt.ir.ops.activations import leaky_bound, relu_relaxation

__all__ = ["BatchCrown", "bab_feasibility", "BabResult", "batch_crown_of"]


class BatchCrown:
    """CROWN bounds of ``C @ output`` for a batch of input boxes (one input, one output).

    The bounds hold for the exact (real-arithmetic) network, not only its float64 evaluation:
    the interval pass uses :func:`netopt.bounds.affine_interval` (centre-radius with Higham's
    a-priori error term) and :func:`netopt.bounds.leaky_bound`, and the back-substitution
    :func:`netopt.bounds.backsub`, which carries a rigorous rounding-error term per row and
    rounds the final bound outward. An "unsat" from :func:`bab_feasibility` is therefore a
    proof about the exact network.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.ok = len(graph.inputs) == 1 and all(
            is_linear(o)
            or (o.op in ("relu", "leaky_relu") and 0 <= float(o.attrs.get("alpha", 0)) <= 1)
            for o in graph.ops
        )
        self.maps: dict[str, AffineMap] = {}
        if self.ok:
            for o in graph.ops:
                if is_linear(o):
                    # dense layers go through BLAS; scipy's sparse x wide-dense product is slow
                    shapes = [graph.value(i).shape for i in o.inputs]
                    self.maps[o.id] = AffineMap.of(o, shapes, dense_above=0.2)
        self.relu_inputs = [o.inputs[0] for o in graph.ops if o.op in ("relu", "leaky_relu")]

    def _backsub(
        self,
        vid: str,
        start: np.ndarray,
        L: dict,
        H: dict,
        x_lo: np.ndarray,
        x_hi: np.ndarray,
        want_coef: bool = False,
        relax: dict | None = None,
        extra_lower: dict | None = None,
        gauges: dict | None = None,
    ):
        """Lower and upper bounds of ``start @ value(vid)`` per box; ``start`` is (B, n, size)."""
        inp = self.graph.inputs[0]
        lo, hi, coef = backsub(
            self.graph,
            vid,
            start,
            L,
            H,
            {inp: x_lo},
            {inp: x_hi},
            self.maps,
            relax=relax,
            extra_lower=extra_lower,
            gauges=gauges,
        )
        return (lo, hi, coef) if want_coef else (lo, hi)

    def bound(
        self,
        x_lo: np.ndarray,
        x_hi: np.ndarray,
        C: np.ndarray,
        prev: dict | None = None,
        *,
        rows: np.ndarray | None = None,
        splits: list | None = None,
        slopes: list | None = None,
        betas: list | None = None,
        fixed: dict | None = None,
    ):
        r"""Lower bounds of ``C @ f(x)`` over each box, and the input coefficients of the bound.

        Parameters
        ----------
        x_lo, x_hi : (B, n_in) flattened boxes
        C : (m, n_out)
        prev : dict, optional
            ReLU-input bounds ``{value: (L, H)}`` (each (B, size)) known for a superset of each
            box (its parent piece): valid here too, so they are intersected with the new ones.
        rows : (B,) int array, optional
            Bound only row ``C[rows[b]]`` on box ``b`` (then ``m`` is 1 in the results).
        splits : list, optional
            Per activation op (relu / leaky_relu, in ``graph.ops`` order) None or a (B, n_j)
            int array in {-1, 0, 1}: the box is restricted to the points whose activation input
            :math:`z_j` satisfies :math:`s_j z_j \ge 0` where :math:`s_j \ne 0`. The input's
            bounds are intersected with that half-line before its relaxation is built and
            before later layers are bounded; a box where some lower bound then exceeds its
            upper bound is empty, and its lower bounds are :math:`+\infty`.
        slopes : list, optional
            Per activation op None or (B, n_j) lower-line slopes of its unstable units for the
            final bound (alpha-CROWN); :func:`~netopt.ir.ops.activations.relu_relaxation`
            clips them into :math:`[\alpha, 1]`, and NaN entries take CROWN's adaptive slope,
            so no slope makes the bound false. The intermediate bounds use the adaptive slopes.
        betas : list, optional
            Per activation op None or (B, n_j) beta-CROWN multipliers of the split constraints
            for the final bound, clipped to :math:`\ge 0` (NaN: 0): on the box
            :math:`\sum_j \beta_j s_j z_j \ge 0`, so :math:`c^\top f \ge c^\top f - \sum_j
            \beta_j s_j z_j`, which :func:`~netopt.bounds.crown.backsub` bounds below
            (``extra_lower``). Needs ``splits``; unsplit units contribute nothing.

        fixed : dict, optional
            ReLU-input bounds ``{value: (L, H)}`` valid on every box (those of a box containing
            them all: the root of a ReLU-splitting search, whose leaves share its box), used
            instead of back-substituting for them: one interval pass and the final bound per
            box. Looser than recomputing when a box is smaller or an earlier layer is split,
            never unsound.

        Returns
        -------
        lower : (B, m); coef : (B, m, n_in); relu bounds ``{value: (L, H)}`` for the children
        """
        g = self.graph
        B = len(x_lo)
        L = {g.inputs[0]: x_lo}
        H = {g.inputs[0]: x_hi}
        affine = {g.inputs[0]}
        empty = np.zeros(B, dtype=bool)
        # the linear ops' error gauges, computed once for all the layers' back-substitutions:
        # a gauge depends on its op's input bounds, which only ever shrink after it is first
        # needed (intersections with splits or a parent's bounds), so a kept gauge can only
        # overestimate the rounding error, never under
        gauges: dict = {}
        relax: dict = {}
        extra: dict = {}
        j = -1  # the index of the activation op
        for op in g.ops:
            out = op.outputs[0]
            if is_linear(op):
                amap = self.maps[op.id]
                L[out], H[out] = affine_interval(
                    amap, [L[i] for i in op.inputs], [H[i] for i in op.inputs]
                )
                if all(i in affine for i in op.inputs):
                    affine.add(out)
                elif fixed is not None and out in fixed:
                    L[out] = np.maximum(L[out], fixed[out][0])
                    H[out] = np.minimum(H[out], fixed[out][1])
                elif out in self.relu_inputs:
                    s = g.value(out).size
                    eye = np.broadcast_to(np.eye(s), (B, s, s))
                    cl, cu = self._backsub(out, eye, L, H, x_lo, x_hi, gauges=gauges)
                    L[out], H[out] = np.maximum(L[out], cl), np.minimum(H[out], cu)
                if prev is not None and out in prev:
                    L[out] = np.maximum(L[out], prev[out][0])
                    H[out] = np.minimum(H[out], prev[out][1])
            else:
                j += 1
                a = float(op.attrs.get("alpha", 0.0))
                x = op.inputs[0]
                sp = None if splits is None else splits[j]
                if sp is not None:
                    # every point of the box has s z >= 0: z's bounds meet that half-line
                    sp = np.asarray(sp)
                    L[x] = np.where(sp > 0, np.maximum(L[x], 0.0), L[x])
                    H[x] = np.where(sp < 0, np.minimum(H[x], 0.0), H[x])
                    bt = None if betas is None else betas[j]
                    if bt is not None:
                        bt = np.nan_to_num(np.asarray(bt, dtype=np.float64), nan=0.0)
                        bt = np.maximum(bt, 0.0)
                        # -beta s, exact (s is 0 or +-1); an infinite beta gives an infinite
                        # coefficient, hence an infinite (useless, still sound) bound
                        extra[x] = np.where(sp != 0, -(bt * sp), 0.0)
                # NaN bounds mean nothing: such a box is never closed by emptiness
                empty |= np.any(L[x] > H[x], axis=-1)
                sl = None if slopes is None else slopes[j]
                if sl is not None:
                    sl = np.asarray(sl, dtype=np.float64)
                    adaptive = np.where(H[x] > -L[x], 1.0, a)
                    sl = np.where(np.isnan(sl), adaptive, sl)
                    relax[op.id] = ("lines", *relu_relaxation(L[x], H[x], a, lower=sl))
                # 0 <= alpha <= 1: monotone; alpha * x rounds, so outward
                L[out] = leaky_bound(L[x], a, -1)
                H[out] = leaky_bound(H[x], a, +1)
        C = np.asarray(C, dtype=np.float64)
        if rows is None:
            start = np.broadcast_to(C, (B, *np.shape(C)))
        else:
            start = np.atleast_2d(C)[np.asarray(rows, dtype=np.int64)][:, None, :]
        m = start.shape[1]
        ext = {v: np.broadcast_to(e[:, None, :], (B, m, e.shape[-1])) for v, e in extra.items()}
        with np.errstate(invalid="ignore"):
            lo, _, coef = self._backsub(
                g.outputs[0],
                start,
                L,
                H,
                x_lo,
                x_hi,
                want_coef=True,
                relax=relax or None,
                extra_lower=ext or None,
                gauges=gauges,
            )
        # the minimum over an empty set: +inf
        lo = np.where(empty[:, None], np.inf, lo)
        return lo, coef, {v: (L[v], H[v]) for v in self.relu_inputs}


def batch_crown_of(net: Any) -> BatchCrown:
    """The network's :class:`BatchCrown`, built once (its dense maps cost a pass over the
    weights) and kept on the network."""
    bc = getattr(net, "_batch_crown", None)
    if bc is None or bc.graph is not net.graph:
        bc = BatchCrown(net.graph)
        net._batch_crown = bc
    return bc


def _take(queue: list, batch: int) -> tuple[np.ndarray, np.ndarray, dict | None, np.ndarray]:
    """Pop up to ``batch`` pieces from the front of the queue, merged into arrays.

    A queue item is ``(lo, hi, prev, ids)``: boxes, their parents' ReLU bounds (or None) and
    their node numbers in the recorded tree.
    """
    los, his, prevs, idss, n = [], [], [], [], 0
    while queue and n < batch:
        lo, hi, prev, ids = queue.pop(0)
        k = min(batch - n, len(lo))
        if k < len(lo):
            queue.insert(
                0,
                (
                    lo[k:],
                    hi[k:],
                    None if prev is None else {v: (a[k:], b[k:]) for v, (a, b) in prev.items()},
                    ids[k:],
                ),
            )
            lo, hi, ids = lo[:k], hi[:k], ids[:k]
            prev = None if prev is None else {v: (a[:k], b[:k]) for v, (a, b) in prev.items()}
        los.append(lo)
        his.append(hi)
        prevs.append(prev)
        idss.append(ids)
        n += k
    if any(p is None for p in prevs):
        merged = None
    else:
        merged = {
            v: (np.concatenate([p[v][0] for p in prevs]), np.concatenate([p[v][1] for p in prevs]))
            for v in prevs[0]
        }
    return np.concatenate(los), np.concatenate(his), merged, np.concatenate(idss)


@dataclass
class BabResult:
    verdict: str  # "sat", "unsat" or "unknown"
    x: np.ndarray | None = None
    boxes: int = 0
    seconds: float = 0.0
    #: with ``record=True`` and an "unsat" verdict, the tree as a
    #: :class:`~netopt.bounds.proof_format.BabProof` that :func:`~netopt.bounds.proof.check_proof`
    #: re-checks
    proof: Any = None


def bab_feasibility(
    net,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    *,
    time_limit: float = 10.0,
    batch: int = 512,
    max_boxes: int = 2_000_000,
    inherit: bool = False,
    record: bool = False,
) -> BabResult | None:
    """Is there ``x`` in ``[lo, hi]`` with ``C f(x) <= d``? Input splitting with CROWN.

    Returns None when the network has ops this method does not cover. "unsat" is a proof (every
    piece of the box has a constraint row whose sound lower bound exceeds its limit); "sat" comes
    with a point whose float64 forward pass satisfies every row. With ``record``, an "unsat"
    result carries the search tree as a :class:`~netopt.bounds.proof.BabProof` (``proof``).
    """
    bc = batch_crown_of(net)
    if not bc.ok:
        return None
    t0 = time.perf_counter()
    shape = tuple(net.input_shape)
    lo = np.asarray(lo, dtype=np.float64).reshape(1, -1)
    hi = np.asarray(hi, dtype=np.float64).reshape(1, -1)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    # the queue holds pieces with the ReLU-input bounds of their parent
    queue: list[tuple[np.ndarray, np.ndarray, dict | None, np.ndarray]] = [
        (lo, hi, None, np.zeros(1, dtype=np.int64))
    ]
    # the recorded tree: node number -> ("leaf", row) or ("x", i, cut, first child)
    tree: list = [None]
    n_boxes = 0
    while queue:
        if time.perf_counter() - t0 > time_limit or n_boxes > max_boxes:
            return BabResult("unknown", None, n_boxes, time.perf_counter() - t0)
        cur_l, cur_h, prev, ids = _take(queue, batch)
        n_boxes += len(cur_l)
        # parents' ReLU bounds are valid for their pieces, but intersecting them changed CROWN's
        # adaptive slopes for the worse on ACAS Xu (16x more pieces on property 3): off for now
        lower, coef, relu_b = bc.bound(cur_l, cur_h, C, prev if inherit else None)
        open_ = ~np.any(lower > d, axis=1)
        if record:
            best = np.argmax(lower - d, axis=1)
            for n_, r_ in zip(ids[~open_], best[~open_], strict=True):
                tree[n_] = ("leaf", int(r_))
        if not open_.any():
            continue
        cur_l, cur_h, lower, coef = cur_l[open_], cur_h[open_], lower[open_], coef[open_]
        ids = ids[open_]
        relu_b = {v: (a[open_], b_[open_]) for v, (a, b_) in relu_b.items()}
        # a counterexample at the centre of an open piece, or at the corner minimizing the
        # linear lower bound of its hardest row (where the relaxation points)?
        mid = (cur_l + cur_h) / 2
        row = np.argmin(d[None, :] - lower, axis=1)
        a = coef[np.arange(len(row)), row]
        corner = np.where(a > 0, cur_l, cur_h)
        cand = np.concatenate([mid, corner, (mid + corner) / 2])
        y = net.forward(cand.reshape(-1, *shape)).reshape(len(cand), -1)
        ok = np.nonzero(np.all(y @ C.T <= d, axis=1))[0]
        if len(ok):
            return BabResult("sat", cand[ok[0]].reshape(shape), n_boxes, time.perf_counter() - t0)
        # split along the input with the largest smear of the hardest row's bound
        smear = np.abs(a) * (cur_h - cur_l)
        smear = np.where(cur_h - cur_l > 0, smear, -1)
        j = smear.argmax(axis=1)
        cut = mid[np.arange(len(j)), j]
        lo2, hi1 = cur_l.copy(), cur_h.copy()
        hi1[np.arange(len(j)), j] = cut
        lo2[np.arange(len(j)), j] = cut
        # depth-first-ish: new pieces go first so that memory stays bounded
        first = len(tree) + np.arange(len(j), dtype=np.int64)
        second = first + len(j)
        if record:
            for n_, j_, c_, f_ in zip(ids, j, cut, first, strict=True):
                tree[n_] = ("x", int(j_), float(c_), int(f_), int(f_) + len(j))
            tree.extend([None] * (2 * len(j)))
        queue[:0] = [(cur_l, hi1, relu_b, first), (lo2, cur_h, relu_b, second)]
    res = BabResult("unsat", None, n_boxes, time.perf_counter() - t0)
    if record:
        from netopt.bounds.proof_format import BabProof

        res.proof = BabProof(lo[0], hi[0], C, d, _preorder(tree), [])
    return res


def _preorder(tree: list) -> list:
    """The recorded tree's nodes in pre-order (iteratively: the tree may be deep).

    ``tree[n]`` is ``("leaf", row)`` or ``("x", i, cut, first, second)`` (children's numbers).
    """
    out: list = []
    stack = [0]
    while stack:
        node = tree[stack.pop()]
        if node[0] == "leaf":
            out.append(["leaf", node[1]])
        else:
            out.append(["x", node[1], node[2]])
            stack.append(node[4])
            stack.append(node[3])
    return out
