"""The state and the bookkeeping shared by both branch-and-bound searches.

:class:`BranchResult` is what :func:`~netopt.bounds.branch.branch_and_bound` answers;
:class:`_Tree` records every split and closed leaf, so that an "unsat" comes with its proof;
:class:`_Search` holds one run's problem, budget, tree and statistics and the steps both
searches take (the stop test, trying points in the float64 interpreter, progress events, the
proof at the end). What each search splits, and how, is a subclass's
(:mod:`netopt.bounds.branch_input`, :mod:`netopt.bounds.branch_relu`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.control import Deadline, emit, interrupted


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
        ``t_branch``, ``t_points``, ``device``, ``batch``.
    stopped : str or None
        Why the verdict is "unknown": ``"time limit"``, ``"interrupted"``, ``"domain limit"``;
        ``"precision"`` (a box too small to split that the float64 bounds do not close);
        ``"incomplete"`` (ReLU splitting: a domain with every ReLU fixed that no single row's
        bound closes — ``stats["stuck"]`` counts them); ``"unpromising"`` (ReLU splitting
        closing too few domains to finish:
        :data:`~netopt.bounds.branch_relu.RELU_PATIENCE`).
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
        self.dl, self.mode, self.progress = dl, mode, progress
        self.device = device  # the torch device asked for (None: CUDA when present)
        self.max_domains = max_domains
        self.iters = 8 if alpha_iters is None else alpha_iters
        self.widths = [] if cb is None else [w.shape[0] for w in cb.W[:-1]]
        if batch is None:
            batch = self._default_batch()
        self.batch = int(batch)
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
        res = self._split()
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
