"""The outcome of a VNN-LIB check and the evidence behind a "sat".

:class:`CheckResult` is what :func:`netopt.vnnlib.check.check` returns. A counterexample is a
claim only once onnxruntime, the reference runtime of the ONNX model, confirms that its output
satisfies the disjunct's constraints (within :data:`ORT_TOL`): :func:`_evidence` computes both
outputs and that confirmation, :func:`_sat` records them on the result. Every phase of the check
(sampling, the attack, branch and bound, the MILP) goes through these two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.network import Network

#: onnxruntime (float32) may see a counterexample on the boundary violate by this much
ORT_TOL = 1e-5


@dataclass
class CheckResult:
    """The verdict on a property and its evidence.

    Attributes
    ----------
    verdict : str
        "sat" (a counterexample exists), "unsat" (none exists), or "unknown" (time limit).
    x, y : ndarray or None
        The counterexample and its float64 output.
    y_onnxruntime : ndarray or None
        The counterexample's output from onnxruntime.
    confirmed : bool or None
        Whether onnxruntime's output satisfies the disjunct's constraints (within ORT_TOL).
    disjunct : int or None
        Index of the disjunct the counterexample satisfies.
    details : list of dict
        Per disjunct tried: verdict, how it was decided, seconds.
    disjunct_status : list of str
        One entry per disjunct of the property, in its order: ``"sat"``, ``"unsat"`` or
        ``"unknown"`` for a disjunct that was tried; ``"not tried"`` for one the check never
        reached: a counterexample in another disjunct already decided the property
        (``verdict == "sat"``; found by the attack on every disjunct at once, that disjunct may
        come after it) or the check stopped (``stopped``).
    stopped : str or None
        Why the check stopped before deciding every disjunct: ``"time limit"`` (the budget ran
        out), ``"interrupted"`` (Ctrl-C); None when it ran to its end.
    """

    verdict: str
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    y_onnxruntime: np.ndarray | None = None
    confirmed: bool | None = None
    disjunct: int | None = None
    seconds: float = 0.0
    details: list[dict[str, Any]] = field(default_factory=list)
    disjunct_status: list[str] = field(default_factory=list)
    stopped: str | None = None

    def to_json(self) -> str:
        d = {
            "verdict": self.verdict,
            "disjunct": self.disjunct,
            "confirmed_by_onnxruntime": self.confirmed,
            "seconds": self.seconds,
            "x": None if self.x is None else self.x.reshape(-1).tolist(),
            "y": None if self.y is None else self.y.reshape(-1).tolist(),
            "y_onnxruntime": None
            if self.y_onnxruntime is None
            else self.y_onnxruntime.reshape(-1).tolist(),
            # a disjunct's proof (a BabProof) goes into a certificate, not into this summary
            "details": [{k: v for k, v in i.items() if k != "proof"} for i in self.details],
            "disjunct_status": self.disjunct_status,
            "stopped": self.stopped,
        }
        return json.dumps(d, indent=2)


def _violation(C: np.ndarray, d: np.ndarray, y: np.ndarray) -> float:
    r = C @ np.asarray(y, dtype=np.float64).reshape(-1) - d
    return float(r.max()) if len(r) else 0.0


def _evidence(net: Network, x: np.ndarray, dj: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """``f(x)`` in float64 and in onnxruntime, and whether onnxruntime's output satisfies the
    disjunct (within :data:`ORT_TOL`) at a point of its box that satisfies its input
    constraints ``A x <= b`` (within 1e-12 relative)."""
    y = net.forward(x)
    y_ort = net.run_onnxruntime(x)
    xf = x.reshape(-1)
    ok = _violation(dj.C, dj.d, y_ort) <= ORT_TOL and bool(
        np.all(xf >= dj.lo - 1e-12) and np.all(xf <= dj.hi + 1e-12)
    )
    if ok and len(dj.A_in):
        slack = dj.A_in @ xf - dj.b_in
        ok = bool(np.all(slack <= 1e-12 * (1.0 + np.abs(dj.b_in))))
    return y, y_ort, ok


def _sat(
    net: Network,
    res: CheckResult,
    x: np.ndarray,
    dj: Any,
    k: int,
    evidence: tuple[np.ndarray, np.ndarray, bool] | None = None,
) -> CheckResult:
    """``res`` as "sat" at ``x`` for disjunct ``k``, with its evidence (computed if not given)."""
    y, y_ort, ok = _evidence(net, x, dj) if evidence is None else evidence
    res.verdict, res.x, res.y, res.y_onnxruntime, res.disjunct = "sat", x, y, y_ort, k
    res.confirmed = ok
    return res
