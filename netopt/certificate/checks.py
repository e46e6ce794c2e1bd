"""The re-check of a certificate's point, bound and infeasibility claims.

:func:`verify` is the body of :meth:`Certificate.verify
<netopt.certificate.Certificate.verify>` (whose docstring says what is checked): it rebuilds the
problem and the claim from the evidence, re-checks the point in float64 and in onnxruntime, and
hands the bound to :func:`_check_bound` and an infeasibility to :func:`_check_infeasible`. What
only a solver attests is listed as unchecked, and a refutation attempt
(:mod:`netopt.certificate.refute`) may still expose it; an ``unsat`` certificate and the
branch-and-bound proofs are :mod:`netopt.certificate.unsat`'s.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.certificate import unsat as _unsat
from netopt.certificate.claim import (
    _KIND_STATUSES,
    DEFAULT_BOUND_TOLERANCE,
    DEFAULT_GAP_LIMIT,
    MAX_BOUND_TOLERANCE,
    MAX_GAP_LIMIT,
    MAX_WITNESS_TOLERANCE,
    _claim,
    _gap,
    _short,
    _tname,
)
from netopt.certificate.evidence import _Evidence, _read_evidence, _Report
from netopt.certificate.refute import _refute_bound, _refute_infeasible
from netopt.errors import InputError
from netopt.network import Network, load
from netopt.problems import Problem

if TYPE_CHECKING:
    from netopt.certificate.document import Certificate


def verify(
    cert: Certificate,
    net: Network | str | os.PathLike,
    *,
    tol: float,
    refute: bool,
    samples: int,
    seed: int,
    vnnlib_path: str | os.PathLike | None,
) -> dict[str, Any]:
    """Re-check ``cert`` against ``net``: :meth:`Certificate.verify
    <netopt.certificate.Certificate.verify>` (the checks, parameters and report are described
    there)."""
    cert._check_form()
    if not isinstance(net, Network):
        net = load(net)
    rep = _Report(cert.claim)
    same = net.source.sha256 == cert.onnx_sha256
    rep.check(
        "model sha256 matches",
        same,
        "" if same else f"{net.source.sha256} vs {cert.onnx_sha256}",
    )
    if not same:
        # a certificate about another model: nothing else can be checked against this one
        return rep.finish(None)
    ev = cert.evidence
    if cert.kind == "unsat":
        _unsat.verify_unsat(rep, net, ev, vnnlib_path)
        return rep.finish(_unsat.unsat_claim(ev))
    if ev.get("problem") is None:
        rep.check(
            "the certificate states its problem",
            False,
            "evidence.problem is missing: without it neither the domain, the objective nor "
            "the bound can be checked",
        )
        return rep.finish(None)
    if not isinstance(ev["problem"], dict):
        raise InputError(f"evidence.problem must be a JSON object, got {_tname(ev['problem'])}")
    prob = Problem.from_json(net, ev["problem"])
    e = _read_evidence(ev, cert.kind, net)
    feas = prob.feasibility
    sense = prob.sense
    witness = e.witness if e.witness is not None else (feas and e.status == "optimal")
    claim = _claim(
        cert.kind,
        what=prob.describe(),
        sense=sense,
        status=e.status,
        objective=e.objective,
        bound=e.bound,
        witness=witness,
        tolerance=e.tolerance,
        feasibility=feas,
        proof=ev.get("proof") is not None,
        bound_proof=ev.get("bound_proof") is not None,
    )
    if e.sense is not None:
        rep.check(
            "the stated sense is the problem's",
            e.sense == sense,
            "" if e.sense == sense else f"{_short(e.sense)} vs the problem's {sense!r}",
        )
    rep.check(
        f"status '{e.status}' fits the kind '{cert.kind}'",
        e.status in _KIND_STATUSES[cert.kind],
        ""
        if e.status in _KIND_STATUSES[cert.kind]
        else f"a certificate of kind '{cert.kind}' has status "
        + " or ".join(_KIND_STATUSES[cert.kind]),
    )
    if cert.kind != "point":
        rep.check(f"a certificate of kind '{cert.kind}' has no point x", not e.has_point, "")
    if e.bound is None and e.gap is not None:
        rep.check("a gap is stated only with a bound", False, f"gap {e.gap!r} without a bound")
    if e.bound is None and e.bound_proof is not None:
        rep.check("a bound proof comes with a bound", False, "evidence.bound is null")

    if cert.kind == "point":
        x, y_stated = e.x, e.y
        assert x is not None and y_stated is not None and e.objective is not None
        y = net.forward(x)
        rep.check("x lies in the domain", prob.domain.contains(x, 1e-9), "")
        y_ort = net.run_onnxruntime(x)
        err = float(np.max(np.abs(y_ort - y)) / max(1.0, float(np.max(np.abs(y)))))
        rep.check("onnxruntime agrees with f(x)", err <= tol, f"relative difference {err:.2e}")
        rep.check(
            "stated y equals f(x)",
            bool(np.allclose(y_stated, y, rtol=1e-9, atol=1e-9)),
            "",
        )
        # the input term too (an L2 regularizer), not only the output's
        obj = float(prob.evaluate(y[None])[0] + prob.penalty(x[None])[0])
        rep.check(
            "stated objective equals the recomputed one",
            abs(obj - e.objective) <= 1e-9 * max(1.0, abs(obj)),
            f"{obj:.12g}",
        )
        if witness:
            rep.check("a witness answers a Feasibility problem", feas, type(prob).__name__)
            rep.check("a witness's status is optimal", e.status == "optimal", e.status)
            wt = 0.0 if e.tolerance is None else e.tolerance
            sane = np.isfinite(wt) and 0.0 <= wt <= MAX_WITNESS_TOLERANCE
            rep.check(
                "the witness tolerance is a small non-negative number",
                bool(sane),
                "" if sane else f"{wt!r} (at most {MAX_WITNESS_TOLERANCE:g})",
            )
            rep.check(
                "x satisfies the output constraints",
                bool(sane) and obj <= wt + 1e-9,
                f"largest violation {obj:.3g}, tolerance {wt:g}",
            )
        elif feas and e.status == "optimal":
            rep.check(
                "an optimal Feasibility certificate is a witness",
                False,
                "evidence.witness is false",
            )
        if e.bound is not None:
            _check_bound(
                rep, prob, e, x, witness=witness, refute=refute, samples=samples, seed=seed
            )
        elif e.status == "optimal" and not witness:
            rep.check("an optimal claim comes with a bound", False, "evidence.bound is null")
    elif cert.kind == "bound":
        if e.bound is None:
            rep.notes.append("the certificate makes no claim (no point, no bound)")
        else:
            _check_bound(
                rep, prob, e, None, witness=False, refute=refute, samples=samples, seed=seed
            )
    else:
        if e.bound is not None:
            rep.check("an infeasibility certificate states no bound", False, f"{e.bound!r}")
        proof = ev.get("proof")
        if proof is not None and prob.feasibility:
            proven = _unsat.check_bab_proof(rep, net, prob, proof, "infeasibility")
            if proven is not None:
                # re-checked (True) or failed (False): nothing is left to the solver's word
                return rep.finish(claim)
        _check_infeasible(rep, prob, e, refute=refute, samples=samples, seed=seed)
    return rep.finish(claim)


def _check_bound(
    rep: _Report,
    prob: Problem,
    e: _Evidence,
    x: np.ndarray | None,
    *,
    witness: bool,
    refute: bool,
    samples: int,
    seed: int,
) -> None:
    """The bound: finite, on the right side of the objective, its gap; proven by the
    certificate's branch-and-bound proof (:func:`~netopt.certificate.unsat.check_bound_proof`),
    trivial, or attested.

    A witness's "optimal" status is about the witness, so its gap is not required small.
    """
    bound = e.bound
    assert bound is not None
    finite = bool(np.isfinite(bound))
    rep.check("the bound is a finite number", finite, "" if finite else repr(bound))
    if not finite:
        return
    sense = prob.sense
    scale = max(1.0, abs(e.objective if e.objective is not None else bound))
    btol = DEFAULT_BOUND_TOLERANCE * scale
    if e.bound_tolerance is not None:
        sane = bool(
            np.isfinite(e.bound_tolerance)
            and 0.0 <= e.bound_tolerance <= MAX_BOUND_TOLERANCE * scale
        )
        rep.check(
            "the bound tolerance is a small non-negative number",
            sane,
            f"{e.bound_tolerance:.3g}"
            + ("" if sane else f" (at most {MAX_BOUND_TOLERANCE * scale:.3g})"),
        )
        if not sane:
            return
        btol = e.bound_tolerance
    else:
        rep.notes.append(f"no bound_tolerance stated: round-off only ({btol:.3g})")
    if e.objective is not None:
        obj = e.objective
        if sense == "min":
            ok, side = bound <= obj + btol, "at most"
        else:
            ok, side = bound >= obj - btol, "at least"
        rep.check(
            f"the bound is {side} the objective (sense {sense}, tolerance {btol:.3g})",
            bool(ok),
            f"bound {bound:.12g}, objective {obj:.12g}",
        )
        gap = _gap(obj, bound)
        if e.gap is not None:
            rep.check(
                "stated gap equals the recomputed one",
                abs(e.gap - gap) <= 1e-12 + 1e-9 * gap,
                f"{gap:.6g}" + ("" if abs(e.gap - gap) <= 1e-12 + 1e-9 * gap else f" vs {e.gap!r}"),
            )
        if e.status == "optimal" and not witness:
            limit = DEFAULT_GAP_LIMIT
            if e.gap_limit is not None:
                sane = bool(np.isfinite(e.gap_limit) and 0.0 <= e.gap_limit <= MAX_GAP_LIMIT)
                rep.check("the stated gap limit is a number in [0, 0.1]", sane, f"{e.gap_limit!r}")
                if sane:
                    limit = e.gap_limit
            # the bound may pass the objective by its tolerance, which is then a gap too
            allowed = limit + btol / scale + 1e-12
            rep.check(
                "an optimal claim's gap is within the gap limit",
                gap <= allowed,
                f"gap {gap:.3g}, allowed {allowed:.3g}",
            )
    if e.bound_proof is not None:
        proven = _unsat.check_bound_proof(rep, prob.net, prob, e.bound_proof, bound)
        if proven is not None:
            # re-checked (True) or failed (False): nothing is left to the solver's word
            return
    trivial = prob.trivial_bound()
    if trivial is not None and bound <= trivial[0]:
        # e.g. a weighted norm (weights are non-negative) is never below 0: no solver needed
        rep.check(
            f"the bound {bound:.9g} holds: the objective is never below {trivial[0]:.9g} "
            f"({trivial[1]})",
            True,
            "",
        )
        return
    src = _short(e.attested_by or "the solver", 160, quote=False)
    rep.unchecked.append(
        f"bound {bound:.9g}: no input in the domain has an objective "
        f"{'below' if sense == 'min' else 'above'} it — attested by {src}"
    )
    if refute and not rep.failed:  # once a check failed, a refutation adds nothing
        _refute_bound(rep, prob, bound, btol, x, samples=samples, seed=seed)


@staticmethod
def _check_infeasible(
    rep: _Report, prob: Problem, e: _Evidence, *, refute: bool, samples: int, seed: int
) -> None:
    """Infeasibility: checked for an empty box; else attested, and a refutation attempt."""
    dom = prob.domain
    empty = np.argwhere(dom.lo > dom.hi)
    if dom.integer is not None:
        no_int = dom.integer & (np.ceil(dom.lo) > np.floor(dom.hi))
        empty = np.concatenate([empty, np.argwhere(no_int)])
    if len(empty):
        k = tuple(int(i) for i in empty[0])
        rep.check(
            "the domain is empty",
            True,
            f"no value of input {list(k)} lies in [{dom.lo[k]:.9g}, {dom.hi[k]:.9g}]",
        )
        return
    src = _short(e.attested_by or "the solver", 160, quote=False)
    if prob.feasibility:
        rep.unchecked.append(
            f"infeasibility: no input in the domain satisfies C f(x) <= d — attested by {src}"
        )
    elif dom.A is not None:
        rep.unchecked.append(
            f"infeasibility: no input in the box satisfies A x <= b — attested by {src}"
        )
    else:
        rep.check(
            "the domain is empty",
            False,
            "the box is not empty and the domain has no other constraint; only a "
            "Feasibility problem or an empty domain can be infeasible",
        )
        return
    if refute and not rep.failed:
        _refute_infeasible(rep, prob, samples=samples, seed=seed)
