r"""One branch-and-bound run on an optimization problem (``Inversion``, ``OutputObjective``).

:func:`netopt.bounds.optimize.minimize` splits the input box best first and bounds every piece
by float64 CROWN on linear minorant rows of the objective; its incumbents come from a local
search (:func:`netopt.heuristics.local_search`: projected descent, then the exact LP over the
best points' linear regions, on HiGHS) run first and on the best open pieces' centres. On
more inputs than input splitting suits, with a time limit, an :math:`\ell_1`,
:math:`\ell_\infty` or linear objective and few unstable ReLUs, input splitting gets
:data:`DECIDE_SHARE` of the time less and ReLU-split decisions between its bound and incumbent
the rest (:func:`netopt.bounds.opt_decide.raise_bound`): a threshold proved unreachable becomes
the bound, with its own proof. The Outcome:

* claim "optimal" when the incumbent is within ``gap`` (relative) of the proven bound;
  "time_limit" / "interrupted" when a limit stopped the search (the bound proven so far is
  kept), "none" with the bound when the domain limit or float precision did;
* ``bound`` the proven bound in the problem's sense, with ``extra["proof"]`` the tree that
  :func:`netopt.bounds.proof.check_proof` and
  :func:`netopt.bounds.objective_rows.rows_imply_bound` re-check (none when the bound is the
  objective's floor, e.g. 0 for a norm);
* ``extra["bab"]`` the search's statistics (``decisions``: each decision's threshold,
  verdict and seconds), ``extra["gap_limit"]`` the gap.
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
#: on more inputs than input splitting suits (:data:`~netopt.bounds.branch.INPUT_SPLIT_MAX_DIM`),
#: the share of the time limit left to ReLU-split decisions that raise the bound
#: (:func:`~netopt.bounds.opt_decide.raise_bound`) when input splitting has not closed the gap,
#: where the box leaves at most :data:`~netopt.bounds.opt_decide.MAX_UNSTABLE` ReLUs unstable.
#: Input splitting's share is short: its incumbent comes early (the local search), and its bound
#: only matters where the decisions prove nothing. Measured on the shared benchmark's
#: 10-32-32-2 beyond_ia, ``solve()`` at 60 s (branch and bound's share 45 s): with 0.5 the
#: decision at the incumbent (21-27 s) got 18 s and the run ended TL [3.3718]; with 0.75 it got
#: 27 s and was optimal in 32.8-38.6 s but once TL [3.3215] (the decision a little slower); with
#: 0.9 (and the aim's share 0.9) it gets 36 s, optimal in 29.9-30.9 s
DECIDE_SHARE = 0.9


def optimum_outcome(
    problem: Problem,
    *,
    time_limit: float | None = None,
    gap: float = 1e-6,
    batch: int | None = None,
    progress: Callable[[dict], Any] | None = None,
    device: Any = None,
) -> Outcome:
    """Optimize ``problem`` over its box by branch and bound (see the module docstring);
    ``device``: the ReLU-split decisions' (default CUDA when present)."""
    from netopt.bounds.optimize import minimize
    from netopt.errors import SolveError
    from netopt.formulations.milp import lp_context
    from netopt.heuristics import descent, local_search
    from netopt.problems import Inversion

    if device is not None:
        from netopt.torch_utils import resolve_device

        resolve_device(device)  # (a device torch does not see: an error now, not after a phase)
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

    from netopt.bounds.branch import INPUT_SPLIT_MAX_DIM
    from netopt.bounds.objective_rows import minorant_of
    from netopt.bounds.opt_decide import MAX_UNSTABLE, decision_rows, root_unstable

    mn = minorant_of(problem)
    decide = (
        time_limit is not None
        and lo.size > INPUT_SPLIT_MAX_DIM
        and mn is not None
        and decision_rows(mn) is not None
        and root_unstable(problem.net, lo, hi) <= MAX_UNSTABLE
    )
    first = Deadline(time_limit * (1 - DECIDE_SHARE), start=t0) if decide else dl
    res = minimize(
        problem,
        deadline=first,
        rel_gap=gap,
        batch=256 if batch is None else batch,
        starts=x0,
        polish=polish,
        progress=progress,
    )
    assert res is not None  # Bab.accepts and its rules admitted the problem and the network
    sign = 1.0 if problem.sense == "min" else -1.0
    stats = {k: res.stats[k] for k in OPT_STATS if k in res.stats}
    how = f"branch and bound (input splits, {stats.get('nodes', 0)} boxes)"
    version = "input splits on cpu (numpy float64)"
    if decide and res.stopped == "time limit" and not dl.expired():
        how += _decide(problem, mn, res, dl, gap, stats, progress, device)
        on = sorted({t["device"] for t in stats.get("decisions", [])})
        if on:
            version += f", ReLU-split decisions on {', '.join(on)} (torch float32)"
    stats["stopped"] = res.stopped
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
        solver_version=version,
        message=msg,
        timings={"branch_and_bound": time.perf_counter() - t0},
        nodes=stats.get("nodes"),
        extra=extra,
    )


def _decide(
    problem: Problem,
    mn: Any,
    res: Any,
    dl: Deadline,
    gap: float,
    stats: dict,
    progress: Any,
    device: Any = None,
) -> str:
    """ReLU-split decisions between ``res``'s bound and incumbent with the time left
    (:func:`~netopt.bounds.opt_decide.raise_bound`): a proved threshold replaces the bound and
    its proof, a point found the incumbent; ``res.stopped`` is None once the gap closes."""
    from netopt.bounds.opt_decide import raise_bound
    from netopt.control import interrupted, relative_gap
    from netopt.errors import SolveError

    try:
        rb = raise_bound(
            problem, mn, res.bound, res.value, dl, rel_gap=gap, device=device, progress=progress
        )
    except SolveError as e:
        # (out of the device's memory on one domain: input splitting's bound and point stand)
        stats["decisions_failed"] = str(e)
        return f", then the ReLU-split decisions failed ({e})"
    if rb is None:
        return ""
    stats["decisions"] = rb.tries
    if rb.bound > res.bound:
        res.bound, res.proof = rb.bound, rb.proof
    if rb.x is not None and rb.value < res.value:
        res.x, res.value = rb.x.reshape(problem.net.input_shape), rb.value
    if relative_gap(res.value, res.bound) <= gap:  # (the gap the Result states)
        res.stopped = None
    elif interrupted():
        res.stopped = "interrupted"
    elif not dl.expired():
        # the decisions gave up with time left (each undecided, the thresholds too close)
        res.stopped = "undecided"
    n_un = sum(t["verdict"] == "unsat" for t in rb.tries)
    return f", then {len(rb.tries)} ReLU-split decisions ({n_un} proved a threshold)"
