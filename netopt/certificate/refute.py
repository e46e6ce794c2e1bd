"""Refutation attempts: looking for a point that contradicts a solver-attested claim.

A bound or an infeasibility that only the solver attests cannot be checked without a proof, but
it can be contradicted: a point of the domain that beats the bound, or that satisfies
constraints said to be unsatisfiable, refutes it. The search is seeded domain samples, the box's
midpoint and the certificate's own point, then short projected descents from the best
(:func:`_descend`). Finding such a point fails the certificate; finding none proves nothing, so
the attempts are reported as attempts, not checks.
"""

from __future__ import annotations

import numpy as np

from netopt.certificate.evidence import _Report
from netopt.problems import Problem

#: A refutation attempt reports a point only when it beats the bound by more than this (relative
#: to ``max(1, |bound|)``) and the stated tolerance: the solver's round-off cannot explain that.
REFUTE_MARGIN = 1e-5


def _candidates(prob: Problem, extra: list[np.ndarray], samples: int, seed: int) -> np.ndarray:
    """Seeded domain samples, the box's midpoint and ``extra`` points: those in the domain."""
    dom = prob.domain
    rng = np.random.default_rng(seed)
    pts: list[np.ndarray] = list(dom.sample(samples, rng)) if samples > 0 else []
    if dom.bounded:
        pts.append(dom.project((dom.lo + dom.hi) / 2))
    pts.extend(extra)
    pts = [p for p in pts if np.all(np.isfinite(p)) and dom.contains(p)]
    return np.stack(pts) if pts else np.empty((0, *dom.shape))


def _descend(
    prob: Problem, X: np.ndarray, score: np.ndarray, stop: float, k: int = 8
) -> np.ndarray:
    """Short projected descents from the ``k`` best rows of ``X``; the points in the domain.

    Up to three rounds of 100 steps, each from the best points so far, with steps shrinking
    from 0.5% to 0.05% of the box's width (the long ones leave a vertex optimum of another
    domain, as a certificate's ``x`` is after its box was widened; the short ones settle). The
    scores are minimized; a point scoring below ``stop`` ends the search.
    """
    from netopt.heuristics import descent
    from netopt.problems import Feasibility, Inversion, OutputObjective

    dom = prob.domain
    none = np.empty((0, *dom.shape))
    if len(X) == 0 or not isinstance(prob, Inversion | OutputObjective | Feasibility):
        return none
    if np.min(score) < stop:  # refuted already
        return none
    sign = 1.0 if prob.sense == "min" else -1.0  # the scores are minimized
    width = np.where(np.isfinite(dom.hi - dom.lo), dom.hi - dom.lo, 2.0)
    pool, s = X, np.asarray(score, dtype=np.float64)
    found = [none]
    for frac in (5e-3, 2e-3, 5e-4):
        starts = pool[np.argsort(s)[:k]]
        try:
            D = descent(prob, starts, iters=100, lr=frac * width)
        except Exception:  # an attempt only: an op without a reverse pass ends it, no more
            break
        D = D[[bool(np.all(np.isfinite(d)) and dom.contains(d)) for d in D]]
        if len(D) == 0:
            break
        found.append(D)
        v = sign * (prob.evaluate(prob.net.forward(D)) + prob.penalty(D))
        pool, s = np.concatenate([pool, D]), np.concatenate([s, v])
        if np.min(v) < stop:
            break
    return np.concatenate(found)


def _refute_bound(
    rep: _Report,
    prob: Problem,
    bound: float,
    btol: float,
    x: np.ndarray | None,
    *,
    samples: int,
    seed: int,
) -> None:
    """Look for a domain point whose objective beats ``bound`` by more than the tolerance."""
    sign = 1.0 if prob.sense == "min" else -1.0

    def values(X: np.ndarray) -> np.ndarray:
        return prob.evaluate(prob.net.forward(X)) + prob.penalty(X)

    X = _candidates(prob, [] if x is None else [x], samples, seed)
    n = len(X)
    v = values(X) if n else np.empty(0)
    # the solver's own round-off must not read as a refutation: a margin beyond the tolerance
    margin = max(btol, REFUTE_MARGIN * max(1.0, abs(bound)))
    D = _descend(prob, X, sign * v, stop=sign * bound - margin)
    if len(D):
        X, v = np.concatenate([X, D]), np.concatenate([v, values(D)])
    tried = (
        f"{n} domain points (seeded samples, the midpoint, x) and descent from the best {min(n, 8)}"
    )
    if len(v) == 0:
        rep.attempts.append(
            {
                "attempt": "refute the bound",
                "refuted": False,
                "detail": "no point of the domain found to try",
            }
        )
        return
    k = int(np.argmin(sign * v))
    best = float(v[k])
    refuted = sign * (bound - best) > margin
    word = "below" if sign > 0 else "above"
    detail = f"{tried}: best objective {best:.9g}, " + (
        f"{word} the bound {bound:.9g} by more than {margin:.2g}"
        if refuted
        else f"not {word} the bound {bound:.9g} by more than {margin:.2g} (no proof of the bound)"
    )
    rep.attempts.append({"attempt": "refute the bound", "refuted": refuted, "detail": detail})
    if refuted:
        rep.check(
            "refutation attempt: no point of the domain beats the bound",
            False,
            f"objective {best:.9g} at a point of the domain; the bound says "
            f"{'>=' if sign > 0 else '<='} {bound:.9g}",
        )


def _refute_infeasible(rep: _Report, prob: Problem, *, samples: int, seed: int) -> None:
    """Look for a domain point (and, for a Feasibility problem, one satisfying its constraints)."""
    X = _candidates(prob, [], samples, seed)
    n = len(X)
    if not prob.feasibility:
        refuted = n > 0
        detail = (
            f"{n} of {samples} seeded samples and the midpoint lie in the domain"
            if refuted
            else f"none of {samples} seeded samples and the midpoint lies in the domain "
            "(no proof of emptiness)"
        )
        rep.attempts.append(
            {"attempt": "refute infeasibility", "refuted": refuted, "detail": detail}
        )
        if refuted:
            rep.check("refutation attempt: no point lies in the domain", False, detail)
        return
    v = prob.evaluate(prob.net.forward(X)) if n else np.empty(0)
    # a violation <= 0 satisfies C f(x) <= d; float64 round-off is far below this margin
    margin = 1e-9 * max(1.0, float(np.max(np.abs(prob.d), initial=0.0)))
    D = _descend(prob, X, v, stop=-margin)
    if len(D):
        X, v = np.concatenate([X, D]), np.concatenate([v, prob.evaluate(prob.net.forward(D))])
    best = float(np.min(v)) if len(v) else np.inf
    refuted = best <= -margin
    detail = (
        f"{n} domain points (seeded samples, the midpoint) and descent from the best {min(n, 8)}: "
        f"smallest constraint violation {best:.3g}"
        + ("" if refuted else " (no proof of infeasibility)")
    )
    rep.attempts.append({"attempt": "refute infeasibility", "refuted": refuted, "detail": detail})
    if refuted:
        rep.check(
            "refutation attempt: no point of the domain satisfies the constraints",
            False,
            f"a point of the domain has largest violation {best:.3g} <= 0",
        )
