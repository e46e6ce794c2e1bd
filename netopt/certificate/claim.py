"""What a certificate may state, and the claim sentence rebuilt from its evidence.

The kinds of certificate and the statuses each may carry; the limits on the tolerances and gap
limits a certificate may state (beyond them a stated number would excuse a false claim); the
claim in one sentence (:func:`_claim`), written the same way when a certificate is made and when
it is re-checked, so that the two can be compared word for word; and the short renderings of
values that the messages of :mod:`netopt.certificate` quote. Everything else in the package
builds on these, so they sit in a module of their own with no dependency inside it.
"""

from __future__ import annotations

from typing import Any

#: The kinds of certificate: an input with its objective (and perhaps a bound), a bound alone,
#: the claim that no input is feasible, or that no input satisfies a VNN-LIB property
#: (:mod:`netopt.certificate.unsat`).
KINDS = ("point", "bound", "infeasible", "unsat")
#: The statuses each kind may carry (a point is never "infeasible"; only "infeasible" is).
_KIND_STATUSES = {
    "point": ("optimal", "time_limit", "interrupted", "feasible", "unknown", "error"),
    "bound": ("time_limit", "interrupted", "feasible", "unknown", "error"),
    "infeasible": ("infeasible",),
    "unsat": ("infeasible",),
}
#: The relative gap an "optimal" claim may have when the certificate states no gap limit: the
#: larger of the MIP backends' defaults (Gurobi's MIPGap; HiGHS's mip_rel_gap is 1e-6).
DEFAULT_GAP_LIMIT = 1e-4
#: A stated gap limit above this is no optimality claim any more.
MAX_GAP_LIMIT = 0.1
#: The bound tolerance (relative to ``max(1, |objective|)``) when the certificate states none,
#: as older ones do: float round-off only.
DEFAULT_BOUND_TOLERANCE = 1e-9
#: A stated bound tolerance above this (relative to ``max(1, |objective|)``) would excuse a false
#: bound; the solvers' own tolerances are far smaller.
MAX_BOUND_TOLERANCE = 1e-3
#: A witness's stated tolerance on the constraint violation above this would excuse a point that
#: violates the constraints (netopt's own is ``netopt.solve.WITNESS_TOL``, 1e-6).
MAX_WITNESS_TOLERANCE = 1e-3


def _tname(v: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if v is None:
        return "null"
    return names.get(type(v), "a number" if isinstance(v, int | float) else type(v).__name__)


def _short(v: Any, n: int = 60, *, quote: bool = True) -> str:
    """A value for a message: repr'd (so control characters cannot reach the terminal), cut."""
    s = repr(v) if quote else "".join(c if c.isprintable() else "?" for c in str(v))
    return s if len(s) <= n else s[: n - 3] + "..."


def _gap(objective: float, bound: float) -> float:
    return abs(objective - bound) / max(1.0, abs(objective))


def _claim(
    kind: str,
    *,
    what: str,
    sense: str,
    status: str,
    objective: float | None,
    bound: float | None,
    witness: bool,
    tolerance: float | None,
    feasibility: bool,
    proof: bool = False,
    bound_proof: bool = False,
) -> str:
    """The claim in one sentence, from the evidence alone (the same words when written and read)."""
    side = "at least" if sense == "min" else "at most"
    proven = " (proven by branch and bound)" if bound_proof else ""
    if kind == "point":
        if witness:
            t = 0.0 if tolerance is None else tolerance
            return (
                "x lies in the domain and its output satisfies the constraints C f(x) <= d "
                f"within {t:g} (a witness)."
            )
        s = f"x attains objective {objective:.9g} for '{what}'"
        if bound is None:
            return s + "."
        if status == "optimal" and objective is not None:
            return (
                f"{s}, and no input in the domain does better than {bound:.9g} ("
                + ("proven by branch and bound; " if bound_proof else "")
                + f"optimal within a relative gap of {_gap(objective, bound):.3g})."
            )
        return f"{s}; the optimum is {side} {bound:.9g}{proven}."
    if kind == "infeasible":
        if feasibility:
            how = "proven by branch and bound" if proof else "attested by the solver"
            return f"No input in the domain satisfies the output constraints ({how})."
        return "The input domain is empty: no input satisfies its constraints."
    if bound is None:
        return "No claim."
    return f"The optimum of '{what}' is {side} {bound:.9g}{proven}."
