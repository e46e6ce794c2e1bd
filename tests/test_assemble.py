"""``assemble`` is the one place a Result is built, and it believes a method only where it can check.

Each claim of an :class:`~netopt.result.Outcome` is checked against the candidates re-evaluated in
float64: a bound past a point that attains it is an error (beyond the solver's tolerances), an
infeasibility claim next to a domain point or a witness is an error, a Feasibility witness is
decided by the recomputed violation alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
from netopt.result import WITNESS_TOL, Outcome, Status, assemble, bound_tolerance

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def net() -> netopt.Network:
    """y = relu(x0 - x1) + 0.5 x1 on R^2: small enough to know every value by hand."""
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "V", "c"], ["y"], transB=1),
    ]
    inits = {
        "W": np.array([[1.0, -1.0], [0.0, 1.0]]),
        "b": np.zeros(2),
        "V": np.array([[1.0, 0.5]]),
        "c": np.zeros(1),
    }
    return netopt.load(make_model(nodes, [1, 2], [1, 1], inits))


def _f(x: np.ndarray) -> float:
    return max(x[0] - x[1], 0.0) + 0.5 * max(x[1], 0.0)


def test_best_candidate_is_projected_and_recomputed(net) -> None:
    prob = netopt.OutputObjective(net, np.array([1.0]), sense="max", box=(0.0, 1.0))
    far = np.array([5.0, -3.0])  # projected onto the box: (1, 0), f = 1
    r = assemble(prob, Outcome([np.array([0.2, 0.1]), far], "none", solver="s"))
    assert r.status == Status.FEASIBLE and r.bound is None
    np.testing.assert_array_equal(r.x, [1.0, 0.0])
    assert r.objective == _f(r.x) == 1.0
    assert "verify" in r.timings


def test_optimal_claim_with_a_bound(net) -> None:
    prob = netopt.OutputObjective(net, np.array([1.0]), sense="max", box=(0.0, 1.0))
    r = assemble(prob, Outcome([np.array([1.0, 0.0])], "optimal", bound=1.0))
    assert r.status == Status.OPTIMAL and r.bound == 1.0 and r.gap == 0.0


def test_bound_past_the_objective(net) -> None:
    prob = netopt.OutputObjective(net, np.array([1.0]), sense="max", box=(0.0, 1.0))
    x = np.array([1.0, 0.0])
    # a maximization's upper bound below an attained value is false
    r = assemble(prob, Outcome([x], "optimal", bound=0.9))
    assert r.status == Status.ERROR and r.bound is None and r.gap is None
    assert "0.9" in r.message and "past the objective 1" in r.message
    # within the tolerance: round-off, the bound becomes the objective
    tiny = 0.5 * bound_tolerance(1.0)
    r = assemble(prob, Outcome([x], "optimal", bound=1.0 - tiny))
    assert r.status == Status.OPTIMAL and r.bound == 1.0
    assert r.extra["bound_reported_by_solver"] == 1.0 - tiny


def test_error_claim_keeps_the_point_but_claims_nothing(net) -> None:
    prob = netopt.OutputObjective(net, np.array([1.0]), sense="max", box=(0.0, 1.0))
    r = assemble(prob, Outcome([np.array([0.5, 0.0])], "error", bound=2.0, message="boom"))
    assert r.status == Status.ERROR and r.bound is None and r.message == "boom"
    assert r.objective == 0.5


def test_infeasible_claim_next_to_a_domain_point_is_an_error(net) -> None:
    prob = netopt.OutputObjective(net, np.array([1.0]), box=(0.0, 1.0))
    r = assemble(prob, Outcome([np.array([0.5, 0.5])], "infeasible", solver="s"))
    assert r.status == Status.ERROR and "claims infeasibility" in r.message
    r = assemble(prob, Outcome([], "infeasible"))
    assert r.status == Status.INFEASIBLE and r.x is None


def test_feasibility_witness_is_decided_by_the_recheck(net) -> None:
    # y >= 1.0 (as -y <= -1): reached at (1, 0) only
    prob = netopt.Feasibility(net, C=np.array([[-1.0]]), d=np.array([-1.0]), box=(0.0, 1.0))
    r = assemble(prob, Outcome([np.array([1.0, 0.0])], "none"))
    assert r.status == Status.OPTIMAL and r.verdict == "sat"
    assert r.extra["tolerance"] == WITNESS_TOL
    # a claimed witness that is none
    r = assemble(prob, Outcome([np.array([0.5, 0.0])], "optimal", bound=0.0))
    assert r.status == Status.UNKNOWN and r.verdict == "unknown" and r.bound is None
    # "infeasible" next to a witness is refuted
    r = assemble(prob, Outcome([np.array([1.0, 0.0])], "infeasible"))
    assert r.status == Status.ERROR and r.verdict != "unsat"
    r = assemble(prob, Outcome([], "infeasible"))
    assert r.verdict == "unsat"


def test_relaxation_bound_is_no_optimality_claim(net) -> None:
    prob = netopt.OutputObjective(net, np.array([1.0]), sense="max", box=(0.0, 1.0))
    r = assemble(prob, Outcome([np.array([1.0, 0.0])], "optimal", bound=1.0, relaxation=True))
    assert r.status == Status.FEASIBLE and r.bound == 1.0


def test_unknown_claim_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown claim"):
        assemble(None, Outcome([], "proven"))  # type: ignore[arg-type]


def test_only_assemble_builds_a_result() -> None:
    """No library module but netopt/result.py calls ``Result(...)``."""
    offenders = []
    for folder in ("netopt", "formulations", "solvers"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "netopt" / "result.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "Result"
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"build Results through netopt.result.assemble: {offenders}"
