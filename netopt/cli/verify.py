"""``netopt verify CERTIFICATE MODEL``: re-check a certificate without the solver."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "cmd_verify"]


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-check a certificate; exit 0 (all re-checked), 3 (all re-checkable hold, some claim is
    only the solver's word; 0 with ``--allow-attested``) or 1 (a check failed)."""
    from netopt.certificate import Certificate

    cert = Certificate.load(args.certificate)
    rep = cert.verify(args.model, vnnlib_path=args.property)
    print(f"certificate {args.certificate}: {cert.kind}")
    # the claim rebuilt from the evidence, never the file's own text
    print(f"claim: {rep['claim'] if rep['claim'] is not None else '(none: see the checks)'}")
    for n in rep["notes"]:
        print(f"  [note] {n}")
    for c in rep["checks"]:
        print(
            f"  [{'ok' if c['ok'] else 'FAILED'}] {c['check']}"
            + (f" ({c['detail']})" if c["detail"] else "")
        )
    for u in rep["unchecked"]:
        print(f"  [solver-attested, only a proof can check this] {u}")
    for a in rep["attempts"]:
        print(f"  [refutation attempt{': REFUTED' if a['refuted'] else ''}] {a['detail']}")
    if not rep["ok"]:
        print("NOT verified")
        return 1
    if rep["fully_checked"]:
        print("verified")
        return 0
    print("verified, except the solver-attested claim(s) listed above")
    return 0 if args.allow_attested else 3


def add_parser(sub: Any) -> None:
    """Register ``netopt verify``."""
    ver = sub.add_parser(
        "verify",
        help="re-check a certificate without the solver (the point through onnxruntime)",
        description="Re-check everything in a certificate that can be checked without a solver; "
        "list what only the solver attests (a MILP's bound, infeasibility); branch-and-bound proofs "
        "(of infeasibility, or of an optimization's bound) are re-checked in float64. Exit "
        "status: 0 every "
        "claim re-checked, 3 every re-checkable claim holds but some claim is only attested by "
        "the solver, 1 a check failed, 2 a malformed certificate.",
    )
    ver.add_argument(
        "certificate",
        help="certificate JSON written by netopt invert --out or netopt check --certificate",
    )
    ver.add_argument("model", help="the .onnx file it is about")
    ver.add_argument(
        "--allow-attested",
        action="store_true",
        help="exit 0, not 3, when everything re-checkable holds and the rest is solver-attested "
        "(still listed)",
    )
    ver.add_argument(
        "--property",
        metavar="FILE.vnnlib",
        help="for an unsat certificate (netopt check --certificate): the property, whose "
        "disjuncts must be exactly the certificate's",
    )
    ver.set_defaults(func=cmd_verify)
