"""Solving a problem: bounds -> formulation -> model -> backend -> re-checked result."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from netopt.bounds import compute_bounds
from netopt.errors import FormulationError, InputError, MissingBoundsError
from netopt.problems import Feasibility, Inversion, Problem
from netopt.result import Result, Status

log = logging.getLogger("netopt")

__all__ = ["solve", "solve_many", "WITNESS_TOL", "bound_tolerance"]

#: a witness's recomputed constraint violation may exceed 0 by this much (solver round-off)
WITNESS_TOL = 1e-6
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
        res = Result(Status.OPTIMAL, problem=problem, x=x0, sense="min", formulation=formulation)
        res.y = problem.net.forward(x0)
        res.objective = float(problem.evaluate(res.y[None])[0])
        res.bound, res.gap = 0.0, res.objective / max(1.0, res.objective)
        res.extra["bound_source"] = "trivial: a norm is non-negative"
        res.solver, res.timings = "none (local search)", timings
        return res
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
    t3 = time.perf_counter()
    res = _assemble(problem, model, raw, x0, v0, relax)
    if raw.extra.get("tolerances"):
        res.extra["tolerances"] = dict(raw.extra["tolerances"])
    if options.get("gap") is not None:
        res.extra["gap_limit"] = float(options["gap"])  # what "optimal" means for this run
    res.formulation, res.solver, res.solver_version = formulation, solver, raw.solver_version
    res.bound_method = bnd.method
    res.model_size = model.size()
    res.unstable = bnd.stats.get("unstable", {})
    res.nodes = raw.nodes
    timings["verify"] = time.perf_counter() - t3
    res.timings = timings
    return res


def bound_tolerance(objective: float, tolerances: dict[str, Any] | None = None) -> float:
    r"""How far a solver's bound may pass the float64-recomputed objective before it is false.

    .. math::

        \tau = a + (r + 10 \delta)\max(1, |f|)

    with ``a`` the solver's absolute MIP gap, ``r`` its relative MIP gap and ``delta`` its
    (mixed-integer) feasibility tolerance (defaults ``1e-6`` each when the backend does not say).
    The solver compares bound and incumbent in its own arithmetic, on a model whose constraints
    hold only within ``delta``; its point, re-evaluated exactly, may differ by that much.
    """
    t = tolerances or {}

    def val(key: str, default: float) -> float:
        v = t.get(key)
        try:
            v = float(v)
        except (TypeError, ValueError):
            return default
        return v if np.isfinite(v) and v >= 0 else default

    a = val("mip_abs_gap", 1e-6)
    r = min(val("mip_rel_gap", 1e-6), 1e-4)
    d = max(val("mip_feasibility_tolerance", 1e-6), val("primal_feasibility_tolerance", 1e-7))
    return float(min(a, 1e-4) + (r + 10 * d) * max(1.0, abs(objective)))


def _assemble(problem: Problem, model, raw, x0, v0, relax: bool) -> Result:
    """Re-check the solver's point in float64 and label what only the solver attests."""
    sense = problem.sense
    sign = 1.0 if sense == "min" else -1.0
    inp = model.meta["input"]
    cols = model.blocks[inp].reshape(-1)
    squared = isinstance(problem, Inversion) and problem.norm == 2
    res = Result(Status.UNKNOWN, problem=problem, sense=sense, message=raw.message)
    res.solver_objective = raw.objective
    feas = isinstance(problem, Feasibility)
    x = None
    if raw.x is not None:
        x = problem.domain.project(raw.x[cols])
    cand = []
    if x is not None:
        cand.append(x)
    if x0 is not None and not feas:
        cand.append(x0)  # every domain point is feasible for an optimization problem
    if cand:
        X = np.stack(cand)
        vals = problem.evaluate(problem.net.forward(X))
        k = int(np.argmin(sign * vals))
        res.x, res.objective = X[k], float(vals[k])
        res.y = problem.net.forward(res.x)
    if raw.bound is not None and not feas:
        # (a Feasibility model minimizes 0: its "bound" says nothing about the violation)
        b = raw.bound
        if squared:
            b = float(np.sqrt(max(b, 0.0)))
        res.bound = sign * b if not squared else b
    if feas:
        if raw.status == "infeasible":
            res.status = Status.INFEASIBLE
            res.x = res.y = res.objective = None
        elif res.x is not None and res.objective is not None and res.objective <= WITNESS_TOL:
            res.status = Status.OPTIMAL
            res.extra["witness"] = True
            res.extra["tolerance"] = WITNESS_TOL
        elif res.x is not None:
            res.status = Status.UNKNOWN
            res.message = (
                f"the solver's point violates the output constraints by {res.objective:.3g} when "
                f"recomputed in float64 (tolerance {WITNESS_TOL}); tighten the solver's feasibility tolerance"
            )
        elif raw.status == "error":
            res.status = Status.ERROR
            res.bound = None
        else:
            res.status = Status.TIME_LIMIT if raw.status == "time_limit" else Status.UNKNOWN
        return res
    if raw.status == "infeasible":
        res.status = Status.INFEASIBLE
        res.message = "the input domain is empty (its linear constraints are infeasible)"
        res.x = res.y = res.objective = None
        return res
    if raw.status == "error":
        # a failed run attests nothing: no bound, no optimality, no infeasibility
        res.status = Status.ERROR
        res.bound = res.gap = None
        res.message = raw.message or "the solver failed"
        return res
    if res.objective is not None and res.bound is not None:
        tol = bound_tolerance(res.objective, raw.extra.get("tolerances"))
        excess = sign * (res.bound - res.objective)
        res.extra["bound_tolerance"] = tol
        if excess > tol:
            # a bound better than a point that attains it is false: the solver's claim and the
            # float64 re-check disagree by more than the solver's tolerances explain
            res.status = Status.ERROR
            res.message = (
                f"the solver's bound {res.bound:.12g} lies past the objective {res.objective:.12g} "
                f"recomputed in float64 at its point, by {excess:.3g} (more than the tolerance "
                f"{tol:.3g} its gap and feasibility tolerances explain); no bound is claimed. "
                "Tighten the solver's feasibility tolerances or report the model."
            )
            res.extra["bound_reported_by_solver"] = res.bound
            res.bound = res.gap = None
            return res
        if excess > 0:
            # within the solver's tolerances: the proven bound cannot be better than a point
            # that attains it
            res.extra["bound_reported_by_solver"] = res.bound
            res.bound = res.objective
        res.gap = abs(res.objective - res.bound) / max(1.0, abs(res.objective))
    if raw.status == "optimal":
        res.status = Status.OPTIMAL
        if relax:
            res.status = Status.FEASIBLE  # x is feasible; the relaxation's value is only a bound
            res.message = "continuous relaxation: bound is a sound bound on the exact optimum"
    elif raw.status == "time_limit":
        res.status = Status.TIME_LIMIT
    else:
        res.status = Status.UNKNOWN if res.x is None else Status.FEASIBLE
    return res


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
        t3 = time.perf_counter()
        res = Result(Status.FEASIBLE, problem=p, sense=p.sense, message=raw.message)
        if raw.x is not None:
            x = p.domain.project(raw.x)
            res.x = x
            res.y = p.net.forward(x)
            res.objective = p.objective_of_input(x)
        if raw.status == "error":
            res.status = Status.ERROR
        elif res.x is None:
            res.status = Status.UNKNOWN
        res.solver_objective = raw.objective
        res.formulation, res.solver, res.solver_version = formulation, name, raw.solver_version
        res.model_size = model.size()
        res.extra.update(raw.extra)
        res.timings = {
            "build": t1 - t0,
            "solve": raw.seconds,
            "setup": max(0.0, (t2 - t1) - raw.seconds),
            "verify": time.perf_counter() - t3,
        }
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
