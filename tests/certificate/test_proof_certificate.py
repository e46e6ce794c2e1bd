"""Certificates whose infeasibility claims carry branch-and-bound proofs: the "infeasible" kind
with a proof, and the "unsat" kind of a VNN-LIB check; verify re-checks the proofs in float64."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import netopt
from netopt.bounds.branch import branch_and_bound
from netopt.certificate import Certificate
from netopt.errors import InputError
from netopt.instances._onnx import mlp_onnx
from netopt.problems import Feasibility
from netopt.vnnlib.check import check

LO, HI = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
C1 = np.array([[1.0, -1.0]])

PROPERTY = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 -1.0))
(assert (<= X_0 1.0))
(assert (>= X_1 -1.0))
(assert (<= X_1 1.0))
(assert (or (and (<= Y_0 (- Y_1 LIMIT))) (and (>= Y_0 10.0))))
"""


def write_model(path: Path, seed: int = 0) -> Path:
    """A seeded float64 2-16-16-2 ReLU chain as an ONNX file."""
    rng = np.random.default_rng(seed)
    widths = [2, 16, 16, 2]
    Ws = [
        rng.normal(size=(o, i)) / np.sqrt(i) for i, o in zip(widths[:-1], widths[1:], strict=True)
    ]
    bs = [rng.normal(scale=0.1, size=o) for o in widths[1:]]
    onnx.save(mlp_onnx(Ws, bs, ["relu", "relu", None], dtype=np.float64), path)
    return path


def unsat_limit(net: netopt.Network) -> float:
    """A limit t with y0 - y1 > -t on a dense grid of the box (so y0 <= y1 - t is unsat)."""
    g = np.linspace(-1, 1, 301)
    X = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    m = net.forward(X) @ C1[0]
    return float(-(m.min() - 0.05))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("proofcert")
    model = write_model(d / "chain.onnx")
    net = netopt.load(model)
    t = unsat_limit(net)
    prop = d / "p.vnnlib"
    prop.write_text(PROPERTY.replace("LIMIT", repr(t)))
    return {"dir": d, "model": model, "net": net, "limit": t, "prop": prop}


def _infeasible_cert(env, A=None, b=None) -> Certificate:
    net = env["net"]
    d = np.array([-env["limit"]])
    prob = Feasibility(net, C=C1, d=d, box=(LO, HI), A=A, b=b)
    r = prob.solve("milp", time_limit=20)
    assert str(r.status) == "infeasible"
    bb = branch_and_bound(net, LO, HI, C1, d, mode="input", time_limit=20)
    assert bb.verdict == "unsat", bb.stopped
    r.extra["proof"] = bb.proof
    # through the file format
    return Certificate.from_dict(json.loads(Certificate.from_result(r).to_json()))


def test_infeasible_with_proof_is_fully_checked(env):
    cert = _infeasible_cert(env)
    assert "proof" in cert.evidence
    rep = cert.verify(env["net"])
    assert rep["outcome"] == "verified" and rep["fully_checked"], rep["checks"]
    assert not rep["unchecked"]
    assert "proven by branch and bound" in rep["claim"]
    assert any("re-checked in float64" in c["check"] and c["ok"] for c in rep["checks"])


@pytest.mark.parametrize("edit", ["d", "lo", "leaf", "row"])
def test_a_tampered_proof_fails(env, edit):
    cert = _infeasible_cert(env)
    pf = cert.evidence["proof"]
    if edit == "d":  # a proof of another (weaker) property
        pf["d"] = [pf["d"][0] + 1.0]
    elif edit == "lo":
        pf["lo"][0] += 0.5
    elif edit == "leaf":
        k = max(i for i, n in enumerate(pf["nodes"]) if n[0] == "leaf")
        del pf["nodes"][k]
    else:
        # the problem gets a limit the proof's leaves do not clear: with both changed alike
        # the comparison passes and the tree itself must fail
        pf["d"] = [pf["d"][0] + 10.0]
        cert.evidence["problem"]["d"] = pf["d"]
    rep = cert.verify(env["net"], refute=False)
    assert rep["outcome"] == "failed"


def test_a_proof_with_linear_input_constraints_stays_attested(env):
    cert = _infeasible_cert(env, A=[[1.0, 1.0]], b=[5.0])
    rep = cert.verify(env["net"], refute=False)
    assert rep["outcome"] == "attested"
    assert any("A x <= b" in n for n in rep["notes"])


def _unsat_cert(env) -> tuple[Certificate, Any]:
    res = check(env["net"], env["prop"], time_limit=60)
    assert res.verdict == "unsat"
    assert all("proof" in i for i in res.details)
    json.loads(res.to_json())  # the proofs stay out of the check's own JSON
    cert = Certificate.from_check(res, env["prop"], env["net"])
    return Certificate.from_dict(json.loads(cert.to_json())), res


def test_unsat_certificate_of_a_check(env):
    cert, res = _unsat_cert(env)
    assert cert.kind == "unsat"
    ev = cert.evidence
    assert ev["vnnlib"] == "p.vnnlib" and len(ev["disjuncts"]) == 2
    # the two disjuncts share the box: one tree decides both (the second closes at its root)
    assert {i["method"] for i in res.details} == {"BaB (input splits, 2 disjuncts at once)"}
    rep = cert.verify(env["net"], vnnlib_path=env["prop"])
    assert rep["outcome"] == "verified", rep["checks"]
    assert sum("is the property's" in c["check"] for c in rep["checks"]) == 2
    # without the property: the disjuncts are the certificate's word, and a note says so
    rep = cert.verify(env["net"])
    assert rep["outcome"] == "verified"
    assert any("taken from the certificate" in n for n in rep["notes"])


def test_unsat_certificate_against_another_property(env, tmp_path):
    cert, _ = _unsat_cert(env)
    other = tmp_path / "other.vnnlib"
    other.write_text(PROPERTY.replace("LIMIT", repr(env["limit"] + 0.5)))
    rep = cert.verify(env["net"], vnnlib_path=other)
    assert rep["outcome"] == "failed"
    fewer = tmp_path / "fewer.vnnlib"
    fewer.write_text(
        PROPERTY.replace("LIMIT", repr(env["limit"])).replace(" (and (>= Y_0 10.0))", "")
    )
    rep = cert.verify(env["net"], vnnlib_path=fewer)
    assert rep["outcome"] == "failed"
    assert any(c["check"] == "the certificate has the property's disjuncts" for c in rep["checks"])


def test_unsat_certificate_edits(env):
    cert, _ = _unsat_cert(env)
    # a disjunct left to a solver's word: attested, not verified
    att = copy.deepcopy(cert)
    att.evidence["disjuncts"][1].pop("proof")
    att.evidence["disjuncts"][1]["attested_by"] = "highs (milp)"
    rep = att.verify(env["net"], vnnlib_path=env["prop"])
    assert rep["outcome"] == "attested" and len(rep["unchecked"]) == 1
    # a weaker problem with its matching (weaker) proof passes the tree check but not the
    # comparison with the property
    weak = copy.deepcopy(cert)
    dj = weak.evidence["disjuncts"][0]
    dj["problem"]["d"] = [dj["problem"]["d"][0] - 5.0]
    dj["proof"]["d"] = dj["problem"]["d"]
    assert weak.verify(env["net"])["outcome"] == "verified"
    assert weak.verify(env["net"], vnnlib_path=env["prop"])["outcome"] == "failed"
    # a broken tree
    bad = copy.deepcopy(cert)
    bad.evidence["disjuncts"][0]["proof"]["nodes"].append(["leaf", 0])
    assert bad.verify(env["net"])["outcome"] == "failed"
    # malformed evidence names the field
    for ev in ({"disjuncts": []}, {"disjuncts": [{"problem": {}}]}):
        broken = copy.deepcopy(cert)
        broken.evidence.update(ev)
        with pytest.raises(InputError, match="disjuncts"):
            broken.verify(env["net"])


def test_from_check_refuses_a_sat_verdict(env, tmp_path):
    sat = tmp_path / "sat.vnnlib"
    sat.write_text(PROPERTY.replace("LIMIT", "-5.0"))  # y0 <= y1 + 5: everywhere
    res = check(env["net"], sat, time_limit=30)
    assert res.verdict == "sat"
    with pytest.raises(InputError, match="unsat"):
        Certificate.from_check(res, sat, env["net"])
