"""The ``unsat`` certificate of a VNN-LIB property, and branch-and-bound proofs in certificates.

A property is unsat when every disjunct of its counterexample region is: no ``x`` in the
disjunct's box (and ``A x <= b``) has ``C f(x) <= d``. The certificate lists each disjunct as a
:class:`~netopt.problems.Feasibility` problem with either a branch-and-bound proof
(:class:`~netopt.bounds.proof.BabProof`, re-checked in float64 by
:func:`~netopt.bounds.proof.check_proof`) or the name of the solver that attests it. Only proofs
make a certificate fully checked. :class:`netopt.certificate.Certificate` builds and verifies it
through the functions here.

A proof also backs an optimization problem's bound (:func:`check_bound_proof`): its rows ``C``
are linear minorants of the objective (:mod:`netopt.bounds.objective_rows`), and a tree on
which every leaf has ``C[row] f(x) > d[row]`` over the problem's box bounds the objective.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from netopt.bounds.objective_rows import rows_imply_bound
from netopt.bounds.proof import BabProof, check_proof
from netopt.errors import InputError
from netopt.network import Network
from netopt.problems import Domain, Feasibility, Problem

__all__ = [
    "unsat_evidence",
    "unsat_claim",
    "verify_unsat",
    "check_bab_proof",
    "check_bound_proof",
]


def _sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def unsat_evidence(res: Any, prop: Any, net: Network) -> dict[str, Any]:
    """The evidence of an "unsat" :class:`~netopt.vnnlib.check.CheckResult` on ``prop``.

    ``prop`` is a :class:`~netopt.vnnlib.property.VnnlibProperty` or a ``.vnnlib`` path. Each
    disjunct's details entry gives its proof (``info["proof"]``) or, failing one, the solver
    that attests its infeasibility.
    """
    from netopt.vnnlib.reader import load_vnnlib

    if getattr(res, "verdict", None) != "unsat":
        raise InputError(f"only an 'unsat' verdict has an unsat certificate, got {res.verdict!r}")
    n_in, n_out = int(np.prod(net.input_shape)), int(np.prod(net.output_shape))
    if isinstance(prop, str | os.PathLike):
        prop = load_vnnlib(prop, n_inputs=n_in, n_outputs=n_out)
    by_k = {info["disjunct"]: info for info in res.details}
    shape = tuple(net.input_shape)
    out = []
    for k, dj in enumerate(prop.disjuncts):
        info = by_k.get(k)
        if info is None or info.get("verdict") != "unsat":
            raise InputError(f"disjunct {k} of the property is not decided unsat")
        has_a = len(dj.A_in) > 0
        dom = Domain.make(
            shape,
            (dj.lo.reshape(shape), dj.hi.reshape(shape)),
            A=dj.A_in if has_a else None,
            b=dj.b_in if has_a else None,
        )
        entry: dict[str, Any] = {"problem": Feasibility(net, C=dj.C, d=dj.d, domain=dom).to_json()}
        proof = info.get("proof")
        if isinstance(proof, BabProof):
            entry["proof"] = proof.to_dict()
        else:
            who = info.get("solver") or "netopt"
            entry["attested_by"] = f"{who} ({info.get('method', '?')})"
        out.append(entry)
    path = getattr(prop, "path", None)
    return {
        "status": "infeasible",
        "vnnlib": None if path is None else Path(path).name,
        "vnnlib_sha256": _sha256(path) if path is not None and Path(path).is_file() else None,
        "disjuncts": out,
    }


def unsat_claim(ev: dict[str, Any]) -> str:
    """The claim of an unsat certificate, from its evidence alone."""
    dj = ev.get("disjuncts")
    n = len(dj) if isinstance(dj, list) else 0
    # the property's file name is the certificate's word; what is re-checked are the disjuncts
    # (and, with --property, that they are the file's): the claim is about them
    return (
        f"No input satisfies the property of {n} disjunct(s) given in this certificate: none has "
        "an input in its box with C f(x) <= d."
    )


def check_bab_proof(
    rep: Any, net: Network, prob: Problem, proof_obj: Any, what: str
) -> bool | None:
    """Re-check a proof of ``prob`` (a Feasibility over a box) into ``rep``.

    Returns True (proven), False (a check failed) or None (the problem is outside what a proof
    covers: its domain has ``A x <= b`` rows; noted, the claim stays attested).
    """
    proof = BabProof.from_dict(proof_obj)
    dom = prob.domain
    if not prob.feasibility or not hasattr(prob, "C"):
        rep.check(f"{what}: a proof answers a Feasibility problem", False, type(prob).__name__)
        return False
    if dom.A is not None:
        rep.notes.append(
            f"{what}: the domain has A x <= b constraints, which a branch-and-bound proof over "
            "the box does not cover; its proof is not checked"
        )
        return None
    same = (
        np.array_equal(proof.lo, dom.lo.reshape(-1))
        and np.array_equal(proof.hi, dom.hi.reshape(-1))
        and proof.C.shape == prob.C.shape
        and np.array_equal(proof.C, prob.C)
        and np.array_equal(proof.d, prob.d)
    )
    rep.check(
        f"{what}: the proof's box, C and d are the problem's",
        same,
        "" if same else "they differ: the proof is about another problem",
    )
    if not same:
        return False
    return _check_tree(
        rep,
        net,
        proof,
        f"{what}: branch-and-bound proof re-checked in float64 (no input in the box has "
        "C f(x) <= d)",
    )


def check_bound_proof(
    rep: Any, net: Network, prob: Problem, proof_obj: Any, bound: float
) -> bool | None:
    r"""Re-check a branch-and-bound proof of ``bound`` on an optimization problem into ``rep``.

    With :math:`\sigma = +1` when minimizing and :math:`-1` when maximizing, the proof's rows
    :math:`C_i` are valid minorants of the minimized objective :math:`g = \sigma \cdot
    \mathrm{obj}`: :math:`g(x) \ge C_i f(x) + e(C_i)` for every output. Three checks, each a
    line of ``rep``, in order of cost (the first that fails ends the re-check):

    1. the rows are valid and imply the bound, :math:`d_i + e(C_i) \ge \sigma \cdot
       \text{bound}`, in exact rational arithmetic
       (:func:`~netopt.bounds.objective_rows.rows_imply_bound`);
    2. the proof's box is the problem's domain box, exactly (a proof over a smaller box says
       nothing about the rest of the domain);
    3. the tree, in rigorous float64 (:func:`~netopt.bounds.proof.check_proof`): every point of
       the box lies in a leaf where :math:`C_i f(x) > d_i` for the leaf's row :math:`i`, or
       (a leaf with weights :math:`\lambda \ge 0`) :math:`\lambda^\top (C f(x) - d) > 0`, so
       that some row :math:`i` has :math:`C_i f(x) > d_i` at each point.

    Then :math:`g(x) > d_i + e(C_i) \ge \sigma \cdot \text{bound}` everywhere on the box.

    Returns
    -------
    bool or None
        True (proven), False (a check failed, or the proof is malformed: a failed check that
        names the reason, never an exception) or None: the domain has ``A x <= b`` rows or
        integer coordinates, which a proof over the box is not accepted for (noted; the bound
        stays attested, as an infeasibility proof's does in :func:`check_bab_proof`).
    """
    what = "bound proof"
    try:
        proof = BabProof.from_dict(proof_obj)
    except InputError as e:
        rep.check(f"{what}: a well-formed branch-and-bound proof", False, str(e))
        return False
    dom = prob.domain
    has_int = dom.integer is not None and bool(np.any(dom.integer))
    if dom.A is not None or has_int:
        extra = "A x <= b constraints" if dom.A is not None else "integer coordinates"
        rep.notes.append(
            f"{what}: the domain has {extra}; a branch-and-bound proof is checked only over a "
            "plain box, so the bound stays attested"
        )
        return None
    side = "lower" if prob.sense == "min" else "upper"
    why = rows_imply_bound(prob, proof.C, proof.d, bound)
    rep.check(
        f"{what}: its rows C f(x) > d imply the {side} bound {bound:.9g} (valid linear "
        "minorants of the objective; exact rational arithmetic)",
        why is None,
        f"{len(proof.d)} row(s)" if why is None else why,
    )
    if why is not None:
        return False
    same = np.array_equal(proof.lo, dom.lo.reshape(-1)) and np.array_equal(
        proof.hi, dom.hi.reshape(-1)
    )
    rep.check(
        f"{what}: its box is the problem's domain",
        same,
        "" if same else "they differ: the proof covers another box",
    )
    if not same:
        return False
    return _check_tree(
        rep,
        net,
        proof,
        f"{what}: tree re-checked in float64 (every leaf has C[row] f(x) > d[row] on its piece "
        "of the box)",
    )


def _check_tree(rep: Any, net: Network, proof: BabProof, check: str) -> bool:
    """Re-check ``proof``'s tree in float64 (:func:`check_proof`) as the report's ``check``."""
    pc = check_proof(net.graph, proof)
    detail = f"{pc.leaves} leaves, {pc.seconds:.2f} s"
    if not pc.ok:
        node = "" if pc.failed_node is None else f" at node {pc.failed_node}"
        detail = f"{pc.reason}{node}; {pc.closed} of {pc.leaves} leaves closed"
    rep.check(check, pc.ok, detail)
    return pc.ok


def verify_unsat(
    rep: Any, net: Network, ev: dict[str, Any], prop_path: str | os.PathLike | None
) -> None:
    """Re-check an unsat certificate's disjuncts (and, given the property, that they are its)."""
    djs = ev.get("disjuncts")
    if not isinstance(djs, list) or not djs:
        raise InputError("evidence.disjuncts must be a non-empty list")
    probs = []
    for k, dj in enumerate(djs):
        where = f"evidence.disjuncts[{k}]"
        if not isinstance(dj, dict) or not isinstance(dj.get("problem"), dict):
            raise InputError(f"{where} must be an object with a 'problem'")
        if ("proof" in dj) == ("attested_by" in dj):
            raise InputError(f"{where} has either a 'proof' or an 'attested_by'")
        if "attested_by" in dj and not isinstance(dj["attested_by"], str):
            raise InputError(f"{where}.attested_by must be a string")
        try:
            prob = Problem.from_json(net, dj["problem"])
        except InputError as e:
            raise InputError(f"{where}.{e}") from None
        probs.append(prob)
        if "proof" in dj:
            try:
                check_bab_proof(rep, net, prob, dj["proof"], f"disjunct {k}")
            except InputError as e:
                raise InputError(f"{where}.{e}") from None
            if prob.domain.A is None:
                continue
        src = dj.get("attested_by") or "the certificate's proof (not checkable)"
        rep.unchecked.append(
            f"disjunct {k}: no input in its domain satisfies C f(x) <= d — attested by {src}"
        )
    if prop_path is None:
        rep.notes.append(
            "the disjuncts are taken from the certificate: give the property (--property "
            "FILE.vnnlib) to check that they are its disjuncts"
        )
        return
    _same_property(rep, net, probs, prop_path, ev.get("vnnlib_sha256"))


def _same_property(rep: Any, net: Network, probs: list, path: str | os.PathLike, sha: Any) -> None:
    """Check that the certificate's disjuncts are exactly the property file's, in order."""
    from netopt.vnnlib.reader import load_vnnlib

    n_in, n_out = int(np.prod(net.input_shape)), int(np.prod(net.output_shape))
    prop = load_vnnlib(path, n_inputs=n_in, n_outputs=n_out)
    if isinstance(sha, str) and Path(path).is_file() and _sha256(path) != sha:
        rep.notes.append(
            "the property file's sha256 differs from the certificate's (the disjuncts are "
            "compared below)"
        )
    same_n = len(prop.disjuncts) == len(probs)
    rep.check(
        "the certificate has the property's disjuncts",
        same_n,
        f"{len(probs)} in the certificate, {len(prop.disjuncts)} in {Path(path).name}",
    )
    if not same_n:
        return
    for k, (dj, prob) in enumerate(zip(prop.disjuncts, probs, strict=True)):
        dom = prob.domain
        a_ok = (
            dom.A is None
            if len(dj.A_in) == 0
            else (
                dom.A is not None
                and np.array_equal(dom.A, dj.A_in)
                and np.array_equal(dom.b, dj.b_in)
            )
        )
        ok = (
            isinstance(prob, Feasibility)
            and np.array_equal(dom.lo.reshape(-1), dj.lo)
            and np.array_equal(dom.hi.reshape(-1), dj.hi)
            and prob.C.shape == dj.C.shape
            and np.array_equal(prob.C, dj.C)
            and np.array_equal(prob.d, dj.d)
            and a_ok
        )
        rep.check(
            f"disjunct {k} is the property's (same box, C, d)",
            bool(ok),
            "" if ok else "differs",
        )
