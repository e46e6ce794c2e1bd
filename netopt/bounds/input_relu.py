r"""ReLU splits under input splitting: boxes that alpha-CROWN leaves open, closed by a few splits.

Near a nearly tight point (ACAS Xu 3_3 prop 2 comes within 1e-3 of a counterexample) input
splitting's boxes keep a dozen or more unstable ReLUs until they are tiny, and alpha-CROWN
(:meth:`netopt.bounds.branch_input._InputSearch._alpha`) leaves most of those it tries open by
a few thousandths. Halving such a box shrinks every unit's relaxation a little; splitting one
unit removes its relaxation altogether. So a box alpha-CROWN leaves open is split on ReLUs, to
at most :data:`RELU_SPLIT_DEPTH` levels, each domain on the unit chosen by filtered smart
branching (of its :data:`FSB_CANDIDATES` units of the largest BaBSR score,
:func:`~netopt.bounds.branching.babsr_scores`, the one whose two halves, bounded once with
the parent's slopes, leave the least to close) and its halves bounded by beta-CROWN (the
splits' multipliers optimized with the slopes, warm-started from the parent's). A box all of
whose leaves close, each confirmed in rigorous float64 with the slopes and multipliers it
records (``"alphas"``, ``"betas"``), becomes a subtree of ReLU splits (``["r", layer,
unit]``) in the proof; any other goes back to input splitting.

A box of only one to three unstable ReLUs is closed, before alpha-CROWN, through all its pieces
(:func:`close_by_pieces`: an LP per sign pattern gives the combination of the disjunct's rows
and the multipliers that make the piece's bound exact), recorded as the same kind of subtree.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from netopt.bounds.fsb import children_splits

__all__ = [
    "FSB_CANDIDATES",
    "RELU_SPLIT_DEPTH",
    "RELU_SPLIT_ITERS",
    "close_by_pieces",
    "close_by_relu_splits",
    "slope_record",
]

#: Adam steps of beta-CROWN on each level's halves.
RELU_SPLIT_ITERS = 10

#: Levels of ReLU splits under one box at most (3: at most eight leaves).
RELU_SPLIT_DEPTH = 3

#: Units of the largest BaBSR score whose halves are bounded to choose a split.
FSB_CANDIDATES = 2


def close_by_relu_splits(
    search: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    ids: np.ndarray,
    depth: np.ndarray,
    fails: list,
    *,
    lr: float,
    decimals: int,
) -> np.ndarray:
    """The boxes of ``fails`` closed by ReLU splits: a bool mask over the batch ``lo``, ``hi``.

    ``fails`` holds ``(group, batch indices, SpecBound)``: the boxes alpha-CROWN left open for
    that disjunct, and its bounds of them (slopes, activation bounds, coefficients). ``search``
    is the input-splitting run (:class:`netopt.bounds.branch_input._InputSearch`: its engines,
    rows, tree and statistics); ``lr`` is the slopes' learning rate, ``decimals`` those a
    leaf's slopes are rounded to.
    """
    closed = np.zeros(len(lo), dtype=bool)
    for g, idx, sb in fails:
        _Boxes(search, g, lo, hi, idx, sb, lr, decimals).run(ids, depth, closed)
    return closed


class _Boxes:
    """ReLU splitting under the boxes ``idx`` of one disjunct ``g``, level by level."""

    def __init__(
        self,
        search: Any,
        g: int,
        lo: np.ndarray,
        hi: np.ndarray,
        idx: Any,
        sb: Any,
        lr: float,
        decimals: int,
    ) -> None:
        self.s, self.g, self.idx = search, g, np.asarray(idx)
        self.lr, self.decimals = lr, decimals
        self.opt = search.optimizer()
        self.sizes = [int(w.shape[0]) for w in self.opt.W[: self.opt.n_act]]
        self.offs = np.cumsum([0, *self.sizes])
        self.rows = search._rows_of(g)
        self.lo, self.hi = lo[self.idx], hi[self.idx]
        self.sb = sb
        # per box: its leaves {path: (local row, params, child index in its level's batch)}
        # and splits {path prefix: (layer, unit)}; a path is a tuple of (layer, unit, sign)
        self.leaves: list[dict] = [{} for _ in self.idx]
        self.cuts: list[dict] = [{} for _ in self.idx]
        self.failed = np.zeros(len(self.idx), dtype=bool)
        self.f64: list = []  # per level: (box, path, lo, hi, row, splits, slopes, betas)

    def run(self, ids: np.ndarray, depth: np.ndarray, closed: np.ndarray) -> None:
        s = self.s
        s.stats["relu_split_tried"] += len(self.idx)
        # the open domains: box (index into idx), path, and their last bounds
        box = np.arange(len(self.idx))
        paths: list[tuple] = [() for _ in box]
        splits = [np.zeros((len(box), n), dtype=np.int8) for n in self.sizes]
        sb = self.sb
        for level in range(RELU_SPLIT_DEPTH):
            if not len(box):
                break
            lay, unit, ok = self._choose(sb, box, splits)
            self.failed[box[~ok]] = True
            keep = np.nonzero(ok & ~self.failed[box])[0]
            if not len(keep):
                break
            box, lay, unit = box[keep], lay[keep], unit[keep]
            paths = [paths[i] for i in keep]
            splits = [sp[keep] for sp in splits]
            D = len(box)
            for p in range(D):
                self.cuts[box[p]][paths[p]] = (int(lay[p]), int(unit[p]))
            # the halves, side-major: z <= 0 for every domain, then z >= 0
            ch = children_splits(splits, lay[:, None], unit[:, None])
            rep = np.concatenate([keep, keep])
            cbox = np.concatenate([box, box])
            cpaths = [paths[p] + ((int(lay[p]), int(unit[p]), -1),) for p in range(D)] + [
                paths[p] + ((int(lay[p]), int(unit[p]), 1),) for p in range(D)
            ]
            sb2 = numpy_spec(
                self.opt.alpha_crown(
                    self.lo[cbox],
                    self.hi[cbox],
                    s.C[self.rows],
                    s.d[self.rows],
                    splits=ch,
                    iters=RELU_SPLIT_ITERS,
                    lr=self.lr,
                    init=[x[rep] for x in sb.slopes],
                    beta=True,
                    init_betas=[b[rep] for b in sb.betas] if sb.betas else None,
                    # the box's activation bounds, clipped to the splits (a pass over the
                    # network per half saved; the float64 confirmation recomputes them with
                    # the splits)
                    pre=[(a[rep], b[rep]) for a, b in sb.pre],
                )
            )
            s.stats["relu_split_domains"] += 2 * D
            s.stats["nodes"] += 2 * D
            lower = sb2.lower.astype(np.float64)
            r = lower.argmax(axis=1)
            R = self.rows[r]
            shut = lower[np.arange(2 * D), r] > s.margin[R]
            last = level == RELU_SPLIT_DEPTH - 1
            self.failed[cbox[~shut & last]] = True
            for q in np.nonzero(shut)[0]:
                self.leaves[cbox[q]][cpaths[q]] = None
            self.f64.append(self._leaf_data(sb2, cbox, cpaths, ch, r, shut))
            nxt = np.nonzero(~shut & ~self.failed[cbox])[0]
            box, paths = cbox[nxt], [cpaths[q] for q in nxt]
            splits = [c[nxt] for c in ch]
            sb = _take(sb2, nxt)
        # boxes with a domain still open (or never split) are not closed
        self.failed[box] = True
        self._confirm_and_record(ids, depth, closed)

    def _choose(self, sb: Any, box: np.ndarray, splits: list) -> tuple:
        """Filtered smart branching: each domain's unit to split, ``(layer, unit, ok)``."""
        from netopt.bounds.branching import babsr_scores

        # (the scores from the numpy weights: sb is numpy whichever engine bounded it)
        sc = np.concatenate(babsr_scores(self.s.np_engine, sb), 1)
        D = len(box)
        K = min(FSB_CANDIDATES, sc.shape[1])
        # the K largest, the largest first (a stable sort: ties by unit order)
        cand = np.argsort(-sc, axis=1, kind="stable")[:, :K]
        val = np.take_along_axis(sc, cand, axis=1)
        lay = np.searchsorted(self.offs, cand, side="right") - 1
        uni = cand - self.offs[lay]
        pick = np.zeros(D, dtype=np.int64)
        if K > 1:
            # each candidate's halves, bounded once with the domain's slopes: (K, 2, D)
            ch = children_splits(splits, lay, uni)
            rep = np.tile(np.arange(D), 2 * K)
            sb2 = numpy_spec(
                self.opt.alpha_crown(
                    self.lo[np.tile(box, 2 * K)],
                    self.hi[np.tile(box, 2 * K)],
                    self.s.C[self.rows],
                    self.s.d[self.rows],
                    splits=ch,
                    iters=0,
                    init=[x[rep] for x in sb.slopes],
                    beta=bool(sb.betas),
                    init_betas=[b[rep] for b in sb.betas] if sb.betas else None,
                    pre=[(a[rep], b[rep]) for a, b in sb.pre],
                )
            )
            low = sb2.lower.max(axis=1).reshape(K, 2, D).astype(np.float64)
            score = np.minimum(low[:, 0], 0) + np.minimum(low[:, 1], 0)
            score = np.where(val.T > 0, score, -np.inf)
            pick = score.argmax(axis=0)
        ar = np.arange(D)
        return lay[ar, pick], uni[ar, pick], val[ar, pick] > 0

    def _leaf_data(
        self, sb2: Any, cbox: np.ndarray, cpaths: list, ch: list, r: np.ndarray, shut: np.ndarray
    ) -> tuple:
        """The closing halves' slopes (rounded, the float32-unstable units only) and
        multipliers (of their best row), as the proof will record them."""
        q = np.nonzero(shut)[0]
        L = np.concatenate([p[0][q] for p in sb2.pre], 1)
        H = np.concatenate([p[1][q] for p in sb2.pre], 1)
        uns = (L < 0) & (H > 0)
        sl = np.concatenate([x[q] for x in sb2.slopes], 1).astype(np.float64)
        sl = np.where(uns, np.round(sl, self.decimals), np.nan)
        ar = np.arange(len(q))
        # each split unit's multiplier in the half's best row (0 off its splits)
        bt = [
            np.maximum(b[q][ar, r[q]].astype(np.float64), 0.0) * (c[q] != 0)
            for b, c in zip(sb2.betas, ch, strict=True)
        ]
        return (cbox[q], [cpaths[i] for i in q], r[q], [c[q] for c in ch], sl, bt)

    def _confirm_and_record(self, ids: np.ndarray, depth: np.ndarray, closed: np.ndarray) -> None:
        """Every leaf of the boxes not failed, bounded in float64 with what it records; the
        boxes whose leaves all close become subtrees of the proof."""
        s = self.s
        parts = []
        for cb_, cp, r, ch, sl, bt in self.f64:
            m = ~self.failed[cb_]
            if m.any():
                parts.append(
                    (
                        cb_[m],
                        [p for p, k in zip(cp, m, strict=True) if k],
                        r[m],
                        [c[m] for c in ch],
                        sl[m],
                        [b[m] for b in bt],
                    )
                )
        if not parts:
            return
        cbox = np.concatenate([p[0] for p in parts])
        cpaths = [x for p in parts for x in p[1]]
        r = np.concatenate([p[2] for p in parts])
        ch = [np.concatenate([p[3][j] for p in parts]) for j in range(len(self.sizes))]
        sl64 = np.concatenate([p[4] for p in parts])
        bt = [np.concatenate([p[5][j] for p in parts]) for j in range(len(self.sizes))]
        R = self.rows[r]
        sl = [sl64[:, self.offs[j] : self.offs[j + 1]] for j in range(len(self.sizes))]
        t = time.perf_counter()
        low, _, _ = s.bc.bound(
            self.lo[cbox], self.hi[cbox], s.C, rows=R, splits=ch, slopes=sl, betas=bt
        )
        s.stats["t_check"] += time.perf_counter() - t
        good = low[:, 0] - s.d[R] > s.margin[R]
        bad_boxes = set(cbox[~good].tolist())
        s.stats["float64_reopened"] += len(bad_boxes)
        for i in range(len(cbox)):
            b = int(cbox[i])
            if b in bad_boxes:
                continue
            prm: dict = {"alphas": slope_record(sl64[i], self.offs)}
            betas = [[j, u, float(bt[j][i, u])] for j, u, _ in cpaths[i] if bt[j][i, u] > 0]
            if betas:
                prm["betas"] = betas
            self.leaves[b][cpaths[i]] = (int(r[i]), prm)
        for b in range(len(self.idx)):
            if self.failed[b] or b in bad_boxes or not self.leaves[b]:
                continue
            if any(v is None for v in self.leaves[b].values()):
                continue  # a leaf the float64 bounds were not asked about (cannot happen)
            self._record(b, int(ids[self.idx[b]]))
            closed[self.idx[b]] = True
            n_leaves = len(self.leaves[b])
            s.stats["leaves"] += n_leaves
            s.stats["relu_split_closed"] += 1
            deepest = max(len(p) for p in self.leaves[b])
            s.stats["depth"] = max(s.stats["depth"], int(depth[self.idx[b]]) + deepest)

    def _record(self, b: int, node: int) -> None:
        """Box ``b``'s subtree into the search's tree under ``node`` (``z <= 0`` first)."""
        tree, leaves, cuts = self.s.tree, self.leaves[b], self.cuts[b]

        def walk(n: int, path: tuple) -> None:
            if path in leaves:
                row, prm = leaves[path]
                tree.close(np.array([n]), np.array([row]), [prm], self.g)
                return
            j, u = cuts[path]
            c0, c1 = tree.split(np.array([n]), "r", np.array([j]), np.array([u]))
            walk(int(c0[0]), (*path, (j, u, -1)))
            walk(int(c1[0]), (*path, (j, u, 1)))

        walk(node, ())


def slope_record(row: np.ndarray, offs: np.ndarray) -> list:
    """A leaf's ``"alphas"``: ``[layer, unit, slope]`` for every slope of a flat row that is
    recorded (not NaN; ``offs`` the layers' offsets in the row)."""
    us = np.nonzero(~np.isnan(row))[0]
    lay = np.searchsorted(offs, us, side="right") - 1
    return [[int(j), int(u - offs[j]), float(row[u])] for j, u in zip(lay, us, strict=True)]


def numpy_spec(sb: Any) -> Any:
    """A :class:`~netopt.bounds.batched.SpecBound` of numpy arrays: ``sb`` itself (the numpy
    engine's) or the torch engine's copied off its device."""
    if isinstance(sb.lower, np.ndarray):
        return sb
    from netopt.bounds.spec_bound import SpecBound

    def a(x: Any) -> Any:
        return None if x is None else x.detach().cpu().numpy()

    return SpecBound(
        a(sb.lower),
        [a(x) for x in sb.slopes],
        [(a(p), a(q)) for p, q in sb.pre],
        [a(b) for b in sb.betas],
        a(sb.row),
        a(sb.coef),
        [a(x) for x in sb.lams],
        a(sb.mix),
        a(sb.coefs),
    )


def _take(sb: Any, pos: np.ndarray) -> Any:
    """The domains ``pos`` of a numpy :class:`~netopt.bounds.batched.SpecBound`."""
    from netopt.bounds.spec_bound import SpecBound

    k = np.asarray(pos)
    return SpecBound(
        sb.lower[k],
        [x[k] for x in sb.slopes],
        [(a[k], b[k]) for a, b in sb.pre],
        [b[k] for b in sb.betas],
        None if sb.row is None else sb.row[k],
        None if sb.coef is None else sb.coef[k],
        [x[k] for x in sb.lams],
    )


def close_by_pieces(
    search: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    P: np.ndarray,
    s: np.ndarray,
    rows: np.ndarray,
    ids: np.ndarray,
    depth: np.ndarray,
    cand: np.ndarray,
    worst: np.ndarray,
    max_unstable: int,
) -> np.ndarray:
    r"""Open boxes of input splitting's ``search`` with 1 to ``max_unstable`` unstable ReLUs,
    closed through their pieces: which of the boxes did (a bool mask).

    Where a property is nearly tight the boxes around its tightest points keep one or two
    unstable ReLUs however small they get (their relaxations err by about the box's
    width, and so does the margin), and input splitting descends dozens of levels there
    (ACAS Xu 1_1 prop 5: leaves at median depth 33, two unstable ReLUs). On each piece
    (a sign pattern of those units) the network is affine, and an LP
    (:func:`~netopt.bounds.pieces.affine_rows`; a second one for a point where the first
    fails) decides whether some point of the piece satisfies every row of the box's open
    disjunct: if none does, its dual gives the row
    weights :math:`\lambda` and split multipliers :math:`\beta` with which CROWN's bound of
    :math:`\lambda^\top (C f - d)` is positive on the piece. A single row's bound is not
    enough where the rows cross: at ACAS Xu's tightest points two outputs are often within
    1e-5 of each other, each row alone dipping below 0 on part of the piece. Each piece is
    then bounded in rigorous float64 (:class:`~netopt.bounds.bab.BatchCrown` with the splits
    and betas, the combination's rounding on top as the checker takes it); the box closes,
    as ReLU splits whose leaves carry their weights and betas, only if every piece does.
    Where a piece's LP finds a point satisfying every row instead, the point is kept in
    ``search.lp_points`` (a candidate counterexample for the search to re-check, in the next
    round that still has an open box) and the box's other pieces are not tried; where an LP
    fails, neither. Past the deadline no further box is tried.
    """
    from netopt.bounds.pieces import PIECES_PER_ROUND, affine_rows, piece_arrays
    from netopt.bounds.proof import combination_claim

    L, H = P[:, 0], P[:, 1]
    n_uns = ((L < 0) & (H > 0)).sum(axis=1)
    ok = cand & (n_uns >= 1) & (n_uns <= max_unstable)
    search.stats["pieces_tried"] += int(min(ok.sum(), PIECES_PER_ROUND))
    closed = np.zeros(len(lo), dtype=bool)
    if not ok.any():
        return closed
    t = time.perf_counter()
    idx = np.nonzero(ok)[0]
    # the boxes nearest to closing first
    idx = idx[np.argsort(-s[idx, rows[idx]])][:PIECES_PER_ROUND]
    sizes = [w.shape[0] for w in search.chain[0][:-1]]
    offs = np.cumsum([0, *sizes])
    dm = search.d + search.margin
    boxes, P_lo, P_hi, lams, parts = [], [], [], [], []
    for b in idx:
        if search.dl.expired():
            break  # (up to 2^3 LPs a box, twice that where they fail: the time limit holds)
        uns = [
            (j, int(u - offs[j]))
            for j in range(len(sizes))
            for u in range(offs[j], offs[j + 1])
            if L[b, u] < 0 < H[b, u]
        ]
        active = [L[b, offs[j] : offs[j + 1]] >= 0 for j in range(len(sizes))]
        g = int(worst[b])
        rg = search._rows_of(g)
        found = []
        for signs in itertools.product((-1, 1), repeat=len(uns)):
            split = [(j, u, sg) for (j, u), sg in zip(uns, signs, strict=True)]
            act = [a.copy() for a in active]
            for j, u, sg in split:
                act[j][u] = sg > 0
            res = affine_rows(search.C[rg], dm[rg], search.chain, lo[b], hi[b], split, act)
            if res is None or res[0] is None:
                if res is not None:
                    search.lp_points.append(res[2])
                found = None
                break
            lam = np.zeros(len(search.d))
            lam[rg] = res[0]
            found.append((signs, lam, res[1]))
        if found is None:
            continue
        boxes.append((b, uns, g, len(found)))
        for signs, lam, beta in found:
            P_lo.append(lo[b])
            P_hi.append(hi[b])
            lams.append(lam)
            parts.append((uns, signs, beta))
    if boxes:
        splits, betas = piece_arrays(parts, sizes)
        lam_all = np.stack(lams)
        p_lo, p_hi = np.stack(P_lo), np.stack(P_hi)
        C3, need = combination_claim(
            search.bc, search.C, search.d, search.margin, p_lo, p_hi, splits, lam_all
        )
        lower, _, _ = search.bc.bound(p_lo, p_hi, C3, splits=splits, betas=betas)
        over = lower[:, 0] - need
        k = 0
        for b, uns, g, n_p in boxes:
            if np.all(over[k : k + n_p] > 0):
                closed[b] = True
                rg = search._rows_of(g)
                leaves = [
                    (
                        lam_all[k + q, rg],
                        [
                            [j, u, float(betas[j][k + q, u])]
                            for j, u in uns
                            if betas[j][k + q, u] > 0
                        ],
                    )
                    for q in range(n_p)
                ]
                _record_pieces(search, int(ids[b]), uns, leaves, g)
                search.stats["leaves"] += n_p
                search.stats["depth"] = max(search.stats["depth"], int(depth[b]) + len(uns))
            k += n_p
        search.stats["nodes"] += len(lams)
    search.stats["t_pieces"] += time.perf_counter() - t
    search.stats["pieces_closed"] += int(closed.sum())
    return closed


def _record_pieces(search: Any, node: int, uns: list, leaves: list, group: int) -> None:
    """Record a box closed for ``group`` (its only open disjunct) by its pieces: a ReLU
    split per unit (``z <= 0`` first), the leaves in :func:`itertools.product` order, each
    with its row weights (over the disjunct's rows) and betas."""
    it = iter(leaves)

    def walk(n: int, level: int) -> None:
        if level == len(uns):
            lam, bl = next(it)
            params = {"lam": lam.tolist(), **({"betas": bl} if bl else {})}
            search.tree.close(np.array([n]), np.array([int(lam.argmax())]), [params], group)
            return
        j, u = uns[level]
        c0, c1 = search.tree.split(np.array([n]), "r", np.array([j]), np.array([u]))
        walk(int(c0[0]), level + 1)
        walk(int(c1[0]), level + 1)

    walk(node, 0)
