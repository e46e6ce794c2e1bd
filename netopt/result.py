"""What comes back: :class:`Result`, re-checked independently of the solver, and :class:`Certificate`.

``Result.y`` and ``Result.objective`` are recomputed in float64 by the reference interpreter from
``Result.x``; they are never read from the solver. The solver is trusted only for what it alone can
attest — the proven bound (``Result.bound``) and infeasibility — and the certificate labels those
claims as solver-attested.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from netopt.network import Network
    from netopt.problems import Problem

__all__ = ["Status", "Result", "Certificate"]


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
        """The claim of this result with its evidence (see :class:`Certificate`)."""
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


def _sha256_file(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Certificate:
    """A small JSON document: the claim in one sentence, and the evidence.

    Kinds: ``point`` (an input with its recomputed objective, and, for a certified optimum, the
    solver's bound), ``bound`` (no point, a proven bound), ``infeasible`` (no input satisfies the
    constraints). :meth:`verify` re-checks everything that can be checked without the solver.
    """

    kind: str
    claim: str
    evidence: dict[str, Any]
    onnx_sha256: str | None
    netopt_version: str

    @classmethod
    def from_result(cls, r: Result) -> Certificate:
        import netopt

        p = r.problem
        net = p.net if p is not None else None
        ev: dict[str, Any] = {
            "status": str(r.status),
            "problem": _problem_json(p) if p is not None else None,
            "formulation": r.formulation,
            "solver": r.solver,
            "solver_version": r.solver_version,
            "bound_method": r.bound_method,
            "gap": r.gap,
            "tolerance": r.extra.get("tolerance"),
        }
        if r.x is not None:
            kind = "point"
            ev.update(
                x=np.asarray(r.x).reshape(-1).tolist(),
                input_shape=list(np.shape(r.x)),
                y=np.asarray(r.y).reshape(-1).tolist(),
                objective=r.objective,
            )
            if r.bound is not None:
                ev["bound"] = r.bound
                ev["bound_attested_by"] = (
                    r.extra.get("bound_source")
                    or f"{r.solver} {r.solver_version} (not re-checkable without a solver)"
                )
            what = p.describe() if p is not None else "objective"
            if r.status == Status.OPTIMAL:
                claim = f"x attains objective {r.objective:.9g} for '{what}', and no input in the domain does better than {r.bound:.9g}."
            elif r.extra.get("witness"):
                claim = "x lies in the domain and its output satisfies the constraints (a witness)."
            else:
                claim = f"x attains objective {r.objective:.9g} for '{what}'" + (
                    f"; the optimum is at least {r.bound:.9g}."
                    if r.bound is not None and r.sense == "min"
                    else (
                        f"; the optimum is at most {r.bound:.9g}." if r.bound is not None else "."
                    )
                )
        elif r.status == Status.INFEASIBLE:
            kind = "infeasible"
            claim = (
                "No input in the domain satisfies the output constraints (attested by the solver)."
            )
            ev["attested_by"] = f"{r.solver} {r.solver_version}"
        else:
            kind = "bound"
            claim = (
                f"The optimum is {'at least' if r.sense == 'min' else 'at most'} {r.bound}."
                if r.bound is not None
                else "No claim."
            )
            ev["bound"] = r.bound
        sha = net.source.sha256 if net is not None else None
        return cls(kind, claim, ev, sha, netopt.__version__)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "claim": self.claim,
                "evidence": self.evidence,
                "onnx_sha256": self.onnx_sha256,
                "netopt_version": self.netopt_version,
            },
            indent=2,
            default=_jsonable,
        )

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Certificate:
        try:
            d = json.loads(Path(path).read_text())
            return cls(
                d["kind"],
                d["claim"],
                d["evidence"],
                d.get("onnx_sha256"),
                d.get("netopt_version", "?"),
            )
        except FileNotFoundError:
            raise InputError(f"{path}: no such certificate file") from None
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise InputError(f"{path}: not a netopt certificate ({e})") from e

    def verify(self, net: Network | str | os.PathLike, *, tol: float = 1e-5) -> dict[str, Any]:
        """Re-check the certificate against a network (a Network, or the ONNX file's path).

        Checks that can be done without the solver: the model's sha256; that ``x`` lies in the
        domain; ``f(x)`` by the float64 interpreter and by onnxruntime (float32 tolerance
        ``tol``, relative); the objective recomputed from ``f(x)``; for a witness, the
        constraints. Returns a report ``{"ok": bool, "checks": [...], "trusted": [...]}``.
        """
        import netopt
        from netopt.problems import problem_from_json

        if not isinstance(net, netopt.Network):
            net = netopt.load(net)
        checks: list[tuple[str, bool, str]] = []
        trusted: list[str] = []
        same = net.source.sha256 == self.onnx_sha256
        checks.append(
            (
                "model sha256 matches",
                same,
                "" if same else f"{net.source.sha256} vs {self.onnx_sha256}",
            )
        )
        if not same:
            # a certificate about another model: nothing else can be checked against this one
            return {
                "ok": False,
                "checks": [{"check": a, "ok": b, "detail": c} for a, b, c in checks],
                "trusted": [],
            }
        ev = self.evidence
        prob = problem_from_json(net, ev["problem"]) if ev.get("problem") else None
        if self.kind == "point":
            x = np.asarray(ev["x"], dtype=np.float64).reshape(ev["input_shape"])
            y = net.forward(x)
            ok_dom = prob.domain.contains(x, 1e-9) if prob is not None else True
            checks.append(("x lies in the domain", ok_dom, ""))
            y_ort = net.run_onnxruntime(x)
            err = float(np.max(np.abs(y_ort - y)) / max(1.0, float(np.max(np.abs(y)))))
            checks.append(
                ("onnxruntime agrees with f(x)", err <= tol, f"relative difference {err:.2e}")
            )
            claimed_y = np.asarray(ev["y"]).reshape(y.shape)
            checks.append(
                ("stated y equals f(x)", bool(np.allclose(claimed_y, y, rtol=1e-9, atol=1e-9)), "")
            )
            if prob is not None:
                # the input term too (an L2 regularizer), not only the output's
                obj = float(prob.evaluate(y[None])[0] + prob.penalty(x[None])[0])
                checks.append(
                    (
                        "stated objective equals the recomputed one",
                        abs(obj - ev["objective"]) <= 1e-9 * max(1, abs(obj)),
                        f"{obj:.12g}",
                    )
                )
                if "witness" in self.claim:
                    checks.append(
                        (
                            "x satisfies the output constraints",
                            obj <= (ev.get("tolerance") or 0) + 1e-9,
                            f"violation {obj:.3g}",
                        )
                    )
            if "bound" in ev and ev["bound"] is not None:
                src = ev.get("bound_attested_by", "solver")
                if src.startswith("trivial") and ev["bound"] == 0.0 and prob is not None:
                    checks.append(
                        (
                            "bound 0 holds: the objective is a norm",
                            ev["problem"]["type"] == "Inversion",
                            "",
                        )
                    )
                else:
                    trusted.append(f"bound {ev['bound']} ({src})")
        elif self.kind == "infeasible":
            trusted.append(f"infeasibility ({ev.get('attested_by', 'solver')})")
        else:
            trusted.append(f"bound {ev.get('bound')} (solver)")
        return {
            "ok": all(c[1] for c in checks),
            "checks": [{"check": a, "ok": b, "detail": c} for a, b, c in checks],
            "trusted": trusted,
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.floating | np.integer):
        return v.item()
    if isinstance(v, Enum):
        return v.value
    raise TypeError(f"not JSON serializable: {type(v)}")


def _problem_json(p: Problem) -> dict[str, Any]:
    from netopt.problems import problem_to_json

    return problem_to_json(p)
