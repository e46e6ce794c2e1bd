"""Solver-neutral models: :class:`LinearModel` (LP / MILP / MIQP as sparse arrays).

A formulation builds a model with :class:`ModelBuilder`; a backend only ever sees the arrays. Every
IR value has a *named variable block*: ``blocks[value id]`` is an integer array of the value's
shape holding the column index of each entry, so a reshape or transpose is an index remap, not new
variables. Auxiliary variables (binaries, objective epigraphs) get blocks of their own.

The model is

.. math::  \\min\\; c^\\top v + c_0 + v^\\top Q v \\quad \\text{s.t.}\\quad
           r_{lo} \\le A v \\le r_{hi},\\; l \\le v \\le u,\\; v_j \\in \\mathbb{Z}\\ (j \\in I).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["LinearModel", "ModelBuilder", "LPParams"]


@dataclass
class LinearModel:
    """A linear (or quadratic-objective) mixed-integer program in sparse array form.

    Attributes
    ----------
    c, c0 : objective coefficients and constant (always minimized)
    Q : sparse (n, n) or None, quadratic objective term ``v^T Q v``
    A : sparse csr (m, n); row_lo, row_hi : (m,) row bounds (equal for equalities)
    lb, ub : (n,) variable bounds; integer : (n,) bool
    blocks : value id or auxiliary name -> array of column indices (with the value's shape)
    row_blocks : name -> (start, stop) row ranges, for readable models
    start : (n,) or None, a full starting point (an incumbent hint)
    meta : free-form facts (formulation, bound method, sizes)
    """

    c: np.ndarray
    c0: float
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    blocks: dict[str, np.ndarray]
    row_blocks: dict[str, tuple[int, int]] = field(default_factory=dict)
    Q: sp.csr_matrix | None = None
    start: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_vars(self) -> int:
        return len(self.c)

    @property
    def n_rows(self) -> int:
        return self.A.shape[0]

    @property
    def n_integer(self) -> int:
        return int(self.integer.sum())

    @property
    def is_mip(self) -> bool:
        return bool(self.integer.any())

    @property
    def is_quadratic(self) -> bool:
        return self.Q is not None and self.Q.nnz > 0

    def size(self) -> dict[str, int]:
        """Variables, integer variables, rows and nonzeros."""
        return {
            "variables": self.n_vars,
            "integers": self.n_integer,
            "rows": self.n_rows,
            "nonzeros": int(self.A.nnz),
            "quadratic_vars": int(len(np.unique(self.Q.nonzero()[0]))) if self.is_quadratic else 0,
        }

    def relaxed(self) -> LinearModel:
        """The continuous relaxation (integrality dropped): a sound lower bound."""
        m = LinearModel(**{**self.__dict__, "integer": np.zeros_like(self.integer)})
        m.meta = {**self.meta, "relaxed": True}
        return m

    def objective_of(self, v: np.ndarray) -> float:
        """The model's objective at a full variable vector."""
        val = float(self.c @ v + self.c0)
        if self.is_quadratic:
            val += float(v @ (self.Q @ v))
        return val

    def violation(self, v: np.ndarray) -> float:
        """Largest violation of rows, bounds and integrality at ``v`` (0 when feasible)."""
        r = self.A @ v
        viol = [
            np.max(np.maximum(self.row_lo - r, 0), initial=0),
            np.max(np.maximum(r - self.row_hi, 0), initial=0),
            np.max(np.maximum(self.lb - v, 0), initial=0),
            np.max(np.maximum(v - self.ub, 0), initial=0),
        ]
        if self.integer.any():
            vi = v[self.integer]
            viol.append(np.max(np.abs(vi - np.round(vi)), initial=0))
        return float(max(viol))


@dataclass
class LPParams:
    """The parametric part of a :class:`LinearModel`: row bounds, column bounds and costs.

    A method that re-solves one LP many times (the layer-wise LPs: one per tolerance
    :math:`\\varepsilon`) changes only these arrays, never the matrix, which is what lets a
    backend session (:meth:`netopt.solvers._base.Session.update`) keep one model and re-solve it
    warm.
    """

    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    cost: np.ndarray


class ModelBuilder:
    """Accumulates variables and rows (COO triplets), then :meth:`build` makes a LinearModel."""

    def __init__(self) -> None:
        self._lb: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self._int: list[np.ndarray] = []
        self._n = 0
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._rlo: list[np.ndarray] = []
        self._rhi: list[np.ndarray] = []
        self._m = 0
        self.blocks: dict[str, np.ndarray] = {}
        self.row_blocks: dict[str, tuple[int, int]] = {}
        self._const: dict[float, int] = {}
        self._pending: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []

    @property
    def n_vars(self) -> int:
        return self._n

    def add_vars(
        self,
        shape: tuple[int, ...] | int,
        lb: np.ndarray | float = -np.inf,
        ub: np.ndarray | float = np.inf,
        integer: bool | np.ndarray = False,
        name: str | None = None,
    ) -> np.ndarray:
        """New variables; returns their column indices with the given shape."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        n = int(np.prod(shape, dtype=np.int64))
        idx = np.arange(self._n, self._n + n).reshape(shape)

        def fit(v: np.ndarray | float | bool, dtype: type) -> np.ndarray:
            a = np.asarray(v, dtype=dtype)
            # flattened per-entry arrays are accepted as well as broadcastable ones
            return (a if a.size == n and a.ndim == 1 else np.broadcast_to(a, shape)).reshape(-1)

        self._lb.append(fit(lb, np.float64))
        self._ub.append(fit(ub, np.float64))
        self._int.append(fit(integer, bool))
        self._n += n
        if name is not None:
            self.blocks[name] = idx
        return idx

    def constant(self, value: float) -> int:
        """A column fixed at ``value`` (shared by every use of the same value)."""
        value = float(value)
        if value not in self._const:
            self._const[value] = int(self.add_vars(1, value, value)[0])
        return self._const[value]

    def add_rows(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
        lo: np.ndarray | float,
        hi: np.ndarray | float,
        n_rows: int,
        name: str | None = None,
    ) -> None:
        """Add ``n_rows`` rows ``lo <= sum vals * v[cols] <= hi`` (``rows`` local, 0-based)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self._rows.append(rows + self._m)
        self._cols.append(np.asarray(cols, dtype=np.int64).reshape(-1))
        self._vals.append(np.asarray(vals, dtype=np.float64).reshape(-1))
        self._rlo.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), (n_rows,)).copy())
        self._rhi.append(np.broadcast_to(np.asarray(hi, dtype=np.float64), (n_rows,)).copy())
        if name is not None:
            prev = self.row_blocks.get(name)
            self.row_blocks[name] = (prev[0] if prev else self._m, self._m + n_rows)
        self._m += n_rows

    def add_matrix_rows(
        self, mat: sp.spmatrix, cols: np.ndarray, lo, hi, name: str | None = None
    ) -> None:
        """Rows ``lo <= mat @ v[cols] <= hi`` for a sparse ``mat`` over the columns ``cols``."""
        coo = sp.coo_matrix(mat)
        cols = np.asarray(cols).reshape(-1)
        self.add_rows(coo.row, cols[coo.col], coo.data, lo, hi, mat.shape[0], name)

    def tighten(
        self, cols: np.ndarray, lb: np.ndarray | None = None, ub: np.ndarray | None = None
    ) -> None:
        """Intersect the bounds of existing columns (used after building)."""
        self._pending.append((np.asarray(cols).reshape(-1), lb, ub))

    def build(
        self,
        c: np.ndarray | None = None,
        c0: float = 0.0,
        Q: sp.spmatrix | None = None,
        meta: dict | None = None,
    ) -> LinearModel:
        n = self._n
        lb = np.concatenate(self._lb) if self._lb else np.zeros(0)
        ub = np.concatenate(self._ub) if self._ub else np.zeros(0)
        for cols, lo, hi in self._pending:
            if lo is not None:
                lb[cols] = np.maximum(lb[cols], np.asarray(lo).reshape(-1))
            if hi is not None:
                ub[cols] = np.minimum(ub[cols], np.asarray(hi).reshape(-1))
        A = sp.csr_matrix(
            (
                np.concatenate(self._vals) if self._vals else np.zeros(0),
                (
                    np.concatenate(self._rows) if self._rows else np.zeros(0, dtype=np.int64),
                    np.concatenate(self._cols) if self._cols else np.zeros(0, dtype=np.int64),
                ),
            ),
            shape=(self._m, n),
        )
        A.sum_duplicates()
        return LinearModel(
            c=np.zeros(n) if c is None else np.asarray(c, dtype=np.float64),
            c0=float(c0),
            A=A,
            row_lo=np.concatenate(self._rlo) if self._rlo else np.zeros(0),
            row_hi=np.concatenate(self._rhi) if self._rhi else np.zeros(0),
            lb=lb,
            ub=ub,
            integer=np.concatenate(self._int) if self._int else np.zeros(0, dtype=bool),
            blocks=dict(self.blocks),
            row_blocks=dict(self.row_blocks),
            Q=None if Q is None else sp.csr_matrix(Q),
            meta=dict(meta or {}),
        )
