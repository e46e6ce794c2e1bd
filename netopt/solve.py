"""Solving a problem: bounds -> formulation -> model -> backend -> re-checked result."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from netopt.bounds import compute_bounds
from netopt.errors import FormulationError, InputError, MissingBoundsError
from netopt.problems import Feasibility, Inversion, Problem
from netopt.result import WITNESS_TOL, Outcome, Result, assemble, bound_tolerance

log = logging.getLogger("netopt")

__all__ = ["solve", "solve_many", "WITNESS_TOL", "bound_tolerance"]

#: an inversion objective this small is certified optimal by the trivial bound 0
TRIVIAL_TOL = 1e-9


def _pick_start(
    problem: Problem, n_samples: int, seed: int, user: list[np.ndarray]
) -> tuple[np.ndarray | None, float]:
    """The best of the user's points and ``n_samples`` domain samples (by recomputed objective)."""
    rng = np.random.default_rng(seed)
    dom = problem.domain
    pts = [dom.project(u) for u in user]
    if dom.bounded:
        pts.append(
            (dom.lo + dom.hi) / 2 if dom.integer is None else dom.project((dom.lo + dom.hi) / 2)
        )
    if n_samples > 0:
        pts.extend(list(dom.sample(n_samples, rng)))
    pts = [p for p in pts if dom.contains(p)]
    if not pts:
        return None, np.inf
    X = np.stack(pts)
    vals = problem.evaluate(problem.net.forward(X))
    if problem.sense == "max":
        vals = -vals
    k = int(np.argmin(vals))
    return X[k], float(vals[k])


def _model_objective(problem: Problem, value: float) -> float | None:
    """The model's (minimized) objective for a problem objective ``value`` (sign-adjusted).

    ``value`` comes from :func:`_pick_start`, already negated for maximization. The 2-norm model
    minimizes the square.
    """
    if not np.isfinite(value):
        return None
    if isinstance(problem, Inversion) and problem.norm == 2:
        return value**2
    return value


def solve(
    problem: Problem,
    formulation: str = "milp",
    solver: str | None = None,
    *,
    bounds: str = "crown",
    tighten: str | None = "lp",
    tighten_time: float | None = None,
    relax: bool = False,
    heuristic: bool = True,
    heuristic_time: float | None = None,
    start: Any = None,
    n_samples: int = 64,
    seed: int = 0,
    **options: Any,
) -> Result:
    """Solve ``problem`` exactly (or its relaxation) and return a re-checked :class:`Result`.

    Parameters
    ----------
    problem : Problem
    formulation : str
        A registered formulation (``netopt.formulations.available()``). The first-order ones
        (``"admm"``, ``"adam"``, ``"gd"``, ``"pgd"``, ``"sign_pgd"``, ``"gradient"``) go to
        :func:`solve_first_order`; the options below other than ``start`` and ``seed`` are the
        exact path's.
    solver : str, optional
        A registered backend (``netopt.solvers.available()``); default the formulation's
        natural one (``"highs"`` for ``"milp"``, ``"torch"`` for the first-order ones).
    bounds : {"interval", "crown"}
        How the big-M constants are computed first.
    tighten : {"lp", None}
        Then tighten them by LPs over the relaxation (:func:`netopt.bounds_lp.tighten_lp`),
        carrying the best known objective (or the output constraints) back through the network.
    tighten_time : float, optional
        Seconds for the tightening (default: a third of ``time_limit``, at most 60).
    relax : bool
        Solve the continuous relaxation: its optimum is a sound bound on the exact optimum.
    heuristic : bool
        Improve the best starting point by local search (:func:`netopt.heuristics.local_search`:
        projected descent and LPs over linear regions) before the exact solve.
    heuristic_time : float, optional
        Seconds for it (default: a sixth of ``time_limit``, at most 10).
    start : array or list of arrays, optional
        Starting point(s) from a heuristic; the best of these and ``n_samples`` sampled inputs
        (improved by the local search) is handed to the solver as its first incumbent. A
        first-order result's point works as is: ``prob.solve("milp", start=prob.solve("adam").x)``.
    **options
        Backend options: time_limit, gap, abs_gap, threads, verbose, progress, options={...}.
    """
    from netopt import formulations, solvers

    F = formulations.get(formulation)
    driver = getattr(F, "driver", None)
    if driver or getattr(F, "first_order", False):
        exact_only = {
            "bounds": (bounds, "crown"),
            "tighten": (tighten, "lp"),
            "tighten_time": (tighten_time, None),
            "relax": (relax, False),
            "heuristic": (heuristic, True),
            "heuristic_time": (heuristic_time, None),
            "n_samples": (n_samples, 64),
        }
        given = [k for k, (v, default) in exact_only.items() if v != default]
        if driver and start is not None:
            given.append("start")
        if given:
            raise InputError(
                f"option(s) {given} belong to the exact formulations; formulation "
                f"'{formulation}' does not take them"
            )
    if driver:
        # a method that is a sequence of models (layer-wise LPs): its driver runs it
        import importlib

        mod, _, fn = driver.partition(":")
        if solver is not None:
            options.setdefault("backend", solver)
        return getattr(importlib.import_module(mod), fn)(problem, **options)
    if getattr(F, "first_order", False):
        return solve_first_order(problem, formulation, solver, start=start, seed=seed, **options)[0]
    if solver is None:
        solver = getattr(F, "default_backend", "highs")
    from netopt.problems import CrossEntropy

    if isinstance(problem, CrossEntropy):
        raise FormulationError(
            f"formulation '{formulation}' cannot model the cross-entropy objective (it is smooth, "
            "not piecewise linear); use a first-order method: prob.solve('admm') or "
            "prob.solve('adam')"
        )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    B = solvers.get(solver)
    graph = problem.net.graph
    F.require_support(graph, f" of {problem.net.source.name}")  # before any work
    if (
        isinstance(problem, Inversion)
        and problem.norm == 2
        and "quadratic_integer" not in B.features
    ):
        raise FormulationError(
            f"the 2-norm inversion is exact only on a backend with mixed-integer quadratic support "
            f"(solver='gurobi'); backend '{solver}' has none. Use norm=1 or norm='inf' with '{solver}'."
        )
    B.require()
    from netopt.solvers._base import check_options

    check_options(solver, options)  # before any heavy work: a typo fails at once
    B.check_option_values(options)
    dom = problem.domain
    if not dom.bounded:
        raise MissingBoundsError(
            f"{problem.net.source.name}: the input has no finite box; pass box=(lo, hi) (or an l_inf "
            "ball) — exact formulations need finite bounds on every ReLU"
        )
    user = [] if start is None else ([start] if np.ndim(start) == len(dom.shape) else list(start))
    x0, v0 = _pick_start(problem, n_samples, seed, [np.asarray(u, dtype=np.float64) for u in user])
    if heuristic and x0 is not None and not relax:
        from netopt.heuristics import local_search

        tl = options.get("time_limit")
        budget = (
            heuristic_time if heuristic_time is not None else min(10.0, (tl / 6) if tl else 10.0)
        )
        rng = np.random.default_rng(seed + 1)
        starts = np.concatenate([x0[None], dom.sample(max(8, n_samples // 2), rng)])
        x1, v1 = local_search(problem, starts, time_budget=budget)
        if v1 < v0:
            x0, v0 = x1, v1
    timings["start"] = time.perf_counter() - t0
    if isinstance(problem, Inversion) and x0 is not None and v0 <= TRIVIAL_TOL and not relax:
        # a norm is non-negative: a point this close to 0 is optimal, no solver needed
        out = Outcome(
            [x0],
            "optimal",
            bound=0.0,
            bound_source="trivial: a norm is non-negative",
            formulation=formulation,
            solver="none (local search)",
        )
        return assemble(problem, out, timings)
    t1 = time.perf_counter()
    bnd = compute_bounds(graph, dom.lo, dom.hi, bounds)
    if tighten == "lp" and not relax:
        from netopt.bounds_lp import tighten_lp

        tl = options.get("time_limit")
        budget = tighten_time if tighten_time is not None else min(60.0, (tl / 3) if tl else 60.0)
        cutoff = None
        if x0 is not None and not isinstance(problem, Feasibility):
            cutoff = _model_objective(problem, v0)
        bnd = tighten_lp(
            problem, bnd, cutoff=cutoff, time_budget=budget, threads=options.get("threads")
        )
    elif tighten not in (None, "lp"):
        raise InputError(f"tighten must be 'lp' or None, got {tighten!r}")
    timings["bounds"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    f = F()
    model = f.build(problem, bnd)
    if relax:
        model = model.relaxed()
    if x0 is not None and hasattr(f, "start_vector"):
        model.start = f.start_vector(model, problem, x0)
    timings["build"] = time.perf_counter() - t2
    raw = B().solve(model, **options)
    timings["solve"] = raw.seconds
    out = _recover(problem, model, raw, x0, relax)
    out.formulation, out.solver, out.solver_version = formulation, solver, raw.solver_version
    out.bound_method = bnd.method
    out.model_size = model.size()
    out.unstable = bnd.stats.get("unstable", {})
    out.nodes = raw.nodes
    res = assemble(problem, out, timings)
    if options.get("gap") is not None:
        res.extra["gap_limit"] = float(options["gap"])  # what "optimal" means for this run
    return res


_CLAIM = {"optimal": "optimal", "infeasible": "infeasible", "time_limit": "time_limit"}


def _recover(problem: Problem, model, raw, x0, relax: bool) -> Outcome:
    """The backend's raw solution in problem space: the input block, the bound's units and sense.

    The model minimizes; a maximization's bound changes sign, and the 2-norm model minimizes the
    square, whose bound's square root bounds the norm. Every domain point is a candidate of an
    optimization problem, so the starting point ``x0`` is one too.
    """
    cols = model.blocks[model.meta["input"]].reshape(-1)
    feas = isinstance(problem, Feasibility)
    cand = [] if raw.x is None else [raw.x[cols]]
    if x0 is not None and not feas:
        cand.append(x0)
    bound = None
    if raw.bound is not None:
        if isinstance(problem, Inversion) and problem.norm == 2:
            bound = float(np.sqrt(max(raw.bound, 0.0)))
        else:
            bound = raw.bound if problem.sense == "min" else -raw.bound
    claim = "error" if raw.status == "error" else _CLAIM.get(raw.status, "none")
    return Outcome(
        cand,
        claim,
        bound=bound,
        tolerances=raw.extra.get("tolerances"),
        relaxation=relax,
        message=(
            "continuous relaxation: bound is a sound bound on the exact optimum"
            if relax and claim == "optimal"
            else raw.message
        ),
        solver_objective=raw.objective,
    )


# --------------------------------------------------------------------------- first-order path
def solve_first_order(
    problems: Problem | list[Problem],
    formulation: str = "adam",
    solver: str | None = None,
    **options: Any,
) -> list[Result]:
    """Solve one or several problems on one network with a first-order formulation, batched.

    The formulation builds one model for all problems (:mod:`netopt.formulations.admm`,
    :mod:`netopt.formulations.gradient`), the backend (default ``"torch"``) solves every
    problem and restart as one batch, and each problem's best point is re-evaluated here by the
    float64 reference interpreter. Status ``feasible`` (no bound is proven), or ``error`` when
    every row of the problem produced NaN/inf or diverged (``extra["diverged_at"]`` is the
    iteration; ``x`` is the best finite point seen before, if any).

    Returns
    -------
    list of Result
        One per problem, in order.
    """
    from netopt import formulations, solvers

    t0 = time.perf_counter()
    plist = [problems] if isinstance(problems, Problem) else list(problems)
    F = formulations.get(formulation)
    if not getattr(F, "first_order", False):
        raise InputError(
            f"formulation '{formulation}' is not a first-order method; use netopt.solve.solve"
        )
    name = solver or getattr(F, "default_backend", "torch")
    B = solvers.get(name)
    B.require()
    f = F()
    model = f.build(plist)
    B.check_model(model)
    t1 = time.perf_counter()
    backend = B()
    raws = (
        backend.solve_batch(model, **options)
        if hasattr(backend, "solve_batch")
        else [backend.solve(model, **options)]
    )
    t2 = time.perf_counter()
    out = []
    for p, raw in zip(plist, raws, strict=True):
        o = Outcome(
            [] if raw.x is None else [raw.x],
            "error" if raw.status == "error" else "none",
            formulation=formulation,
            solver=name,
            solver_version=raw.solver_version,
            message=raw.message,
            extra=dict(raw.extra),
            model_size=model.size(),
            solver_objective=raw.objective,
            timings={
                "build": t1 - t0,
                "solve": raw.seconds,
                "setup": max(0.0, (t2 - t1) - raw.seconds),
            },
        )
        res = assemble(p, o)
        out.append(res)
    return out


def solve_many(
    problems: list[Problem], formulation: str = "adam", solver: str | None = None, **options: Any
) -> list[Result]:
    """Solve several problems: batched in one run for a first-order formulation, else in turn."""
    from netopt import formulations

    if getattr(formulations.get(formulation), "first_order", False):
        return solve_first_order(problems, formulation, solver, **options)
    return [solve(p, formulation, solver, **options) for p in problems]
