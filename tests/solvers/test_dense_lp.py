"""The searches' small LPs on highspy (:func:`netopt.model.highs_lp.dense_lp`) against scipy's
``linprog`` (its own copy of HiGHS, an independent build) and against the KKT conditions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from netopt.model.highs_lp import dense_lp


def _random_lp(rng: np.random.Generator, n: int, m: int, eq: bool) -> dict:
    """A feasible LP: the constraints hold at a known point of the box."""
    x0 = rng.uniform(-1, 1, n)
    A = rng.normal(size=(m, n))
    lp = {
        "c": rng.normal(size=n),
        "A_ub": A,
        "b_ub": A @ x0 + rng.uniform(0, 1, m),
        "bounds": [(-2.0, 2.0)] * (n - 1) + [(None, 3.0)],
    }
    if eq:
        a = rng.normal(size=(1, n))
        lp["A_eq"], lp["b_eq"] = a, a @ x0
    return lp


@pytest.mark.parametrize("seed", range(12))
def test_optimum_equals_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lp = _random_lp(rng, n=int(rng.integers(2, 9)), m=int(rng.integers(1, 12)), eq=seed % 2 == 1)
    ref = linprog(method="highs", **lp)
    got = dense_lp(**lp)
    if ref.status == 3:  # unbounded below through the free-below variable
        assert got is None
        return
    assert ref.status == 0 and got is not None
    assert got.fun == pytest.approx(ref.fun, abs=1e-7)
    # the point is feasible (to HiGHS's tolerance) and attains the objective
    assert np.all(lp["A_ub"] @ got.x <= lp["b_ub"] + 1e-7)
    if "A_eq" in lp:
        assert lp["A_eq"] @ got.x == pytest.approx(lp["b_eq"], abs=1e-7)
    assert np.all(got.x[:-1] >= -2 - 1e-9) and np.all(got.x[:-1] <= 2 + 1e-9)
    assert got.fun == pytest.approx(lp["c"] @ got.x)


def test_sparse_constraints_and_default_bounds() -> None:
    """A sparse ``A_ub`` and ``bounds=None`` (every variable >= 0), as ``linprog`` reads them."""
    rng = np.random.default_rng(3)
    A = sp.random(6, 5, density=0.5, random_state=3, format="csr")
    b = rng.uniform(1, 2, 6)
    c = -rng.uniform(0.1, 1, 5)  # pushes every variable up: the rows and bounds bind
    got, ref = dense_lp(c, A_ub=A, b_ub=b), linprog(c, A_ub=A, b_ub=b, method="highs")
    if ref.status == 3:
        assert got is None
    else:
        assert got is not None and got.fun == pytest.approx(ref.fun, abs=1e-8)
        assert np.all(got.x >= -1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_dense_and_sparse_matrices_give_the_same_lp(seed: int) -> None:
    """A dense matrix is split into HiGHS's rows by numpy, a sparse one by scipy: the same LP
    (zeros in the dense one, an empty row, both blocks) gives the same optimum."""
    rng = np.random.default_rng(10 + seed)
    lp = _random_lp(rng, n=6, m=7, eq=True)
    lp["A_ub"] = np.where(rng.uniform(size=lp["A_ub"].shape) < 0.4, 0.0, lp["A_ub"])
    lp["A_ub"][2] = 0.0
    lp["b_ub"][2] = abs(lp["b_ub"][2])  # 0 <= b: the empty row holds
    dense = dense_lp(**lp)
    sparse = dense_lp(
        **{**lp, "A_ub": sp.csr_matrix(lp["A_ub"]), "A_eq": sp.coo_matrix(lp["A_eq"])}
    )
    ref = linprog(method="highs", **lp)
    if ref.status == 3:
        assert dense is None and sparse is None
        return
    assert dense is not None and sparse is not None
    assert dense.fun == pytest.approx(sparse.fun, abs=1e-9)
    assert dense.fun == pytest.approx(ref.fun, abs=1e-7)
    # a 1-D matrix is one row, as scipy reads it; a NaN entry is no LP
    one = dense_lp(lp["c"], A_ub=lp["A_ub"][0], b_ub=lp["b_ub"][:1], bounds=lp["bounds"])
    ref1 = linprog(lp["c"], A_ub=lp["A_ub"][:1], b_ub=lp["b_ub"][:1], bounds=lp["bounds"])
    assert (one is None) == (ref1.status != 0)
    if one is not None:
        assert one.fun == pytest.approx(ref1.fun, abs=1e-7)
    lp["A_ub"][0, 0] = np.nan
    assert dense_lp(**lp) is None


def test_no_optimum_is_none() -> None:
    """Infeasible, unbounded, non-finite data: None, never a point."""
    # x >= 1 and x <= 0
    assert dense_lp(np.ones(1), A_ub=np.array([[1.0], [-1.0]]), b_ub=[0.0, -1.0]) is None
    # min -x over x >= 0
    assert dense_lp(-np.ones(1)) is None
    assert dense_lp(np.array([np.nan]), bounds=[(0, 1)]) is None
    assert dense_lp(np.ones(1), A_ub=np.array([[np.inf]]), b_ub=[1.0], bounds=[(0, 1)]) is None


def test_one_pair_for_every_variable_and_duplicate_entries() -> None:
    """``bounds`` as one pair (alone or in a list) applies to every variable, as in ``linprog``;
    a sparse matrix's duplicate entries are summed."""
    c = np.array([1.0, -1.0])
    for bounds in ((0, 1), [(0, 1)], [(0.0, 1.0), (0.0, 1.0)]):
        got = dense_lp(c, bounds=bounds)
        assert got is not None and got.fun == pytest.approx(-1.0)
        np.testing.assert_allclose(got.x, [0.0, 1.0])
    # x0 + x1 <= 1, written as two entries 0.5 at (0, 1): duplicates summed to 1
    A = sp.coo_matrix(([1.0, 0.5, 0.5], ([0, 0, 0], [0, 1, 1])), shape=(1, 2))
    got = dense_lp(-np.ones(2), A_ub=A, b_ub=[1.0], bounds=(0, 5))
    ref = linprog(-np.ones(2), A_ub=[[1.0, 1.0]], b_ub=[1.0], bounds=(0, 5))
    assert got is not None and got.fun == pytest.approx(ref.fun)


def test_a_time_limit_is_no_optimum() -> None:
    """A run stopped by its time limit returns None, never its last point."""
    rng = np.random.default_rng(1)
    lp = _random_lp(rng, n=600, m=900, eq=False)
    lp["bounds"] = [(-2.0, 2.0)] * 600
    assert dense_lp(**lp, time_limit=1e-3) is None
    assert dense_lp(**lp) is not None  # (the same LP has an optimum)


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="columns"):
        dense_lp(np.ones(2), A_ub=np.ones((1, 3)), b_ub=[1.0])
    with pytest.raises(ValueError, match="pairs"):
        dense_lp(np.ones(2), bounds=[(0, 1), (0, 1), (0, 1)])
    with pytest.raises(ValueError, match="entries"):
        dense_lp(np.ones(2), A_ub=np.ones((2, 2)), b_ub=[1.0])
    with pytest.raises(ValueError, match="right-hand side"):
        dense_lp(np.ones(2), b_ub=[1.0])
    with pytest.raises(ValueError, match="right-hand side"):
        dense_lp(np.ones(2), A_eq=np.ones((1, 2)))


def test_nothing_on_stdout() -> None:
    """The process's first HiGHS object is made by ``dense_lp`` here: no banner on stdout."""
    code = (
        "import numpy as np\n"
        "from netopt.model.highs_lp import dense_lp\n"
        "r = dense_lp(np.ones(2), bounds=[(0, 1), (1, 2)]); print(r.fun)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "1.0\n"
