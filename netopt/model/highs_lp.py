r"""Small LPs on HiGHS through highspy, for the bounds and attacks; the process's HiGHS banner.

The searches solve many small LPs: the region walk's (:mod:`netopt.attack.regions`), a box's
pieces and an affine domain's row combination (:mod:`netopt.bounds.pieces`), a norm's dual rows
(:mod:`netopt.bounds.dual_rows`). They are proposals that float64 re-checks, so any LP solver
would do; :func:`dense_lp` runs them on highspy, already a core dependency, rather than
:func:`scipy.optimize.linprog`: importing ``scipy.optimize`` takes about 0.25 s of a fresh
process (2-core CPU), highspy about 0.03 s, and ``netopt check`` pays it on every instance whose
attack walks regions (a fifth of an ACAS Xu instance's median time).

:func:`dense_lp` solves

.. math::

    \min_x\ c^\top x \quad\text{s.t.}\quad A_{ub} x \le b_{ub},\quad A_{eq} x = b_{eq},\quad
    l \le x \le u,

the form and argument names of :func:`scipy.optimize.linprog`, and returns the point and the
objective only when HiGHS's run succeeded and its model status is optimal; anything else
(infeasible, unbounded, a time limit, a failed run, non-finite data) is None.

highspy 1.16 prints a banner on standard output when a process creates its first ``Highs``
object, which would break ``--json`` output: :func:`quiet_banner` creates that first object
with file descriptor 1 pointed at the null device (the ``highs`` backend's
:mod:`netopt.solvers.highs_session` uses the same functions).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.errors import SolverUnavailableError

__all__ = ["DenseLPResult", "dense_lp", "new_highs", "quiet_banner"]

_lock = threading.Lock()
_banner_done = False


def highspy_module() -> Any:
    """highspy, or a SolverUnavailableError saying how to install it."""
    try:
        import highspy
    except ImportError as e:  # pragma: no cover - highspy is a core dependency
        raise SolverUnavailableError(f"HiGHS needs highspy ({e}); pip install highspy") from None
    return highspy


@contextlib.contextmanager
def _stdout_to_devnull() -> Iterator[None]:
    """Point file descriptor 1 at the null device for the block (C-level writes included)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced sys.stdout (pytest's capture)
        fd = 1
    try:
        sys.stdout.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        saved = os.dup(fd)
    except OSError:  # no descriptor 1 at all: nothing to protect
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
        yield
    finally:
        _c_flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(null)


def _c_flush() -> None:
    """Flush the C library's stdio buffers (HiGHS writes with printf)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def quiet_banner() -> None:
    """Create the process's first ``Highs`` object with stdout pointed at the null device.

    highspy 1.16 prints ``Running HiGHS ...`` on stdout once per process, at the first
    construction; after this call it has been swallowed and later constructions are silent (the
    version is in every result: ``Result.solver_version``). Call it before handing HiGHS to a
    library that creates its own objects (Pyomo).
    """
    global _banner_done
    if _banner_done:
        return
    hs = highspy_module()
    with _lock:
        if not _banner_done:
            with _stdout_to_devnull():
                hs.Highs()
            _banner_done = True


def new_highs() -> Any:
    """A fresh ``highspy.Highs`` with console output off (its banner never on stdout)."""
    quiet_banner()
    h = highspy_module().Highs()
    h.setOptionValue("output_flag", False)
    return h


@dataclass
class DenseLPResult:
    """An optimal solution of :func:`dense_lp`: the point ``x`` and the objective ``fun``."""

    x: np.ndarray
    fun: float


def _bound_arrays(bounds: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``linprog``'s ``bounds`` as two arrays: None (every x >= 0), one pair for all (alone or
    as a list of one pair), or a pair per variable, each side a number or None (unbounded)."""
    if bounds is None:
        return np.zeros(n), np.full(n, np.inf)
    pairs: Sequence = bounds
    if len(pairs) == 2 and not isinstance(pairs[0], (tuple, list, np.ndarray)):
        pairs = [pairs] * n
    elif len(pairs) == 1:
        pairs = [pairs[0]] * n
    if len(pairs) != n:
        raise ValueError(f"bounds has {len(pairs)} pairs for {n} variables")
    lo = np.array([-np.inf if a is None else float(a) for a, _ in pairs])
    hi = np.array([np.inf if b is None else float(b) for _, b in pairs])
    return lo, hi


def _csr_parts(A: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """``(data, indices, indptr, shape)`` of a constraint matrix in CSR form, duplicates summed
    and indices sorted (HiGHS refuses duplicates; scipy's linprog sums them). A dense matrix
    (or a 1-D row) is split by numpy alone: the region walk's small LPs then never import
    scipy.sparse (0.15 s of a fresh process)."""
    if hasattr(A, "tocsr"):
        M = A.tocsr().astype(np.float64)  # a copy: the caller's matrix is left as it was
        M.sum_duplicates()
        M.sort_indices()
        return M.data, M.indices, M.indptr, M.shape
    D = np.atleast_2d(np.asarray(A, dtype=np.float64))
    if D.ndim != 2:
        raise ValueError(f"a constraint matrix has {D.ndim} dimensions")
    rows, cols = np.nonzero(D)  # row-major: sorted by row, then column (NaN counts as stored)
    start = np.zeros(D.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=D.shape[0]), out=start[1:])
    return D[rows, cols], cols, start, (int(D.shape[0]), int(D.shape[1]))


def dense_lp(
    c: np.ndarray,
    A_ub: Any = None,
    b_ub: Any = None,
    A_eq: Any = None,
    b_eq: Any = None,
    bounds: Any = None,
    *,
    time_limit: float | None = None,
) -> DenseLPResult | None:
    """The LP of the module doc on HiGHS: its optimal point and objective, or None.

    Parameters
    ----------
    c : (n,)
    A_ub, b_ub, A_eq, b_eq : optional
        Dense arrays or scipy sparse matrices, and their right-hand sides.
    bounds : optional
        As :func:`scipy.optimize.linprog` takes them (default: every variable >= 0), but a NaN
        bound is not read as "unbounded": the LP is then not solved (None).
    time_limit : float, optional
        Seconds for HiGHS; a run stopped by it gives None.
    """
    hs = highspy_module()
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    n = c.size
    parts, row_lo, row_hi = [], [], []
    for A, b, eq in ((A_ub, b_ub, False), (A_eq, b_eq, True)):
        if A is None and b is None:
            continue
        if A is None or b is None:
            raise ValueError("a constraint matrix needs its right-hand side, and the reverse")
        data, index, start, (m, cols) = _csr_parts(A)
        if cols != n:
            raise ValueError(f"a constraint matrix has {cols} columns for {n} variables")
        rhs = np.asarray(b, dtype=np.float64).reshape(-1)
        if rhs.size != m:
            raise ValueError(f"a right-hand side has {rhs.size} entries for {m} rows")
        parts.append((data, index, start))
        row_hi.append(rhs)
        row_lo.append(rhs if eq else np.full(rhs.size, -np.inf))
    # the blocks stacked row-wise: data and column indices in order, row starts shifted
    data = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    index = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    start, shift = [np.zeros(1, dtype=np.int64)], 0
    for p in parts:
        start.append(p[2][1:] + shift)
        shift += p[2][-1]
    start = np.concatenate(start)
    lo, hi = _bound_arrays(bounds, n)
    rl = np.concatenate(row_lo) if row_lo else np.zeros(0)
    rh = np.concatenate(row_hi) if row_hi else np.zeros(0)
    # scipy's linprog refuses non-finite data (ValueError); here the LP is simply not solved
    if not (np.isfinite(c).all() and np.isfinite(data).all() and np.isfinite(rh).all()):
        return None
    if np.isnan(lo).any() or np.isnan(hi).any():
        return None
    lp = hs.HighsLp()
    lp.num_col_, lp.num_row_ = n, len(start) - 1
    lp.col_cost_ = c
    lp.col_lower_, lp.col_upper_ = lo, hi
    lp.row_lower_, lp.row_upper_ = rl, rh
    lp.a_matrix_.format_ = hs.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = start.astype(np.int32)
    lp.a_matrix_.index_ = index.astype(np.int32)
    lp.a_matrix_.value_ = data
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, len(start) - 1
    h = new_highs()
    # (no thread count: an explicit one that differs from the process's HiGHS scheduler fails
    # the run, see netopt.solvers.highs_session; the default runs on whatever scheduler exists)
    if time_limit is not None:
        limit = max(float(time_limit), 1e-3)
        if h.setOptionValue("time_limit", limit) == hs.HighsStatus.kError:
            return None
    if h.passModel(lp) == hs.HighsStatus.kError:
        return None
    if h.run() == hs.HighsStatus.kError:
        return None
    if h.getModelStatus() != hs.HighsModelStatus.kOptimal:
        return None
    sol = h.getSolution()
    if not sol.value_valid:
        return None
    x = np.asarray(sol.col_value, dtype=np.float64)
    return DenseLPResult(x=x, fun=float(c @ x))
