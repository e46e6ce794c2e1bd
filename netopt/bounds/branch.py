r"""Branch and bound on batched (alpha/beta-)CROWN bounds, with a proof of every "unsat".

Decides whether some :math:`x` in a box :math:`[l, u]` has :math:`C f(x) \le d`, for a chain of
linear layers and (leaky) ReLUs. A *domain* is a piece of the problem: a sub-box (input
splitting) or the box with some ReLUs' signs fixed (ReLU splitting). Each round takes a batch of
open domains and

1. bounds every row of :math:`C f(x) - d` over each domain at once
   (:class:`~netopt.bounds.batched.ChainBounds`: CROWN, alpha-CROWN slopes warm-started from the
   parent, beta-CROWN multipliers of the split constraints), in torch on CUDA when present;
2. *closes* a domain when a row's lower bound is positive — but only after the rigorous float64
   bounds of :mod:`netopt.bounds.proof` (outward rounding, the search's slopes and multipliers
   clipped to their valid ranges) confirm it; a domain the float32 search closed and float64
   does not stays open and is split further;
3. tries the points the bounds point to (box centres, the corner minimizing the best row's
   linear bound) in the float64 reference interpreter: one with :math:`C f(x) \le d` ends the
   search ("sat");
4. splits the rest in two: along the input with the largest smear :math:`|\lambda_i|(u_i - l_i)`
   of the best row (input splitting, for networks of at most :data:`INPUT_SPLIT_MAX_DIM` inputs:
   ACAS Xu), or on the unstable ReLU of the highest BaBSR score (Bunel et al. 2020), its two
   children fixing :math:`z \le 0` and :math:`z \ge 0` (ReLU splitting, wider inputs).

Input splitting goes depth first (memory stays bounded); ReLU splitting takes the domains of the
lowest bound first (the hardest, as beta-CROWN does). Every split and closed leaf is recorded, so
an "unsat" comes with a :class:`~netopt.bounds.proof.BabProof` that ``netopt verify`` re-checks
without this module, torch or a solver.

Why our own driver rather than alpha,beta-CROWN's: it is not a library with a stable API (it is a
configuration-driven program over auto_LiRPA), and none of the field's tools records its tree in a
form a third party can re-check — that record is the point here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.control import Deadline, emit, interrupted
from netopt.errors import FormulationError

__all__ = ["BranchResult", "branch_and_bound", "INPUT_SPLIT_MAX_DIM"]

#: Networks with at most this many inputs are split on their inputs, wider ones on ReLUs.
INPUT_SPLIT_MAX_DIM = 8

#: Input splitting bounds both halves along this many candidate inputs (those of the largest
#: smear) and keeps the split whose halves come closest to closing.
LOOKAHEAD = 2

#: A look-ahead candidate whose smear is below this share of the largest is not tried (the
#: largest is tried in its place): halving it barely moves the bound.
LOOKAHEAD_MIN_SMEAR = 0.1

#: Seconds of search before the first attack (on the whole box), the first gap between the next
#: ones (on the open domains of the lowest bounds; the gaps double), a quarter of it for each
#: attack itself; and how many domains each attack takes.
ATTACK_EVERY = 1.0
ATTACK_BOXES = 64

#: ReLU splitting gives up ("unpromising") once it has run this many seconds with fewer than
#: this share of its domains closed. Measured: an MNIST 256x2 disjunct that it decides closes
#: about half of them (prop_3_0.03: 1630 of 3259); a 3SAT instance at n = 50 (313 ReLUs), which
#: the MILP decides in 15-25 s, closes 2 % (777 of 44201 in 8 s) and would not finish.
RELU_PATIENCE = 3.0
RELU_MIN_CLOSED = 0.1

#: Memory (bytes) the domains of one batch may take on the CPU (CUDA: half of its free memory).
CPU_BATCH_BYTES = 512 * 2**20


@dataclass
class BranchResult:
    """What :func:`branch_and_bound` decided.

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
        ``t_branch``, ``t_points``, ``device``, ``batch``.
    stopped : str or None
        Why the verdict is "unknown": ``"time limit"``, ``"interrupted"``, ``"domain limit"``;
        ``"precision"`` (a box too small to split that the float64 bounds do not close);
        ``"incomplete"`` (ReLU splitting: a domain with every ReLU fixed that no single row's
        bound closes — ``stats["stuck"]`` counts them); ``"unpromising"`` (ReLU splitting
        closing too few domains to finish: :data:`RELU_PATIENCE`).
    """

    verdict: str
    x: np.ndarray | None = None
    proof: Any = None
    stats: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None


class _Tree:
    """The search tree as it grows: split nodes and closed leaves, by integer node id."""

    def __init__(self) -> None:
        self.next_id = 1  # the root is 0
        self.splits: dict[int, tuple] = {}
        self.leaves: dict[int, tuple] = {}
        self.params: list[dict] = []

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

    def close(self, ids: np.ndarray, rows: np.ndarray, params: list[dict | None]) -> None:
        for i, r, p in zip(ids.tolist(), rows.tolist(), params, strict=True):
            if p is None:
                self.leaves[i] = (int(r), None)
            else:
                self.params.append(p)
                self.leaves[i] = (int(r), len(self.params) - 1)

    def preorder(self) -> list[list]:
        """The tree as ``BabProof.nodes`` (every node must be split or closed)."""
        out: list[list] = []
        stack = [0]
        while stack:
            n = stack.pop()
            if n in self.splits:
                kind, a, b, c0, c1 = self.splits[n]
                out.append([kind, a, b])
                stack.append(c1)
                stack.append(c0)
            else:
                row, p = self.leaves[n]
                out.append(["leaf", row] if p is None else ["leaf", row, p])
        return out


def _batch_size(cb: Any, per_domain: int) -> int:
    """Domains per round: what fits the device's memory, within [16, 4096]."""
    import torch

    if cb.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(cb.device)
        budget = free // 2
    else:
        budget = CPU_BATCH_BYTES
    return int(np.clip(budget // max(per_domain, 1), 16, 4096))


def branch_and_bound(
    net: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    *,
    time_limit: float | None = None,
    deadline: Deadline | None = None,
    mode: str = "auto",
    device: Any = None,
    dtype: Any = None,
    batch: int | None = None,
    alpha_iters: int | None = None,
    max_domains: int = 200_000,
    progress: Any = None,
) -> BranchResult | None:
    r"""Is there ``x`` in ``[lo, hi]`` with ``C f(x) <= d``? Branch and bound with proofs.

    Parameters
    ----------
    net : Network
    lo, hi : array
        The box (input shape or flat).
    C, d : array
        ``(k, n_out)`` and ``(k,)``: the output constraints (all must hold at a counterexample).
    time_limit : float, optional
        Seconds; or ``deadline``, a :class:`~netopt.control.Deadline` shared with a caller.
    mode : {"auto", "input", "relu"}
        What to split; "auto": inputs up to :data:`INPUT_SPLIT_MAX_DIM` coordinates, else ReLUs.
    device, dtype : optional
        Of the search (:class:`~netopt.bounds.batched.ChainBounds`; default CUDA when present,
        float32). The claims are float64's whatever these are.
    batch : int, optional
        Domains per round (default: sized to the device's memory).
    alpha_iters : int, optional
        Adam steps on the slopes (and multipliers) per round (default 0 for input splitting,
        where more pieces are cheaper than optimized slopes; 8 for ReLU splitting); the root
        always gets at least 20.
    max_domains : int
        Open domains kept at most; beyond it the search stops ("domain limit").

    Returns
    -------
    BranchResult, or None when the network is not a chain of linear ops and (leaky) ReLUs.
    """
    from netopt.bounds.bab import batch_crown_of

    if not batch_crown_of(net).ok:
        return None
    dl = deadline if deadline is not None else Deadline(time_limit)
    lo = np.asarray(lo, dtype=np.float64).reshape(1, -1)
    hi = np.asarray(hi, dtype=np.float64).reshape(1, -1)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    n_in = lo.shape[1]
    if mode == "auto":
        mode = "input" if n_in <= INPUT_SPLIT_MAX_DIM else "relu"
    if mode not in ("input", "relu"):
        from netopt.errors import OptionError

        raise OptionError(f"branch_and_bound: mode must be 'auto', 'input' or 'relu', got {mode!r}")
    cb = None
    if mode == "relu":
        try:
            from netopt.bounds.batched import ChainBounds

            cb = ChainBounds(net.graph, device=device, dtype=dtype)
        except (FormulationError, ImportError):
            return None
    search = _Search(net, cb, lo, hi, C, d, dl, mode, batch, alpha_iters, max_domains, progress)
    return search.run()


class _Search:
    """One branch-and-bound run (the state :func:`branch_and_bound` describes)."""

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
    ) -> None:
        from netopt.bounds.bab import batch_crown_of

        self.net, self.cb, self.lo, self.hi, self.C, self.d = net, cb, lo, hi, C, d
        self.dl, self.mode, self.progress = dl, mode, progress
        self.max_domains = max_domains
        self.iters = 8 if alpha_iters is None else alpha_iters
        self.widths = [] if cb is None else [w.shape[0] for w in cb.W[:-1]]
        if batch is None:
            if mode == "input":
                # numpy, memory-bound: a few hundred boxes per product keep it in cache
                batch = 256
            else:
                # bytes per domain: the spec rows' pass and the state kept per domain
                per = 4 * 8 * (sum(self.widths) * (C.shape[0] + 4))
                batch = _batch_size(cb, per)
        self.batch = int(batch)
        self.tree = _Tree()
        # the float64 bounds: rigorous (outward rounding), the same that netopt verify uses
        self.bc = batch_crown_of(net)
        # a leaf is closed with a little room, so that re-computing its one row in a proof
        # check (a different summation order) cannot land on the other side
        self.margin = 1e-9 * (1.0 + np.abs(d))
        self.root_pre: dict | None = None
        self.last_attack = time.perf_counter()
        self.attack_gap = ATTACK_EVERY
        self.root_attacked = False
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

    # ------------------------------------------------------------------ the loop
    def run(self) -> BranchResult:
        t0 = time.perf_counter()
        res = self._input_split() if self.mode == "input" else self._relu_split()
        st = self.stats
        st["seconds"] = time.perf_counter() - t0
        st["domains_per_s"] = st["nodes"] / max(st["seconds"], 1e-9)
        st["proof_leaves"] = len(self.tree.leaves)
        res.stats = st
        if res.verdict == "unsat":
            from netopt.bounds.proof_format import BabProof

            res.proof = BabProof(
                lo=self.lo[0].copy(),
                hi=self.hi[0].copy(),
                C=self.C.copy(),
                d=self.d.copy(),
                nodes=self.tree.preorder(),
                params=self.tree.params,
            )
        return res

    def _stop(self, n_open: int) -> str | None:
        if interrupted():
            return "interrupted"
        if self.dl.expired():
            return "time limit"
        if n_open > self.max_domains:
            return "domain limit"
        return None

    def _points(self, X: np.ndarray) -> np.ndarray | None:
        """A point of ``X`` whose float64 output satisfies every row, or None."""
        t = time.perf_counter()
        y = self.net.forward(X.reshape(-1, *self.shape)).reshape(len(X), -1)
        ok = np.nonzero(np.all(y @ self.C.T <= self.d, axis=1))[0]
        self.stats["t_points"] += time.perf_counter() - t
        return X[ok[0]].reshape(self.shape) if len(ok) else None

    def _emit(self, n_open: int) -> None:
        emit(
            self.progress,
            "branch and bound",
            self.dl,
            domains=self.stats["nodes"],
            open=n_open,
            leaves=self.stats["leaves"],
        )

    def _numpy_bound(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rigorous float64 CROWN: ``(C f - d)`` lower bounds ``(B, k)`` and input coefs.

        A half's activation bounds are not intersected with its parent's (valid, but the
        tighter bounds change CROWN's adaptive lower slopes for the worse as often as not).
        Measured on ACAS Xu, nodes to decide the first two disjuncts without / with: 3_3 p1
        457 / 445, 4_5 p10 938 / 902, 1_1 p3 5949 / 12953, 1_1 p4 1369 / 1385, 1_1 p6
        4306 / 4830, 1_9 p2 969 / 1153, 1_1 p2 805 / 749.
        """
        t = time.perf_counter()
        lower, coef, _ = self.bc.bound(lo, hi, self.C)
        self.stats["t_bound"] += time.perf_counter() - t
        self.stats["nodes"] += len(lo)
        return lower - self.d, coef

    # ------------------------------------------------------------------ input splitting
    def _input_split(self) -> BranchResult:
        """Depth first over sub-boxes, each bounded by the rigorous float64 CROWN itself.

        A box's inputs are few, so a split is chosen by looking ahead: of the
        :data:`LOOKAHEAD` inputs of the largest smear, the one with the better half (the
        largest best-row bound, :func:`_pick`) — both halves are bounded anyway, and the
        chosen ones' bounds are kept.
        """
        s, coef = self._numpy_bound(self.lo, self.hi)
        stack = [(self.lo, self.hi, s, coef, np.zeros(1, dtype=np.int64), 0)]
        n_open, n_in, rounds = 1, self.lo.shape[1], 0
        look = min(LOOKAHEAD, n_in)
        while stack:
            why = self._stop(n_open)
            if why is not None:
                return BranchResult("unknown", stopped=why)
            lo, hi, s, coef, ids, depth = _pop(stack, self.batch)
            n_open -= len(lo)
            self.stats["depth"] = max(self.stats["depth"], depth)
            rows = s.argmax(axis=1)
            ar = np.arange(len(rows))
            best = s[ar, rows]
            closed = best > self.margin[rows]
            if closed.any():
                self.tree.close(ids[closed], rows[closed], [None] * int(closed.sum()))
                self.stats["leaves"] += int(closed.sum())
            keep = ~closed
            if not keep.any():
                continue
            lo, hi, ids, rows = lo[keep], hi[keep], ids[keep], rows[keep]
            B = len(lo)
            ar = np.arange(B)
            a = coef[keep][ar, rows]
            mid = (lo + hi) / 2
            corner = np.where(a > 0, lo, hi)
            x = self._points(np.concatenate([mid, corner, (mid + corner) / 2]))
            if x is None:
                x = self._attack(lo, hi, s[keep][ar, rows])
            if x is not None:
                return BranchResult("sat", x=x)
            t = time.perf_counter()
            width = hi - lo
            smear = np.where(width > 0, np.abs(a) * width, -1.0)
            # an input the bound ignores (coefficient 0) still halves a width: a tiebreak
            smear = smear + 1e-30 * width
            if np.any(smear.max(axis=1) <= 0):
                # a point box that the float64 bounds cannot close: nothing left to split
                return BranchResult("unknown", stopped="precision")
            dims = np.argsort(-smear, axis=1)[:, :look]
            # CROWN is not monotone in the box: the unchanged halves of an input already split
            # to a sliver can score better than a real split's halves, and chosen again and
            # again the search would descend along the sliver until the box is a point
            weak = smear[ar[:, None], dims] < LOOKAHEAD_MIN_SMEAR * smear[ar[:, None], dims[:, :1]]
            dims = np.where(weak, dims[:, :1], dims)
            KL, KH = split_halves(lo, hi, dims)
            self.stats["t_branch"] += time.perf_counter() - t
            s2, coef2 = self._numpy_bound(KL, KH)
            q = _pick(s2.max(axis=1).reshape(2, look, B))
            j = dims[ar, q]
            c0, c1 = self.tree.split(ids, "x", j, mid[ar, j])
            i0, i1 = q * B + ar, look * B + q * B + ar
            stack.append((KL[i1], KH[i1], s2[i1], coef2[i1], c1, depth + 1))
            stack.append((KL[i0], KH[i0], s2[i0], coef2[i0], c0, depth + 1))
            n_open += 2 * B
            rounds += 1
            if rounds % 16 == 0:
                self._emit(n_open)
        return BranchResult("unsat")

    def _attack(self, lo: np.ndarray, hi: np.ndarray, best: np.ndarray) -> np.ndarray | None:
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

        if not self.root_attacked:
            # the first time: the whole box, with the falsifier's full set of starts (a
            # counterexample in a sliver that the pieces' corners and centres have missed)
            self.root_attacked = True
            r0 = falsify(
                self.net,
                self.lo[0],
                self.hi[0],
                self.C,
                self.d,
                time_limit=min(ATTACK_EVERY / 4, max(self.dl.remaining(), 0.0)),
            )
            self.stats["t_attack"] += time.perf_counter() - now
            if r0.x is not None:
                return self._points(np.asarray(r0.x).reshape(1, -1))
            now = time.perf_counter()

        pick = np.argsort(best)[:ATTACK_BOXES]
        r = falsify_boxes(
            self.net,
            lo[pick],
            hi[pick],
            self.C,
            self.d,
            time_limit=min(ATTACK_EVERY / 4, max(self.dl.remaining(), 0.0)),
        )
        self.stats["t_attack"] += time.perf_counter() - now
        k = r.found
        return None if k is None else self._points(r.x[k].reshape(1, -1))

    # ------------------------------------------------------------------ ReLU splitting
    def _confirm(
        self,
        rows: np.ndarray,
        splits: list,
        slopes: list | None,
        betas: list | None,
    ) -> np.ndarray:
        """Which domains the float64 bounds close with the search's slopes and multipliers."""
        t = time.perf_counter()
        B = len(rows)
        lo = np.repeat(self.lo, B, axis=0)
        hi = np.repeat(self.hi, B, axis=0)
        if self.root_pre is None:
            _, _, pre = self.bc.bound(self.lo, self.hi, self.C)
            self.root_pre = {v: (a[0], b[0]) for v, (a, b) in pre.items()}
        # the root's activation bounds with the splits, as the search used them (and as the
        # proof check first tries): one final back-substitution per domain
        lower, _, _ = self.bc.bound(
            lo,
            hi,
            self.C,
            rows=rows,
            splits=splits,
            slopes=slopes,
            betas=betas,
            fixed=self.root_pre,
        )
        ok = lower[:, 0] - self.d[rows] > self.margin[rows]
        self.stats["t_check"] += time.perf_counter() - t
        self.stats["float64_reopened"] += int((~ok).sum())
        return ok

    def _relu_split(self) -> BranchResult:
        """The box with ReLU signs fixed, hardest first, on the batched torch engine."""
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
        score = np.array([-np.inf])
        ids = np.zeros(1, dtype=np.int64)
        depth = np.zeros(1, dtype=np.int64)
        root = True
        t0 = time.perf_counter()
        while len(ids):
            why = self._stop(len(ids))
            if why is not None:
                return BranchResult("unknown", stopped=why)
            st = self.stats
            if (
                time.perf_counter() - t0 > RELU_PATIENCE
                and st["leaves"] < RELU_MIN_CLOSED * st["nodes"]
            ):
                # the tree grows far faster than it closes: the MILP (a caller's next step)
                # is the better use of the time left
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
            t = time.perf_counter()
            sb = cb.alpha_crown(
                lo_b,
                hi_b,
                self.C,
                self.d,
                sp,
                iters=max(self.iters, 20) if root else self.iters,
                init=None if slopes is None else [s[tk] for s in slopes],
                beta=not root,
                init_betas=None if betas is None else [b[tk] for b in betas],
                pre=None if pre is None else [(a[tk], b[tk]) for a, b in pre],
            )
            self.stats["t_bound"] += time.perf_counter() - t
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
                sl = _slopes_of(sb, idx)
                bt = _betas_of(sb, idx, rows[idx])
                if bt is not None:
                    # a multiplier belongs to a split constraint: none where a unit is free
                    bt = [b * (s != 0) for b, s in zip(bt, sp_np, strict=True)]
                ok = self._confirm(rows[idx], sp_np, sl, bt)
                self.tree.close(b_ids[idx[ok]], rows[idx[ok]], _params(sl, bt, ok, sp_np))
                self.stats["leaves"] += int(ok.sum())
                closed[idx[~ok]] = False
            keep = np.nonzero(~closed)[0]
            new: dict[str, Any] = {}
            if len(keep):
                kt = torch.as_tensor(keep, device=dev)
                coef = sb.coef.detach()[kt].cpu().double().numpy()
                x = self._points(np.where(coef > 0, self.lo, self.hi))
                if x is not None:
                    return BranchResult("sat", x=x)
                t = time.perf_counter()
                layer, unit, can = _choose_relu(cb.babsr_scores(sb), kt, [s[kt] for s in sp])
                if not can.all():
                    # no unstable unit left: the network is affine on the domain, yet no row
                    # closed it (their combination might: a bound of one row cannot) and no
                    # point was tried inside. Set aside: the search can end "unknown" at best
                    self.stats["stuck"] += int((~can).sum())
                    keep, layer, unit = keep[can], layer[can], unit[can]
                    kt = torch.as_tensor(keep, device=dev)
            if len(keep):
                c0, c1 = self.tree.split(b_ids[keep], "r", layer, unit)
                n_k = len(keep)
                rep = torch.cat([kt, kt])
                new["splits"] = []
                for j in range(L):
                    s2 = sp[j][rep].clone()
                    sel = np.nonzero(layer == j)[0]
                    if len(sel):
                        st = torch.as_tensor(sel, device=dev)
                        u_ = torch.as_tensor(unit[sel], device=dev)
                        s2[st, u_] = -1
                        s2[st + n_k, u_] = 1
                    new["splits"].append(s2)
                new["pre"] = [(a.detach()[rep], b.detach()[rep]) for a, b in sb.pre]
                new["slopes"] = [s.detach()[rep] for s in sb.slopes]
                new["betas"] = [b.detach()[rep] for b in sb.betas] if sb.betas else None
                new["score"] = np.tile(best[keep], 2)
                new["ids"] = np.concatenate([c0, c1])
                new["depth"] = np.tile(b_depth[keep] + 1, 2)
                self.stats["t_branch"] += time.perf_counter() - t
            rt = torch.as_tensor(rest, device=dev)

            if len(keep):
                if betas is None and new["betas"] is not None and len(rest):
                    # the root's domains had no multipliers yet: zeros
                    betas = [torch.zeros_like(b[:1]).expand(len(ids), -1, -1) for b in new["betas"]]
                splits = _merge(rt, splits, new["splits"])
                pre = _merge(rt, pre, new["pre"], pair=True)
                slopes = _merge(rt, slopes, new["slopes"])
                betas = _merge(rt, betas, new["betas"])
                score = np.concatenate([score[rest], new["score"]])
                ids = np.concatenate([ids[rest], new["ids"]])
                depth = np.concatenate([depth[rest], new["depth"]])
            else:
                splits = _merge(rt, splits, None)
                pre = _merge(rt, pre, None, pair=True)
                slopes = _merge(rt, slopes, None)
                betas = _merge(rt, betas, None)
                score, ids, depth = score[rest], ids[rest], depth[rest]
            self._emit(len(ids))
        if self.stats["stuck"]:
            return BranchResult("unknown", stopped="incomplete")
        return BranchResult("unsat")


def _merge(rt: Any, old: list | None, add: list | None, pair: bool = False) -> list | None:
    """The per-domain tensors of the domains left (``old`` at ``rt``) and the new ``add``."""
    import torch

    if old is None:
        return add
    if pair:
        kept = [(a[rt], b[rt]) for a, b in old]
        if add is None:
            return kept
        return [
            (torch.cat([a, a2]), torch.cat([b, b2]))
            for (a, b), (a2, b2) in zip(kept, add, strict=True)
        ]
    kept = [a[rt] for a in old]
    if add is None:
        return kept
    return [torch.cat([a, a2]) for a, a2 in zip(kept, add, strict=True)]


def _choose_relu(scores: list, kt: Any, sp: list) -> tuple:
    """The unsplit unit of the highest score in each kept domain: ``(layer, unit, ok)``, where
    ``ok`` is False for a domain with no unstable unit left to split."""
    import torch

    best_val = best_layer = best_unit = None
    for j, sc in enumerate(scores):
        sc = sc[kt]
        sc = torch.where(sp[j] == 0, sc, torch.full_like(sc, -1.0))
        v, u = sc.max(dim=1)
        v, u = v.cpu().numpy(), u.cpu().numpy()
        if best_val is None:
            best_val, best_layer, best_unit = v, np.full(len(v), j), u
        else:
            better = v > best_val
            best_val = np.where(better, v, best_val)
            best_layer = np.where(better, j, best_layer)
            best_unit = np.where(better, u, best_unit)
    if best_val is None:
        n = len(sp[0]) if sp else 0
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    return best_layer, best_unit, best_val > 0


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
    """Up to ``batch`` domains from the top of the stack, merged (and the deepest one's depth).

    Entries are ``(lo, hi, s, coef, ids, depth)``, arrays with the domains along axis 0.
    """
    parts: list[list] = [[] for _ in range(5)]
    depth, n = 0, 0
    while stack and n < batch:
        entry = stack.pop()
        arrs, dep = list(entry[:5]), entry[5]
        k = batch - n
        if len(arrs[0]) > k:
            stack.append((*[a[k:] for a in arrs], dep))
            arrs = [a[:k] for a in arrs]
        for p, a in zip(parts, arrs, strict=True):
            p.append(a)
        depth = max(depth, dep)
        n += len(arrs[0])
    lo, hi, s, coef, ids = (np.concatenate(p) for p in parts)
    return lo, hi, s, coef, ids, depth


def _slopes_of(sb: Any, idx: np.ndarray) -> list[np.ndarray] | None:
    if not sb.slopes:
        return None
    return [s.detach()[idx].cpu().double().numpy() for s in sb.slopes]


def _betas_of(sb: Any, idx: np.ndarray, rows: np.ndarray) -> list[np.ndarray] | None:
    """The beta multipliers of the bounded row, per layer ``(len(idx), n_j)``, if any."""
    betas = getattr(sb, "betas", None)
    if not betas:
        return None
    out = []
    for b in betas:
        b = b.detach()[idx].cpu().double().numpy()  # (B, k, n_j)
        out.append(b[np.arange(len(idx)), rows])
    return out


def _params(
    slopes: list | None, betas: list | None, ok: np.ndarray, splits: list | None = None
) -> list[dict | None]:
    """The proof parameters of the confirmed leaves: slopes per layer, betas at their splits."""
    out: list[dict | None] = []
    for i in np.nonzero(ok)[0]:
        p: dict[str, Any] = {}
        if slopes is not None:
            p["slopes"] = [s[i].tolist() for s in slopes]
        if betas is not None and splits is not None:
            bl = []
            for j, (b, s) in enumerate(zip(betas, splits, strict=True)):
                for u in np.nonzero(s[i])[0]:
                    if b[i, u] > 0:
                        bl.append([j, int(u), float(b[i, u])])
            if bl:
                p["betas"] = bl
        out.append(p or None)
    return out
