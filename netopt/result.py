"""What comes back: :class:`Result`, re-checked independently of the solver (its certificate is in
:mod:`netopt.certificate`).

``Result.y`` and ``Result.objective`` are recomputed in float64 by the reference interpreter from
``Result.x``; they are never read from the solver. The solver is trusted only for what it alone can
attest — the proven bound (``Result.bound``) and infeasibility — and the certificate labels those
claims as solver-attested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from netopt.certificate import Certificate
    from netopt.problems import Problem

__all__ = ["Status", "Result"]


class Status(str, Enum):
    """Outcome of a solve."""

    OPTIMAL = "optimal"  # x is optimal within the gap tolerance (bound proven)
    INFEASIBLE = "infeasible"  # proven: no input satisfies the constraints
    TIME_LIMIT = "time_limit"  # stopped by the limit: best incumbent (if any) and proven bound
    FEASIBLE = "feasible"  # a point, with no proof of optimality (heuristics)
    UNKNOWN = "unknown"  # the solver stopped without a usable claim
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


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
