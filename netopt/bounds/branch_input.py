r"""Input splitting: depth first over sub-boxes, each closed by rigorous float64 CROWN.

For networks of few inputs (at most :data:`~netopt.bounds.branch.INPUT_SPLIT_MAX_DIM`: ACAS Xu)
halving the box is cheaper than optimizing slopes. The numpy float64 bounds
(:mod:`netopt.bounds.bab`) that close a box are the proof's; the search bounds its boxes by
float32 CROWN (numpy's on a CPU, torch's on a GPU: 4 to 10 times the boxes per second) and
only the boxes those bounds close are bounded again in float64, which alone closes them. A box
is split along the
input of the largest smear :math:`|\lambda_i|(u_i - l_i)` of its best row, chosen by looking
ahead at both halves of a few candidates (:func:`~netopt.bounds.branch_search.split_halves`,
:func:`_pick`); points the bounds point to and, now and then, a falsifier's attack
(:mod:`netopt.attack`) look for a counterexample.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from netopt.bounds.branch_search import BranchResult, _Search, split_halves
from netopt.bounds.input_relu import (
    _take,
    close_by_pieces,
    close_by_relu_splits,
    numpy_spec,
    slope_record,
)
from netopt.bounds.row_mix import MIX_MAX_INPUTS, close_by_mix
from netopt.errors import FormulationError

#: Input splitting bounds both halves along this many candidate inputs (those of the largest
#: smear) and keeps the split whose halves come closest to closing. Three rather than two:
#: ACAS Xu 3_3 prop 2 14.5 -> 10.8 s, 1_9 prop 2 6.5 -> 3.5 s, the rest within noise; four or
#: five were slower (benchmarks/RESULTS.md).
LOOKAHEAD = 3

#: A look-ahead candidate whose smear is below this share of the largest is not tried (the
#: largest is tried in its place): halving it barely moves the bound.
LOOKAHEAD_MIN_SMEAR = 0.1

#: The widest input of a box (relative to the root box) is a look-ahead candidate once it is
#: this many times as wide as the input of the largest smear. The smear sees only the best
#: row's input coefficients, not what an input's width does to the unstable ReLUs' relaxations:
#: on ACAS Xu 3_3 prop 2 the search split four inputs to 1e-9 of their range and left the
#: fifth (a small coefficient) at 1/64, descending to depth 120 (in 40 s: 96635 boxes, 10578
#: still open); with this candidate, depth 53 and 1724 open. Elsewhere neutral (1_1 props 3,
#: 5, 6: 5.7 / 6.9 / 8.1 s before, 5.1 / 6.3 / 7.5 after; 3_3 prop 9 5.2 / 5.4).
LOOKAHEAD_ASPECT = 16.0

#: Seconds of search before the first attack (on the whole box), the first gap between the next
#: ones (on the open domains of the lowest bounds; the gaps double), a quarter of it for each
#: attack itself; and how many domains each attack takes.
ATTACK_EVERY = 1.0
ATTACK_BOXES = 64

#: An open box with at most this many unstable ReLUs (by the float32 bounds) is bounded
#: through its pieces, one LP each (:func:`~netopt.bounds.input_relu.close_by_pieces`). Measured on ACAS Xu 1_1
#: prop 5's hardest disjunct (2-core CPU): nodes / seconds without pieces 18597 / 10.4, with
#: at most 2 unstable 10753 / 6.2, 3: 8729 / 5.3, 4: 8393 / 5.3 (every box tried closed).
#: Each piece is closed by the combination of its disjunct's rows that its LP finds (a single
#: row, before, closed 2 of 236 boxes tried on a perturbed 1_1 prop 3 where two outputs
#: cross at the tightest point; now every box tried). With alpha-CROWN off, that instance
#: took 13.8 / 17.4 / 37.0 s at 3 / 5 / 7: more LPs than they save.
PIECES_MAX_UNSTABLE = 3

#: An open box with at most this many unstable ReLUs (by the float32 bounds) that its pieces
#: did not close gets alpha-CROWN's optimized slopes (:meth:`_InputSearch._alpha`):
#: :data:`ALPHA_ITERS` Adam steps, at most :data:`ALPHA_PER_ROUND` boxes a round.
ALPHA_MAX_UNSTABLE = 40
ALPHA_ITERS = 10
ALPHA_LR = 0.25
#: the slopes a proof records are rounded to this many decimals (any slope is valid)
ALPHA_DECIMALS = 4
ALPHA_PER_ROUND = 256
#: ... and only in a round with at least this many such boxes (a call's fixed costs; with
#: numpy's engine 1 instead of 8 moved the five slowest ACAS Xu instances within the noise).
ALPHA_MIN_BOXES = 8
#: ... and only once the search has bounded this many boxes: their Adam steps cost as much as
#: many boxes' CROWN bounds, and most ACAS Xu instances are decided sooner without them (3_3
#: prop 2 needs them: unknown at 60 s without). With numpy's engine, from 5000 / 2000 / 0
#: boxes (2-core CPU): 3_3 prop 2 7.7 / 8.6 / 7.1 s, 1_1 prop 6 8.1 / 9.3 / 10.0, 1_1 prop 3
#: 4.1 / 4.3 / 4.7 (benchmarks/RESULTS.md, "Input splitting without torch on a CPU").
ALPHA_AFTER_NODES = 5000

#: A box alpha-CROWN leaves open is split on ReLUs, up to three levels, the halves bounded by
#: beta-CROWN (:func:`netopt.bounds.input_relu.close_by_relu_splits`).
RELU_SPLIT = True

#: An open box whose disjunct has several rows, none of which closes it, is tried with the best
#: combination of two of the rows (:mod:`netopt.bounds.row_mix`).
ROW_MIX = True

#: Seconds of search on the float64 bounds before the float32 engine
#: (:class:`~netopt.bounds.chain_numpy.NumpyChainCrown`, or torch's
#: :meth:`~netopt.bounds.batched.ChainBounds.crown_rows` on a GPU) bounds the boxes instead, the float64 bounds then only confirming the boxes it closes. Measured on ACAS
#: Xu (1536 boxes a sixteenth of prop 6's width, 2-core CPU): about 3500 boxes/s in float32
#: (numpy or torch alike), 7000-9000 with the parents' dead units skipped, against 930 in
#: rigorous float64 numpy; a box the search closes is one in ten to twenty of those it bounds.
#: numpy's engine costs no import: no reason to wait.
FAST_AFTER = 0.0
#: The float32 search does not bound the units that a box's parent bounds as inactive again
#: (:meth:`ChainBounds.pre_bounds`'s ``dead``): ACAS Xu 1_1 prop 6 (second box) 3.4 -> 1.9 s
#: in bounds, 3_3 prop 2 2.8 -> 1.7 s, the same nodes within 2 %.
DEAD_ROWS = True


def _torch_loaded() -> bool:
    """Whether torch is imported already (then the torch engine costs no start-up)."""
    return "torch" in sys.modules


def _gpu_likely() -> bool:
    """Whether this machine may have a CUDA device, told without importing torch: an NVIDIA
    driver's control device and an installed torch. Where it may, a long search imports torch
    (:data:`ALPHA_AFTER_NODES`) to bound its boxes on the GPU, as it did when alpha-CROWN
    needed torch; elsewhere it never pays the import."""
    import importlib.util

    return os.path.exists("/dev/nvidiactl") and importlib.util.find_spec("torch") is not None


def _on_gpu(engine: Any) -> bool:
    """Whether a torch engine's device is not the CPU (where numpy's engine is the faster)."""
    return engine.device.type != "cpu"


class _InputSearch(_Search):
    """A run of input splitting (the domains are sub-boxes; no torch)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.t_start = self.last_attack = time.perf_counter()
        self.attack_gap = ATTACK_EVERY
        self.root_attacked = False
        self.np_engine: Any = None  # the numpy float32 engine, once the search has run FAST_AFTER
        self.np_tried = False
        self.fast: Any = None  # the torch engine, made on first need (a GPU)
        self.fast_tried = False
        self.engine: Any = None  # the float32 engine bounding the boxes now (np_engine or fast)
        self.chain: Any = None  # the chain's float64 layers, for the pieces' LPs (with np_engine)
        # points of pieces where the pieces' LPs found every row satisfied (to be re-checked)
        self.lp_points: list[np.ndarray] = []
        self.stats.update(
            pieces_closed=0,
            pieces_tried=0,
            t_pieces=0.0,
            alpha_closed=0,
            alpha_tried=0,
            t_alpha=0.0,
            relu_split_closed=0,
            relu_split_tried=0,
            relu_split_domains=0,
            mix_closed=0,
            mix_tried=0,
            t_mix=0.0,
        )

    def _default_batch(self) -> int:
        # numpy, memory-bound: a few hundred boxes per product keep it in cache
        return 256

    def _numpy_bound(self, lo: np.ndarray, hi: np.ndarray) -> tuple:
        """Rigorous float64 CROWN: ``(C f - d)`` lower bounds ``(B, k)``, input coefs and the
        activations' input bounds (``(B, 2, N)``, as :meth:`ChainBounds.crown_rows` gives them).

        A half's activation bounds are not intersected with its parent's (valid, but the
        tighter bounds change CROWN's adaptive lower slopes for the worse as often as not).
        Measured on ACAS Xu, nodes to decide the first two disjuncts without / with: 3_3 p1
        457 / 445, 4_5 p10 938 / 902, 1_1 p3 5949 / 12953, 1_1 p4 1369 / 1385, 1_1 p6
        4306 / 4830, 1_9 p2 969 / 1153, 1_1 p2 805 / 749.
        """
        t = time.perf_counter()
        lower, coef, pre = self.bc.bound(lo, hi, self.C)
        vals = list(pre.values())  # in activation op order
        if not vals:  # no activation layer: an affine network
            P = np.zeros((len(lo), 2, 0))
        else:
            P = np.stack(
                [np.concatenate([a for a, _ in vals], 1), np.concatenate([b for _, b in vals], 1)],
                1,
            )
        self.stats["t_bound"] += time.perf_counter() - t
        self.stats["nodes"] += len(lo)
        return lower - self.d, coef, P

    def _bound(self, lo: np.ndarray, hi: np.ndarray, parent: np.ndarray | None = None) -> tuple:
        """``(C f - d)`` lower bounds, input coefs and the activations' input bounds (to find
        a box's unstable ReLUs, :func:`~netopt.bounds.input_relu.close_by_pieces`): float64 CROWN for the first
        :data:`FAST_AFTER` seconds, then float32 CROWN (:meth:`_engine`; not rigorous: a box
        it closes is confirmed by :meth:`_confirm` before it becomes a leaf). ``parent``: the
        activations' input bounds of each box's parent (its dead units are not bounded
        again)."""
        engine = self._engine()
        if engine is None:
            return self._numpy_bound(lo, hi)
        t = time.perf_counter()
        dead = None if parent is None or not DEAD_ROWS else parent[:, 1] <= 0
        s, coef, P = engine.crown_rows(lo, hi, self.C, self.d, with_pre=True, dead=dead)
        self.stats["t_bound"] += time.perf_counter() - t
        self.stats["nodes"] += len(lo)
        return s, coef, P

    def _engine(self) -> Any:
        """The float32 engine that bounds the boxes, or None (the float64 bounds alone: the
        network is not a chain, or the first :data:`FAST_AFTER` seconds).

        numpy's (:class:`~netopt.bounds.chain_numpy.NumpyChainCrown`) on a CPU, torch's on a
        GPU: when a device is asked for, or once torch is imported (by an earlier search, or
        after :data:`ALPHA_AFTER_NODES` boxes where a GPU is likely: :func:`_gpu_likely`) and
        its device is a GPU. The same bounds; on a 2-core CPU numpy's took
        0.8-1.2 s where torch's took 1.6 s (ACAS Xu 1_1 prop 5, 5991 boxes, one process).
        """
        if (
            self.np_engine is None
            and not self.np_tried
            and time.perf_counter() - self.t_start >= FAST_AFTER
        ):
            self.np_tried = True
            try:
                from netopt.bounds.chain_numpy import NumpyChainCrown
                from netopt.bounds.opt_tighten import chain64

                self.np_engine = NumpyChainCrown(getattr(self.net, "chain_graph", self.net.graph))
                self.chain = chain64(self.net)
            except FormulationError:
                pass  # not a chain: the float64 bounds go on alone
        if self.np_engine is None:
            return None
        engine = self.np_engine
        if (
            _torch_loaded()
            or (self.device is not None and str(self.device) != "cpu")
            or (self.stats["nodes"] >= ALPHA_AFTER_NODES and _gpu_likely())
        ):
            fast = self._torch_engine()
            if fast is not None and _on_gpu(fast):
                engine = fast
        if engine is not self.engine:
            self.engine = engine
            kind = "numpy" if engine is self.np_engine else "torch"
            where = getattr(engine, "device", "cpu")
            self.stats["device"] = f"{where} ({kind} float32 search, numpy float64 leaves)"
        return engine

    def optimizer(self) -> Any:
        """The engine of the optimized bounds (alpha- and beta-CROWN): torch's where the boxes
        are bounded on a GPU, else numpy's (no import; the same steps,
        :mod:`netopt.bounds.chain_numpy_alpha`); None where neither is made (not a chain)."""
        return self._engine()

    def _torch_engine(self) -> Any:
        """The torch engine (:class:`~netopt.bounds.batched.ChainBounds`: the boxes' bounds
        and their alpha- and beta-CROWN on a GPU), made on first need; None without torch."""
        if self.fast is None and not self.fast_tried:
            self.fast_tried = True
            try:
                from netopt.bounds.batched import ChainBounds

                graph = getattr(self.net, "chain_graph", self.net.graph)
                self.fast = ChainBounds(graph, device=self.device)
            except (FormulationError, ImportError):
                pass  # no torch: numpy's engine does it all
        return self.fast

    def _group_best(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per box and disjunct, the best bound among the disjunct's rows and that row (its
        index in ``C``): ``(B, G)`` each."""
        B = len(s)
        best = np.empty((B, self.n_groups))
        row = np.empty((B, self.n_groups), dtype=np.int64)
        ar = np.arange(B)
        for g in range(self.n_groups):
            idx = self._rows_of(g)
            k = s[:, idx].argmax(axis=1)
            best[:, g], row[:, g] = s[ar, idx[k]], idx[k]
        return best, row

    def _confirm(
        self, lo: np.ndarray, hi: np.ndarray, closing: np.ndarray, grow: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (box, disjunct) pairs the float32 bounds close, the boxes re-bounded by the
        rigorous float64 CROWN: only those it closes stay closed (on the row it closes them
        by); the others are split on."""
        idx = np.nonzero(closing.any(axis=1))[0]
        t = time.perf_counter()
        lower, _, _ = self.bc.bound(lo[idx], hi[idx], self.C)
        self.stats["t_check"] += time.perf_counter() - t
        best, row = self._group_best(lower - self.d - self.margin)
        ok = best > 0
        closing, grow = closing.copy(), grow.copy()
        self.stats["float64_reopened"] += int((closing[idx] & ~ok).sum())
        closing[idx] &= ok
        grow[idx] = np.where(ok, row, grow[idx])
        return closing, grow

    def _alpha(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        P: np.ndarray,
        ids: np.ndarray,
        depth: np.ndarray,
        cand: np.ndarray,
        worst: np.ndarray,
    ) -> np.ndarray:
        r"""Open boxes with at most :data:`ALPHA_MAX_UNSTABLE` unstable ReLUs, closed by
        alpha-CROWN (the lower lines' slopes optimized for the box's disjunct, float32:
        :meth:`optimizer`) and confirmed by the rigorous float64 bounds with those slopes:
        which of the boxes did (a bool mask). Each becomes a leaf carrying its slopes.

        Near a nearly tight point (ACAS Xu 3_3 prop 2 comes within 1e-3 of a counterexample)
        CROWN's adaptive slopes err by more than the margin until the boxes are tiny, while
        the optimized slopes close most boxes of a few unstable ReLUs at once.
        """
        L, H = P[:, 0], P[:, 1]
        n_uns = ((L < 0) & (H > 0)).sum(axis=1)
        ok = cand & (n_uns <= ALPHA_MAX_UNSTABLE)
        closed = np.zeros(len(lo), dtype=bool)
        if ok.sum() < ALPHA_MIN_BOXES or self.stats["nodes"] < ALPHA_AFTER_NODES:
            return closed
        opt = self.optimizer()
        if opt is None:
            return closed
        t = time.perf_counter()
        fails = []
        # each activation layer's units in P's (and a slope row's) concatenation
        offs = np.cumsum([0] + [w.shape[0] for w in opt.W[: opt.n_act]])
        for g in range(self.n_groups):
            idx = np.nonzero(ok & (worst == g))[0][:ALPHA_PER_ROUND]
            if not len(idx):
                continue
            self.stats["alpha_tried"] += len(idx)
            rows_g = self._rows_of(g)
            # the boxes' activation bounds as the search found them (no second pass)
            pre = [
                (P[idx, 0, a:b], P[idx, 1, a:b]) for a, b in zip(offs[:-1], offs[1:], strict=True)
            ]
            sb = numpy_spec(
                opt.alpha_crown(
                    lo[idx],
                    hi[idx],
                    self.C[rows_g],
                    self.d[rows_g],
                    iters=ALPHA_ITERS,
                    lr=ALPHA_LR,
                    pre=pre,
                )
            )
            lower = sb.lower.astype(np.float64)
            r = lower.argmax(axis=1)
            R = rows_g[r]
            c = lower[np.arange(len(idx)), r] > self.margin[R]
            if not c.any():
                fails.append((g, idx, sb))
                continue
            jdx, r, R = idx[c], r[c], R[c]
            # the proof keeps the slopes of the units unstable by the float32 bounds, rounded
            # (a short record); the others take CROWN's adaptive slope (NaN), in the float64
            # confirmation as in the proof check
            uns = (L[jdx] < 0) & (H[jdx] > 0)
            sl64 = np.concatenate([s[c] for s in sb.slopes], 1).astype(np.float64)
            sl64 = np.where(uns, np.round(sl64, ALPHA_DECIMALS), np.nan)
            sl = [sl64[:, offs[j] : offs[j + 1]] for j in range(len(offs) - 1)]
            tc = time.perf_counter()
            low, _, _ = self.bc.bound(lo[jdx], hi[jdx], self.C, rows=R, slopes=sl)
            self.stats["t_check"] += time.perf_counter() - tc
            good = low[:, 0] - self.d[R] > self.margin[R]
            self.stats["float64_reopened"] += int((~good).sum())
            shut = np.zeros(len(idx), dtype=bool)
            shut[np.nonzero(c)[0][good]] = True
            if not shut.all():
                fails.append((g, idx[~shut], _take(sb, np.nonzero(~shut)[0])))
            if not good.any():
                continue
            params = [{"alphas": slope_record(sl64[i], offs)} for i in np.nonzero(good)[0]]
            self.tree.close(ids[jdx[good]], r[good], params, g)
            closed[jdx[good]] = True
            self.stats["leaves"] += int(good.sum())
            self.stats["depth"] = max(self.stats["depth"], int(depth[jdx].max()))
        self.stats["alpha_closed"] += int(closed.sum())
        if fails and RELU_SPLIT:
            closed |= close_by_relu_splits(
                self, lo, hi, ids, depth, fails, lr=ALPHA_LR, decimals=ALPHA_DECIMALS
            )
        self.stats["t_alpha"] += time.perf_counter() - t
        return closed

    def _split(self) -> BranchResult:
        """Depth first over sub-boxes, each closed by the rigorous float64 CROWN (the float32
        bounds of :meth:`_bound` choose which boxes it bounds).

        A box's inputs are few, so a split is chosen by looking ahead: of the
        :data:`LOOKAHEAD` inputs of the largest smear, the one with the better half (the
        largest best-row bound, :func:`_pick`) — both halves are bounded anyway, and the
        chosen ones' bounds are kept.
        """
        s, coef, P = self._bound(self.lo, self.hi)
        zero = np.zeros(1, dtype=np.int64)
        G = self.n_groups
        everyone = np.ones((1, G), dtype=bool)
        stack = [(self.lo, self.hi, s, coef, P, zero, zero, everyone)]
        n_open, n_in, rounds = 1, self.lo.shape[1], 0
        look = min(LOOKAHEAD, n_in)
        # the disjuncts of two rows or more, whose rows a box may close in combination
        mixable = ROW_MIX and n_in <= MIX_MAX_INPUTS and any(len(r) > 1 for r in self.group_rows)
        while stack:
            why = self._stop(n_open)
            if why is not None:
                self._decided(stack)
                return BranchResult("unknown", stopped=why)
            lo, hi, s, coef, P, ids, depth, opn = _pop(stack, self.batch)
            n_open -= len(lo)
            self.stats["depth"] = max(self.stats["depth"], int(depth.max()))
            gbest, grow = self._group_best(s)
            closing = opn & (gbest > self.margin[grow])
            if closing.any() and self.np_engine is not None:
                closing, grow = self._confirm(lo, hi, closing, grow)
            for g in range(G):
                m = closing[:, g]
                if m.any():
                    local = np.searchsorted(self._rows_of(g), grow[m, g])
                    self.tree.close(ids[m], local, [None] * int(m.sum()), g)
            self.stats["leaves"] += int(closing.sum())
            opn = opn & ~closing
            if mixable and opn.any():
                opn = opn & ~close_by_mix(self, lo, hi, s, coef, P, opn, ids, depth)
            keep = opn.any(axis=1)
            # each box is split for its open disjunct of the lowest bound, on that one's best row
            worst = np.where(opn, gbest, np.inf).argmin(axis=1)
            ar = np.arange(len(lo))
            rows = grow[ar, worst]
            if keep.any() and self.chain is not None:
                one = opn.sum(axis=1) == 1
                keep &= ~close_by_pieces(
                    self, lo, hi, P, s, rows, ids, depth, keep & one, worst, PIECES_MAX_UNSTABLE
                )
                if keep.any():
                    keep &= ~self._alpha(lo, hi, P, ids, depth, keep & one, worst)
            if not keep.any():
                continue
            lo, hi, ids, rows, depth = lo[keep], hi[keep], ids[keep], rows[keep], depth[keep]
            opn, worst = opn[keep], worst[keep]
            B = len(lo)
            ar = np.arange(B)
            a = coef[keep][ar, rows]
            mid = (lo + hi) / 2
            corner = np.where(a > 0, lo, hi)
            cands = [mid, corner, (mid + corner) / 2]
            if self.lp_points:
                # the pieces' LPs' points, in the float64 interpreter (the LP's own tolerance
                # may have them a hair outside a row)
                cands.append(np.stack(self.lp_points).reshape(-1, mid.shape[1]))
                self.lp_points = []
            x = self._points(np.concatenate(cands))
            if x is None:
                x = self._attack(lo, hi, s[keep][ar, rows], worst)
            if x is not None:
                return BranchResult("sat", x=x)
            t = time.perf_counter()
            width = hi - lo
            smear = np.where(width > 0, np.abs(a) * width, -1.0)
            # an input the bound ignores (coefficient 0) still halves a width: a tiebreak
            smear = smear + 1e-30 * width
            if np.any(smear.max(axis=1) <= 0):
                # a point box that the float64 bounds cannot close: nothing left to split
                self._decided(stack, opn)
                return BranchResult("unknown", stopped="precision")
            dims = np.argsort(-smear, axis=1)[:, :look]
            # CROWN is not monotone in the box: the unchanged halves of an input already split
            # to a sliver can score better than a real split's halves, and chosen again and
            # again the search would descend along the sliver until the box is a point
            weak = smear[ar[:, None], dims] < LOOKAHEAD_MIN_SMEAR * smear[ar[:, None], dims[:, :1]]
            dims = np.where(weak, dims[:, :1], dims)
            if look > 1:
                # the widest input (relative to the root box) is a candidate too, once it is
                # LOOKAHEAD_ASPECT times as wide as the input of the largest smear
                rel = width / np.maximum(self.hi - self.lo, 1e-300)
                wd = rel.argmax(axis=1)
                aspect = rel[ar, wd] / np.maximum(rel[ar, dims[:, 0]], 1e-300)
                dims[:, -1] = np.where(aspect > LOOKAHEAD_ASPECT, wd, dims[:, -1])
            KL, KH = split_halves(lo, hi, dims)
            self.stats["t_branch"] += time.perf_counter() - t
            s2, coef2, P2 = self._bound(KL, KH, np.tile(P[keep], (2 * look, 1, 1)))
            # a half's score: the lowest, over the disjuncts still open on the box, of their
            # best row's bound
            gb2, _ = self._group_best(s2)
            o2 = np.tile(opn, (2 * look, 1))
            q = _pick(np.where(o2, gb2, np.inf).min(axis=1).reshape(2, look, B))
            j = dims[ar, q]
            c0, c1 = self.tree.split(ids, "x", j, mid[ar, j])
            i0, i1 = q * B + ar, look * B + q * B + ar
            stack.append((KL[i1], KH[i1], s2[i1], coef2[i1], P2[i1], c1, depth + 1, opn))
            stack.append((KL[i0], KH[i0], s2[i0], coef2[i0], P2[i0], c0, depth + 1, opn))
            n_open += 2 * B
            rounds += 1
            if rounds % 16 == 0:
                self._emit(n_open)
        return BranchResult("unsat")

    def _decided(self, stack: list, *more: np.ndarray) -> None:
        """Before an early stop: the disjuncts open in no box left (on the stack, or ``more``:
        ``(B, G)`` masks of boxes in hand) are decided (:attr:`done_groups`)."""
        still = np.zeros(self.n_groups, dtype=bool)
        for opn in [entry[7] for entry in stack] + list(more):
            still |= opn.any(axis=0)
        self.done_groups = (~still).tolist()

    def _attack(
        self, lo: np.ndarray, hi: np.ndarray, best: np.ndarray, worst: np.ndarray
    ) -> np.ndarray | None:
        """After :data:`ATTACK_EVERY` seconds, then after gaps that double, a quarter of a
        second of PGD: the first time on the whole box, then in the open boxes of the lowest
        bounds (:func:`netopt.attack.falsify_boxes`): where the bounds are worst, a
        counterexample is likeliest, and gradient steps find one that corners and centres miss.
        """
        now = time.perf_counter()
        if now - self.last_attack < self.attack_gap:
            return None
        # the gaps double: a long search spends a shrinking share on attacks (about a quarter
        # of a second each; on ACAS Xu p9's four disjuncts a fixed 1 s period cost 18 %)
        self.last_attack = now
        self.attack_gap *= 2
        from netopt.attack import falsify, falsify_boxes

        # the disjunct of the lowest bound, in the boxes it is the lowest in
        g = int(worst[np.argmin(best)])
        rows = self._rows_of(g)
        C, d = self.C[rows], self.d[rows]
        if not self.root_attacked:
            # the first time: the whole box, with the falsifier's full set of starts (a
            # counterexample in a sliver that the pieces' corners and centres have missed)
            self.root_attacked = True
            r0 = falsify(
                self.network,
                self.lo[0],
                self.hi[0],
                C,
                d,
                time_limit=min(ATTACK_EVERY / 4, max(self.dl.remaining(), 0.0)),
            )
            self.stats["t_attack"] += time.perf_counter() - now
            if r0.x is not None:
                return self._points(np.asarray(r0.x).reshape(1, -1))
            now = time.perf_counter()

        mine = np.nonzero(worst == g)[0]
        pick = mine[np.argsort(best[mine])][:ATTACK_BOXES]
        r = falsify_boxes(
            self.network,
            lo[pick],
            hi[pick],
            C,
            d,
            time_limit=min(ATTACK_EVERY / 4, max(self.dl.remaining(), 0.0)),
        )
        self.stats["t_attack"] += time.perf_counter() - now
        k = r.found
        return None if k is None else self._points(r.x[k].reshape(1, -1))


def _pick(best: np.ndarray) -> np.ndarray:
    """Of ``look`` candidate splits, the one with the best half: ``best`` is ``(2, look, B)``,
    each half's best row bound.

    Measured on ACAS Xu (nodes to decide the first two disjuncts of 3_3 p1, 4_5 p10, 1_1 p3,
    1_1 p4, 1_1 p6, 1_9 p2): the better half's bound needs 457 / 938 / 3129 / 1369 / 4306 / 969
    nodes, the sum of both halves' shortfalls 3525 / 898 / 5373 / 1429 / 4318 / 961, no
    look-ahead (the largest smear) 861 / 2958 / 6259 / 1417 / 4224 / 3905.
    """
    return np.maximum(best[0], best[1]).argmax(axis=0)


def _pop(stack: list, batch: int) -> tuple:
    """Up to ``batch`` domains from the top of the stack, merged.

    Entries are ``(lo, hi, s, coef, P, ids, depth, open)``, arrays with the domains along
    axis 0 (``open``: which disjuncts each box is still open for).
    """
    parts: list[list] = [[] for _ in range(8)]
    n = 0
    while stack and n < batch:
        arrs = list(stack.pop())
        k = batch - n
        if len(arrs[0]) > k:
            stack.append(tuple(a[k:] for a in arrs))
            arrs = [a[:k] for a in arrs]
        for p, a in zip(parts, arrs, strict=True):
            p.append(a)
        n += len(arrs[0])
    return tuple(np.concatenate(p) for p in parts)
