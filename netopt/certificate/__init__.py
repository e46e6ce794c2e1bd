"""Certificates: a result's claim with its evidence, and the re-check that trusts nothing it can check.

:class:`Certificate` is a small JSON document. :meth:`Certificate.verify` rebuilds the claim from
the evidence, re-checks the point in float64 and in onnxruntime, the objective, the bound's
consistency with the objective and the gap, and lists separately what only the solver attests
(an optimality bound, an infeasibility), which only a proof can check; a seeded refutation
attempt (samples and short descents) may still expose a false one.

The package's modules, each resting only on those listed before it:

* :mod:`~netopt.certificate.claim`: the kinds, the statuses each carries, the limits on stated
  tolerances, and the claim sentence rebuilt from the evidence;
* :mod:`~netopt.certificate.unsat`: a VNN-LIB check's ``unsat`` certificate and the re-check of
  branch-and-bound proofs;
* :mod:`~netopt.certificate.evidence`: the evidence's fields type-checked, and the report;
* :mod:`~netopt.certificate.refute`: the refutation attempts on solver-attested claims;
* :mod:`~netopt.certificate.checks`: the re-check itself, the body of :meth:`Certificate.verify`;
* :mod:`~netopt.certificate.document`: :class:`Certificate`, its making and its JSON.
"""

from __future__ import annotations

from netopt.certificate.claim import (
    DEFAULT_BOUND_TOLERANCE,
    DEFAULT_GAP_LIMIT,
    KINDS,
    MAX_BOUND_TOLERANCE,
    MAX_GAP_LIMIT,
    MAX_WITNESS_TOLERANCE,
)
from netopt.certificate.document import Certificate
from netopt.certificate.refute import REFUTE_MARGIN

__all__ = [
    "Certificate",
    "KINDS",
    "DEFAULT_GAP_LIMIT",
    "MAX_GAP_LIMIT",
    "DEFAULT_BOUND_TOLERANCE",
    "MAX_BOUND_TOLERANCE",
    "MAX_WITNESS_TOLERANCE",
    "REFUTE_MARGIN",
]
