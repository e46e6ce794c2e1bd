"""Backend sessions: a LinearModel held by a backend, re-solved after changes of bounds and costs.

The warm HiGHS session, a session that rebuilds the model for every solve and the cvxpy LP session
agree with scipy's independent LP solver on a sequence of changed LPs; a failed run attests
nothing; and no module outside the backends drives a solver package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp

from netopt import solvers
from netopt.model import LinearModel
from netopt.solvers._base import RebuildSession

ROOT = Path(__file__).resolve().parents[2]


def _lp(seed: int = 0, n: int = 6, m: int = 8) -> LinearModel:
    rng = np.random.default_rng(seed)
    A = sp.csr_matrix(rng.normal(size=(m, n)))
    x0 = rng.uniform(-1, 1, n)  # a feasible point
    row_lo = np.full(m, -np.inf)
    row_hi = A @ x0 + rng.uniform(0, 1, m)
    return LinearModel(
        rng.normal(size=n), 0.0, A, row_lo, row_hi, -np.ones(n) * 2, np.ones(n) * 2,
        np.zeros(n, dtype=bool), {"x": np.arange(n)},
    )  # fmt: skip


def _scipy(m: LinearModel) -> tuple[str, float | None]:
    r = scipy.optimize.linprog(
        m.c, A_ub=m.A.toarray(), b_ub=m.row_hi, bounds=list(zip(m.lb, m.ub, strict=True)),
        method="highs-ds",
    )  # fmt: skip
    return ("optimal", float(r.fun)) if r.status == 0 else ("infeasible", None)


def _sessions(model: LinearModel) -> dict[str, object]:
    out = {
        "highs-warm": solvers.get("highs")().open(model),
        "highs-rebuild": RebuildSession(solvers.get("highs")(), model, {}),
    }
    if solvers.get("cvxpy").available()[0]:
        out["cvxpy"] = solvers.get("cvxpy")().open(model)
    return out


def test_sessions_agree_with_scipy_over_a_sequence_of_changes() -> None:
    model = _lp()
    rng = np.random.default_rng(1)
    sessions = _sessions(model)
    ref = model
    for step in range(8):
        cost = rng.normal(size=model.n_vars)
        ub = np.where(rng.random(model.n_vars) < 0.3, 0.5, 2.0)
        row_hi = model.row_hi - (step == 5) * 100.0  # step 5: infeasible
        ref = LinearModel(cost, 0.0, model.A, model.row_lo, row_hi, model.lb, ub,
                          model.integer, model.blocks)  # fmt: skip
        want, val = _scipy(ref)
        for name, s in sessions.items():
            s.update(cost=cost, col_hi=ub, row_hi=row_hi)
            raw = s.solve()
            # a solver may not tell infeasible from unbounded: then it claims neither
            ok = {want, "unbounded_or_infeasible"} if want == "infeasible" else {want}
            assert raw.status in ok, (name, step, raw.status, raw.message)
            if want == "optimal":
                assert raw.objective == pytest.approx(val, abs=1e-6), (name, step)
                x = raw.x
                assert np.all(ref.A @ x <= row_hi + 1e-6) and np.all(x <= ub + 1e-7)


def test_warm_session_failure_attests_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import highspy

    s = solvers.get("highs")().open(_lp())
    monkeypatch.setattr(highspy.Highs, "run", lambda self: highspy.HighsStatus.kError)
    raw = s.solve()
    assert raw.status == "error" and raw.objective is None and raw.bound is None
    assert raw.x is None and "HiGHS failed" in raw.message


#: modules outside the backends that may import a solver package, each for a reason
SOLVER_IMPORT_ALLOWED = {
    "netopt/bench/_preload.py": "the bench's fork server only preloads modules",
    "netopt/model/highs_lp.py": "the searches' small proposal LPs (re-checked in float64, never "
    "a claim): highspy directly, as scipy's linprog was before, without scipy.optimize's import",
}


def test_no_solver_package_outside_the_backends() -> None:
    """The core and the formulations get their LPs through a backend, never from highspy (but
    for the modules of :data:`SOLVER_IMPORT_ALLOWED`, each for its reason)."""
    offenders = []
    for folder in ("netopt", "formulations"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.relative_to(ROOT).as_posix() in SOLVER_IMPORT_ALLOWED:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n.split(".")[0] in ("highspy", "gurobipy") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"drive solvers through netopt.solvers sessions: {offenders}"
