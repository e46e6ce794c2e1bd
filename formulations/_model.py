"""Model formulations: compile the problem into a solver-neutral model, solve it on a backend.

:class:`ModelFormulation.run` is the exact pipeline: a starting point (the best of the user's
points and domain samples, improved by a local search), sound bounds on every value (interval or
CROWN, then LP tightening that carries the starting point's objective back through the network),
the model (:meth:`build`), the backend's solve, and :meth:`recover`, which maps the raw solution
back to the problem's input and units. The claim it returns is the backend's own: the pipeline
re-checks it (:func:`netopt.result.assemble`).

The local search's pattern LPs and the LP tightening get their LPs from
:meth:`ModelFormulation.lp_context`: this formulation's model, solved on :data:`LP_BACKEND`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from netopt.control import Deadline, emit, interrupted
from netopt.errors import FormulationError, InputError, MissingBoundsError
from netopt.formulations._base import Formulation, array_like
from netopt.model import LPContext
from netopt.options import Option, Schema, choice, flag, integer, number
from netopt.problems import CrossEntropy, Inversion, Problem
from netopt.result import Outcome

__all__ = ["ModelFormulation", "EXACT_OPTIONS", "TRIVIAL_TOL", "LP_BACKEND"]

#: the backend of the LPs before the exact solve (local search, tightening), whichever backend
#: the exact solve runs on: its warm sessions re-solve each unit's LP from the previous basis
LP_BACKEND = "highs"

#: an inversion objective this small is certified optimal by the trivial bound 0
TRIVIAL_TOL = 1e-9
EXACT_OPTIONS = (
    "bounds",
    "tighten",
    "tighten_time",
    "relax",
    "heuristic",
    "heuristic_time",
    "start",
    "n_samples",
    "seed",
)
_CLAIM = {
    "optimal": "optimal",
    "infeasible": "infeasible",
    "time_limit": "time_limit",
    "interrupted": "interrupted",
}
_EXACT = (
    Option("bounds", choice("interval", "crown"), "crown", "how the big-M constants are computed"),
    Option("tighten", choice("lp", None), "lp", "then tightened by LPs over the relaxation"),
    Option("tighten_time", number(low=0), None, "seconds for the tightening"),
    Option("relax", flag, False, "solve the continuous relaxation (a sound bound)"),
    Option("heuristic", flag, True, "a local search from the best start before the solve"),
    Option("heuristic_time", number(low=0), None, "seconds for the local search"),
    Option("start", array_like, None, "starting point(s), e.g. a first-order result's x"),
    Option("n_samples", integer(low=0), 64, "domain samples for the starting point"),
    Option("seed", integer(), 0, "seed of the sampling and the local search"),
)
#: the exact pipeline's own options (the backend's common options come on top)
EXACT_OPTIONS = tuple(o.name for o in _EXACT)


class ModelFormulation(Formulation):
    """A formulation that builds one model for a backend (``build``) and maps its answer back."""

    default_backend: ClassVar[str | None] = "highs"

    def build(self, problem: Problem, bounds: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def lp_context(cls, backend: str = LP_BACKEND, *, threads: int | None = None) -> LPContext:
        """The LPs this formulation lends to bounds and heuristics (:class:`LPContext`).

        ``build`` is this formulation's :meth:`build` on a fresh instance (a build keeps state
        for :meth:`start_vector`, which the exact solve's own build must own); ``solve`` and
        ``open`` run on ``backend``. ``threads`` (None or 0: the solver's default) goes to every
        LP: the exact solve's count, so that HiGHS's process-wide scheduler, which a different
        explicit count restarts, keeps one count from the first LP to the exact solve.
        """
        from netopt import solvers

        B = solvers.get(backend)
        opts: dict[str, Any] = {"threads": threads} if threads else {}
        return LPContext(
            build=lambda problem, bounds: cls().build(problem, bounds),
            solve=lambda model, time_limit=None: B().solve(
                model, **opts, **({} if time_limit is None else {"time_limit": time_limit})
            ),
            open=lambda model: B().open(model, **opts),
            name=backend,
        )

    def accepts(self, problem: Problem) -> list[str]:
        if isinstance(problem, CrossEntropy):
            return [
                f"formulation '{self.name}' cannot model the cross-entropy objective (it is "
                "smooth, not piecewise linear); use a first-order method: prob.solve('admm') or "
                "prob.solve('adam')"
            ]
        return []

    @classmethod
    def options(cls) -> Schema:
        from netopt.solvers._base import COMMON

        return Schema(f"method '{cls.name}'", [*COMMON, *_EXACT])

    def run(
        self,
        problem: Problem,
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
    ) -> Outcome:
        """The exact pipeline; the parameters are :func:`netopt.solve.solve`'s.

        ``time_limit`` is the wall time of the whole pipeline: the local search gets a sixth of
        what remains (at most 10 s), the LP tightening a third of what then remains (at most
        60 s), and the solver the rest, less a reserve for the float64 re-check. Where the
        budget runs out (or the user interrupts) before the solver, the best point so far is
        returned with no bound.
        """
        from netopt import solvers
        from netopt.bounds import compute_bounds
        from netopt.solvers._base import check_options

        solver = solver or self.default_backend
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        deadline = Deadline(options.get("time_limit"), start=t0)
        progress = options.get("progress")
        B = solvers.get(solver)
        if (
            isinstance(problem, Inversion)
            and problem.norm == 2
            and "quadratic_integer" not in B.features
        ):
            raise FormulationError(
                "the 2-norm inversion is exact only on a backend with mixed-integer quadratic "
                f"support (solver='gurobi'); backend '{solver}' has none. Use norm=1 or "
                f"norm='inf' with '{solver}'."
            )
        B.require()
        check_options(solver, options)  # before any heavy work: a typo fails at once
        B.check_option_values(options)
        if tighten not in (None, "lp"):
            raise InputError(f"tighten must be 'lp' or None, got {tighten!r}")
        dom = problem.domain
        if not dom.bounded:
            raise MissingBoundsError(
                f"{problem.net.source.name}: the input has no finite box; pass box=(lo, hi) (or "
                "an l_inf ball) — exact formulations need finite bounds on every ReLU"
            )
        user = (
            [] if start is None else ([start] if np.ndim(start) == len(dom.shape) else list(start))
        )
        x0, v0 = _pick_start(
            problem, n_samples, seed, [np.asarray(u, dtype=np.float64) for u in user]
        )
        sense = 1.0 if problem.sense == "min" else -1.0
        emit(progress, "start", deadline, incumbent=_finite(sense * v0))
        lp = self.lp_context(threads=options.get("threads"))
        if heuristic and x0 is not None and not relax and not deadline.expired():
            from netopt.heuristics import local_search

            budget = (
                min(heuristic_time, deadline.remaining())
                if heuristic_time is not None
                else deadline.share(1 / 6, 10.0)
            )
            emit(progress, "local search", deadline, incumbent=_finite(sense * v0))
            rng = np.random.default_rng(seed + 1)
            starts = np.concatenate([x0[None], dom.sample(max(8, n_samples // 2), rng)])
            x1, v1 = local_search(problem, starts, lp=lp, time_budget=budget)
            if v1 < v0:
                x0, v0 = x1, v1
        timings["start"] = time.perf_counter() - t0
        trivial = problem.trivial_bound()
        if trivial is not None and x0 is not None and v0 <= trivial[0] + TRIVIAL_TOL and not relax:
            # e.g. a norm is non-negative: a point this close to 0 is optimal, no solver needed
            return Outcome(
                [x0],
                "optimal",
                bound=trivial[0],
                bound_source=f"trivial: {trivial[1]}",
                formulation=self.name,
                solver="none (local search)",
                timings=timings,
            )
        t1 = time.perf_counter()
        graph = problem.net.graph
        incumbent = _finite(sense * v0)
        emit(progress, "bounds", deadline, incumbent=incumbent)
        bnd = compute_bounds(graph, dom.lo, dom.hi, bounds)
        if tighten == "lp" and not relax and not deadline.expired():
            from netopt.bounds.lp import tighten_lp

            budget = (
                min(tighten_time, deadline.remaining())
                if tighten_time is not None
                else deadline.share(1 / 3, 60.0)
            )
            emit(progress, "tightening", deadline, incumbent=incumbent)
            cutoff = None
            if x0 is not None and not problem.feasibility:
                cutoff = _model_objective(problem, v0)
            bnd = tighten_lp(problem, bnd, lp=lp, cutoff=cutoff, time_budget=budget)
        timings["bounds"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        emit(progress, "build", deadline, incumbent=incumbent)
        model = self.build(problem, bnd)
        if relax:
            model = model.relaxed()
        if x0 is not None and hasattr(self, "start_vector"):
            model.start = self.start_vector(model, problem, x0)
        timings["build"] = time.perf_counter() - t2
        if deadline.expired():
            # the budget went to the phases before the solver (or the user stopped the run):
            # the best point so far, no bound
            return Outcome(
                [] if x0 is None else [x0],
                "interrupted" if interrupted() else "time_limit",
                formulation=self.name,
                solver=solver,
                timings=timings,
                message="stopped before the solver ran"
                + (" (interrupted)" if interrupted() else " (time limit)"),
            )
        run_opts = dict(options)
        if deadline.time_limit is not None:
            # the solver gets what is left, less a reserve for the float64 re-check
            reserve = min(1.0, 0.05 * deadline.time_limit)
            run_opts["time_limit"] = max(0.01, deadline.remaining() - reserve)
        if progress is not None:
            run_opts["progress"] = _solver_progress(problem, progress, deadline)
        emit(progress, "solve", deadline, incumbent=incumbent)
        raw = B().solve(model, **run_opts)
        timings["solve"] = raw.seconds
        out = self.recover(problem, model, raw, x0, relax)
        out.formulation, out.solver, out.solver_version = self.name, solver, raw.solver_version
        out.bound_method = bnd.method
        out.model_size = model.size()
        out.unstable = bnd.stats.get("unstable", {})
        out.nodes = raw.nodes
        out.timings = timings
        if options.get("gap") is not None:
            out.extra["gap_limit"] = float(options["gap"])  # what "optimal" means for this run
        return out

    def recover(self, problem: Problem, model: Any, raw: Any, x0: Any, relax: bool) -> Outcome:
        """The backend's raw solution in problem space: the input block, the bound's units.

        The model minimizes; a maximization's bound changes sign, and the 2-norm model
        minimizes the square, whose bound's square root bounds the norm. Every domain point is a
        candidate of an optimization problem, so the starting point ``x0`` is one too.
        """
        cols = model.blocks[model.meta["input"]].reshape(-1)
        feas = problem.feasibility
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


def _finite(v: float | None) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def _solver_progress(problem: Problem, progress: Any, deadline: Deadline) -> Any:
    """The backend's progress (the model's minimized objective) in the problem's units.

    The same mapping as :meth:`ModelFormulation.recover`: a maximization's values change sign,
    the 2-norm model's square root is taken; so the live gap is the one the result will state.
    """
    sq = isinstance(problem, Inversion) and problem.norm == 2
    sign = 1.0 if problem.sense == "min" else -1.0

    def units(v: Any) -> float | None:
        if v is None or not np.isfinite(v) or abs(v) >= 1e30:
            return None
        return float(np.sqrt(max(v, 0.0))) if sq else sign * float(v)

    def on_event(d: dict) -> None:
        extra = {k: d[k] for k in ("nodes",) if k in d}
        emit(
            progress,
            "solve",
            deadline,
            incumbent=units(d.get("incumbent")),
            bound=units(d.get("bound")),
            **extra,
        )

    return on_event
