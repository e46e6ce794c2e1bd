"""The state and the bookkeeping shared by both branch-and-bound searches.

:class:`BranchResult` is what :func:`~netopt.bounds.branch.branch_and_bound` answers;
:class:`_Tree` records every split and closed leaf, so that an "unsat" comes with its proof;
:class:`_Search` holds one run's problem, budget, tree and statistics and the steps both
searches take (the stop test, trying points in the float64 interpreter, progress events, the
proof at the end). What each search splits, and how, is a subclass's
(:mod:`netopt.bounds.branch_input`, :mod:`netopt.bounds.branch_relu`). :func:`split_halves`
cuts boxes in two for input splitting and for branch and bound for optimization
(:mod:`netopt.bounds.optimize`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.control import Deadline, emit, interrupted

#: ReLU splitting's Adam steps on the slopes and multipliers per domain and round. Where splits
#: contradict each other (an empty domain) the multipliers must grow to a size that a few steps
#: of beta-CROWN's rate do not reach, and such a domain stays open however deep the tree grows
#: under it. Measured (2-core CPU, 60 s per disjunct): a shifted MNIST image's nine disjuncts
#: (``mnist_0_+0+1_0.05``) with 8 / 12 / 16 / 20 / 30 steps: 6 / 6 / 8 / 9 / 9 decided (all
#: nine in 30-32 s with 20 or 30; its disjunct 4 took 29017 domains with 8, 665 with 20: the
#: domains open after 8 steps all closed with 40 more from their parameters); the bench's
#: 10-32-32-2 decision "g <= 3.52": open at 60 s (300179 domains) with 8, unsat in 16-19 s with
#: 16-30; a tree that closes anyway (the MNIST tie's nine disjuncts) 10.0 s with 8, 13.2 with 20.
RELU_ITERS = 20


@dataclass
class BranchResult:
    """What :func:`~netopt.bounds.branch.branch_and_bound` decided.

    Attributes
    ----------
    verdict : {"sat", "unsat", "unknown"}
    x : ndarray or None
        For "sat": a point of the box whose float64 output satisfies every row of ``C y <= d``.
    proof : BabProof or None
        For "unsat": the tree, every leaf closed by the float64 bounds.
    stats : dict
        ``mode``, ``nodes`` (domains bounded), ``leaves`` (closed), ``depth``, ``open`` (left at the
        end), ``domains_per_s``, seconds in ``t_bound``, ``t_check`` (float64 re-check),
        ``t_branch``, ``t_points``, ``device``, ``batch``; input splitting also
        ``pieces_closed``/``pieces_tried``/``t_pieces`` and ``alpha_closed``/``alpha_tried``/
        ``t_alpha`` (boxes closed by their pieces' LPs, by alpha-CROWN's slopes),
        ``relu_split_closed``/``relu_split_tried``/``relu_split_domains`` (boxes closed by
        ReLU splits under them) and ``mix_closed``/``mix_tried``/``t_mix`` (boxes closed by a
        combination of two of their disjunct's rows, :mod:`netopt.bounds.row_mix`), ReLU
        splitting ``affine_closed`` and ``t_affine`` (domains closed by a combination of the
        rows, and the seconds in their LPs and checks), ``t_update`` and
        ``float64_recomputed`` (seconds updating second-layer bounds for first-layer splits,
        leaves confirmed only with bounds so recomputed), ``closed_share`` (the share of the
        box's sign patterns its closed leaves cover, :class:`TreeVolume`; 1 at an "unsat"; of
        several disjuncts at once, the least), ``oom_halved`` (calls cut in halves when the
        device ran out of memory; the batch is halved as often), and where its two searches
        took turns ``split_update`` (the one that answered: True for the updating one) and
        ``other_nodes`` (the domains the other bounded).
    stopped : str or None
        Why the verdict is "unknown": ``"time limit"``, ``"interrupted"``, ``"domain limit"``;
        ``"precision"`` (a box too small to split that the float64 bounds do not close);
        ``"incomplete"`` (ReLU splitting: a domain with every ReLU fixed that neither a row's
        bound nor an LP's combination of the rows closes, and whose LP point is no
        counterexample in float64 — ``stats["stuck"]`` counts them); ``"unpromising"`` (ReLU splitting
        closing too few domains to finish in the time left:
        :data:`~netopt.bounds.branch_relu.RELU_PATIENCE`,
        :data:`~netopt.bounds.branch_relu.RELU_FINISH_SLACK`).
    """

    verdict: str
    x: np.ndarray | None = None
    proof: Any = None
    stats: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None
    #: several disjuncts searched at once (``groups``): the one whose rows ``x`` satisfies
    group: int | None = None
    #: several disjuncts: one result per disjunct ("unsat" with its proof, or "unknown"; a
    #: "sat" search answers for the whole property and leaves this None)
    parts: list | None = None


class TreeVolume:
    r"""The share of the root's domain that a search's closed leaves cover, and how long the
    rest would take at the search's recent pace.

    A domain after :math:`k` binary splits is :math:`2^{-k}` of the root's (of its sign
    patterns: ReLU splitting's), so the closed leaves cover
    :math:`v = \sum 2^{-\mathrm{depth}} \in [0, 1]` and the search ends at :math:`v = 1`
    (the tree-weight measure of branch-and-bound solvers' progress estimates; in float64,
    leaves deeper than 52 splits add less than a rounding of it, and :attr:`share` is clipped
    to 1). Where :math:`v` grew by :math:`\Delta v` over the last half of the elapsed time
    :math:`t`, the rest takes about :math:`(1 - v) / r` at the pace :math:`r = 2 \Delta v / t`.
    The pace usually grows as the tree deepens, so estimates run long: on a ReLU-split
    decision that ends after 66 s (the bench seeds' 10-32-32-2 seed 5 ``beyond_ia`` at its
    optimum; from its trace, sampled every 2 s) the estimated rest was 211 s at 7.3 s, 135 s
    at 9.3 s, 67 s at 21 s and 37 s at 41 s (the rest: 59, 57, 45, 26 s). A tree whose shallow
    part closes at once and the rest slowly is read short at first: a 3SAT instance at
    n = 50, still open at 60 s (:math:`v` = 0.68), 9 s at 8.3 s, 68 s at 11 s, 90 s at 21 s,
    185 s at 33 s.
    """

    def __init__(self) -> None:
        self.closed = 0.0
        self.times = [0.0]
        self.trail = [0.0]  # ``closed`` at each time

    @property
    def share(self) -> float:
        """The closed share :math:`v`."""
        return min(self.closed, 1.0)

    def add(self, depths: np.ndarray, t: float) -> None:
        """Leaves at ``depths`` closed at ``t`` seconds into the search."""
        self.closed += float(np.ldexp(1.0, -np.asarray(depths, dtype=np.int64)).sum())
        self.times.append(t)
        self.trail.append(self.closed)

    def seconds_left(self, t: float) -> float:
        """The estimate at ``t`` seconds (``inf`` where nothing closed in the last half)."""
        import bisect

        # (the share at t / 2 is the last one recorded at or before it)
        i = max(bisect.bisect_right(self.times, t / 2) - 1, 0)
        rate = (self.closed - self.trail[i]) / max(t / 2, 1e-9)
        return max(1.0 - self.closed, 0.0) / rate if rate > 0 else np.inf


class _Tree:
    """The search tree as it grows: split nodes and closed leaves, by integer node id.

    A search over several disjuncts at once (input splitting of a property whose disjuncts
    share a box) shares the splits; each disjunct (``group``) has its own leaves and
    parameters, and its own tree is the shared one cut at its leaves (:meth:`preorder`).
    """

    def __init__(self, groups: int = 1) -> None:
        self.next_id = 1  # the root is 0
        self.splits: dict[int, tuple] = {}
        self.gleaves: list[dict[int, tuple]] = [{} for _ in range(groups)]
        self.gparams: list[list[dict]] = [[] for _ in range(groups)]

    @property
    def leaves(self) -> dict[int, tuple]:
        return self.gleaves[0]

    @property
    def params(self) -> list[dict]:
        return self.gparams[0]

    def children(self, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(parents)
        first = np.arange(self.next_id, self.next_id + n)
        self.next_id += 2 * n
        return first, first + n

    def split(self, parents: np.ndarray, kind: str, a: np.ndarray, b: np.ndarray) -> tuple:
        c0, c1 = self.children(parents)
        for p, ai, bi, i0, i1 in zip(
            parents.tolist(), a.tolist(), b.tolist(), c0.tolist(), c1.tolist(), strict=True
        ):
            self.splits[p] = (kind, ai, bi, i0, i1)
        return c0, c1

    def close(
        self, ids: np.ndarray, rows: np.ndarray, params: list[dict | None], group: int = 0
    ) -> None:
        leaves, plist = self.gleaves[group], self.gparams[group]
        for i, r, p in zip(ids.tolist(), rows.tolist(), params, strict=True):
            if p is None:
                leaves[i] = (int(r), None)
            else:
                plist.append(p)
                leaves[i] = (int(r), len(plist) - 1)

    def preorder(self, group: int = 0) -> list[list]:
        """The tree of ``group`` as ``BabProof.nodes`` (every node must be split or closed):
        a node that closed the group is its leaf, even where the shared tree goes on."""
        leaves = self.gleaves[group]
        out: list[list] = []
        stack = [0]
        while stack:
            n = stack.pop()
            if n in leaves:
                row, p = leaves[n]
                out.append(["leaf", row] if p is None else ["leaf", row, p])
            else:
                kind, a, b, c0, c1 = self.splits[n]
                out.append([kind, a, b])
                stack.append(c1)
                stack.append(c0)
        return out


class _Search:
    """One branch-and-bound run (the state :func:`~netopt.bounds.branch.branch_and_bound`
    describes); a subclass splits (:meth:`_split`) and sizes the batch (:meth:`_default_batch`)."""

    def __init__(
        self,
        net: Any,
        cb: Any,
        lo: np.ndarray,
        hi: np.ndarray,
        C: np.ndarray,
        d: np.ndarray,
        dl: Deadline,
        mode: str,
        batch: int | None,
        alpha_iters: int | None,
        max_domains: int,
        progress: Any,
        device: Any = None,
    ) -> None:
        from netopt.bounds.bab import batch_crown_of

        self.net, self.cb, self.lo, self.hi, self.C, self.d = net, cb, lo, hi, C, d
        #: the network form the proof's units are counted in (BabProof.form)
        self.form = ""
        #: the network itself (``net`` may be its chain form's view, which the bounds take;
        #: the attacks take the network)
        self.network = getattr(net, "net", net)
        self.dl, self.mode, self.progress = dl, mode, progress
        self.device = device  # the torch device asked for (None: CUDA when present)
        self.max_domains = max_domains
        self.iters = RELU_ITERS if alpha_iters is None else alpha_iters
        self.widths = [] if cb is None else [w.shape[0] for w in cb.W[:-1]]
        if batch is None:
            batch = self._default_batch()
        self.batch = int(batch)
        # the disjunct of each row: one (0) unless several are searched at once (set_groups)
        self.groups = np.zeros(len(C), dtype=np.int64)
        self.n_groups = 1
        self.group_rows = [np.arange(len(C))]  # each disjunct's rows, in order
        self.done_groups: list[bool] = []
        self.found_group: int | None = None
        self.tree = _Tree()
        # the float64 bounds: rigorous (outward rounding), the same that netopt verify uses
        self.bc = batch_crown_of(net)
        # a leaf is closed with a little room, so that re-computing its one row in a proof
        # check (a different summation order) cannot land on the other side
        self.margin = 1e-9 * (1.0 + np.abs(d))
        self.shape = tuple(net.input_shape)
        self.stats: dict[str, Any] = {
            "mode": mode,
            "nodes": 0,
            "leaves": 0,
            "depth": 0,
            "t_bound": 0.0,
            "t_check": 0.0,
            "t_branch": 0.0,
            "t_points": 0.0,
            "t_attack": 0.0,
            "stuck": 0,
            "device": "cpu (numpy float64)" if cb is None else str(cb.device),
            "batch": self.batch,
            "float64_reopened": 0,
        }

    def _default_batch(self) -> int:
        """Domains per round when the caller gives none."""
        raise NotImplementedError

    def _split(self) -> BranchResult:
        """The search itself, to its verdict (the statistics and proof are :meth:`run`'s)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the loop
    def run(self) -> BranchResult:
        t0 = time.perf_counter()
        return self.finish(self._split(), time.perf_counter() - t0)

    def finish(self, res: BranchResult, seconds: float) -> BranchResult:
        """``res`` (the search's verdict after ``seconds``) with the statistics and the
        proofs."""
        st = self.stats
        st["seconds"] = seconds
        st["domains_per_s"] = st["nodes"] / max(st["seconds"], 1e-9)
        st["proof_leaves"] = sum(len(lv) for lv in self.tree.gleaves)
        res.stats = st
        if self.n_groups == 1:
            if res.verdict == "unsat" or "floor_shift" in st:
                # (an "unknown" with a floor: the proof of the lowered rows, relu_floor)
                res.proof = self._proof(0)
        elif res.verdict == "sat":
            res.group = self.found_group
        else:
            done = [True] * self.n_groups if res.verdict == "unsat" else self.done_groups
            if len(done) != self.n_groups:  # a stop that did not say: nothing is decided
                done = [False] * self.n_groups
            res.parts = [
                BranchResult("unsat", proof=self._proof(g), stats=st)
                if done[g]
                else BranchResult("unknown", stats=st, stopped=res.stopped)
                for g in range(self.n_groups)
            ]
        return res

    def set_groups(self, groups: np.ndarray) -> None:
        """Search several disjuncts of one box at once: ``groups[r]`` is row ``r``'s disjunct
        (``0 .. G-1``, each with at least one row). Each is "unsat" once every box is closed
        for it by its own rows (one of them, or a combination)."""
        self.group_rows = group_rows(groups, len(self.C))
        self.groups = np.asarray(groups, dtype=np.int64).reshape(-1)
        self.n_groups = len(self.group_rows)
        self.tree = _Tree(self.n_groups)

    def _rows_of(self, g: int) -> np.ndarray:
        return self.group_rows[g]

    def _proof(self, g: int) -> Any:
        """Disjunct ``g``'s proof: its rows, and the tree cut at its leaves (a leaf's row is
        its index among the disjunct's rows)."""
        from netopt.bounds.proof_format import BabProof

        rows = self._rows_of(g)
        return BabProof(
            lo=self.lo[0].copy(),
            hi=self.hi[0].copy(),
            C=self.C[rows].copy(),
            d=self.d[rows].copy(),
            nodes=self.tree.preorder(g),
            params=self.tree.gparams[g],
            pre=list(getattr(self, "pre_rows", [])),
            form=self.form,
        )

    def _stop(self, n_open: int) -> str | None:
        if interrupted():
            return "interrupted"
        if self.dl.expired():
            return "time limit"
        if n_open > self.max_domains:
            return "domain limit"
        return None

    def _points(self, X: np.ndarray) -> np.ndarray | None:
        """A point of ``X`` whose float64 output satisfies every row of some disjunct, or None
        (its disjunct: :attr:`found_group`)."""
        t = time.perf_counter()
        # (a candidate from an LP may sit a hair past the box: never a counterexample)
        X = X[np.all((X >= self.lo) & (X <= self.hi), axis=1)]
        if not len(X):
            self.stats["t_points"] += time.perf_counter() - t
            return None
        y = self.net.forward(X.reshape(-1, *self.shape)).reshape(len(X), -1)
        sat = y @ self.C.T <= self.d
        hit = np.stack([np.all(sat[:, self._rows_of(g)], axis=1) for g in range(self.n_groups)], 1)
        ok = np.nonzero(hit.any(axis=1))[0]
        self.stats["t_points"] += time.perf_counter() - t
        if not len(ok):
            return None
        self.found_group = int(np.argmax(hit[ok[0]]))
        return X[ok[0]].reshape(self.shape)

    def _emit(self, n_open: int) -> None:
        emit(
            self.progress,
            "branch and bound",
            self.dl,
            domains=self.stats["nodes"],
            open=n_open,
            leaves=self.stats["leaves"],
        )


def group_rows(groups: np.ndarray, k: int) -> list[np.ndarray]:
    """Each disjunct's rows, from ``groups[r]``, row ``r``'s disjunct (``0 .. G-1``, each
    index used, ``k`` rows in all)."""
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    if g.shape != (k,) or g.min() < 0 or set(g.tolist()) != set(range(g.max() + 1)):
        from netopt.errors import InputError

        raise InputError(
            f"branch_and_bound: groups must give one disjunct index 0..G-1 per row of C "
            f"({k} rows), each index used; got {g.tolist()!r:.80}"
        )
    return [np.nonzero(g == j)[0] for j in range(int(g.max()) + 1)]


def split_halves(lo: np.ndarray, hi: np.ndarray, dims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both halves of every box ``[lo, hi]`` (``(B, n)``) cut at the middle of each candidate
    input ``dims`` (``(B, look)``): ``(2 * look * B, n)`` corners, side-major — the halves with
    ``hi_j = mid_j`` candidate by candidate, then those with ``lo_j = mid_j``."""
    B, look = dims.shape
    ar = np.arange(B)
    KL, KH = np.tile(lo, (2 * look, 1)), np.tile(hi, (2 * look, 1))
    for q in range(look):
        j = dims[:, q]
        mid = (lo[ar, j] + hi[ar, j]) / 2
        KH[q * B + ar, j] = mid
        KL[(look + q) * B + ar, j] = mid
    return KL, KH
