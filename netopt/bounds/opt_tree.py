"""The optimization search's tree: every box bounded, its own bound and row, the splits made,
and the proof it becomes (:meth:`SearchTree.preorder`)."""

from __future__ import annotations

import numpy as np

__all__ = ["SearchTree", "RowTable"]


class SearchTree:
    """Every box bounded so far: its own bound and row, and the split made of it."""

    def __init__(self) -> None:
        self.n = 0
        self.own = np.empty(1024)
        self.row = np.empty(1024, dtype=np.int64)
        self.dim = np.empty(1024, dtype=np.int64)  # -1: not split
        self.cut = np.empty(1024)
        self.kid0 = np.empty(1024, dtype=np.int64)
        self.kid1 = np.empty(1024, dtype=np.int64)

    def add(self, own: np.ndarray, row: np.ndarray) -> np.ndarray:
        k = len(own)
        while self.n + k > len(self.own):
            for name in ("own", "row", "dim", "cut", "kid0", "kid1"):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.empty_like(a)]))
        ids = np.arange(self.n, self.n + k)
        self.own[ids], self.row[ids], self.dim[ids] = own, row, -1
        self.n += k
        return ids

    def split(
        self, ids: np.ndarray, dim: np.ndarray, cut: np.ndarray, k0: np.ndarray, k1: np.ndarray
    ) -> None:
        self.dim[ids], self.cut[ids], self.kid0[ids], self.kid1[ids] = dim, cut, k0, k1

    def preorder(
        self, reach: float, slopes: dict, frags: dict
    ) -> tuple[list[list], np.ndarray, list]:
        """The proof's nodes: the tree cut at the highest nodes whose own bound reaches
        ``reach``, and the row ids its leaves use (a leaf's ``row`` indexes that array).

        Every leaf of the search has an ancestor (or itself) whose own bound is its inherited
        bound, which is at least ``reach`` (the least of them): the walk stops there.
        """
        out: list[list] = []
        used: dict[int, int] = {}
        params: list[dict] = []
        stack = [0]
        while stack:
            i = stack.pop()
            if (self.own[i] >= reach or self.dim[i] < 0) and i in frags:
                _fragment(frags[i], out, used, params)
            elif self.own[i] >= reach or self.dim[i] < 0:
                r = used.setdefault(int(self.row[i]), len(used))
                if i in slopes:
                    params.append({"slopes": [a.tolist() for a in slopes[i]]})
                    out.append(["leaf", r, len(params) - 1])
                else:
                    out.append(["leaf", r])
            else:
                out.append(["x", int(self.dim[i]), float(self.cut[i])])
                stack.append(int(self.kid1[i]))
                stack.append(int(self.kid0[i]))
        rows = np.empty(len(used), dtype=np.int64)
        for r, k in used.items():
            rows[k] = r
        return out, rows, params


def _fragment(frag: tuple, out: list, used: dict, params: list) -> None:
    """Append a box's ReLU-split proof in pre-order: a split per unstable unit (first
    ``z <= 0``), the leaves in :func:`itertools.product` order of the signs."""
    uns, leaves = frag
    it = iter(leaves)

    def walk(level: int) -> None:
        if level == len(uns):
            row, betas = next(it)
            r = used.setdefault(row, len(used))
            if betas:
                params.append({"betas": betas})
                out.append(["leaf", r, len(params) - 1])
            else:
                out.append(["leaf", r])
            return
        j, u = uns[level]
        out.append(["r", j, u])
        walk(level + 1)
        walk(level + 1)

    walk(0)


class RowTable:
    """The distinct minorant rows used, interned to integer ids."""

    def __init__(self, m: int) -> None:
        self.ids: dict[bytes, int] = {}
        self.table: list[np.ndarray] = []
        self.m = m

    def intern(self, V: np.ndarray) -> np.ndarray:
        V = np.ascontiguousarray(V, dtype=np.float64)
        out = np.empty(len(V), dtype=np.int64)
        for i, v in enumerate(V):
            key = v.tobytes()
            k = self.ids.get(key)
            if k is None:
                k = self.ids[key] = len(self.table)
                self.table.append(v.copy())
            out[i] = k
        return out
