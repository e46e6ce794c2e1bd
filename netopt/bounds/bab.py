"""Rigorous float64 CROWN bounds for a batch of input boxes (:class:`BatchCrown`).

The lower bounds of ``C f(x)`` over many boxes (or one box under different ReLU splits, slopes
and multipliers) are computed together in numpy, batched over the boxes, and hold for the exact
(real-arithmetic) network. They are the float64 side of branch and bound
(:func:`netopt.bounds.branch.branch_and_bound`): input splitting bounds its pieces with them,
ReLU splitting confirms each leaf with them, and :func:`netopt.bounds.proof.check_proof`
re-checks a proof's leaves with them.

Supported ops: the linear ones, ReLU and LeakyReLU (``0 <= alpha <= 1``). For other networks
:attr:`BatchCrown.ok` is False, :func:`~netopt.bounds.branch.branch_and_bound` returns None, and
callers fall back to the exact MILP.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netopt.bounds.crown import backsub
from netopt.bounds.interval import AffineMap, affine_interval
from netopt.ir.graph import Graph, Op
from netopt.ir.ops import is_linear
from netopt.ir.ops.activations import leaky_bound, relu_relaxation

__all__ = ["BatchCrown", "batch_crown_of"]

#: Linear ops whose interval bounds are exact, each on its own: every output entry is one input
#: entry, scaled (reshapes, index remaps, padding, elementwise scale, concatenation). One that
#: copies an entry before a mixing op (``concat(x, x)`` then a product) is not caught: the
#: interval then stays loose there, which costs tightness only.
_EXACT_OPS = frozenset({"reshape", "transpose", "select", "pad", "identity", "scale", "concat"})
#: with ``unstable_only``, the rows of the open units alone once at most this share of a batch's
#: (box, unit) pairs in a layer is open; past it every unit's row in one pass (about as fast
#: there, without the gathers and groups: measured on 5-50-50-50-5, 0.5 to 1.0 tried)
SPARSE_MAX_OPEN = 0.75


class BatchCrown:
    """CROWN bounds of ``C @ output`` for a batch of input boxes (one input, one output).

    The bounds hold for the exact (real-arithmetic) network, not only its float64 evaluation:
    the interval pass uses :func:`netopt.bounds.affine_interval` (centre-radius with Higham's
    a-priori error term) and :func:`netopt.bounds.leaky_bound`, and the back-substitution
    :func:`netopt.bounds.backsub`, which carries a rigorous rounding-error term per row and
    rounds the final bound outward. A box that these bounds close (a leaf of a
    branch-and-bound proof) is therefore closed for the exact network.
    """

    def __init__(self, graph: Graph) -> None:
        from netopt.ir.relu_form import relu_form

        # the graph given; the one bounded has its max pooling as ReLUs (the same function),
        # whose units the splits, slopes and multipliers of a proof refer to
        self.source = graph
        graph = relu_form(graph)
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
        self.acts = [o for o in graph.ops if o.op in ("relu", "leaky_relu")]
        self.relu_inputs = [o.inputs[0] for o in self.acts]
        self.act_of = {v: j for j, v in enumerate(self.relu_inputs)}
        #: where each activation op's units start and end in a concatenation of all of them
        self.offsets = np.cumsum([0] + [graph.value(v).size for v in self.relu_inputs])

    def signs(self, pre: dict, B: int) -> np.ndarray:
        """The signs that activation-input bounds ``pre`` (``{value: (L, H)}``, each
        ``(B, size)``, as :meth:`bound` returns them) prove, as ``(B, N)`` int8: +1 where
        ``L >= 0``, -1 where ``H <= 0`` (NaN bounds prove nothing), else 0; the ``known``
        of :meth:`bound` for the ``B`` boxes' pieces."""
        cols = [
            np.where(pre[v][0] >= 0, 1, np.where(pre[v][1] <= 0, -1, 0)) for v in self.relu_inputs
        ]
        if not cols:
            return np.zeros((B, 0), dtype=np.int8)
        return np.concatenate(cols, axis=1).astype(np.int8)

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
        start_const: np.ndarray | None = None,
        upper: bool = True,
    ):
        """Lower and upper bounds of ``start @ value(vid)`` (``+ start_const``) per box;
        ``start`` is (B, n, size); without ``upper`` the upper bounds are +inf."""
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
            start_const=start_const,
            upper=upper,
        )
        return (lo, hi, coef) if want_coef else (lo, hi)

    def _unit_bounds(
        self, op: Op, L: dict, H: dict, x_lo, x_hi, gauges: dict, unstable_only: bool = False
    ) -> tuple:
        r"""CROWN's lower and upper bounds of every unit of the linear op ``op``'s output;
        with ``unstable_only`` of the units whose sign ``L``, ``H`` leave open, the others'
        bounds returned as they are.

        The rows are the identity's; a dense one-input op :math:`z = M x + b` whose matrix is
        the op's own (not average pooling's rounded :math:`\mathrm{fl}(1/k)`, whose error the
        identity's step charges) turns them into :math:`M` and :math:`b` with no rounding
        (each entry a product by 1 plus exact zeros), so they start at :math:`x`
        (``backsub``'s ``start_const``): the same bounds without the product of the identity
        by :math:`M` and without its error term.
        """
        out = op.outputs[0]
        B, s = len(x_lo), self.graph.value(out).size
        amap = self.maps[op.id]
        m = amap.mats[0]
        direct = len(op.inputs) == 1 and isinstance(m, np.ndarray) and not amap.rounded
        if unstable_only:
            # a unit whose interval bounds already fix its activation's sign (NaN bounds do
            # not) is relaxed exactly (the identity, zero, or alpha x) whatever its bounds, so
            # only the others' rows are back-substituted (its looser bounds still reach the
            # next layer's interval). Boxes are grouped by how many rows they need (within a
            # factor of 2), each group's rows padded to its most with units of their own box.
            # Only the open units take the rows' bounds (not the padding's, nor the dense
            # pass's where most are open): a box's bounds are then the same, to rounding,
            # whatever boxes share its batch, as its checker needs them
            open_ = ~((L[out] >= 0) | (H[out] <= 0))
            cnt = open_.sum(axis=1)
            if int(cnt.sum()) > SPARSE_MAX_OPEN * open_.size:
                cl, cu = self._unit_bounds(op, L, H, x_lo, x_hi, gauges)
            else:
                cl, cu = L[out].copy(), H[out].copy()
                order = np.argsort(~open_, axis=1, kind="stable")
                level = np.ceil(np.log2(np.maximum(cnt, 1))).astype(int)
                level[cnt == 0] = -1
                for lv in np.unique(level[level >= 0]):
                    bi = np.nonzero(level == lv)[0]
                    k = int(cnt[bi].max())
                    ui = order[bi, :k]
                    sub = {v: a[bi] for v, a in L.items()}, {v: a[bi] for v, a in H.items()}
                    if direct:
                        lo_k, hi_k = self._backsub(
                            op.inputs[0],
                            m[ui],
                            *sub,
                            x_lo[bi],
                            x_hi[bi],
                            gauges={},
                            start_const=amap.bias[ui],
                        )
                    else:
                        eye = np.eye(s)[ui]
                        lo_k, hi_k = self._backsub(out, eye, *sub, x_lo[bi], x_hi[bi], gauges={})
                    cl[bi[:, None], ui], cu[bi[:, None], ui] = lo_k, hi_k
            return np.where(open_, cl, L[out]), np.where(open_, cu, H[out])
        if direct:
            start = np.broadcast_to(m, (B, *m.shape))
            const = np.broadcast_to(amap.bias, (B, s))
            return self._backsub(
                op.inputs[0], start, L, H, x_lo, x_hi, gauges=gauges, start_const=const
            )
        eye = np.broadcast_to(np.eye(s), (B, s, s))
        return self._backsub(out, eye, L, H, x_lo, x_hi, gauges=gauges)

    def _rows_bound(self, vid: str, entry: tuple, L: dict, H: dict, x_lo, x_hi) -> None:
        """Tighten ``L[vid]``, ``H[vid]`` (in place of the dict entries) by the rows of one
        ``pre_slopes`` entry, each back-substituted with its own slopes (one "box" per box and
        row)."""
        _, units, sides, slopes = entry
        R, B = len(units), len(x_lo)
        if R == 0:
            return
        Lr = {v: np.repeat(a, R, axis=0) for v, a in L.items()}
        Hr = {v: np.repeat(a, R, axis=0) for v, a in H.items()}
        relax: dict = {}
        for i, cols, vals in slopes:
            op = self.acts[i]
            x, a = op.inputs[0], float(op.attrs.get("alpha", 0.0))
            if x not in Lr:
                continue  # (not bounded before vid, so not below it: no line of it is used)
            sl = np.full((R, self.graph.value(x).size), np.nan)
            sl[:, cols] = vals
            sl = np.tile(sl, (B, 1))
            sl = np.where(np.isnan(sl), np.where(Hr[x] > -Lr[x], 1.0, a), sl)
            relax[op.id] = ("lines", *relu_relaxation(Lr[x], Hr[x], a, lower=sl))
        start = np.zeros((B * R, 1, self.graph.value(vid).size))
        start[np.arange(B * R), 0, np.tile(units, B)] = np.tile(sides, B).astype(np.float64)
        with np.errstate(invalid="ignore"):
            low, _ = self._backsub(
                vid,
                start,
                Lr,
                Hr,
                np.repeat(x_lo, R, axis=0),
                np.repeat(x_hi, R, axis=0),
                relax=relax,
            )
        low = low[:, 0].reshape(B, R)
        lo_v, hi_v = L[vid].copy(), H[vid].copy()
        up, dn = sides == 1, sides == -1  # (any other side bounds nothing here)
        np.maximum.at(lo_v.T, units[up], low[:, up].T)
        # a lower bound of -z, negated (exactly), is an upper bound of z
        np.minimum.at(hi_v.T, units[dn], -low[:, dn].T)
        L[vid], H[vid] = lo_v, hi_v

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
        pre_slopes: list | None = None,
        unstable_only: bool = False,
        known: np.ndarray | None = None,
    ):
        r"""Lower bounds of ``C @ f(x)`` over each box, and the input coefficients of the bound.

        Parameters
        ----------
        x_lo, x_hi : (B, n_in) flattened boxes
        C : (m, n_out), or (B, m, n_out): rows of its own for each box
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
            them all: the root of a ReLU-splitting search, whose leaves share its box), taken
            as the bounds of those values (then intersected with the box's splits), instead of
            back-substituting for them: the final bound's pass alone per box. Looser than
            recomputing when a box is smaller or an earlier layer is split, never unsound.
        pre_slopes : list, optional
            Rows of activation inputs bounded by CROWN with slopes of their own (alpha-CROWN's
            optimized intermediate bounds, :attr:`netopt.bounds.proof_format.BabProof.pre`):
            entries ``(layer, units, sides, slopes)``, row ``r`` the lower bound of
            ``sides[r] * z[units[r]]`` of activation op ``layer``, with the lower-line slopes
            ``slopes`` (``(i, cols, (R, len(cols)))`` per earlier activation op ``i``; clipped
            into :math:`[\alpha, 1]` like any slope, the other units adaptive) on every box.
            Each row's bound is sound whatever its slopes, so it tightens the unit's bounds
            where it is better; the indices must be in range (the proof checker checks them).
        unstable_only : bool
            Back-substitute, per box, only the rows of the activation inputs whose interval
            bounds (met with ``known``) leave the sign open. A unit whose sign they fix is
            relaxed exactly (the identity, zero, or a leaky unit's :math:`\alpha z`) whatever
            its bounds, so the cost falls with the share of stable units; but its bounds stay
            the interval's, and the next layer's interval bounds, met with CROWN's, can come out
            looser (rarely, and then the final bound too). A search and its checker must agree on it: an inheriting proof
            (:attr:`netopt.bounds.proof_format.BabProof.inherit`) is bounded so throughout.
        known : (B, N) int array, optional
            Signs of the activation inputs (all activation ops' units concatenated, in
            ``graph.ops`` order; :meth:`signs`) proven on a superset of each box, e.g. by its
            parent's bounds: +1 where :math:`z \ge 0` there, -1 where :math:`z \le 0`, 0
            nothing. Each unit's interval bounds meet that half-line before anything else, so
            a unit fixed so is relaxed exactly and, with ``unstable_only``, needs no row of its
            own: a small box's bounds at a fraction of the cost. Like ``prev`` a caller's claim;
            a proof that uses it says so (:attr:`~netopt.bounds.proof_format.BabProof.inherit`)
            and the checker derives it again from the tree.

        Returns
        -------
        lower : (B, m); coef : (B, m, n_in); relu bounds ``{value: (L, H)}`` for the children
        """
        g = self.graph
        B = len(x_lo)
        L = {g.inputs[0]: x_lo}
        H = {g.inputs[0]: x_hi}
        affine = {g.inputs[0]}
        # the most ops that mix entries on any path from the input to each affine value
        mixes = {g.inputs[0]: 0}
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
                if known is not None and out in self.act_of:
                    # signs proven on a superset of each box (its parent's bounds)
                    kn = known[
                        :, self.offsets[self.act_of[out]] : self.offsets[self.act_of[out] + 1]
                    ]
                    L[out] = np.where(kn > 0, np.maximum(L[out], 0.0), L[out])
                    H[out] = np.where(kn < 0, np.minimum(H[out], 0.0), H[out])
                if all(i in affine for i in op.inputs):
                    affine.add(out)
                    mixes[out] = max(mixes[i] for i in op.inputs) + (op.op not in _EXACT_OPS)
                    if out in self.relu_inputs and mixes[out] > 1:
                        # two ops that mix entries between the input and here (products in
                        # turn, or a skip added to a product of the input): the interval of
                        # each in turn is looser than their composition's range, which the
                        # back-substitution gives (the root's, when given: the same box's)
                        s = g.value(out).size
                        if fixed is not None and out in fixed:
                            L[out] = np.broadcast_to(fixed[out][0], (B, s)).copy()
                            H[out] = np.broadcast_to(fixed[out][1], (B, s)).copy()
                        else:
                            cl, cu = self._unit_bounds(op, L, H, x_lo, x_hi, gauges, unstable_only)
                            L[out], H[out] = np.maximum(L[out], cl), np.minimum(H[out], cu)
                elif fixed is not None and out in fixed:
                    # the root's bounds as they are (the interval pass's bounds, narrowed by
                    # splits below, are not intersected in): the relaxation the torch search
                    # optimized its slopes and multipliers on, which a different one — even a
                    # tighter — can bound worse with the same parameters
                    s = g.value(out).size
                    L[out] = np.broadcast_to(fixed[out][0], (B, s)).copy()
                    H[out] = np.broadcast_to(fixed[out][1], (B, s)).copy()
                elif out in self.relu_inputs:
                    cl, cu = self._unit_bounds(op, L, H, x_lo, x_hi, gauges, unstable_only)
                    L[out], H[out] = np.maximum(L[out], cl), np.minimum(H[out], cu)
                if prev is not None and out in prev:
                    L[out] = np.maximum(L[out], prev[out][0])
                    H[out] = np.minimum(H[out], prev[out][1])
                if pre_slopes and fixed is None and out in self.act_of and out not in affine:
                    for e in pre_slopes:
                        if e[0] == self.act_of[out]:
                            self._rows_bound(out, e, L, H, x_lo, x_hi)
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
        if C.ndim == 3:
            start = C  # rows of their own per box
        elif rows is None:
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
                upper=False,  # (the rows' lower bounds only)
            )
        # the minimum over an empty set: +inf
        lo = np.where(empty[:, None], np.inf, lo)
        return lo, coef, {v: (L[v], H[v]) for v in self.relu_inputs}


def batch_crown_of(net: Any) -> BatchCrown:
    """The network's :class:`BatchCrown`, built once (its dense maps cost a pass over the
    weights) and kept on the network."""
    bc = getattr(net, "_batch_crown", None)
    if bc is None or bc.source is not net.graph:
        bc = BatchCrown(net.graph)
        net._batch_crown = bc
    return bc
