"""ReLU splitting: the box with some ReLUs' signs fixed, hardest domains first, beta-CROWN.

For wider networks, whose inputs are too many to halve, a domain is the whole box with the
signs of some unstable ReLUs fixed. Each round bounds a batch of the domains of the lowest
bounds on the batched torch engine (:class:`~netopt.bounds.batched.ChainBounds`: alpha-CROWN
slopes and beta-CROWN multipliers of the split constraints, warm-started from the parent),
confirms every closed domain with the rigorous float64 bounds and the search's own slopes and
multipliers (which then go into the proof), and splits the rest by filtered smart branching:
of the unstable ReLUs of the highest BaBSR scores (Bunel et al. 2020), the one whose children,
bounded once, leave the least to close. A domain keeps its parent's activation bounds; a second
search, which takes turns with this one once it runs long (:mod:`netopt.bounds.relu_turns`), updates
a domain's second-layer bounds for its first-layer splits instead
(:mod:`netopt.bounds.split_update`). Torch is imported only when a search runs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from netopt.bounds.branch_search import BranchResult, TreeVolume, _Search
from netopt.bounds.branching import babsr_scores
from netopt.bounds.fsb import children_full, children_lower
from netopt.bounds.proof import combination_slack
from netopt.bounds.relu_affine import close_affine
from netopt.bounds.relu_domains import (
    at,
    betas_of,
    choose_relu,
    combination_rows,
    leaf_params,
    merge,
    slopes_of,
)
from netopt.bounds.relu_floor import floor_open
from netopt.bounds.relu_lockstep import BoundRequest, BranchRequest, serve
from netopt.bounds.relu_turns import in_turns
from netopt.bounds.root_bounds import root_bounds, torch_bounds

#: ReLU splitting gives up ("unpromising") once it has run this many seconds with fewer than
#: this share of its domains closed. Measured: an MNIST 256x2 disjunct that it decides closes
#: about half of them (prop_3_0.03: 1630 of 3259); a 3SAT instance at n = 50 (313 ReLUs), which
#: the MILP decides in 15-25 s, closes 2 % (777 of 44201 in 8 s) and would not finish.
RELU_PATIENCE = 3.0
RELU_MIN_CLOSED = 0.1
#: ... but not before this share of the time it was given has passed, nor while the closed share
#: of its sign patterns (:class:`~netopt.bounds.branch_search.TreeVolume`), at its recent pace,
#: would be complete within this many times the time left (the estimate runs long while the
#: tree deepens: 2.4x the rest at 9 s, 1.5x at 21 s on the decision below). Without them a long
#: time limit bought nothing on a tree that closes slowly at first: the bench seeds' 10-32-32-2
#: seed 5 ``beyond_ia`` decision at its optimum gave up after 3.7 s with 2 % of its domains
#: closed, and is "unsat" in 66 s when it goes on (10 % of its domains closed at 21 s, half
#: at the end); so ``solve(time_limit=150)`` ended much where 60 s did
#: (``benchmarks/RESULTS.md``). The price: a search spared so and then stopped by its time
#: limit leaves its caller's next step (the MILP of ``netopt check``, a lower threshold of
#: optimization's decisions) less time than giving up would have.
RELU_PATIENCE_SHARE = 0.1
RELU_FINISH_SLACK = 2.0

#: Filtered smart branching (the field's FSB, De Palma et al. 2021): the units of the highest
#: BaBSR scores, this many per domain, are each tried by bounding both children once (the
#: parent's slopes and multipliers, no optimization), and the split leaving the least to close
#: (the children's negative bounds summed) is taken. Measured on MNIST 256x2 prop_1_0.03
#: (2-core CPU, seconds for its four hardest disjuncts, 60 s each): BaBSR alone 109.0 (one
#: open), 5 / 10 / 20 / 40 candidates 90.1 (one open) / 34.8 / 18.6 / 21.8. The worse child's
#: bound as the score (abcrown's default) took 34.2 with 20, and 16207 domains where BaBSR
#: needs 185 on a 2-16-16-2 chain (the sum: 217). With the children bounded from their
#: parent's bound (:data:`FSB_INCREMENTAL`), all nine disjuncts of prop_1_0.03 took 19.3 s with
#: 20 candidates and 21.9 s with 12.
FSB_CANDIDATES = 20
#: children bounded together at most in one call (memory)
FSB_MAX_CHILDREN = 32768
#: The children's bounds from their parent's (:func:`netopt.bounds.fsb.children_lower`: the
#: back-substitution from the split layer down only, none below the first layer); False: a full
#: pass per child. The same bounds (tested in float64); measured on two MNIST 256x2 disjuncts
#: (a shifted image, ``benchmarks/compare/unseen_instances.py``), the same trees in 6.7-7.8 s
#: against 12.2-13.7 s and 6.2-6.5 s against 8.8-9.1 s, branching's share 2.2-2.8 s against
#: 5.2-9.8 s.
FSB_INCREMENTAL = True

#: A round of at most this many domains to split splits each on two units at once (filtered
#: smart branching's pick and runner-up: four children): while the tree is narrow a round's
#: cost is mostly its fixed overhead, and this halves the rounds. 0: one unit per domain.
#: Measured (2-core CPU, 22 MNIST 256x2 disjuncts of one row each, 60 s each: prop_1_0.03,
#: prop_3_0.03 and four of a shifted image's): 0 / 16 / 64 / 256 / 1024 took 62-70 / 57 /
#: 49-51 / 55 / 56 s. On a decision of the bench's 10-32-32-2 (four rows and their
#: combination) it took 11.5-12.3 s against 8.6-8.9 s (a deeper tree): so only for one row.
MULTI_SPLIT_BELOW = 64

#: Adam's rates in ReLU splitting's rounds by default (``alpha_crown``'s ``lr``, ``lr_beta``,
#: ``lr_mix``); :data:`netopt.bounds.opt_decide.DECISION_RATES` for optimization's decisions.
RELU_RATES = (0.25, 0.05, 0.1)

#: With several rows of ``C f <= d`` (all must hold at a counterexample), each domain's bound
#: includes a combination of the rows with weights optimized with the slopes
#: (:meth:`~netopt.bounds.batched.ChainBounds.alpha_crown`'s ``mix``): where two rows meet at
#: the best point (the signs of an :math:`\ell_1` objective's residual at 0), no single row
#: closes a domain until every sign is fixed.
MIX_ROWS = True

#: Memory (bytes) the domains of one batch may take on the CPU (CUDA: half of its free memory).
CPU_BATCH_BYTES = 512 * 2**20


def _batch_size(cb: Any, per_domain: int) -> int:
    """Domains per round: what fits the device's memory, within [16, 4096]."""
    import torch

    if cb.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(cb.device)
        # (memory torch holds cached from earlier calls is free to it, not to the driver)
        free += torch.cuda.memory_reserved(cb.device) - torch.cuda.memory_allocated(cb.device)
        budget = free // 2
    else:
        budget = CPU_BATCH_BYTES
    return int(np.clip(budget // max(per_domain, 1), 16, 4096))


class _ReluSearch(_Search):
    """A run of ReLU splitting (the domains are sign patterns of the box; torch)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.root_pre: dict | None = None
        self.pre_rows: list = []  # the root's optimized bounds' rows (the proof's "pre")
        self.chain: Any = None  # the chain's float64 layers, for the affine domains' LPs
        # several rows (all must hold at a counterexample): a combination of them is bounded too
        self.mix = MIX_ROWS and self.C.shape[0] > 1
        self.update: Any = None  # the second layer's rows (updating), made at the first use
        self.split_update = True  # the second search may take turns (branch_and_bound's)
        self.updating = False  # this search updates its domains' second-layer bounds
        # stopped by the time limit, its open domains close for lower rows (relu_floor)
        self.floor_on_stop = False
        # Adam's rates of the slopes, multipliers and rows' weights (branch_and_bound's)
        self.rates = RELU_RATES
        self.candidates = FSB_CANDIDATES  # filtered smart branching's (branch_and_bound's)
        # seconds before "unpromising" may end it (more where searches share the time)
        self.patience = RELU_PATIENCE
        self.volume = TreeVolume()  # (the closed share of the sign patterns: each run's own)
        self.stats.update(
            closed_share=0.0, affine_closed=0, t_affine=0.0, t_update=0.0, float64_recomputed=0
        )

    def _default_batch(self) -> int:
        # bytes per domain: the spec rows' pass and the state kept per domain
        per = 4 * 8 * (sum(self.widths) * (self.C.shape[0] + 4))
        return _batch_size(self.cb, per)

    def _root_pre(self) -> dict:
        """The box's float64 activation bounds, valid on every domain
        (:func:`netopt.bounds.root_bounds.root_bounds`: optimized ones on wide boxes, whose
        rows the proof records as its ``pre``)."""
        if self.root_pre is None:
            self.pre_rows, self.root_pre = root_bounds(
                self.bc, self.cb, self.lo, self.hi, self.stats
            )
        return self.root_pre

    def _root_prev(self, B: int) -> list | None:
        """The root's bounds for the torch search's first round, when optimized (else None:
        the search's own CROWN bounds are the same)."""
        root = self._root_pre()
        return torch_bounds(self.bc, self.cb, root, B) if self.pre_rows else None

    def _confirm(
        self,
        rows: np.ndarray,
        splits: list,
        slopes: list | None,
        betas: list | None,
        mu: np.ndarray | None = None,
        gaps: bool = False,
    ) -> np.ndarray:
        """Which domains the float64 bounds close with the search's slopes and multipliers
        (row ``k`` of ``k`` rows: the combination with weights ``mu``); with ``gaps``, by how
        much each bound exceeds what closing needs (negative: open by that much)."""
        t = time.perf_counter()
        B = len(rows)
        k = self.C.shape[0]
        lo = np.repeat(self.lo, B, axis=0)
        hi = np.repeat(self.hi, B, axis=0)
        one = np.minimum(rows, k - 1)
        C3 = self.C[one][:, None, :].copy()
        floor = self.d[one] + self.margin[one]
        comb = rows >= k
        if comb.any():
            C3[comb, 0] = mu[comb] @ self.C
            floor[comb] = mu[comb] @ (self.d + self.margin) + combination_slack(
                self.bc, self.C, self.d, lo[comb], hi[comb], [s[comb] for s in splits], mu[comb]
            )
        # the root's activation bounds with the splits, as the search used them (and as the
        # proof check first tries): one final back-substitution per domain
        lower, _, _ = self.bc.bound(
            lo,
            hi,
            C3,
            splits=splits,
            slopes=slopes,
            betas=betas,
            fixed=self._root_pre(),
        )
        if gaps:
            self.stats["t_check"] += time.perf_counter() - t
            return lower[:, 0] - floor
        ok = lower[:, 0] > floor
        if self.updating:
            # the bounds recomputed with the splits, intersected with the root's (as the search
            # bounded a domain split in the first layer, and as the proof check tries next)
            self.stats["float64_recomputed"] += self._reclose(
                ok, lo, hi, C3, floor, splits, slopes, betas, prev=self._root_pre()
            )
        self.stats["t_check"] += time.perf_counter() - t
        self.stats["float64_reopened"] += int((~ok).sum())
        return ok

    def _reclose(
        self,
        ok: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        C3: np.ndarray,
        floor: np.ndarray,
        splits: list,
        slopes: list | None,
        betas: list | None,
        prev: dict | None = None,
    ) -> int:
        """The domains ``ok`` leaves open bounded again in float64 with their activation bounds
        recomputed for their splits (intersected with ``prev``, bounds valid on every domain):
        ``ok`` updated in place; how many this closed."""
        sel = np.nonzero(~ok)[0]
        if not len(sel):
            return 0
        low, _, _ = self.bc.bound(
            lo[sel],
            hi[sel],
            C3[sel],
            prev,
            splits=[at(s, sel) for s in splits],
            slopes=None if slopes is None else [at(s, sel) for s in slopes],
            betas=None if betas is None else [at(b, sel) for b in betas],
        )
        ok[sel] = low[:, 0] > floor[sel]
        return int(ok[sel].sum())

    def _unpromising(self, elapsed: float, given: float) -> bool:
        """Whether the search gives up ``elapsed`` seconds in, having been given ``given``:
        past its patience, fewer than :data:`RELU_MIN_CLOSED` of its domains closed, and
        (with a time limit) its closed share not complete within :data:`RELU_FINISH_SLACK`
        times the time left at its recent pace (see :data:`RELU_PATIENCE`,
        :data:`RELU_PATIENCE_SHARE`)."""
        st = self.stats
        wait = (
            self.patience
            if not np.isfinite(given)
            else max(self.patience, RELU_PATIENCE_SHARE * given)
        )
        if elapsed <= wait or st["leaves"] >= RELU_MIN_CLOSED * st["nodes"]:
            return False
        left = self.dl.remaining()
        return not (
            np.isfinite(left) and self.volume.seconds_left(elapsed) <= RELU_FINISH_SLACK * left
        )

    def _tighten(self, sp: list, pre: list, sel: np.ndarray) -> list:
        """``pre`` (a batch's activation bounds) with the second layer's recomputed for the
        first-layer splits of the domains ``sel`` (an updating search's, two activation layers or
        more)."""
        import torch

        t = time.perf_counter()
        if self.update is None:
            from netopt.bounds.split_update import SecondLayerUpdate

            l0, u0 = self._root_pre()[self.bc.relu_inputs[0]]
            self.update = SecondLayerUpdate(self.cb, self.lo, self.hi, (l0, u0))
        it = torch.as_tensor(np.nonzero(sel)[0], device=self.cb.device)
        l1, u1 = pre[1][0].clone(), pre[1][1].clone()
        # the units unstable and unsplit on some of these domains (the others' relaxations
        # are exact already)
        units = torch.nonzero(((l1[it] < 0) & (u1[it] > 0) & (sp[1][it] == 0)).any(0))[:, 0]
        if len(units):
            low, up = self.update.bounds(sp[0][it], units)
            ix = (it[:, None], units[None, :])
            l1[ix], u1[ix] = torch.maximum(l1[ix], low), torch.minimum(u1[ix], up)
        self.stats["t_update"] += time.perf_counter() - t
        return [pre[0], (l1, u1), *pre[2:]]

    def _units(self, sb: Any, kt: Any, sp: list) -> tuple[np.ndarray, ...]:
        """The units to split in the kept domains ``kt`` of ``sb``: BaBSR's, filtered smart
        branching's where its ``candidates`` (:data:`FSB_CANDIDATES`) are more than one.
        Returns ``(layer, unit, layer2, unit2, two, can)``: the pick, the runner-up where
        ``two`` (:meth:`_filtered`), and ``can`` False for a domain with no unstable unit
        left."""
        scores = babsr_scores(self.cb, sb)
        layer, unit, can = choose_relu(scores, kt, [s[kt] for s in sp])
        layer2 = unit2 = np.zeros(len(kt), dtype=np.int64)
        two = np.zeros(len(kt), dtype=bool)
        if self.candidates > 1 and can.any():
            layer, unit, layer2, unit2, two = self._filtered(sb, scores, kt, sp, layer, unit)
        return layer, unit, layer2, unit2, two, can

    def _filtered(
        self,
        sb: Any,
        scores: list,
        kt: Any,
        sp: list,
        layer: np.ndarray,
        unit: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        r"""Filtered smart branching: of each kept domain's ``candidates`` units of the
        highest BaBSR score, the one whose children's bounds :math:`b_-, b_+` (each bounded
        once with the parent's slopes and multipliers) maximize :math:`\min(b_-, 0) +
        \min(b_+, 0)`; ``layer``/``unit`` (BaBSR's pick) where no candidate is unstable.

        Returns ``(layer, unit, layer2, unit2, ok2)``: the pick and the runner-up, which
        ``ok2`` says exists (another unstable candidate)."""
        import torch

        cb = self.cb
        dev = cb.device
        n = len(kt)
        flat = torch.cat(
            [
                torch.where(s[kt] == 0, sc[kt], torch.full_like(sc[kt], -1.0))
                for sc, s in zip(scores, sp, strict=True)
            ],
            1,
        )
        K = min(self.candidates, flat.shape[1])
        val, idx = flat.topk(K, dim=1)
        offs = torch.as_tensor(np.cumsum([0, *self.widths]), device=dev)
        lay = torch.searchsorted(offs, idx, right=True) - 1
        uni = idx - offs[lay]
        # the children in chunks of at most FSB_MAX_CHILDREN domains (memory)
        step = max(1, FSB_MAX_CHILDREN // (2 * K))
        score = torch.empty((K, n), dtype=cb.dtype, device=dev)
        lo_t, hi_t = cb._t(self.lo), cb._t(self.hi)
        for a in range(0, n, step):
            part = kt[a : a + step]
            m = len(part)
            la, un = lay[a : a + m], uni[a : a + m]
            if FSB_INCREMENTAL:
                low = children_lower(cb, sb, lo_t, hi_t, sp, part, la, un)
            else:
                low = children_full(cb, self.lo, self.hi, self.C, self.d, sb, sp, part, la, un)
            low = low.max(dim=-1).values
            # what is left to close on both sides (a closed child counts 0)
            score[:, a : a + m] = low[:, 0].clamp(max=0) + low[:, 1].clamp(max=0)
        score = torch.where(val.T > 0, score, torch.full_like(score, -torch.inf))
        best = score.argmax(dim=0)
        ok = torch.isfinite(score.max(dim=0).values).cpu().numpy()
        ar = torch.arange(n, device=dev)
        f_layer = lay[ar, best].cpu().numpy()
        f_unit = uni[ar, best].cpu().numpy()
        score[best, ar] = -torch.inf
        second = score.argmax(dim=0)
        ok2 = ok & torch.isfinite(score.max(dim=0).values).cpu().numpy()
        return (
            np.where(ok, f_layer, layer),
            np.where(ok, f_unit, unit),
            lay[ar, second].cpu().numpy(),
            uni[ar, second].cpu().numpy(),
            ok2,
        )

    def _split(self) -> BranchResult:
        """The box with ReLU signs fixed, hardest first, on the batched torch engine: this
        search, in turns with one that updates its domains' second-layer bounds once it runs
        long (:func:`netopt.bounds.relu_turns.in_turns`)."""
        return serve(in_turns(self), self.cb)

    def _rounds(self):
        """The search's rounds as a generator: it yields a
        :class:`~netopt.bounds.relu_lockstep.BoundRequest` for each round's bounds (and is sent
        the :class:`SpecBound`), a :class:`~netopt.bounds.relu_lockstep.BranchRequest` for
        the units to split (and is sent them, :meth:`_units`) and None at a round's end; its
        verdict is the ``StopIteration``'s value (:attr:`updating`: the domains' second-layer
        bounds updated for their splits)."""
        import torch

        cb = self.cb
        dev = cb.device
        L = len(self.widths)
        # open domains: split signs per layer (int8), the parent's activation bounds (reused:
        # the box never changes), slopes and multipliers (warm starts), bound, id, depth
        splits = [torch.zeros((1, n), dtype=torch.int8, device=dev) for n in self.widths]
        pre: list | None = None
        slopes: list | None = None
        betas: list | None = None
        mixes: Any = None  # the rows' combination's weights (several rows)
        score = np.array([-np.inf])
        ids = np.zeros(1, dtype=np.int64)
        depth = np.zeros(1, dtype=np.int64)
        # split in the first layer since the domain's bounds were last computed (updating)
        fresh = np.zeros(1, dtype=bool)
        root = True
        self.volume, given = TreeVolume(), self.dl.remaining()
        oom = 0  # the halvings for memory seen (relu_lockstep.halving)
        t0 = time.perf_counter()
        while len(ids):
            why = self._stop(len(ids))
            if why is not None:
                if why == "time limit" and self.floor_on_stop:
                    floor_open(self, splits, slopes, betas, mixes, ids)
                return BranchResult("unknown", stopped=why)
            if self.stats.get("oom_halved", 0) > oom:
                # the device ran out of memory in the last round: smaller batches from now on
                # (halved as often as its calls were)
                new, oom = self.stats["oom_halved"] - oom, self.stats["oom_halved"]
                self.batch = self.stats["batch"] = max(1, self.batch >> min(new, 30))
            if self._unpromising(time.perf_counter() - t0, given):
                # the tree grows far faster than it closes and would not finish in time: the
                # MILP (a caller's next step) is the better use of the time left
                return BranchResult("unknown", stopped="unpromising")
            take = np.argsort(score, kind="stable")[: self.batch]
            rest = np.setdiff1d(np.arange(len(ids)), take, assume_unique=True)
            tk = torch.as_tensor(take, device=dev)
            sp = [s[tk] for s in splits]
            b_ids, b_depth = ids[take], depth[take]
            B = len(take)
            self.stats["nodes"] += B
            self.stats["depth"] = max(self.stats["depth"], int(b_depth.max()))
            lo_b = np.broadcast_to(self.lo, (B, self.lo.shape[1]))
            hi_b = np.broadcast_to(self.hi, (B, self.hi.shape[1]))
            pre_b = None if pre is None else [(a[tk], b[tk]) for a, b in pre]
            if self.updating and pre_b is not None and fresh[take].any():
                pre_b = self._tighten(sp, pre_b, fresh[take])
            # the bound is asked of the driver (relu_lockstep): it bounds several searches'
            # batches in one call where they run in lockstep (and counts the seconds)
            sb = yield BoundRequest(
                self.stats,
                lo=lo_b,
                hi=hi_b,
                C=self.C,
                d=self.d,
                splits=sp,
                iters=max(self.iters, 20) if root else self.iters,
                init=None if slopes is None else [s[tk] for s in slopes],
                beta=not root,
                init_betas=None if betas is None else [b[tk] for b in betas],
                pre=pre_b,
                prev=self._root_prev(B) if pre is None else None,
                mix=self.mix,
                init_mix=None if mixes is None else mixes[tk],
                rates=self.rates,
            )
            root = False
            lower = sb.lower.detach().to("cpu", torch.float64).numpy()
            rows = lower.argmax(axis=1)
            best = lower[np.arange(B), rows]
            # a domain whose split signs contradict its bounds is empty: closed too
            empty = np.zeros(B, dtype=bool)
            for lj, uj in sb.pre:
                empty |= (lj > uj).any(dim=1).cpu().numpy()
            closed = (best > 0) | empty
            if closed.any():
                idx = np.nonzero(closed)[0]
                it = torch.as_tensor(idx, device=dev)
                sp_np = [s[it].cpu().numpy().astype(np.int64) for s in sp]
                sl = slopes_of(sb.slopes, idx)
                bt = betas_of(sb.betas, idx, rows[idx], sp_np)
                mu = None if sb.mix is None else sb.mix.detach()[it].cpu().double().numpy()
                ok = self._confirm(rows[idx], sp_np, sl, bt, mu)
                params = leaf_params(sl, bt, ok, sp_np)
                r_ok = combination_rows(
                    params, rows[idx[ok]], None if mu is None else mu[ok], self.C.shape[0]
                )
                self.tree.close(b_ids[idx[ok]], r_ok, params)
                self.stats["leaves"] += int(ok.sum())
                self.volume.add(b_depth[idx[ok]], time.perf_counter() - t0)
                closed[idx[~ok]] = False
            keep = np.nonzero(~closed)[0]
            new: dict[str, Any] = {}
            if len(keep):
                kt = torch.as_tensor(keep, device=dev)
                coef = sb.coef.detach()[kt].cpu().double().numpy()
                x = self._points(np.where(coef > 0, self.lo, self.hi))
                if x is not None:
                    return BranchResult("sat", x=x)
                # the units to split, asked of the driver as the bounds are
                layer, unit, layer2, unit2, two, can = yield BranchRequest(
                    self.stats, self, sb, kt, sp, own_rows=not FSB_INCREMENTAL
                )
                t = time.perf_counter()
                # two units at once while the round is small (see MULTI_SPLIT_BELOW)
                two &= len(keep) <= MULTI_SPLIT_BELOW and self.C.shape[0] == 1
                if not can.all():
                    # no unstable unit left: the network is affine on the domain, yet no row
                    # closed it. A combination of the rows may (an LP); the others are set
                    # aside, and the search can end "unknown" at best
                    x = close_affine(self, keep[~can], sp, sb, b_ids, b_depth, t0)
                    if x is not None:
                        return BranchResult("sat", x=x)
                    keep, layer, unit = keep[can], layer[can], unit[can]
                    layer2, unit2, two = layer2[can], unit2[can], two[can]
                    kt = torch.as_tensor(keep, device=dev)
            if len(keep):
                c0, c1 = self.tree.split(b_ids[keep], "r", layer, unit)
                # the children: (positions in keep, their (layer, unit, side) splits, tree ids)
                one, dbl = np.nonzero(~two)[0], np.nonzero(two)[0]
                groups = [
                    (one, [(layer[one], unit[one], side)], c[one])
                    for side, c in ((-1, c0), (1, c1))
                ]
                for side, c in ((-1, c0), (1, c1)):
                    g0, g1 = self.tree.split(c[dbl], "r", layer2[dbl], unit2[dbl])
                    for side2, g in ((-1, g0), (1, g1)):
                        sets = [(layer[dbl], unit[dbl], side), (layer2[dbl], unit2[dbl], side2)]
                        groups.append((dbl, sets, g))
                pos = np.concatenate([g[0] for g in groups])
                rep = kt[torch.as_tensor(pos, device=dev)]
                new["splits"] = []
                for j in range(L):
                    s2 = sp[j][rep].clone()
                    off = 0
                    for idx, sets, _ in groups:
                        for la, un, side in sets:
                            sel = np.nonzero(la == j)[0]
                            if len(sel):
                                st = torch.as_tensor(off + sel, device=dev)
                                s2[st, torch.as_tensor(un[sel], device=dev)] = side
                        off += len(idx)
                    new["splits"].append(s2)
                new["pre"] = [(a.detach()[rep], b.detach()[rep]) for a, b in sb.pre]
                new["slopes"] = [s.detach()[rep] for s in sb.slopes]
                new["betas"] = [b.detach()[rep] for b in sb.betas] if sb.betas else None
                new["mix"] = None if sb.mix is None else sb.mix.detach()[rep]
                new["score"] = best[keep][pos]
                new["ids"] = np.concatenate([g[2] for g in groups])
                new["depth"] = np.concatenate([b_depth[keep][g[0]] + len(g[1]) for g in groups])
                new["fresh"] = np.concatenate(
                    [np.any([la == 0 for la, _, _ in g[1]], axis=0) for g in groups]
                )
                self.stats["t_branch"] += time.perf_counter() - t
            rt = torch.as_tensor(rest, device=dev)

            if len(keep):
                if betas is None and new["betas"] is not None and len(rest):
                    # the root's domains had no multipliers yet: zeros
                    betas = [torch.zeros_like(b[:1]).expand(len(ids), -1, -1) for b in new["betas"]]
                splits = merge(rt, splits, new["splits"])
                pre = merge(rt, pre, new["pre"], pair=True)
                slopes = merge(rt, slopes, new["slopes"])
                betas = merge(rt, betas, new["betas"])
                if new["mix"] is not None:
                    mixes = merge(rt, None if mixes is None else [mixes], [new["mix"]])[0]
                score = np.concatenate([score[rest], new["score"]])
                ids = np.concatenate([ids[rest], new["ids"]])
                depth = np.concatenate([depth[rest], new["depth"]])
                fresh = np.concatenate([fresh[rest], new["fresh"]])
            else:
                splits = merge(rt, splits, None)
                pre = merge(rt, pre, None, pair=True)
                slopes = merge(rt, slopes, None)
                betas = merge(rt, betas, None)
                if mixes is not None:
                    mixes = mixes[rt]
                score, ids, depth, fresh = score[rest], ids[rest], depth[rest], fresh[rest]
            self.stats["closed_share"] = self.volume.share
            self._emit(len(ids))
            if len(ids):
                yield None  # a round's end (none after the last: its verdict comes at once)
        if self.stats["stuck"]:
            return BranchResult("unknown", stopped="incomplete")
        return BranchResult("unsat")
