"""The certificate document: :class:`Certificate`, its making and its (de)serialisation.

A certificate is made from a :class:`~netopt.result.Result` (:meth:`Certificate.from_result`)
or from a VNN-LIB check's "unsat" (:meth:`Certificate.from_check`), written as JSON and read
back with its top-level fields type-checked. :meth:`Certificate.verify` is the entry of the
re-check, which lives in :mod:`netopt.certificate.checks`.
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

from netopt.bounds.proof import BabProof
from netopt.certificate import checks as _checks
from netopt.certificate import unsat as _unsat
from netopt.certificate.claim import KINDS, _claim, _short, _tname
from netopt.errors import InputError
from netopt.network import Network
from netopt.result import Result, Status


@dataclass
class Certificate:
    """A small JSON document: the claim in one sentence, and the evidence.

    Kinds: ``point`` (an input with its recomputed objective, and, for a certified optimum, the
    solver's bound), ``bound`` (no point, a bound), ``infeasible`` (no input satisfies the
    constraints; with a branch-and-bound ``proof``, re-checked in float64), ``unsat`` (no
    input satisfies a VNN-LIB property: :meth:`from_check`, :mod:`netopt.certificate.unsat`).
    :meth:`verify` re-checks everything that can be checked without the solver and
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
        """The top-level fields' types (the evidence's fields are
        :func:`~netopt.certificate.evidence._read_evidence`'s)."""
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
        re-checked instead (:func:`~netopt.certificate.unsat.check_bound_proof`: its rows imply
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
        return _checks.verify(
            self,
            net,
            tol=tol,
            refute=refute,
            samples=samples,
            seed=seed,
            vnnlib_path=vnnlib_path,
        )


def _gap_limit_of(r: Result) -> float | None:
    """The solver's relative gap setting, where the result records it."""
    v = r.extra.get("gap_limit")
    if v is None:
        v = (r.extra.get("tolerances") or {}).get("mip_rel_gap")
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


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
