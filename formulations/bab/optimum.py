r"""One branch-and-bound run on an optimization problem (``Inversion``, ``OutputObjective``).

:func:`netopt.bounds.optimize.minimize` splits the input box best first and bounds every piece
by float64 CROWN on linear minorant rows of the objective; its incumbents come from a local
search (:func:`netopt.heuristics.local_search`: projected descent, then the exact LP over the
best points' linear regions, on HiGHS) run first and on the best open pieces' centres. The
Outcome:

* claim "optimal" when the incumbent is within ``gap`` (relative) of the proven bound;
  "time_limit" / "interrupted" when a limit stopped the search (the bound proven so far is
  kept), "none" with the bound when the domain limit or float precision did;
* ``bound`` the proven bound in the problem's sense, with ``extra["proof"]`` the tree that
  :func:`netopt.bounds.proof.check_proof` and
  :func:`netopt.bounds.objective_rows.rows_imply_bound` re-check (none when the bound is the
  objective's floor, e.g. 0 for a norm);
* ``extra["bab"]`` the search's statistics, ``extra["gap_limit"]`` the gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from netopt.control import Deadline
from netopt.problems import Problem
from netopt.result import Outcome

__all__ = ["optimum_outcome", "OPT_STATS"]

#: the statistics copied to ``Result.extra["bab"]``
OPT_STATS = (
    "mode",
    "nodes",
    "depth",
    "rounds",
    "open",
    "domains_per_s",
    "seconds",
    "t_bound",
    "t_branch",
    "t_points",
    "t_polish",
    "t_alpha",
    "alpha_raised",
    "t_lp",
    "lp_raised",
    "t_pieces",
    "pieces_raised",
    "device",
    "batch",
    "proof_leaves",
)

_STOP_CLAIM = {"time limit": "time_limit", "interrupted": "interrupted"}
#: the first local search's share of the time limit, and its cap in seconds
START_SHARE, START_MAX = 0.1, 1.0


def optimum_outcome(
    problem: Problem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    batch: int | None = None,
    progress: Callable[[dict], Any] | None = None,
) -> Outcome:
    """Optimize ``problem`` over its box by branch and bound (see the module docstring)."""
    from netopt.bounds.optimize import minimize
    from netopt.errors import SolveError
    from netopt.formulations.milp import lp_context
    from netopt.heuristics import descent, local_search
    from netopt.problems import Inversion

    t0 = time.perf_counter()
    dl = Deadline(time_limit, start=t0)
    dom = problem.domain
    lp = lp_context("highs", threads=1)
    rng = np.random.default_rng(0)
    lo, hi = dom.lo.reshape(-1), dom.hi.reshape(-1)
    starts = np.concatenate([((lo + hi) / 2)[None], rng.uniform(lo, hi, (63, lo.size))])
    budget = START_MAX if time_limit is None else min(START_MAX, START_SHARE * time_limit)
    shape = tuple(problem.net.input_shape)
    # the local search's twin for the 2-norm: its region problems are QPs, which the pattern LP
    # does not take, while the 1-norm's LPs land on the exact points that reach a target
    twin = problem
    if isinstance(problem, Inversion) and problem.norm == 2:
        twin = Inversion(
            problem.net, problem.target, norm=1, weights=problem.weights, domain=problem.domain
        )

    def search(X: np.ndarray, **kw: Any) -> np.ndarray:
        try:
            x, _ = local_search(twin, X, lp=lp, **kw)
        except SolveError:
            # an LP the backend refuses (e.g. weights near float64's range): descent only
            x = descent(problem, X, iters=kw.get("iters", 150))
        return np.asarray(x).reshape(-1, lo.size)

    x0 = search(starts.reshape(-1, *shape), time_budget=budget)

    def polish(X: np.ndarray) -> np.ndarray:
        # short: the bound is the search's work, this only has to land on the optimal vertex
        return search(X, time_budget=0.5, keep=4, iters=40, rounds=2)

    res = minimize(
        problem,
        deadline=dl,
        rel_gap=gap,
        batch=256 if batch is None else batch,
        starts=x0,
        polish=polish,
        progress=progress,
    )
    assert res is not None  # Bab.accepts and its rules admitted the problem and the network
    sign = 1.0 if problem.sense == "min" else -1.0
    stats = {k: res.stats[k] for k in OPT_STATS if k in res.stats}
    stats["stopped"] = res.stopped
    how = f"branch and bound (input splits, {stats.get('nodes', 0)} boxes)"
    extra: dict[str, Any] = {"bab": stats, "gap_limit": gap}
    if res.proof is not None:
        extra["proof"] = res.proof
    bound = sign * res.bound if np.isfinite(res.bound) else None
    if res.stopped is None:
        claim, msg = "optimal", f"{how}: the incumbent is within the gap of the proven bound"
    else:
        claim = _STOP_CLAIM.get(res.stopped, "none")
        msg = f"{how}: stopped ({res.stopped}) with a proven bound"
    return Outcome(
        [] if res.x is None else [res.x],
        claim,
        bound=bound,
        bound_source=(
            "netopt branch and bound (its proof is re-checked by netopt verify)"
            if res.proof is not None
            else ("trivial: " + problem.trivial_bound()[1] if problem.trivial_bound() else "")
        ),
        formulation="bab",
        solver="netopt branch and bound",
        solver_version="input splits on cpu (numpy float64)",
        message=msg,
        timings={"branch_and_bound": time.perf_counter() - t0},
        nodes=stats.get("nodes"),
        extra=extra,
    )
