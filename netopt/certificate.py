"""Certificates: a result's claim with its evidence, and the re-check that trusts nothing it can check.

:class:`Certificate` is a small JSON document. :meth:`Certificate.verify` rebuilds the claim from
the evidence, re-checks the point in float64 and in onnxruntime, the objective, the bound's
consistency with the objective and the gap, and lists separately what only the solver attests
(an optimality bound, an infeasibility), which only a proof can check; a seeded refutation
attempt (samples and short descents) may still expose a false one.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from netopt import certificate_unsat as _unsat
from netopt.bounds.proof import BabProof
from netopt.errors import InputError
from netopt.network import Network, load
from netopt.problems import Problem
from netopt.problems.base import _json_array
from netopt.result import Result, Status

__all__ = ["Certificate", "KINDS"]


#: The kinds of certificate: an input with its objective (and perhaps a bound), a bound alone,
#: the claim that no input is feasible, or that no input satisfies a VNN-LIB property
#: (:mod:`netopt.certificate_unsat`).
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
#: A refutation attempt reports a point only when it beats the bound by more than this (relative
#: to ``max(1, |bound|)``) and the stated tolerance: the solver's round-off cannot explain that.
REFUTE_MARGIN = 1e-5


@dataclass
class Certificate:
    """A small JSON document: the claim in one sentence, and the evidence.

    Kinds: ``point`` (an input with its recomputed objective, and, for a certified optimum, the
    solver's bound), ``bound`` (no point, a bound), ``infeasible`` (no input satisfies the
    constraints; with a branch-and-bound ``proof``, re-checked in float64), ``unsat`` (no
    input satisfies a VNN-LIB property: :meth:`from_check`, :mod:`netopt.certificate_unsat`). :meth:`verify` re-checks everything that can be checked without the solver and
    lists what only the solver attests.

    Attributes
    ----------
    kind : {"point", "bound", "infeasible", "unsat"}
    claim : str
        The claim in words, for people reading the file. :meth:`verify` never trusts it: it
        rebuilds the claim from the evidence and reports when the two differ.
    evidence : dict
        ``status``, ``problem`` (see :meth:`netopt.problems.Problem.to_json`), ``sense``; for a
        point ``x``, ``input_shape``, ``y`` and ``objective`` (and ``witness``, ``tolerance`` for
        a feasibility witness); ``bound``, ``bound_tolerance`` (how far a solver's bound may pass
        the objective by round-off), ``gap`` and ``gap_limit`` (the solver's relative gap
        setting, when known); the solver's name and version; ``bound_attested_by`` and
        ``attested_by`` (who vouches for what cannot be re-checked); ``bound_proof``, a
        branch-and-bound proof of the bound that :meth:`verify` re-checks.
    onnx_sha256 : str or None
        The sha256 of the ONNX file the claim is about.
    netopt_version : str
    """

    kind: str
    claim: str
    evidence: dict[str, Any]
    onnx_sha256: str | None
    netopt_version: str

    @classmethod
    def from_result(cls, r: Result) -> Certificate:
        """The certificate of a result: its claim and the evidence :meth:`verify` re-checks."""
        p = r.problem
        net = p.net if p is not None else None
        feas = p is not None and p.feasibility
        ev: dict[str, Any] = {
            "status": str(r.status),
            "problem": p.to_json() if p is not None else None,
            "sense": r.sense,
            "formulation": r.formulation,
            "solver": r.solver,
            "solver_version": r.solver_version,
            "bound_method": r.bound_method,
            "gap": r.gap if not feas else None,
            "tolerance": r.extra.get("tolerance"),
        }
        if r.extra.get("bound_tolerance") is not None:
            ev["bound_tolerance"] = float(r.extra["bound_tolerance"])
        gap_limit = _gap_limit_of(r)
        if gap_limit is not None:
            ev["gap_limit"] = gap_limit
        witness = bool(r.extra.get("witness", False))
        attested = r.extra.get("bound_source") or f"{r.solver} {r.solver_version}".strip()
        # a Feasibility model has the objective 0: the solver's "bound" says nothing about the
        # constraint violation that is this problem's objective, so it is no claim
        bound = None if feas else r.bound
        if r.x is not None:
            kind = "point"
            ev.update(
                x=np.asarray(r.x).reshape(-1).tolist(),
                input_shape=list(np.shape(r.x)),
                y=np.asarray(r.y).reshape(-1).tolist(),
                objective=r.objective,
                witness=witness,
            )
            if bound is not None:
                ev["bound"] = bound
                ev["bound_attested_by"] = attested
        elif r.status == Status.INFEASIBLE:
            kind = "infeasible"
            ev["attested_by"] = f"{r.solver} {r.solver_version}".strip()
            if isinstance(r.extra.get("proof"), BabProof):
                # a branch-and-bound tree that verify re-checks in float64
                ev["proof"] = r.extra["proof"].to_dict()
        else:
            kind = "bound"
            ev["bound"] = bound
            if bound is not None:
                ev["bound_attested_by"] = attested
        if bound is not None and isinstance(r.extra.get("proof"), BabProof):
            # a branch-and-bound tree whose rows imply the bound: verify re-checks both
            ev["bound_proof"] = r.extra["proof"].to_dict()
        claim = _claim(
            kind,
            what=p.describe() if p is not None else "objective",
            sense=r.sense,
            status=str(r.status),
            objective=r.objective,
            bound=bound,
            witness=witness,
            tolerance=r.extra.get("tolerance"),
            feasibility=feas,
            proof="proof" in ev,
            bound_proof="bound_proof" in ev,
        )
        sha = net.source.sha256 if net is not None else None
        return cls(kind, claim, ev, sha, _netopt_version())

    @classmethod
    def from_check(cls, res: Any, prop: Any, net: Network) -> Certificate:
        """The ``unsat`` certificate of a VNN-LIB check (:func:`netopt.vnnlib.check.check`).

        ``res`` must have the verdict "unsat"; ``prop`` is the property (a
        :class:`~netopt.vnnlib.property.VnnlibProperty` or its path). Each disjunct is stored
        as a Feasibility problem with its branch-and-bound proof, or the solver attesting it.
        """
        ev = _unsat.unsat_evidence(res, prop, net)
        return cls("unsat", _unsat.unsat_claim(ev), ev, net.source.sha256, _netopt_version())

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
    def from_dict(cls, d: Any) -> Certificate:
        """A certificate from its parsed JSON (a bad top-level field raises :class:`InputError`)."""
        if not isinstance(d, dict):
            raise InputError(
                f"not a netopt certificate: a JSON object is expected, got {_tname(d)}"
            )
        for key in ("kind", "evidence"):
            if key not in d:
                raise InputError(f"not a netopt certificate: '{key}' is missing")
        cert = cls(
            d["kind"],
            d.get("claim", ""),
            d["evidence"],
            d.get("onnx_sha256"),
            d.get("netopt_version", "?"),
        )
        cert._check_form()
        return cert

    @classmethod
    def load(cls, path: str | os.PathLike) -> Certificate:
        """Read a certificate file.

        Raises
        ------
        InputError
            The file is missing or unreadable, not JSON, or a field has the wrong type (the
            message names it). Fields inside the evidence are checked by :meth:`verify`.
        """
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise InputError(f"{path}: no such certificate file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read the certificate ({e})") from None
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise InputError(f"{path}: not a netopt certificate (not JSON: {e})") from None
        try:
            return cls.from_dict(d)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None

    def _check_form(self) -> None:
        """The top-level fields' types (the evidence's fields are :func:`_read_evidence`'s)."""
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise InputError(f"'kind' must be one of {', '.join(KINDS)}; got {_short(self.kind)}")
        if not isinstance(self.claim, str):
            raise InputError(f"'claim' must be a string, got {_tname(self.claim)}")
        if not isinstance(self.evidence, dict):
            raise InputError(f"'evidence' must be a JSON object, got {_tname(self.evidence)}")
        if self.onnx_sha256 is not None and not isinstance(self.onnx_sha256, str):
            raise InputError(f"'onnx_sha256' must be a string, got {_tname(self.onnx_sha256)}")
        if not isinstance(self.netopt_version, str):
            raise InputError(
                f"'netopt_version' must be a string, got {_tname(self.netopt_version)}"
            )

    def verify(
        self,
        net: Network | str | os.PathLike,
        *,
        tol: float = 1e-5,
        refute: bool = True,
        samples: int = 256,
        seed: int = 0,
        vnnlib_path: str | os.PathLike | None = None,
    ) -> dict[str, Any]:
        """Re-check the certificate against a network (a Network, or the ONNX file's path).

        Nothing in the file is trusted that can be checked: the model's sha256; the problem
        (required); that ``kind`` and ``status`` fit the evidence; that ``x`` lies in the domain;
        ``f(x)`` by the float64 interpreter and by onnxruntime (relative tolerance ``tol``, for
        float32 models); the stated ``y`` and objective against the recomputed ones; a witness's
        constraints; that the bound is a finite number on the right side of the objective
        (within the stated tolerance), the stated gap, and that an "optimal" claim's gap is
        within the gap limit; the trivial bound 0 of a norm. The claim sentence is rebuilt from
        the evidence; the file's ``claim`` is only compared with it.

        What only a solver can attest — a bound other than the trivial one, infeasibility — is
        listed as unchecked; for those, a refutation attempt (``samples`` seeded domain points,
        the domain's midpoint and the certificate's point, then a short projected descent from
        the best) looks for a point that contradicts the claim. Finding one fails the
        certificate; finding none proves nothing. A bound with a branch-and-bound proof is
        re-checked instead (:func:`~netopt.certificate_unsat.check_bound_proof`: its rows imply
        the bound exactly, its box is the domain's, its tree holds in float64); a wrong proof
        fails the certificate.

        Parameters
        ----------
        net : Network or path
        tol : float
            Relative tolerance of the onnxruntime comparison.
        refute : bool
            Run the refutation attempts (default True).
        samples : int
            Domain points sampled by a refutation attempt.
        seed : int
            Seed of the sampling.
        vnnlib_path : path, optional
            For an ``unsat`` certificate: the ``.vnnlib`` file; its disjuncts must be exactly
            the certificate's (without it, a note says they are taken from the certificate).
            Each disjunct's branch-and-bound proof is re-checked in float64
            (:func:`netopt.bounds.proof.check_proof`), as is an infeasibility certificate's.

        Returns
        -------
        dict
            ``ok`` (no check failed), ``fully_checked`` (``ok`` and nothing is left to the
            solver's word), ``outcome`` (``"verified"``, ``"attested"`` — verified except what
            only the solver attests — or ``"failed"``), ``claim`` (rebuilt from the evidence;
            None when the model is not the certificate's or it states no problem),
            ``stated_claim`` and ``claim_differs``, ``checks`` (``{"check", "ok", "detail"}``
            dicts), ``unchecked`` (the solver-attested claims, also under the older name
            ``trusted``), ``attempts`` (the refutation attempts) and ``notes``.

        Raises
        ------
        InputError
            A malformed certificate: a field missing or of the wrong type or length (named).
        """
        self._check_form()
        if not isinstance(net, Network):
            net = load(net)
        rep = _Report(self.claim)
        same = net.source.sha256 == self.onnx_sha256
        rep.check(
            "model sha256 matches",
            same,
            "" if same else f"{net.source.sha256} vs {self.onnx_sha256}",
        )
        if not same:
            # a certificate about another model: nothing else can be checked against this one
            return rep.finish(None)
        ev = self.evidence
        if self.kind == "unsat":
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
        e = _read_evidence(ev, self.kind, net)
        feas = prob.feasibility
        sense = prob.sense
        witness = e.witness if e.witness is not None else (feas and e.status == "optimal")
        claim = _claim(
            self.kind,
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
            f"status '{e.status}' fits the kind '{self.kind}'",
            e.status in _KIND_STATUSES[self.kind],
            ""
            if e.status in _KIND_STATUSES[self.kind]
            else f"a certificate of kind '{self.kind}' has status "
            + " or ".join(_KIND_STATUSES[self.kind]),
        )
        if self.kind != "point":
            rep.check(f"a certificate of kind '{self.kind}' has no point x", not e.has_point, "")
        if e.bound is None and e.gap is not None:
            rep.check("a gap is stated only with a bound", False, f"gap {e.gap!r} without a bound")
        if e.bound is None and e.bound_proof is not None:
            rep.check("a bound proof comes with a bound", False, "evidence.bound is null")

        if self.kind == "point":
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
                self._check_bound(
                    rep, prob, e, x, witness=witness, refute=refute, samples=samples, seed=seed
                )
            elif e.status == "optimal" and not witness:
                rep.check("an optimal claim comes with a bound", False, "evidence.bound is null")
        elif self.kind == "bound":
            if e.bound is None:
                rep.notes.append("the certificate makes no claim (no point, no bound)")
            else:
                self._check_bound(
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
            self._check_infeasible(rep, prob, e, refute=refute, samples=samples, seed=seed)
        return rep.finish(claim)

    # -- the parts of verify
    @staticmethod
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
        certificate's branch-and-bound proof (:func:`~netopt.certificate_unsat.check_bound_proof`),
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
                    f"{gap:.6g}"
                    + ("" if abs(e.gap - gap) <= 1e-12 + 1e-9 * gap else f" vs {e.gap!r}"),
                )
            if e.status == "optimal" and not witness:
                limit = DEFAULT_GAP_LIMIT
                if e.gap_limit is not None:
                    sane = bool(np.isfinite(e.gap_limit) and 0.0 <= e.gap_limit <= MAX_GAP_LIMIT)
                    rep.check(
                        "the stated gap limit is a number in [0, 0.1]", sane, f"{e.gap_limit!r}"
                    )
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


class _Report:
    """What :meth:`Certificate.verify` found, assembled into its report dict."""

    def __init__(self, stated_claim: str) -> None:
        self.stated_claim = stated_claim
        self.checks: list[dict[str, Any]] = []
        self.unchecked: list[str] = []
        self.attempts: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"check": what, "ok": bool(ok), "detail": detail})

    @property
    def failed(self) -> bool:
        return not all(c["ok"] for c in self.checks)

    def finish(self, claim: str | None) -> dict[str, Any]:
        ok = all(c["ok"] for c in self.checks)
        differs = claim is not None and claim != self.stated_claim
        if differs:
            self.notes.insert(
                0,
                "the file's claim text differs from the claim rebuilt from the evidence and is "
                f"ignored; it reads {_short(self.stated_claim, 300)}",
            )
        fully = ok and not self.unchecked
        return {
            "ok": ok,
            "fully_checked": fully,
            "outcome": "verified" if fully else ("attested" if ok else "failed"),
            "claim": claim,
            "stated_claim": self.stated_claim,
            "claim_differs": differs,
            "checks": self.checks,
            "unchecked": list(self.unchecked),
            "trusted": list(self.unchecked),  # the older name of "unchecked"
            "attempts": self.attempts,
            "notes": self.notes,
        }


@dataclass
class _Evidence:
    """The evidence's fields, type-checked (their values are checked by ``verify``)."""

    status: str
    has_point: bool
    x: np.ndarray | None
    y: np.ndarray | None
    objective: float | None
    bound: float | None
    gap: float | None
    tolerance: float | None
    bound_tolerance: float | None
    gap_limit: float | None
    witness: bool | None
    sense: str | None
    attested_by: str | None
    bound_proof: Any  # the proof's JSON, read by check_bound_proof (a malformed one fails there)


def _read_evidence(ev: dict[str, Any], kind: str, net: Network) -> _Evidence:
    """Type-check the evidence's fields; :class:`InputError` names the first malformed one."""
    statuses = [s.value for s in Status]
    status = ev.get("status")
    if not isinstance(status, str) or status not in statuses:
        raise InputError(
            f"evidence.status must be one of {', '.join(statuses)}; got {_short(status)}"
        )
    x = y = None
    objective = None
    if kind == "point":
        for key in ("x", "y", "input_shape", "objective"):
            if ev.get(key) is None:
                raise InputError(f"evidence.{key} is missing: a point certificate states it")
        shape = ev["input_shape"]
        if not isinstance(shape, list) or not all(
            isinstance(k, int) and not isinstance(k, bool) for k in shape
        ):
            raise InputError(
                f"evidence.input_shape must be a list of integers, got {_short(shape)}"
            )
        if tuple(shape) != tuple(net.input_shape):
            raise InputError(
                f"evidence.input_shape {shape} is not the network's input shape "
                f"{list(net.input_shape)}"
            )
        x = _sized(_json_array(ev["x"], "evidence.x"), "evidence.x", shape, "input")
        y = _sized(_json_array(ev["y"], "evidence.y"), "evidence.y", net.output_shape, "output")
        objective = _number(ev, "objective")
    key = "bound_attested_by" if kind != "infeasible" else "attested_by"
    attested = ev.get(key)
    if attested is not None and not isinstance(attested, str):
        raise InputError(f"evidence.{key} must be a string, got {_tname(attested)}")
    witness = ev.get("witness")
    if witness is not None and not isinstance(witness, bool):
        raise InputError(f"evidence.witness must be true or false, got {_short(witness)}")
    sense = ev.get("sense")
    if sense is not None and not isinstance(sense, str):
        raise InputError(f"evidence.sense must be 'min' or 'max', got {_short(sense)}")
    return _Evidence(
        status=status,
        has_point=ev.get("x") is not None,
        x=x,
        y=y,
        objective=objective,
        bound=_number(ev, "bound"),
        gap=_number(ev, "gap"),
        tolerance=_number(ev, "tolerance"),
        bound_tolerance=_number(ev, "bound_tolerance"),
        gap_limit=_number(ev, "gap_limit"),
        witness=witness,
        sense=sense,
        attested_by=attested,
        bound_proof=ev.get("bound_proof"),
    )


def _sized(a: np.ndarray, where: str, shape: Any, what: str) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    if a.size != n:
        raise InputError(f"{where} has {a.size} entries; the network's {what} has {n}")
    return a.reshape(tuple(shape))


def _number(ev: dict[str, Any], key: str) -> float | None:
    """``ev[key]`` as a float (NaN and inf pass: the checks judge them), None when absent."""
    v = ev.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"evidence.{key} must be a number, got {_tname(v)} {_short(v)}")
    try:
        return float(v)
    except OverflowError:  # a JSON integer too large for a float
        raise InputError(f"evidence.{key} is out of range: {_short(v)}") from None


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


def _gap_limit_of(r: Result) -> float | None:
    """The solver's relative gap setting, where the result records it."""
    v = r.extra.get("gap_limit")
    if v is None:
        v = (r.extra.get("tolerances") or {}).get("mip_rel_gap")
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


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


# ----------------------------------------------------------------------- refutation attempts
# A solver-attested claim cannot be checked without a proof, but it can be contradicted: a point
# of the domain that beats the bound, or satisfies constraints said to be unsatisfiable, refutes
# it. Finding none proves nothing, so these are reported as attempts, not checks.


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


def _netopt_version() -> str:
    """``netopt.__version__``, read from the package facade without importing it from here.

    The facade is the front layer, above this module; but Python imports a package before any of
    its modules, so by the time this runs it is always loaded.
    """
    return sys.modules["netopt"].__version__


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.floating | np.integer):
        return v.item()
    if isinstance(v, Enum):
        return v.value
    raise TypeError(f"not JSON serializable: {type(v)}")
