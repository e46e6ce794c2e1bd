"""The evidence of a certificate, type-checked, and the report that verification fills.

:func:`_read_evidence` reads the evidence's fields with their types checked (a malformed field
raises :class:`~netopt.errors.InputError` naming it) but their values unjudged: judging them is
:mod:`netopt.certificate.checks`'s. :class:`_Report` collects the checks, the solver-attested
claims, the refutation attempts and the notes that :meth:`Certificate.verify
<netopt.certificate.Certificate.verify>` returns; the checks, the refutation attempts
(:mod:`netopt.certificate.refute`) and the unsat checks (:mod:`netopt.certificate.unsat`) all
write into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.certificate.claim import _short, _tname
from netopt.errors import InputError
from netopt.network import Network
from netopt.problems.base import _json_array
from netopt.result import Status


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
