r"""Branch and bound for optimization over a box, with a proof of the bound it claims.

Minimizes :math:`g(x) = \sigma \cdot \mathrm{obj}(f(x))` (:math:`\sigma = -1` for a maximized
objective) over the input box, for the objectives of :mod:`netopt.bounds.objective_rows`: the
weighted :math:`\ell_1`, :math:`\ell_2`, :math:`\ell_\infty` distance to a target and linear
objectives of the output. On each sub-box :math:`D` (input splitting) the bound is

.. math::

    \underline{g}(D) = \max_{v \in R(D)} \Big( \min_{x \in D}{}^{\text{CROWN}} v^\top f(x) + e(v)
    \Big) \;\le\; \min_{x \in D} g(x),

the rigorous float64 CROWN bound (:class:`netopt.bounds.bab.BatchCrown`, outward rounding) of
a few valid minorant rows :math:`v` (:class:`~netopt.bounds.objective_rows.Minorant`: the
outputs' own rows :math:`\pm w_j e_j`, the signs that the parent's output bounds fix, the
direction of the residual at the box's centre, the parent's row). A box inherits its parent's
bound when its own is lower (CROWN is not monotone in the box; a sub-box has every bound of
its parent). Boxes that stay open get, in this order,

1. where at most half of the ReLUs are unstable, alpha-CROWN with the row optimized too
   (:meth:`~netopt.bounds.batched.ChainBounds.alpha_crown_row`, warm-started from the parent);
2. where every ReLU is stable (the network is affine on the box), the LP-optimal row
   (:mod:`netopt.bounds.dual_rows`), which makes the bound the box's exact minimum;
3. where one or two ReLUs are unstable, a split into their pieces with an LP-optimal row and
   beta multipliers each (:mod:`netopt.bounds.pieces`): again the exact minimum.

Input splitting alone closes the gap only as fast as boxes shrink, and not at all where the
optimum lies on a ReLU's boundary or where an output meets its target (every box around the
optimum keeps that kink); steps 2 and 3 make the bound exact there. Every row, slope and
multiplier they propose is bounded again by the rigorous float64 CROWN, and kept only where
that is better: the search trusts no float32 or LP number.

A box's bounds start from the activation signs its parent's bounds prove (a unit fixed on a
box is fixed on its pieces), and only the rows of the units still open are back-substituted
(:meth:`~netopt.bounds.bab.BatchCrown.bound`'s ``known`` and ``unstable_only``): deep in the
tree most units are fixed, and a box costs a fraction of its parent. The proof says so
(``inherit``), and its checker derives the signs again from the tree.

Best first: each round splits the open boxes of the lowest bounds (look-ahead: of the input of
the largest smear and the widest one, the split whose worse half is best), evaluates their
centres and the corners their bounds point to, and after gaps that double polishes the best
open boxes' centres (``polish``; by default :func:`netopt.heuristics.descent`). The proven
bound is the least bound over the leaves (open or pruned); the search stops when the incumbent
is within the gap of it.

The proof (:class:`~netopt.bounds.proof_format.BabProof`) is the tree cut back to the highest
nodes whose own bound reaches the claim: each leaf names a row :math:`v` with
:math:`v^\top f(x) > d_v` on its box (and the slopes or multipliers its bound used), and :func:`~netopt.bounds.objective_rows.rows_imply_bound`
checks exactly that :math:`d_v + e(v)` is at least the claim. ``netopt verify`` re-checks both
without the search.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.bounds.branch import split_halves
from netopt.bounds.opt_tighten import ALPHA_ITERS, Tighten, chain64, chain_bounds
from netopt.bounds.opt_tree import RowTable, SearchTree
from netopt.control import Deadline, emit, interrupted

__all__ = ["MinimizeResult", "minimize"]

#: candidate inputs of the look-ahead split choice
LOOKAHEAD = 2
#: slopes kept for the proof, at most (8 bytes each): past it the search stops ("domain limit")
MAX_KEPT_FLOATS = 100_000_000
#: alpha-CROWN runs on a box only where at most this share of the ReLUs is unstable
ALPHA_MAX_UNSTABLE = 0.5
#: a round's target length in seconds: the batch halves when a round takes longer
ROUND_SECONDS = 1.0
#: a box whose widest input (relative to the root box) is this many times its narrowest is
#: split along the widest
MAX_ASPECT = 16.0
#: the first polish after this many seconds, then after gaps that double
POLISH_EVERY = 1.0
#: the proof's leaves close with this relative room (a proof check sums in another order)
MARGIN = 1e-9


@dataclass
class MinimizeResult:
    """The outcome of :func:`minimize`.

    Attributes
    ----------
    x : ndarray or None
        The best point found (input shape), None when none was evaluated.
    value : float
        Its minimized objective :math:`g(x)` in float64 (``inf`` without a point).
    bound : float
        The proven lower bound on :math:`g` over the box (``-inf``: none).
    proof : BabProof or None
        The tree proving ``bound`` (None when the bound is the objective's floor, e.g. 0 for a
        norm, or there is none).
    stopped : str or None
        None when the gap closed; else "time limit", "interrupted", "domain limit" or
        "precision" (a box too small to split further is still open).
    stats : dict
    """

    x: np.ndarray | None
    value: float
    bound: float
    proof: Any = None
    stopped: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def minimize(
    problem: Any,
    *,
    time_limit: float | None = None,
    deadline: Deadline | None = None,
    rel_gap: float = 1e-6,
    abs_gap: float = 1e-9,
    batch: int = 256,
    max_domains: int = 500_000,
    starts: np.ndarray | None = None,
    polish: Any = None,
    progress: Any = None,
) -> MinimizeResult | None:
    r"""Minimize ``problem``'s objective (in its sense) over its box by branch and bound.

    Parameters
    ----------
    problem : Inversion or OutputObjective
        On a bounded box (no ``A x <= b``, no integer coordinates), a network that
        :class:`~netopt.bounds.bab.BatchCrown` bounds.
    time_limit : float, optional
        Seconds; or ``deadline``, a :class:`~netopt.control.Deadline` shared with a caller.
    rel_gap, abs_gap : float
        Stop when :math:`\text{incumbent} - \text{bound} \le \max(\text{abs\_gap},
        \text{rel\_gap} \cdot \max(1, |\text{incumbent}|))`; boxes whose bound is within that
        of the incumbent are not split.
    batch : int
        Boxes split per round.
    max_domains : int
        Open boxes kept at most ("domain limit").
    starts : array, optional
        Points to evaluate (and polish) first, e.g. a heuristic's.
    polish : callable, optional
        ``polish(X) -> points``: a local improvement of points ``X`` (flat rows), run on the
        starts and then on the best open boxes' centres after gaps that double (default:
        :func:`netopt.heuristics.descent`). The bound never depends on it; the gap closes only
        when the incumbent is (near) optimal, which on piecewise-linear objectives takes an
        exact step such as :func:`netopt.heuristics.pattern_lp`.

    Returns
    -------
    MinimizeResult, in the minimized sense (:math:`g = \sigma \cdot` objective), or None when
    the problem has no minorant rows or the network has ops CROWN does not bound here.
    """
    from netopt.bounds.bab import batch_crown_of
    from netopt.bounds.objective_rows import minorant_of

    mn = minorant_of(problem)
    if mn is None or not batch_crown_of(problem.net).ok:
        return None
    dl = deadline if deadline is not None else Deadline(time_limit)
    search = _Search(problem, mn, dl, rel_gap, abs_gap, batch, max_domains, polish, progress)
    return search.run(starts)


class _Search(Tighten):
    def __init__(
        self,
        problem: Any,
        mn: Any,
        dl: Deadline,
        rel_gap: float,
        abs_gap: float,
        batch: int,
        max_domains: int,
        polish: Any,
        progress: Any,
    ) -> None:
        from netopt.bounds.bab import batch_crown_of

        self.p, self.mn, self.dl = problem, mn, dl
        self.net = problem.net
        self.bc = batch_crown_of(self.net)
        self.rel_gap, self.abs_gap = float(rel_gap), float(abs_gap)
        self.batch, self.max_domains, self.progress = int(batch), int(max_domains), progress
        self.max_batch = self.batch
        self.polisher = polish
        self.cb = chain_bounds(self.net) if ALPHA_ITERS > 0 else None
        #: node id -> the alpha-CROWN slopes (one float64 array per activation op) its own
        #: bound was confirmed with; only for nodes whose bound they raised
        self.slopes: dict[int, list[np.ndarray]] = {}
        #: node id -> its proof by ReLU splits (:mod:`netopt.bounds.pieces`): the unstable units
        #: and per sign pattern the row id and the multipliers
        self.frags: dict[int, tuple] = {}
        self.kept_floats = 0  # slopes kept for the proof (the memory a long run grows by)
        self.n_units = sum(self.bc.graph.value(v).size for v in self.bc.relu_inputs)
        self.chain = chain64(self.net) if self.cb is not None else None
        self.shape = tuple(self.net.input_shape)
        self.lo = np.asarray(problem.domain.lo, dtype=np.float64).reshape(1, -1)
        self.hi = np.asarray(problem.domain.hi, dtype=np.float64).reshape(1, -1)
        self.base = mn.base_rows()
        self.nodes = SearchTree()
        self.rows = RowTable(mn.m)
        self.ub, self.x = np.inf, None
        self.last_polish, self.polish_gap = time.perf_counter(), POLISH_EVERY
        self.stats: dict[str, Any] = {
            "mode": "input",
            "nodes": 0,
            "depth": 0,
            "rounds": 0,
            "t_bound": 0.0,
            "t_branch": 0.0,
            "t_points": 0.0,
            "t_polish": 0.0,
            "t_alpha": 0.0,
            "alpha_raised": 0,
            "t_lp": 0.0,
            "lp_raised": 0,
            "t_pieces": 0.0,
            "pieces_raised": 0,
            "device": "cpu (numpy float64)",
            "batch": self.batch,
        }

    # ------------------------------------------------------------------ pieces
    def _g(self, X: np.ndarray) -> np.ndarray:
        """The minimized objective of points ``X`` (flat rows), float64."""
        y = self.net.forward(X.reshape(-1, *self.shape))
        return self.mn.sign * self.p.evaluate(y)

    def _offer(self, X: np.ndarray) -> None:
        t = time.perf_counter()
        X = np.clip(X, self.lo, self.hi)  # only points of the box may be incumbents
        v = self._g(X)
        v = np.where(np.isfinite(v), v, np.inf)
        k = int(np.argmin(v))
        if v[k] < self.ub:
            self.ub, self.x = float(v[k]), X[k].reshape(self.shape).copy()
        self.stats["t_points"] += time.perf_counter() - t

    def _tol(self) -> float:
        # half the gap: the claim sits a hair (MARGIN) below the least bound, and the gap of
        # the result must still be within the one asked for
        return 0.5 * max(self.abs_gap, self.rel_gap * max(1.0, abs(self.ub)))

    def _bound(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        out_lo: np.ndarray,
        out_hi: np.ndarray,
        prow: np.ndarray | None = None,
        known: np.ndarray | None = None,
    ) -> tuple:
        """Each box's own bound, its best row, that row's input coefficients, output bounds.

        ``out_lo``/``out_hi``: output bounds valid on each box (its parent's), for the rows
        whose signs they fix; ``prow``: the parent's row, one more candidate; ``known``: the
        activation signs the parent's bounds prove (:meth:`~netopt.bounds.bab.BatchCrown.bound`).
        """
        t = time.perf_counter()
        B = len(lo)
        mid = (lo + hi) / 2
        y_mid = self.net.forward(mid.reshape(-1, *self.shape)).reshape(B, -1)
        V = np.concatenate(
            [
                np.broadcast_to(self.base, (B, *self.base.shape)),
                self.mn.box_rows(out_lo, out_hi, y_mid),
                *([] if prow is None else [prow[:, None, :]]),
            ],
            axis=1,
        )
        lower, coef, pre = self.bc.bound(lo, hi, V, unstable_only=True, known=known)
        # every ReLU stable: the network is affine on the box (then an LP gives its exact row)
        stable = np.ones(B, dtype=bool)
        for a, b in pre.values():
            stable &= np.all((a >= 0) | (b <= 0), axis=-1)
        self.aff = (stable, coef, y_mid, pre)
        s = lower + self.mn.offsets(V)
        s = np.where(np.isnan(s), -np.inf, s)
        k = s.argmax(axis=1)
        ar = np.arange(B)
        own = s[ar, k]
        if self.mn.kind == "linear":
            o_lo, o_hi = out_lo, out_hi
        else:
            # the base rows are +w_j e_j then -w_j e_j over the weighted outputs
            keep = np.nonzero(self.mn.w > 0)[0]
            q = len(keep)
            w = self.mn.w[keep]
            o_lo, o_hi = out_lo.copy(), out_hi.copy()
            o_lo[:, keep] = np.maximum(o_lo[:, keep], lower[:, :q] / w)
            o_hi[:, keep] = np.minimum(o_hi[:, keep], -lower[:, q : 2 * q] / w)
        self.stats["t_bound"] += time.perf_counter() - t
        self.stats["nodes"] += B
        return own, V[ar, k], coef[ar, k], o_lo, o_hi, mid

    def _polish(self, X: np.ndarray, iters: int) -> None:
        from netopt.heuristics import descent

        t = time.perf_counter()
        try:
            if self.polisher is not None:
                Y = np.asarray(self.polisher(X.reshape(-1, *self.shape)), dtype=np.float64)
            else:
                Y = descent(self.p, X.reshape(-1, *self.shape), iters=iters)
            if Y.size:
                self._offer(Y.reshape(-1, X.shape[1]))
        finally:
            self.stats["t_polish"] += time.perf_counter() - t

    # ------------------------------------------------------------------ the loop
    def run(self, starts: np.ndarray | None) -> MinimizeResult:
        t0 = time.perf_counter()
        n_in, m = self.lo.shape[1], self.mn.m
        rng = np.random.default_rng(0)
        X0 = [(self.lo + self.hi) / 2, rng.uniform(self.lo, self.hi, (63, n_in))]
        if starts is not None and len(starts):
            X0.insert(0, np.asarray(starts, dtype=np.float64).reshape(-1, n_in))
        X0 = np.concatenate(X0)
        self._offer(X0)
        if self.x is not None and self.ub - self.mn.floor <= self._tol():
            # a start meets the objective's floor (0 for a norm: a reachable target): that bound
            # needs no search and no proof
            self.stats["seconds"] = time.perf_counter() - t0
            return MinimizeResult(self.x, self.ub, float(self.mn.floor), None, None, self.stats)
        self._polish(X0[:16], 60)

        inf = np.full((1, m), np.inf)
        own, row, coef, o_lo, o_hi, _ = self._bound(self.lo, self.hi, -inf, inf)
        sl, up = None, np.zeros(1, dtype=bool)
        if self.cb is not None:
            own, row, sl, up = self._alpha(self.lo, self.hi, row, own, pre=self.aff[3])
        self._keep(self.nodes.add(own, self.rows.intern(row)), sl, up)
        sl0 = None if sl is None else [a[0] for a in sl]
        # the open boxes: a heap of (bound, id) and each id's box data
        # a box's bound is the best of its own, its ancestors' and the objective's floor
        heap = [(max(float(own[0]), self.mn.floor), 0)]
        # each box's data ends with the activation signs its own bounds prove, which every
        # bound of its pieces starts from (BatchCrown.bound's known; the proof says so)
        kn0 = self.bc.signs(self.aff[3], 1)[0]
        data = {0: (self.lo[0], self.hi[0], coef[0], o_lo[0], o_hi[0], 0, row[0], sl0, kn0)}
        closed = np.inf  # the least bound of the leaves no longer open
        stopped = None
        while heap:
            tol = self._tol()
            if heap[0][0] >= self.ub - tol:
                break
            stopped = self._stop(len(heap))
            if stopped is not None:
                break
            t_round = time.perf_counter()
            take: list[int] = []
            effs: list[float] = []
            while heap and len(take) < self.batch and heap[0][0] < self.ub - tol:
                e, i = heapq.heappop(heap)
                take.append(i)
                effs.append(e)
            parts = [data.pop(i) for i in take]
            L = np.stack([p[0] for p in parts])
            H = np.stack([p[1] for p in parts])
            A = np.stack([p[2] for p in parts])
            OL = np.stack([p[3] for p in parts])
            OH = np.stack([p[4] for p in parts])
            depth = max(p[5] for p in parts)
            PR = np.stack([p[6] for p in parts])
            KN = np.stack([p[8] for p in parts])  # the signs each box's bounds prove
            PS = None
            if self.cb is not None and all(p[7] is not None for p in parts):
                PS = [np.stack([p[7][j] for p in parts]) for j in range(len(parts[0][7]))]
            ids, eff = np.asarray(take), np.asarray(effs)
            B, ar = len(L), np.arange(len(L))
            mid = (L + H) / 2
            self._offer(np.concatenate([mid, np.where(A > 0, L, H)]))

            t = time.perf_counter()
            width = H - L
            smear = np.where(width > 0, np.abs(A) * width, -1.0) + 1e-30 * width
            if np.any(smear.max(axis=1) <= 0):
                # a point box the float64 bounds leave open: nothing left to split
                stopped = "precision"
                for i, e, p in zip(take, effs, parts, strict=True):
                    heapq.heappush(heap, (e, i))
                    data[i] = p
                break
            look = min(LOOKAHEAD, n_in)
            dims = np.argsort(-smear, axis=1)[:, :look]
            if look > 1:
                # the widest input (relative to the root box) is always a candidate: the smear
                # sees the bound's input coefficients, not the relaxation's error, and split by
                # it alone a box can shrink to a sliver along the inputs that matter least to
                # the coefficients while an unstable ReLU's input stays wide along another
                rel = width / np.maximum(self.hi - self.lo, 1e-300)
                wide = rel.argmax(axis=1)
                dims[:, -1] = np.where(dims[:, 0] == wide, dims[:, -1], wide)
                # and past an aspect ratio it is the split: a look-ahead prefers the halves of
                # a sliver's short side (each a little better) to those of its long side
                # (no better until both halves are split again), and would never come back
                sliver = rel.max(axis=1) > MAX_ASPECT * rel.min(axis=1)
                dims[sliver] = wide[sliver, None]
            KL, KH = split_halves(L, H, dims)
            self.stats["t_branch"] += time.perf_counter() - t
            rep = np.tile(np.arange(B), 2 * look)
            KN = KN[rep]  # each half's parent's signs, where all its bounds start
            own2, row2, coef2, olo2, ohi2, _ = self._bound(KL, KH, OL[rep], OH[rep], PR[rep], KN)
            stable2, base_coef2, ymid2, pre2 = self.aff
            eff2 = np.maximum(own2, eff[rep])
            worse = np.minimum(eff2[: look * B], eff2[look * B :]).reshape(look, B)
            q = worse.argmax(axis=0)
            i0, i1 = q * B + ar, look * B + q * B + ar
            sel = np.concatenate([i0, i1])
            own_k, row_k = own2[sel], row2[sel]
            sl, up = None, np.zeros(len(sel), dtype=bool)
            # past the time limit the children keep their CROWN bounds (valid, just looser)
            late = self.dl.expired()
            if self.cb is not None and not late:
                # only boxes that stay open need a better bound
                tol = self._tol()
                need = np.maximum(own_k, eff[rep][sel]) < self.ub - tol
                # where most ReLUs are unstable, optimized slopes buy less than the boxes their
                # time would bound: 10-32-32-2 beyond_ia (every unit unstable on the open
                # boxes) reached 3.397 in 60 s without alpha, 3.345 with it; 5-50-50-50-5
                # beyond_ia (13 of 150 unstable near the optimum) closes only with it
                uns = sum(np.sum((a < 0) & (b > 0), axis=-1) for a, b in pre2.values())[sel]
                need &= uns <= ALPHA_MAX_UNSTABLE * self.n_units
                if need.any():
                    o2, r2, s2, u2 = self._alpha(
                        KL[sel][need],
                        KH[sel][need],
                        row_k[need],
                        own_k[need],
                        None if PS is None else [a[rep][sel][need] for a in PS],
                        KN[sel][need],
                        {v: (a[sel][need], b[sel][need]) for v, (a, b) in pre2.items()},
                    )
                    own_k, row_k = own_k.copy(), row_k.copy()
                    own_k[need], row_k[need] = o2, r2
                    up[need] = u2
                    sl = [np.zeros((len(sel), a.shape[1])) for a in s2]
                    for a, b in zip(sl, s2, strict=True):
                        a[need] = b
            if self.mn.kind in ("l1", "linf") and not late:
                tol = self._tol()
                lp = stable2[sel] & (np.maximum(own_k, eff[rep][sel]) < self.ub - tol)
                if lp.any():
                    k_sel = sel[lp]
                    o3, r3, u3 = self._exact(
                        KL[k_sel], KH[k_sel], base_coef2[k_sel], ymid2[k_sel], own_k[lp], KN[k_sel]
                    )
                    own_k, row_k = own_k.copy(), row_k.copy()
                    own_k[lp] = o3
                    row_k[np.nonzero(lp)[0][u3]] = r3[u3]
                    # an LP row's bound needs no slopes (every ReLU is stable)
                    up[np.nonzero(lp)[0][u3]] = False
            frags: dict[int, tuple] = {}
            if self.chain is not None and self.mn.kind != "l2" and not late:
                tol = self._tol()
                still = np.maximum(own_k, eff[rep][sel]) < self.ub - tol
                if still.any():
                    own_k, frags = self._pieces(KL[sel], KH[sel], pre2, sel, own_k, still, KN[sel])
                    for k in frags:
                        up[k] = False  # its pieces' bounds need no slopes
            eff2[sel] = np.maximum(own_k, eff[rep][sel])
            kid_ids = self.nodes.add(own_k, self.rows.intern(row_k))
            self._keep(kid_ids, sl, up)
            for k, fr in frags.items():
                self.frags[int(kid_ids[k])] = fr
            j = dims[ar, q]
            self.nodes.split(ids, j, mid[ar, j], kid_ids[:B], kid_ids[B:])
            self._forget(ids, kid_ids[:B], kid_ids[B:])
            tol = self._tol()
            pos = {int(v): k for k, v in enumerate(sel.tolist())}
            # the signs the kept halves' own bounds prove (for their halves in turn)
            kn2 = self.bc.signs({v: (a[sel], b[sel]) for v, (a, b) in pre2.items()}, len(sel))
            for idx, nid in zip(sel.tolist(), kid_ids.tolist(), strict=True):
                e = float(eff2[idx])
                if e >= self.ub - tol:
                    closed = min(closed, e)
                else:
                    heapq.heappush(heap, (e, nid))
                    data[nid] = (
                        KL[idx],
                        KH[idx],
                        coef2[idx],
                        olo2[idx],
                        ohi2[idx],
                        depth + 1,
                        row_k[pos[idx]],
                        None if sl is None else [a[pos[idx]] for a in sl],
                        kn2[pos[idx]],
                    )
            self.stats["depth"] = max(self.stats["depth"], depth + 1)
            self.stats["rounds"] += 1
            # rounds of about a second at most, so that a time limit or Ctrl-C is kept to
            # about that on wide networks (a 256-wide round of 256 boxes takes seconds)
            took = time.perf_counter() - t_round
            if took > ROUND_SECONDS and self.batch > 8:
                self.batch //= 2
            elif took < ROUND_SECONDS / 4 and self.batch < self.max_batch:
                self.batch *= 2
            if self.stats["rounds"] % 16 == 0:
                self._emit(heap, closed)
            self._maybe_polish(heap, data)
        return self._finish(heap, closed, stopped, t0)

    def _keep(self, ids: np.ndarray, slopes: list | None, up: np.ndarray) -> None:
        if slopes is None:
            return
        for k in np.nonzero(up)[0]:
            self.slopes[int(ids[k])] = [a[k].copy() for a in slopes]
            self.kept_floats += sum(a.shape[1] for a in slopes)

    def _forget(self, parents: np.ndarray, k0: np.ndarray, k1: np.ndarray) -> None:
        """Drop a split box's slopes where both halves bound at least as high: the proof then
        never needs the box as a leaf (its own bound is set to -inf, so the walk descends)."""
        nd = self.nodes
        for p, a, b in zip(parents.tolist(), k0.tolist(), k1.tolist(), strict=True):
            if (p in self.slopes or p in self.frags) and min(nd.own[a], nd.own[b]) >= nd.own[p]:
                gone = self.slopes.pop(p, None)
                self.kept_floats -= 0 if gone is None else sum(len(a) for a in gone)
                self.frags.pop(p, None)
                nd.own[p] = -np.inf

    def _stop(self, n_open: int) -> str | None:
        if interrupted():
            return "interrupted"
        if self.dl.expired():
            return "time limit"
        if n_open > self.max_domains or self.kept_floats > MAX_KEPT_FLOATS:
            return "domain limit"
        return None

    def _maybe_polish(self, heap: list, data: dict) -> None:
        now = time.perf_counter()
        if now - self.last_polish < self.polish_gap or not heap:
            return
        self.last_polish, self.polish_gap = now, self.polish_gap * 2
        best = [i for _, i in heapq.nsmallest(16, heap)]
        X = np.stack([(data[i][0] + data[i][1]) / 2 for i in best])
        self._polish(X, 40)

    def _emit(self, heap: list, closed: float) -> None:
        low = min(heap[0][0] if heap else np.inf, closed)
        emit(
            self.progress,
            "branch and bound",
            self.dl,
            domains=self.stats["nodes"],
            open=len(heap),
            incumbent=None if self.x is None else self.mn.sign * self.ub,
            bound=None if not np.isfinite(low) else self.mn.sign * low,
        )

    def _finish(self, heap: list, closed: float, stopped: str | None, t0: float) -> MinimizeResult:
        from netopt.bounds.objective_rows import proof_rhs
        from netopt.bounds.proof_format import BabProof

        st = self.stats
        st["seconds"] = time.perf_counter() - t0
        st["domains_per_s"] = st["nodes"] / max(st["seconds"], 1e-9)
        st["open"] = len(heap)
        st["batch"] = self.batch  # as the round timing left it
        low = min(heap[0][0] if heap else np.inf, closed)
        if not np.isfinite(low):
            # nothing open and nothing pruned: the root was closed at once (its own bound)
            low = float(self.nodes.own[0])
        low = min(low, self.ub)  # a bound past a point that attains it says nothing more
        # room for the proof check's own rounding: a leaf's row bound and its d are of the size
        # of the row offsets e(v) (a target or constant far from 0), not only of the bound
        emax = float(np.max(np.abs(self.mn.offsets(np.stack(self.rows.table)))))
        claim = low - MARGIN * (1.0 + abs(low)) - 64 * np.finfo(float).eps * emax
        if stopped is None and self.ub - max(claim, self.mn.floor) > 2 * self._tol():
            # the room taken leaves the gap wider than asked (a gap near the float64 limits)
            stopped = "precision"
        proof = None
        if claim > self.mn.floor and np.isfinite(claim):
            nodes, row_ids, params = self.nodes.preorder(low, self.slopes, self.frags)
            V = np.stack([self.rows.table[r] for r in row_ids])
            proof = BabProof(
                lo=self.lo[0].copy(),
                hi=self.hi[0].copy(),
                C=V,
                d=proof_rhs(self.mn, V, claim),
                nodes=nodes,
                params=params,
                inherit=True,
            )
            st["proof_leaves"] = sum(1 for nd in nodes if nd[0] == "leaf")
        else:
            claim = max(claim, self.mn.floor)
        return MinimizeResult(self.x, self.ub, float(claim), proof, stopped, st)
