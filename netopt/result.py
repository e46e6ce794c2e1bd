"""What comes back: :class:`Result`, re-checked independently of the solver (its certificate is in
:mod:`netopt.certificate`).

Every method returns an :class:`Outcome` — its candidate points and what it claims about them — and
:func:`assemble` is the one place that turns it into a :class:`Result`: it projects the candidates
onto the domain, recomputes ``f(x)`` and the objective in float64 with the reference interpreter,
keeps the best, decides a witness, checks the bound against the recomputed objective (within the
solver's tolerances, else the result is an error), computes the gap and sets the status.
``Result.y`` and ``Result.objective`` are never read from a solver. The solver is trusted only for
what it alone can attest — the proven bound (``Result.bound``) and infeasibility — and the
certificate labels those claims as solver-attested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from netopt.certificate import Certificate
    from netopt.problems import Problem

__all__ = ["Status", "Result", "Outcome", "assemble", "bound_tolerance", "WITNESS_TOL"]

#: a witness's recomputed constraint violation may exceed 0 by this much (solver round-off)
WITNESS_TOL = 1e-6
#: the claims a method may make about its candidates (see :class:`Outcome`)
CLAIMS = ("optimal", "infeasible", "time_limit", "interrupted", "none", "error")


class Status(str, Enum):
    """Outcome of a solve."""

    OPTIMAL = "optimal"  # x is optimal within the gap tolerance (bound proven)
    INFEASIBLE = "infeasible"  # proven: no input satisfies the constraints
    TIME_LIMIT = "time_limit"  # stopped by the limit: best incumbent (if any) and proven bound
    INTERRUPTED = "interrupted"  # stopped by the user (Ctrl-C): best incumbent and proven bound
    FEASIBLE = "feasible"  # a point, with no proof of optimality (heuristics)
    UNKNOWN = "unknown"  # the solver stopped without a usable claim
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


#: claims of a run stopped early (the bound proven so far is kept) and the status each becomes
_LIMIT_STATUS = {"time_limit": Status.TIME_LIMIT, "interrupted": Status.INTERRUPTED}


@dataclass
class Result:
    """The outcome of ``Problem.solve``.

    Attributes
    ----------
    status : Status
    x : ndarray or None
        The best input found (input shape), projected onto the domain's box.
    y : ndarray or None
        ``f(x)`` recomputed by the float64 reference interpreter.
    objective : float or None
        The problem's objective at ``x``, recomputed in float64 (for Feasibility: the largest
        constraint violation, <= 0 for a witness).
    bound : float or None
        The solver's proven bound on the optimum (a lower bound when minimizing, an upper bound
        when maximizing). Solver-attested.
    gap : float or None
        ``|objective - bound| / max(1, |objective|)``.
    """

    status: Status
    problem: Problem | None = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    sense: str = "min"
    formulation: str = ""
    solver: str = ""
    solver_version: str = ""
    bound_method: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    model_size: dict[str, int] = field(default_factory=dict)
    unstable: dict[str, int] = field(default_factory=dict)
    solver_objective: float | None = None
    nodes: int | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """For feasibility questions: "sat" (witness), "unsat" (proof of none) or "unknown"."""
        if self.status == Status.INFEASIBLE:
            return "unsat"
        if self.x is not None and self.objective is not None and self.extra.get("witness", False):
            return "sat"
        return "unknown"

    @property
    def certificate(self) -> Certificate:
        """The claim of this result with its evidence (see :class:`netopt.certificate.Certificate`)."""
        from netopt.certificate import Certificate

        return Certificate.from_result(self)

    def summary(self) -> str:
        parts = [f"status {self.status}"]
        if self.objective is not None:
            parts.append(f"objective {self.objective:.9g} (recomputed in float64)")
        if self.bound is not None:
            parts.append(f"bound {self.bound:.9g} (solver-attested)")
        if self.gap is not None:
            parts.append(f"gap {self.gap:.3g}")
        t = sum(self.timings.values())
        parts.append(f"{t:.2f} s")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"<Result {self.summary()}>"


def __getattr__(name: str) -> Any:
    # ``from netopt.result import Certificate`` keeps working (it moved to netopt.certificate)
    if name == "Certificate":
        from netopt.certificate import Certificate

        return Certificate
    raise AttributeError(f"module 'netopt.result' has no attribute {name!r}")


@dataclass
class Outcome:
    """What a method returns: candidate inputs and its claim about them, not yet re-checked.

    Attributes
    ----------
    candidates : list of ndarray
        Input points (any shape with the input's size), in problem space. The best of them by the
        recomputed objective becomes ``Result.x``; every domain point is a valid candidate for an
        optimization problem, so a method may add its starting point.
    claim : {"optimal", "infeasible", "time_limit", "interrupted", "none", "error"}
        ``optimal``: the bound proves the best candidate optimal (for a Feasibility problem: the
        method believes a candidate is a witness — only the float64 re-check decides);
        ``infeasible``: proven that no input satisfies the constraints (or, for an optimization
        problem, that the domain is empty); ``time_limit``: stopped by a limit, with the bound
        proven so far; ``interrupted``: the same, stopped at the user's request (Ctrl-C);
        ``none``: no claim (a heuristic, or a solver that stopped without one);
        ``error``: the method failed — no bound and no claim, but a point found before the
        failure is kept.
    bound : float, optional
        A proven bound on the optimum in the problem's units and sense (a lower bound when
        minimizing); None for none.
    bound_source : str
        Who proves it when it is not the solver (``"trivial: a norm is non-negative"``).
    tolerances : dict, optional
        The solver's tolerances (``mip_rel_gap``, ``mip_abs_gap``, ``mip_feasibility_tolerance``,
        ``primal_feasibility_tolerance``): how far its bound may pass the recomputed objective.
    relaxation : bool
        The bound is a relaxation's optimum: sound, but no optimality claim for the point.
    formulation, solver, solver_version, message, timings, extra
        Copied to the Result (``extra`` into ``Result.extra``).
    bound_method, model_size, unstable, nodes, solver_objective
        A model-based method's bookkeeping, copied to the Result.
    """

    candidates: list[np.ndarray] = field(default_factory=list)
    claim: str = "none"
    bound: float | None = None
    bound_source: str = ""
    tolerances: dict[str, Any] | None = None
    relaxation: bool = False
    formulation: str = ""
    solver: str = ""
    solver_version: str = ""
    message: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    bound_method: str = ""
    model_size: dict[str, int] = field(default_factory=dict)
    unstable: dict[str, int] = field(default_factory=dict)
    nodes: int | None = None
    solver_objective: float | None = None


def bound_tolerance(objective: float, tolerances: dict[str, Any] | None = None) -> float:
    r"""How far a solver's bound may pass the float64-recomputed objective before it is false.

    .. math::

        \tau = a + (r + 10 \delta)\max(1, |f|)

    with ``a`` the solver's absolute MIP gap, ``r`` its relative MIP gap and ``delta`` its
    (mixed-integer) feasibility tolerance (defaults ``1e-6`` each when the backend does not say;
    ``a`` and ``r`` capped at ``1e-4``). The solver compares bound and incumbent in its own
    arithmetic, on a model whose constraints hold only within ``delta``; its point, re-evaluated
    exactly, may differ by that much.
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


def assemble(problem: Problem, outcome: Outcome, timings: dict[str, float] | None = None) -> Result:
    """The only way a :class:`Result` is built: re-check an :class:`Outcome` in float64.

    Parameters
    ----------
    problem : Problem
    outcome : Outcome
    timings : dict, optional
        Timings measured around the method (``start``, ``bounds``, ...); the outcome's own come
        after them, and ``verify`` (this re-check) last.

    Returns
    -------
    Result
        ``x`` the best candidate projected onto the domain, ``y`` and ``objective`` recomputed in
        float64; the status follows the claim, downgraded where the re-check contradicts it:
        a Feasibility witness only where the recomputed violation is at most
        :data:`WITNESS_TOL`; a bound past the recomputed objective by more than
        :func:`bound_tolerance` makes the result an ``error`` with no bound.
    """
    import time

    t0 = time.perf_counter()
    o = outcome
    if o.claim not in CLAIMS:
        raise ValueError(f"unknown claim {o.claim!r}; one of {CLAIMS}")  # a method's bug
    sense = problem.sense
    sign = 1.0 if sense == "min" else -1.0
    feas = problem.feasibility
    res = Result(Status.UNKNOWN, problem=problem, sense=sense, message=o.message)
    res.formulation, res.solver, res.solver_version = o.formulation, o.solver, o.solver_version
    res.bound_method, res.model_size, res.unstable = o.bound_method, o.model_size, o.unstable
    res.nodes, res.solver_objective = o.nodes, o.solver_objective
    res.extra.update(o.extra)
    if o.bound_source:
        res.extra["bound_source"] = o.bound_source
    if o.tolerances:
        res.extra["tolerances"] = dict(o.tolerances)
    dom = problem.domain
    shape = tuple(problem.net.input_shape)
    cand = [dom.project(np.asarray(c, dtype=np.float64).reshape(shape)) for c in o.candidates]
    if cand:
        X = np.stack(cand)
        vals = problem.evaluate(problem.net.forward(X)) + problem.penalty(X)
        ok = np.isfinite(vals)
        if np.any(ok):
            k = int(np.argmin(np.where(ok, sign * vals, np.inf)))
            # the chosen point alone, as anyone re-checking it will compute it (a batched forward
            # pass may round differently in the last bits)
            res.x = X[k]
            res.y = problem.net.forward(res.x)
            res.objective = float(problem.objective_of_input(res.x))
    # the claim, checked against the re-evaluated point
    bound = None if o.bound is None or feas else float(o.bound)
    witness = feas and res.x is not None and res.objective <= WITNESS_TOL
    if o.claim == "infeasible" and (witness or (not feas and res.x is not None)):
        # a point of the domain (for Feasibility: a witness) refutes the claim
        res.status = Status.ERROR
        res.message = (
            f"{o.solver or 'the method'} claims infeasibility, but x satisfies the "
            + ("constraints (a witness, re-checked in float64)" if feas else "domain's constraints")
            + "; no claim is made"
        )
    elif witness:
        # a witness re-checked in float64 is a fact, whatever the method says of its run
        res.status = Status.OPTIMAL
        res.extra["witness"] = True
        res.extra["tolerance"] = WITNESS_TOL
    elif o.claim == "error":
        res.status = Status.ERROR
        res.message = o.message or "the method failed"
    elif o.claim == "infeasible":
        res.status = Status.INFEASIBLE
        if not feas:
            res.message = (
                o.message or "the input domain is empty (its linear constraints are infeasible)"
            )
        res.x = res.y = res.objective = None
    elif feas:
        if res.x is not None and o.claim == "optimal":
            res.status = Status.UNKNOWN
            res.message = (
                f"the solver's point violates the output constraints by {res.objective:.3g} when "
                f"recomputed in float64 (tolerance {WITNESS_TOL}); tighten the solver's feasibility tolerance"
            )
        elif res.x is not None and o.claim == "none":
            res.status = Status.FEASIBLE
        else:
            res.status = _LIMIT_STATUS.get(o.claim, Status.UNKNOWN)
    else:
        if res.objective is not None and bound is not None:
            tol = bound_tolerance(res.objective, o.tolerances)
            excess = sign * (bound - res.objective)
            res.extra["bound_tolerance"] = tol
            if excess > tol:
                # a bound better than a point that attains it is false: the solver's claim and
                # the float64 re-check disagree by more than the solver's tolerances explain
                res.status = Status.ERROR
                res.message = (
                    f"the solver's bound {bound:.12g} lies past the objective {res.objective:.12g} "
                    f"recomputed in float64 at its point, by {excess:.3g} (more than the tolerance "
                    f"{tol:.3g} its gap and feasibility tolerances explain); no bound is claimed. "
                    "Tighten the solver's feasibility tolerances or report the model."
                )
                res.extra["bound_reported_by_solver"] = bound
                bound = None
            elif excess > 0:
                # within the solver's tolerances: the proven bound cannot be better than a point
                # that attains it
                res.extra["bound_reported_by_solver"] = bound
                bound = res.objective
        if res.status != Status.ERROR:
            res.bound = bound
            if res.objective is not None and bound is not None:
                res.gap = abs(res.objective - bound) / max(1.0, abs(res.objective))
            if o.claim == "optimal" and not o.relaxation and res.x is not None:
                res.status = Status.OPTIMAL
            elif o.claim in _LIMIT_STATUS:
                res.status = _LIMIT_STATUS[o.claim]
            else:
                res.status = Status.UNKNOWN if res.x is None else Status.FEASIBLE
    res.timings = {**(timings or {}), **o.timings, "verify": time.perf_counter() - t0}
    return res
