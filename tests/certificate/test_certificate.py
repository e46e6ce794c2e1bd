"""Certificates: real ones verify with the right outcome; every edited field is caught.

``netopt verify`` has three outcomes: every claim re-checked (exit 0, "verified"); every
re-checkable claim holds but some claim is only the solver's word (exit 3, 0 with
``--allow-attested``); a check failed (exit 1, "NOT verified"). A malformed file is a one-line
``netopt: error`` naming the field (exit 2), never a traceback.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
from netopt.certificate import Certificate
from netopt.cli import main
from netopt.errors import InputError
from netopt.problems import (
    Domain,
    Feasibility,
    Inversion,
    OutputObjective,
    Problem,
)
from netopt.result import Status

X0 = np.array([0.2, -0.3, 0.5])  # a point whose output is a reachable target


def _tiny_mlp(path: Path) -> None:
    """A 3-6-6-2 ReLU MLP: the MILP solves it in well under a second."""
    rng = np.random.default_rng(3)
    dims = [3, 6, 6, 2]
    nodes, inits, cur = [], {}, "x"
    for i in range(3):
        inits[f"w{i}"] = rng.normal(size=(dims[i + 1], dims[i]))
        inits[f"b{i}"] = rng.normal(size=dims[i + 1]) * 0.5
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"h{i}"], transB=1))
        cur = f"h{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    nodes[-1].output[0] = "y"
    path.write_bytes(make_model(nodes, ["N", 3], ["N", 2], inits).SerializeToString())


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Any]:
    """The model and one real certificate of each kind (as parsed JSON)."""
    d = tmp_path_factory.mktemp("cert")
    model = d / "tiny.onnx"
    _tiny_mlp(model)
    net = netopt.load(model)
    box = (-1.0, 1.0)
    y0 = net.forward(X0)
    problems = {
        # a point and HiGHS's optimality bound: the bound is solver-attested
        "inv": Inversion(net, [5.0, -5.0], norm=1, box=box),
        # a reachable target: the trivial bound 0 of a norm, checkable
        "trivial": Inversion(net, y0, norm=1, box=box),
        "max": OutputObjective(net, [1.0, -1.0], sense="max", box=box),
        "witness": Feasibility(net, y0, tol=0.05, box=box),
        "unsat": Feasibility(net, [50.0, 50.0], tol=0.01, box=box),
        # x_0 <= -0.5 and x_0 >= 0.5: the domain is empty
        "empty": OutputObjective(
            net, [1.0, 0.0], box=box, A=[[1.0, 0, 0], [-1.0, 0, 0]], b=[-0.5, -0.5]
        ),
    }
    certs, results = {}, {}
    for name, prob in problems.items():
        res = prob.solve("milp", time_limit=20)
        results[name] = res
        certs[name] = json.loads(res.certificate.to_json())
    assert results["inv"].status == Status.OPTIMAL and results["inv"].bound > 0
    assert results["trivial"].extra.get("bound_source", "").startswith("trivial")
    assert results["witness"].extra.get("witness")
    assert results["unsat"].status == Status.INFEASIBLE
    assert results["empty"].status == Status.INFEASIBLE
    # derived ones, as honest as their sources: a weaker bound from a stopped solve; a point
    # with no bound (a heuristic's); a bound with no point
    tl = copy.deepcopy(certs["inv"])
    ev = tl["evidence"]
    ev["status"], ev["bound"] = "time_limit", ev["objective"] - 0.5
    ev["gap"] = 0.5 / max(1.0, abs(ev["objective"]))
    certs["time_limit"] = tl
    nb = copy.deepcopy(certs["inv"])
    nb["evidence"]["status"] = "feasible"
    for k in ("bound", "gap", "bound_attested_by", "bound_tolerance"):
        nb["evidence"].pop(k)
    certs["no_bound"] = nb
    bd = copy.deepcopy(tl)
    bd["kind"] = "bound"
    for k in ("x", "y", "input_shape", "objective", "gap", "witness"):
        bd["evidence"].pop(k)
    certs["bound"] = bd
    for c in certs.values():  # the claim a human reads is the one verify rebuilds
        c["claim"] = _rebuilt_claim(c, net)
    return {"dir": d, "model": model, "net": net, "certs": certs, "results": results}


def _rebuilt_claim(c: dict[str, Any], net: netopt.Network) -> str:
    return Certificate.from_dict(c).verify(net, refute=False)["claim"]


def _write(env: dict[str, Any], c: Any, name: str = "c.json") -> Path:
    p = env["dir"] / name
    p.write_text(json.dumps(c))
    return p


def _cli(env: dict[str, Any], c: Any, capsys, *extra: str) -> tuple[int, str, str]:
    rc = main(["verify", str(_write(env, c)), str(env["model"]), *extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


# ------------------------------------------------------------------------ the real ones
@pytest.mark.parametrize(
    "name, rc",
    [
        ("inv", 3),
        ("max", 3),
        ("unsat", 3),
        ("empty", 3),
        ("time_limit", 3),
        ("bound", 3),
        ("trivial", 0),
        ("witness", 0),
        ("no_bound", 0),
    ],
)
def test_real_certificates_verify(env, capsys, name, rc):
    c = env["certs"][name]
    code, out, _ = _cli(env, c, capsys)
    assert code == rc, out
    last = out.strip().splitlines()[-1]
    if rc == 0:
        assert last == "verified" and "solver-attested" not in out
    else:
        assert last == "verified, except the solver-attested claim(s) listed above"
        assert "[solver-attested, only a proof can check this]" in out
        # --allow-attested maps that outcome to 0, still listing what is unchecked
        code, out2, _ = _cli(env, c, capsys, "--allow-attested")
        assert code == 0 and "[solver-attested" in out2
    assert "FAILED" not in out and "[note] the file's claim" not in out
    assert f"claim: {c['claim']}" in out
    rep = Certificate.from_dict(c).verify(env["net"], refute=False)
    assert rep["ok"] and rep["fully_checked"] == (rc == 0)
    assert rep["outcome"] == ("verified" if rc == 0 else "attested")
    assert rep["trusted"] == rep["unchecked"] and bool(rep["unchecked"]) == (rc != 0)


def test_written_claim_is_the_rebuilt_one(env):
    # from_result and verify word the claim alike: a fresh certificate has no note
    for name in ("inv", "trivial", "max", "witness", "unsat", "empty"):
        c = env["results"][name].certificate
        rep = c.verify(env["net"], refute=False)
        assert rep["claim"] == c.claim and not rep["claim_differs"], name
    assert "solver" in env["results"]["unsat"].certificate.claim


def test_refutation_attempts_are_labelled(env):
    rep = Certificate.from_dict(env["certs"]["inv"]).verify(env["net"])
    assert [a["attempt"] for a in rep["attempts"]] == ["refute the bound"]
    assert not rep["attempts"][0]["refuted"] and "no proof" in rep["attempts"][0]["detail"]
    # no check claims the bound itself was checked
    assert not any("refut" in c["check"] for c in rep["checks"])
    rep = Certificate.from_dict(env["certs"]["trivial"]).verify(env["net"])
    assert rep["attempts"] == [] and any("never below 0" in c["check"] for c in rep["checks"])


# ------------------------------------------------------------------ edits that must fail
Edit = Callable[[dict[str, Any]], None]


def _ev(f: Callable[[dict[str, Any]], Any]) -> Edit:
    return lambda c: f(c["evidence"])


def _recompute_objective(c: dict[str, Any], net: netopt.Network) -> None:
    prob = Problem.from_json(net, c["evidence"]["problem"])
    c["evidence"]["objective"] = prob.objective_of_input(np.asarray(c["evidence"]["x"]))


def _set_prob(**kw: Any) -> Edit:
    return lambda c: c["evidence"]["problem"].update(kw)


def _nudge(key: str, i: int, by: float) -> Edit:
    def f(c: dict[str, Any]) -> None:
        c["evidence"][key][i] += by

    return f


FAILS: dict[str, tuple[str, Edit]] = {
    # (certificate, edit): each must end in "NOT verified", exit 1
    "bound raised above the objective": ("inv", _ev(lambda e: e.update(bound=e["objective"] + 1))),
    "bound 1e9": ("inv", _ev(lambda e: e.update(bound=1e9))),
    "bound NaN": ("inv", _ev(lambda e: e.update(bound=math.nan))),
    "bound inf": ("inv", _ev(lambda e: e.update(bound=math.inf))),
    "bound null on an optimal claim": ("inv", _ev(lambda e: e.pop("bound"))),
    "kind point -> infeasible": ("inv", lambda c: c.update(kind="infeasible")),
    "kind point -> bound": ("inv", lambda c: c.update(kind="bound")),
    "problem removed": ("inv", _ev(lambda e: e.pop("problem"))),
    "problem null": ("inv", _ev(lambda e: e.update(problem=None))),
    "norm changed": ("inv", _set_prob(norm="inf")),
    "x moved out of the domain": ("inv", _nudge("x", 0, 5.0)),
    "x moved inside the domain": ("inv", _nudge("x", 0, -0.01)),
    "y changed": ("inv", _nudge("y", 0, 1e-3)),
    "objective changed": ("inv", _ev(lambda e: e.update(objective=e["objective"] - 0.1))),
    "objective NaN": ("inv", _ev(lambda e: e.update(objective=math.nan))),
    "gap changed": ("inv", _ev(lambda e: e.update(gap=0.25))),
    "gap on a point without a bound": ("no_bound", _ev(lambda e: e.update(gap=0.0))),
    "status infeasible on a point": ("inv", _ev(lambda e: e.update(status="infeasible"))),
    "status optimal on a stopped solve": ("time_limit", _ev(lambda e: e.update(status="optimal"))),
    "status optimal without a bound": ("no_bound", _ev(lambda e: e.update(status="optimal"))),
    "gap limit absurd": (
        "time_limit",
        _ev(lambda e: e.update(status="optimal", gap_limit=0.9)),
    ),
    "bound_tolerance huge": ("inv", _ev(lambda e: e.update(bound_tolerance=1e3))),
    "bound_tolerance negative": ("inv", _ev(lambda e: e.update(bound_tolerance=-1e-6))),
    "bound_tolerance NaN": ("inv", _ev(lambda e: e.update(bound_tolerance=math.nan))),
    "bound past the objective by more than its tolerance": (
        "inv",
        _ev(lambda e: e.update(bound=e["objective"] + 2 * e["bound_tolerance"])),
    ),
    "onnx_sha256 changed": ("inv", lambda c: c.update(onnx_sha256="0" * 64)),
    "onnx_sha256 removed": ("inv", lambda c: c.pop("onnx_sha256")),
    "sense in the evidence flipped": ("inv", _ev(lambda e: e.update(sense="max"))),
    "witness flag on an optimization": ("inv", _ev(lambda e: e.update(witness=True))),
    # maximization: the bound must be at least the objective
    "max: bound below the objective": (
        "max",
        _ev(lambda e: e.update(bound=e["objective"] - 1, gap=1 / max(1, abs(e["objective"])))),
    ),
    "max: sense flipped in the problem": ("max", _set_prob(sense="min")),
    "max: sense flipped in the problem and the evidence (refuted)": (
        "max",
        lambda c: (_set_prob(sense="min")(c), c["evidence"].update(sense="min")),
    ),
    # the trivial bound 0 is checked, not taken from its label
    "trivial: bound raised": ("trivial", _ev(lambda e: e.update(bound=0.5))),
    "trivial: problem made a maximization": (
        "trivial",
        _set_prob(type="OutputObjective", c=[1.0, 0.0], sense="max", constant=0.0),
    ),
    # a witness
    "witness: tolerance huge": ("witness", _ev(lambda e: e.update(tolerance=10.0))),
    "witness: constraints tightened": (
        "witness",
        lambda c: c["evidence"]["problem"].update(
            d=[v - 0.1 for v in c["evidence"]["problem"]["d"]]
        ),
    ),
    "witness: status feasible": ("witness", _ev(lambda e: e.update(status="feasible"))),
    "witness: flag removed": ("witness", _ev(lambda e: e.update(witness=False))),
    # infeasibility
    "unsat: a point added": ("unsat", _ev(lambda e: e.update(x=X0.tolist()))),
    "unsat: status optimal": ("unsat", _ev(lambda e: e.update(status="optimal"))),
    "unsat: a bound added": ("unsat", _ev(lambda e: e.update(bound=0.0))),
    "unsat: constraints loosened (refuted)": (
        "unsat",
        lambda c: c["evidence"]["problem"].update(d=[1e3] * len(c["evidence"]["problem"]["d"])),
    ),
    "unsat: made an optimization (the domain is a box)": (
        "unsat",
        _set_prob(type="Inversion", target=[0.0, 0.0], norm=1, weights=[1.0, 1.0]),
    ),
    "empty: domain made non-empty (refuted)": (
        "empty",
        lambda c: c["evidence"]["problem"]["domain"].update(b=[0.5, 0.5]),
    ),
    "empty: A and b removed": (
        "empty",
        lambda c: c["evidence"]["problem"]["domain"].update(A=None, b=None),
    ),
    # a bound without a point: refuted by sampling the domain
    "bound: raised above the optimum (refuted)": (
        "bound",
        _ev(lambda e: e.update(bound=e["bound"] + 1.5)),
    ),
    "bound: a point added": ("bound", _ev(lambda e: e.update(x=X0.tolist()))),
    "bound: status optimal": ("bound", _ev(lambda e: e.update(status="optimal"))),
    "bound: status infeasible": ("bound", _ev(lambda e: e.update(status="infeasible"))),
}


@pytest.mark.parametrize("name", list(FAILS))
def test_edits_fail(env, capsys, name):
    base, edit = FAILS[name]
    c = copy.deepcopy(env["certs"][base])
    edit(c)
    code, out, err = _cli(env, c, capsys)
    assert code == 1, out + err
    assert out.strip().splitlines()[-1] == "NOT verified" and "[FAILED]" in out
    rep = Certificate.from_dict(c).verify(env["net"], refute="refuted" in name)
    assert not rep["ok"] and not rep["fully_checked"] and rep["outcome"] == "failed"
    if "refuted" in name:
        assert "REFUTED" in out and any(a["refuted"] for a in rep["attempts"])


@pytest.mark.parametrize("name", ["bound raised above the objective", "unsat: status optimal"])
def test_allow_attested_does_not_excuse_a_failure(env, capsys, name):
    base, edit = FAILS[name]
    c = copy.deepcopy(env["certs"][base])
    edit(c)
    code, out, _ = _cli(env, c, capsys, "--allow-attested")
    assert code == 1 and "NOT verified" in out


def test_objective_recomputed_after_a_target_change(env, capsys):
    # the objective recomputed for the new target, status and gap made consistent: what is left
    # is the solver's bound, reported as unchecked at least — never fully verified
    for target in ([4.0, -5.0], [0.0, 0.0]):
        c = copy.deepcopy(env["certs"]["inv"])
        c["evidence"]["problem"]["target"] = target
        _recompute_objective(c, env["net"])
        code, out, _ = _cli(env, c, capsys)
        assert code in (1, 3), out


def test_widened_box_is_not_verified(env, capsys):
    # the bound was proven for [-1, 1]; over [-5, 5] the optimum is lower. The bound is the
    # solver's word, so this is at least unchecked; the refutation attempt may catch it
    c = copy.deepcopy(env["certs"]["inv"])
    c["evidence"]["problem"]["domain"].update(lo=[-5.0] * 3, hi=[5.0] * 3)
    code, out, _ = _cli(env, c, capsys)
    assert code in (1, 3), out
    assert "[solver-attested" in out
    assert _cli(env, c, capsys, "--allow-attested")[0] in (0, 1)


def test_widened_box_refuted_on_a_larger_margin(env, capsys):
    # widened further still, the refutation attempt finds a point below the bound
    c = copy.deepcopy(env["certs"]["inv"])
    prob = Problem.from_json(env["net"], c["evidence"]["problem"])
    lo, hi = -50.0, 50.0
    c["evidence"]["problem"]["domain"].update(lo=[lo] * 3, hi=[hi] * 3)
    wide = Inversion(env["net"], prob.target, norm=1, box=(lo, hi))
    assert wide.solve("milp", time_limit=20).objective < c["evidence"]["bound"] - 0.1
    code, out, _ = _cli(env, c, capsys)
    assert code == 1 and "REFUTED" in out, out


def test_claim_text_is_rebuilt_not_read(env, capsys):
    for name, rc in (("inv", 3), ("witness", 0)):
        c = copy.deepcopy(env["certs"][name])
        rebuilt = c["claim"]
        c["claim"] = "x attains objective 0 and no input does better."
        code, out, _ = _cli(env, c, capsys)
        assert code == rc
        assert f"claim: {rebuilt}" in out
        assert "[note] the file's claim text differs" in out
        rep = Certificate.from_dict(c).verify(env["net"])
        assert rep["claim"] == rebuilt and rep["claim_differs"]
        assert rep["stated_claim"] == c["claim"]


def test_bound_label_is_not_trusted(env):
    # calling the HiGHS bound "trivial" does not make it checked
    c = copy.deepcopy(env["certs"]["inv"])
    c["evidence"]["bound_attested_by"] = "trivial: a norm is non-negative"
    rep = Certificate.from_dict(c).verify(env["net"])
    assert rep["ok"] and not rep["fully_checked"] and rep["unchecked"]


def test_tolerances_that_an_honest_solver_needs(env, capsys):
    c = copy.deepcopy(env["certs"]["inv"])
    ev = c["evidence"]
    # a bound past the objective within the stated tolerance (solver round-off) holds
    ev["bound"] = ev["objective"] + 0.5 * ev["bound_tolerance"]
    ev["gap"] = abs(ev["objective"] - ev["bound"]) / max(1.0, abs(ev["objective"]))
    assert _cli(env, c, capsys)[0] == 3
    # an older certificate without bound_tolerance: round-off only, and it still verifies
    c = copy.deepcopy(env["certs"]["inv"])
    c["evidence"].pop("bound_tolerance")
    code, out, _ = _cli(env, c, capsys)
    assert code == 3 and "no bound_tolerance stated" in out
    # an optimal claim within a larger stated gap limit (a user's --gap) holds
    c = copy.deepcopy(env["certs"]["time_limit"])
    ev = c["evidence"]
    ev["bound"] = ev["objective"] - 0.05 * max(1.0, abs(ev["objective"]))
    ev["gap"] = abs(ev["objective"] - ev["bound"]) / max(1.0, abs(ev["objective"]))
    ev["status"], ev["gap_limit"] = "optimal", 0.06
    assert _cli(env, c, capsys)[0] == 3
    ev["gap_limit"] = 0.04
    assert _cli(env, c, capsys)[0] == 1


def test_empty_box_infeasibility_is_checked(env, capsys):
    # lo > hi somewhere: the domain is empty, which needs no solver
    c = copy.deepcopy(env["certs"]["empty"])
    dom = c["evidence"]["problem"]["domain"]
    dom.update(A=None, b=None, lo=[0.5, -1.0, -1.0], hi=[-0.5, 1.0, 1.0])
    c["claim"] = _rebuilt_claim(c, env["net"])
    code, out, _ = _cli(env, c, capsys)
    assert code == 0 and "[ok] the domain is empty" in out


# ------------------------------------------------------------------ malformed: InputError
MALFORMED: dict[str, tuple[str, Edit, str]] = {
    # (certificate, edit, what the one-line error names)
    "x a string": ("inv", _ev(lambda e: e.update(x="0.1, 0.2")), "evidence.x"),
    "x too short": ("inv", _ev(lambda e: e.update(x=e["x"][:2])), "evidence.x"),
    "x with a string": ("inv", _ev(lambda e: e["x"].__setitem__(1, "a")), "evidence.x[1]"),
    "x with a null": ("inv", _ev(lambda e: e["x"].__setitem__(1, None)), "evidence.x[1]"),
    "x nested": ("inv", _ev(lambda e: e.update(x=[e["x"]])), "evidence.x[0]"),
    "x missing": ("inv", _ev(lambda e: e.pop("x")), "evidence.x"),
    "y missing": ("inv", _ev(lambda e: e.pop("y")), "evidence.y"),
    "y too long": ("inv", _ev(lambda e: e.update(y=e["y"] * 2)), "evidence.y"),
    "input_shape missing": ("inv", _ev(lambda e: e.pop("input_shape")), "evidence.input_shape"),
    "input_shape wrong": ("inv", _ev(lambda e: e.update(input_shape=[1, 3])), "input_shape"),
    "input_shape a string": ("inv", _ev(lambda e: e.update(input_shape="3")), "input_shape"),
    "objective missing": ("inv", _ev(lambda e: e.pop("objective")), "evidence.objective"),
    "objective a string": ("inv", _ev(lambda e: e.update(objective="2.3")), "evidence.objective"),
    "bound a string": ("inv", _ev(lambda e: e.update(bound="2.3")), "evidence.bound"),
    "bound a boolean": ("inv", _ev(lambda e: e.update(bound=True)), "evidence.bound"),
    "bound a huge integer": ("inv", _ev(lambda e: e.update(bound=10**400)), "evidence.bound"),
    "gap a string": ("inv", _ev(lambda e: e.update(gap="0")), "evidence.gap"),
    "bound_tolerance a list": (
        "inv",
        _ev(lambda e: e.update(bound_tolerance=[1])),
        "evidence.bound_tolerance",
    ),
    "status unknown word": ("inv", _ev(lambda e: e.update(status="proven")), "evidence.status"),
    "status missing": ("inv", _ev(lambda e: e.pop("status")), "evidence.status"),
    "witness a string": ("witness", _ev(lambda e: e.update(witness="yes")), "evidence.witness"),
    "attested_by an object": (
        "inv",
        _ev(lambda e: e.update(bound_attested_by={"a": 1})),
        "evidence.bound_attested_by",
    ),
    "sense a number": ("inv", _ev(lambda e: e.update(sense=1)), "evidence.sense"),
    "kind nonsense": ("inv", lambda c: c.update(kind="proof"), "'kind'"),
    "kind missing": ("inv", lambda c: c.pop("kind"), "'kind'"),
    "kind infeasible -> point": ("unsat", lambda c: c.update(kind="point"), "evidence.x"),
    "claim a number": ("inv", lambda c: c.update(claim=0), "'claim'"),
    "evidence a list": ("inv", lambda c: c.update(evidence=[1, 2]), "'evidence'"),
    "evidence missing": ("inv", lambda c: c.pop("evidence"), "'evidence'"),
    "onnx_sha256 a number": ("inv", lambda c: c.update(onnx_sha256=5), "'onnx_sha256'"),
    "problem not a dict": ("inv", _ev(lambda e: e.update(problem=[1])), "evidence.problem"),
    "problem type missing": ("inv", lambda c: c["evidence"]["problem"].pop("type"), "problem.type"),
    "problem type unknown": ("inv", _set_prob(type="Regression"), "Regression"),
    "problem domain missing": (
        "inv",
        lambda c: c["evidence"]["problem"].pop("domain"),
        "problem.domain",
    ),
    "domain lo too short": (
        "inv",
        lambda c: c["evidence"]["problem"]["domain"].update(lo=[0.0]),
        "problem.domain.lo",
    ),
    "domain hi a string": (
        "inv",
        lambda c: c["evidence"]["problem"]["domain"].update(hi="1"),
        "problem.domain.hi",
    ),
    "domain lo NaN": (
        "inv",
        lambda c: c["evidence"]["problem"]["domain"]["lo"].__setitem__(0, math.nan),
        "problem.domain.lo",
    ),
    "domain A without b": (
        "empty",
        lambda c: c["evidence"]["problem"]["domain"].update(b=None),
        "problem.domain",
    ),
    "domain A ragged": (
        "empty",
        lambda c: c["evidence"]["problem"]["domain"].update(A=[[1.0, 0.0, 0.0], [1.0]]),
        "problem.domain.A",
    ),
    "domain integer not booleans": (
        "inv",
        lambda c: c["evidence"]["problem"]["domain"].update(integer=["yes"] * 3),
        "problem.domain.integer",
    ),
    "target missing": ("inv", lambda c: c["evidence"]["problem"].pop("target"), "problem.target"),
    "target a string": ("inv", _set_prob(target="5,-5"), "problem.target"),
    "target too short": ("inv", _set_prob(target=[5.0]), "target"),
    "norm unknown": ("inv", _set_prob(norm=3), "norm"),
    "norm a list": ("inv", _set_prob(norm=[1]), "problem.norm"),
    "weights negative": ("inv", _set_prob(weights=[-1.0, 1.0]), "weights"),
    "c missing": ("max", lambda c: c["evidence"]["problem"].pop("c"), "problem.c"),
    "sense nonsense": ("max", _set_prob(sense="up"), "sense"),
    "constant a string": ("max", _set_prob(constant="0"), "problem.constant"),
    "C wrong shape": ("unsat", _set_prob(C=[[1.0]]), "C"),
    "d with a null": ("unsat", _set_prob(d=[None, 1.0, 1.0, 1.0]), "problem.d[0]"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_is_one_line_error(env, capsys, name):
    base, edit, field = MALFORMED[name]
    c = copy.deepcopy(env["certs"][base])
    edit(c)
    code, out, err = _cli(env, c, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, out + err
    assert lines[0].startswith("netopt: error:") and field in lines[0], lines[0]
    with pytest.raises(InputError) as e:
        Certificate.load(_write(env, c, "api.json")).verify(env["net"])
    assert field in str(e.value)


@pytest.mark.parametrize(
    "text, what",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON object is expected"),
        ('"a string"', "a JSON object is expected"),
        ("", "not JSON"),
    ],
)
def test_unreadable_files(env, capsys, text, what):
    p = env["dir"] / "bad.json"
    p.write_text(text)
    assert main(["verify", str(p), str(env["model"])]) == 2
    err = capsys.readouterr().err
    assert what in err and "Traceback" not in err
    with pytest.raises(InputError):
        Certificate.load(p)
    assert main(["verify", str(env["dir"] / "missing.json"), str(env["model"])]) == 2
    assert "no such certificate file" in capsys.readouterr().err


def test_problem_from_json_round_trip(env):
    net = env["net"]
    for name in ("inv", "max", "witness", "empty"):
        p = env["results"][name].problem
        q = Problem.from_json(net, json.loads(json.dumps(p.to_json())))
        assert type(q) is type(p) and q.describe() == p.describe()
        X = np.random.default_rng(0).uniform(-1, 1, (5, 3))
        Y = net.forward(X)
        assert np.array_equal(q.evaluate(Y), p.evaluate(Y))
        assert np.array_equal(q.domain.lo, p.domain.lo) and np.array_equal(q.domain.hi, p.domain.hi)
    # an unbounded side is a JSON null; an empty box is kept (an infeasibility claim is about it)
    d = Inversion(net, [0.0, 0.0], domain=Domain.make((3,))).to_json()
    assert d["domain"]["lo"] == [None] * 3
    assert np.all(np.isinf(Problem.from_json(net, d).domain.lo))
    d["domain"].update(lo=[1.0, 0.0, 0.0], hi=[0.0, 1.0, 1.0])
    assert Problem.from_json(net, d).domain.lo[0] == 1.0
    with pytest.raises(InputError, match="must be a JSON object"):
        Problem.from_json(net, [d])  # type: ignore[arg-type]
