r"""Certificates whose bound carries a branch-and-bound proof: ``verify`` re-checks it.

A bound proof is a :class:`~netopt.bounds.proof.BabProof` whose rows :math:`C_i` are linear
minorants of the minimized objective :math:`g = \sigma\,\mathrm{obj}` (:math:`g \ge C_i f +
e(C_i)`, :mod:`netopt.bounds.objective_rows`). The proofs here are built by hand, independent
of any search: each leaf's row is bounded by float64 CROWN (``BatchCrown.bound``) on the leaf's
box, the claim sits a hair below the weakest leaf, and ``d`` comes from ``proof_rhs``. Every
proven bound is confronted with independent references: a dense grid of the 2-D box through a
plain numpy forward pass, and the MILP optimum where HiGHS solves the problem (not l2).
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import numpy as np
import onnx
import pytest
from helpers.nets import mlp_net

import netopt
from netopt.bounds.bab import BatchCrown
from netopt.bounds.objective_rows import minorant_of, proof_rhs, rows_imply_bound
from netopt.bounds.proof import BabProof
from netopt.certificate import Certificate
from netopt.cli import main
from netopt.instances._onnx import mlp_onnx
from netopt.problems import Feasibility, Inversion, OutputObjective
from netopt.result import Outcome, assemble

ACTS = ["relu", "relu", None]
LO, HI = np.array([-0.3, 0.1]), np.array([0.2, 0.5])
MID = (LO + HI) / 2
W_OUT = np.array([1.0, 2.0, 0.5])  # the norms' output weights
C_OBJ, C0 = np.array([1.0, -2.0, 0.5]), 0.3  # the linear objective c.f(x) + c0
CASES = ["l1", "l2", "linf", "min", "max"]
NORMS = {"l1": 1, "l2": 2, "linf": np.inf}
#: how far below the weakest leaf's rigorous bound the claim sits (on the minimized objective)
MARGIN = 1e-6


def _forward(Ws: list, bs: list, X: np.ndarray) -> np.ndarray:
    """The ReLU chain by plain numpy: the reference, independent of netopt's interpreter."""
    a = X
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        a = np.maximum(a @ W.T + b, 0.0)
    return a @ Ws[-1].T + bs[-1]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Any]:
    """A seeded float64 2-8-8-3 ReLU chain as an ONNX file, a dense grid of the box, and the
    target: the output at the box's centre moved away, so that no input reaches it."""
    d = tmp_path_factory.mktemp("boundproof")
    _, Ws, bs = mlp_net([2, 8, 8, 3], ACTS, seed=1)
    model = d / "chain.onnx"
    onnx.save(mlp_onnx(Ws, bs, ACTS, dtype=np.float64), model)
    net = netopt.load(model)
    g = np.linspace(0.0, 1.0, 301)
    G = np.stack(np.meshgrid(LO[0] + g * (HI[0] - LO[0]), LO[1] + g * (HI[1] - LO[1])), -1)
    X = G.reshape(-1, 2)
    Y = _forward(Ws, bs, X)
    assert np.allclose(Y, net.forward(X), atol=1e-9)
    target = _forward(Ws, bs, MID[None])[0] + np.array([1.0, -0.7, 0.4])
    return {"dir": d, "model": model, "net": net, "X": X, "Y": Y, "target": target, "milp": {}}


def _problem(env: dict, case: str, target: np.ndarray | None = None, **dom: Any):
    box = dom.pop("box", (LO, HI))
    if case in NORMS:
        y = env["target"] if target is None else target
        return Inversion(env["net"], y, norm=NORMS[case], weights=W_OUT, box=box, **dom)
    return OutputObjective(env["net"], C_OBJ, sense=case, constant=C0, box=box, **dom)


def _rows(prob, y_mid: np.ndarray) -> np.ndarray:
    """Two valid minorant rows of ``prob``'s minimized objective (one for a linear one).

    Norms: the first row follows the residual's direction at the box's centre (l1: its signs;
    l2: the unit vector of the weighted residual, shrunk by a hair so rounding never leaves the
    ball; linf: its weighted largest entry), the second is the first with a coordinate's sign
    flipped (l1, l2) or the second largest entry (linf): valid, but weaker.
    """
    mn = minorant_of(prob)
    if mn.kind == "linear":
        return (mn.sign * mn.c)[None]
    w, r = mn.w, y_mid - mn.y
    if mn.kind == "l1":
        v = w * np.sign(r)
    elif mn.kind == "l2":
        u = w * r
        v = w * u / np.linalg.norm(u) * (1 - 1e-12)
    else:
        order = np.argsort(-(w * np.abs(r)))
        V = np.zeros((2, mn.m))
        for k in (0, 1):
            j = order[k]
            V[k, j] = w[j] * np.sign(r[j])
        return V
    v2 = v.copy()
    v2[-1] = -v2[-1]
    return np.stack([v, v2])


def _tree(case: str) -> tuple[list, list]:
    """The proof's tree: the leaves' boxes and rows, and its nodes in pre-order. linf gets two
    leaves (an input split of x0 at the centre, a row each), the others one leaf on row 0."""
    if case != "linf":
        return [(LO, HI, 0)], [["leaf", 0]]
    cut = float(MID[0])
    left_hi, right_lo = HI.copy(), LO.copy()
    left_hi[0], right_lo[0] = cut, cut
    return [(LO, left_hi, 0), (right_lo, HI, 1)], [["x", 0, cut], ["leaf", 0], ["leaf", 1]]


def _proof(env: dict, prob, case: str) -> tuple[BabProof, float]:
    """A hand-built proof of ``prob``'s bound over its box, and the bound in the problem's sense.

    Each leaf's row has the rigorous float64 lower bound ``lb`` of ``C[row] f(x)`` on the leaf's
    box, so there :math:`g \\ge lb + e(C_{row})`; the claim (on ``g``) is the smallest of those
    less ``MARGIN``, and ``d = proof_rhs(...)`` is the float64 nearest ``claim - e`` from above:
    ``d < lb`` on every leaf, and ``d + e >= claim`` exactly.
    """
    mn = minorant_of(prob)
    V = _rows(prob, env["net"].forward(MID))
    leaves, nodes = _tree(case)
    bc = BatchCrown(env["net"].graph)
    e = mn.offsets(V)
    vals = [float(bc.bound(lo[None], hi[None], V)[0][0, row] + e[row]) for lo, hi, row in leaves]
    claim = min(vals) - MARGIN
    d = proof_rhs(mn, V, claim)
    return BabProof(LO, HI, V, d, nodes, []), mn.sign * claim


def _result(prob, proof: BabProof | None, bound: float, claim: str = "time_limit"):
    """The Result of a method that stops with ``bound`` (and its proof): the best grid point of
    a coarse grid of the box as the candidate, re-checked by ``assemble``."""
    g = np.linspace(0.0, 1.0, 21)
    X = np.stack(np.meshgrid(LO[0] + g * (HI[0] - LO[0]), LO[1] + g * (HI[1] - LO[1])), -1)
    X = X.reshape(-1, 2)
    sign = 1.0 if prob.sense == "min" else -1.0
    best = X[int(np.argmin(sign * prob.evaluate(prob.net.forward(X))))]
    extra = {} if proof is None else {"proof": proof}
    out = Outcome(
        candidates=[best], claim=claim, bound=bound, formulation="bab", solver="netopt", extra=extra
    )
    return assemble(prob, out)


def _cert(env: dict, case: str, *, proof: bool = True, **dom: Any) -> Certificate:
    """A certificate of a proven bound, through the file (save, load)."""
    prob = _problem(env, case, **dom)
    pf, bound = _proof(env, prob, case)
    r = _result(prob, pf if proof else None, bound)
    assert r.bound == bound, (r.status, r.message)
    path = env["dir"] / f"{case}.json"
    Certificate.from_result(r).save(path)
    return Certificate.load(path)


def _optimum(env: dict, case: str) -> float:
    """The MILP optimum (HiGHS; certified optimal), cached per case."""
    if case not in env["milp"]:
        r = _problem(env, case).solve("milp", time_limit=60)
        assert str(r.status) == "optimal"
        env["milp"][case] = r.objective
    return env["milp"][case]


def _failed(rep: dict) -> list[str]:
    return [c["check"] for c in rep["checks"] if not c["ok"]]


# ---------------------------------------------------------------------------- proven bounds


@pytest.mark.parametrize("case", CASES)
def test_a_proven_bound_is_fully_checked(env, case):
    cert = _cert(env, case)
    ev = cert.evidence
    assert "bound_proof" in ev and cert.kind == "point"
    rep = cert.verify(env["net"])
    assert rep["outcome"] == "verified" and rep["fully_checked"], rep["checks"]
    assert not rep["unchecked"] and not rep["attempts"]  # no refutation needed
    assert "proven by branch and bound" in rep["claim"]
    assert not rep["claim_differs"]  # the same sentence written and rebuilt
    names = [c["check"] for c in rep["checks"] if c["check"].startswith("bound proof:")]
    assert len(names) == 3
    assert any("rows" in n and "imply" in n for n in names)
    assert any("box is the problem's domain" in n for n in names)
    tree = next(c for c in rep["checks"] if "tree re-checked in float64" in c["check"])
    leaves = 2 if case == "linf" else 1
    assert tree["detail"].startswith(f"{leaves} leaves")
    # the bound holds: against the dense grid, and the MILP optimum where HiGHS has one
    bound = ev["bound"]
    prob = _problem(env, case)
    vals = prob.evaluate(env["Y"])
    sign = 1.0 if prob.sense == "min" else -1.0
    assert np.all(sign * vals >= sign * bound)
    if case != "l2":  # an l2 MILP needs a quadratic backend
        assert sign * _optimum(env, case) >= sign * bound
    # and it says something: above the trivial 0 of a norm
    if case in NORMS:
        assert bound > 0.5


def test_a_proven_optimum_is_fully_checked(env):
    """A box so small that every ReLU is stable: CROWN is exact up to round-off, the proven
    bound meets the best vertex, and the claim is "optimal" with its proof."""
    lo, hi = MID - 1e-4, MID + 1e-4
    prob = _problem(env, "min", box=(lo, hi))
    mn = minorant_of(prob)
    V = (mn.sign * mn.c)[None]
    lb = float(BatchCrown(env["net"].graph).bound(lo[None], hi[None], V)[0][0, 0])
    claim = lb + C0 - 1e-9
    pf = BabProof.single_leaf(lo, hi, V, proof_rhs(mn, V, claim), 0)
    corners = np.array([[a, b] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])])
    out = Outcome(candidates=list(corners), claim="optimal", bound=claim, extra={"proof": pf})
    r = assemble(prob, out)
    assert str(r.status) == "optimal" and r.bound == claim
    cert = Certificate.from_dict(json.loads(Certificate.from_result(r).to_json()))
    rep = cert.verify(env["net"])
    assert rep["outcome"] == "verified", rep["checks"]
    assert "(proven by branch and bound; optimal within a relative gap of" in rep["claim"]
    assert not rep["claim_differs"]
    assert r.objective >= claim  # the attained value is no better than the proven bound


@pytest.mark.parametrize("case", ["l2", "max"])
def test_a_proven_bound_alone_is_fully_checked(env, case):
    """A method that stops with a proven bound and no point: the "bound" kind."""
    prob = _problem(env, case)
    pf, bound = _proof(env, prob, case)
    r = assemble(prob, Outcome(claim="time_limit", bound=bound, extra={"proof": pf}))
    assert r.x is None and r.bound == bound
    cert = Certificate.from_dict(json.loads(Certificate.from_result(r).to_json()))
    assert cert.kind == "bound" and "bound_proof" in cert.evidence
    rep = cert.verify(env["net"])
    assert rep["outcome"] == "verified", rep["checks"]
    side = "at least" if case == "l2" else "at most"
    assert rep["claim"].endswith(f"is {side} {bound:.9g} (proven by branch and bound).")
    sign = 1.0 if prob.sense == "min" else -1.0
    assert np.all(sign * prob.evaluate(env["Y"]) >= sign * bound)


def test_a_bound_without_proof_stays_attested(env):
    cert = _cert(env, "l1", proof=False)
    assert "bound_proof" not in cert.evidence
    rep = cert.verify(env["net"])
    assert rep["outcome"] == "attested", rep["checks"]
    assert any("attested by netopt" in u for u in rep["unchecked"])
    assert rep["attempts"] and not rep["attempts"][0]["refuted"]
    assert not any(c["check"].startswith("bound proof") for c in rep["checks"])
    assert "proven" not in rep["claim"]


@pytest.mark.parametrize("dom", ["A", "integer"])
def test_a_proof_over_a_constrained_domain_stays_attested(env, dom):
    # a constraint that cuts the box, or x0 integer (0 is the only value in its range)
    kw = {"A": [[1.0, 1.0]], "b": [0.5]} if dom == "A" else {"integer": np.array([True, False])}
    cert = _cert(env, "l1", **kw)
    assert "bound_proof" in cert.evidence
    rep = cert.verify(env["net"], refute=False)
    assert rep["outcome"] == "attested", rep["checks"]
    word = "A x <= b" if dom == "A" else "integer coordinates"
    assert any(word in n and "bound proof" in n for n in rep["notes"])
    assert rep["unchecked"]


# ------------------------------------------------------------------------------ tampering


def _tamper(env: dict, case: str, edit: str) -> tuple[Certificate, str]:
    """A certificate with one edit, and the start of the check that must catch it."""
    cert = _cert(env, case)
    ev, pf = cert.evidence, cert.evidence["bound_proof"]
    prob = _problem(env, case)
    sign = 1.0 if prob.sense == "min" else -1.0
    if edit == "bound":
        # halfway to the attained objective: still on its right side, but past what the
        # proof's rows give
        ev["bound"] = ev["bound"] + (ev["objective"] - ev["bound"]) / 2
        ev["gap"] = None
        return cert, "bound proof: its rows"
    if edit == "row":
        C = np.array(pf["C"])
        if case == "l1":
            C[0, 0] = 1.5 * W_OUT[0] * np.sign(C[0, 0])  # |v_0| > w_0
        elif case in ("l2", "linf"):
            C[0] *= 1.01  # outside the ball
        else:
            C[0, 0] += 0.25  # not the objective's c
        pf["C"] = C.tolist()
        return cert, "bound proof: its rows"
    if edit == "d_lower":
        pf["d"] = [v - 1e-3 for v in pf["d"]]
        return cert, "bound proof: its rows"
    if edit == "d_raise":
        # d and the bound raised alike: the rows still imply the bound, the leaves fail
        step = abs(ev["objective"] - ev["bound"]) / 2
        mn = minorant_of(prob)
        pf["d"] = proof_rhs(mn, np.array(pf["C"]), sign * ev["bound"] + step).tolist()
        ev["bound"] = ev["bound"] + sign * step
        ev["gap"] = None
        return cert, "bound proof: tree re-checked"
    if edit == "leaf":
        del pf["nodes"][-1]
        return cert, "bound proof: tree re-checked"
    if edit == "box":
        pf["lo"][0] += 0.05  # a proof about a smaller box
        return cert, "bound proof: its box"
    raise AssertionError(edit)


@pytest.mark.parametrize(
    "case,edit",
    [(c, e) for c in CASES for e in ("bound", "row", "d_lower", "d_raise", "box")]
    + [("linf", "leaf"), ("l1", "leaf")],
)
def test_a_tampered_proof_fails(env, case, edit):
    cert, check = _tamper(env, case, edit)
    rep = cert.verify(env["net"])
    assert rep["outcome"] == "failed"
    failed = _failed(rep)
    assert failed and all(f.startswith(check) for f in failed), rep["checks"]
    assert not rep["unchecked"]  # a wrong proof is a failed check, not an attested bound


def test_the_proof_of_another_target_fails(env):
    """Target b mirrors target a's first entry through the output at the centre: the true
    optimum hardly moves, but a's rows, whose offsets e(v) = -v.y depend on the target, no
    longer give b's bound (b's own hand-built proof does)."""
    ya = env["target"]
    yb = ya.copy()
    yb[0] = 2 * env["net"].forward(MID)[0] - ya[0]
    pa, _ = _proof(env, _problem(env, "l1"), "l1")
    prob_b = _problem(env, "l1", target=yb)
    pb, bound_b = _proof(env, prob_b, "l1")
    assert np.all(prob_b.evaluate(env["Y"]) >= bound_b)  # b's bound is true on the grid
    for pf, outcome in ((pb, "verified"), (pa, "failed")):
        r = _result(prob_b, pf, bound_b)
        rep = Certificate.from_result(r).verify(env["net"])
        assert rep["outcome"] == outcome, rep["checks"]
    failed = _failed(rep)
    assert len(failed) == 1 and failed[0].startswith("bound proof: its rows"), failed


@pytest.mark.parametrize(
    "bad,reason",
    [
        ({"lo": [0.0]}, "proof.hi is missing"),
        ("a proof", "a proof must be a JSON object"),
        ({"lo": [0.0], "hi": [1.0], "C": [[1.0]], "d": [0.0, 1.0], "nodes": []}, "rows"),
    ],
)
def test_a_malformed_proof_is_a_failed_check(env, bad, reason):
    cert = _cert(env, "min")
    cert.evidence["bound_proof"] = bad
    rep = cert.verify(env["net"])  # never an exception
    assert rep["outcome"] == "failed"
    bad_checks = [c for c in rep["checks"] if not c["ok"]]
    assert [c["check"] for c in bad_checks] == ["bound proof: a well-formed branch-and-bound proof"]
    assert reason in bad_checks[0]["detail"]


def test_a_proof_without_a_bound_fails(env):
    cert = _cert(env, "max")
    cert.evidence["bound"] = cert.evidence["gap"] = None
    rep = cert.verify(env["net"])
    assert rep["outcome"] == "failed"
    assert "a bound proof comes with a bound" in _failed(rep)


# ----------------------------------------------------------------------------- the CLI


def test_cli_verify_lists_the_proof_checks(env, tmp_path, capsys):
    cert = _cert(env, "linf")
    path = tmp_path / "c.json"
    cert.save(path)
    assert main(["verify", str(path), str(env["model"])]) == 0
    out = capsys.readouterr().out
    assert "(proven by branch and bound)" in out.splitlines()[1]
    assert out.count("[ok] bound proof:") == 3
    assert "2 leaves" in out and "solver-attested" not in out
    assert out.rstrip().endswith("verified")
    cert.evidence["bound_proof"]["d"][0] -= 1.0
    cert.save(path)
    assert main(["verify", str(path), str(env["model"])]) == 1
    out = capsys.readouterr().out
    assert "[FAILED] bound proof: its rows" in out and "NOT verified" in out


# ----------------------------------------------------------------- rows_imply_bound itself


def _inv(env, norm, w=W_OUT, y=(0.25, -0.5, 1.0)):
    return Inversion(env["net"], np.array(y), norm=norm, weights=np.array(w), box=(LO, HI))


def _boundary_d(bound: Fraction | float, e: Fraction) -> float:
    """The smallest float64 d with d + e >= bound in exact arithmetic (computed here, by
    walking floats from the nearest, independent of ``proof_rhs``)."""
    need = Fraction(bound) - e
    d = float(need)
    while Fraction(d) < need:
        d = float(np.nextafter(d, np.inf))
    while Fraction(float(np.nextafter(d, -np.inf))) >= need:
        d = float(np.nextafter(d, -np.inf))
    return d


@pytest.mark.parametrize(
    "norm,v,valid",
    [
        (1, [1.0, -2.0, 0.5], True),  # |v_j| = w_j
        (1, [0.0, 1.0, -0.25], True),
        (1, [np.nextafter(1.0, 2.0), 0.0, 0.0], False),  # one ulp past w_0
        (np.inf, [0.5, -1.0, 0.0], True),  # sum |v_j| / w_j = 1
        (np.inf, [0.5, -1.0, 1e-300], False),
        (np.inf, [1.0, 0.0, 0.0], True),
        (2, [1.0, 0.0, 0.0], True),  # on the unit sphere
        (2, [np.nextafter(1.0, 2.0), 0.0, 0.0], False),
        (2, [0.75, 1.0, 0.0], True),  # 0.5625 + 0.25
        (2, [0.75, 1.25, 0.125], False),  # 0.5625 + 0.390625 + 0.0625
        (2, [0.6, 1.6, 0.0], False),  # float(0.6)^2 + float(0.8)^2 exceeds 1 in rationals
    ],
)
def test_rows_imply_bound_row_validity(env, norm, v, valid):
    prob = _inv(env, norm)
    v = np.array([v])
    if norm == 2:  # the exact reference of the l2 case
        s = sum((Fraction(a) / Fraction(w)) ** 2 for a, w in zip(v[0], W_OUT, strict=True))
        assert (s <= 1) == valid
    d = np.array([1e6])  # far above anything: only the row's validity decides
    why = rows_imply_bound(prob, v, d, 0.0)
    assert (why is None) == valid, why
    if not valid:
        assert "not a valid minorant row" in why


def test_rows_imply_bound_zero_weight(env):
    prob = _inv(env, 1, w=(1.0, 0.0, 1.0))
    assert rows_imply_bound(prob, np.array([[1.0, 0.0, -1.0]]), np.array([9.0]), 0.0) is None
    why = rows_imply_bound(prob, np.array([[1.0, 1e-300, -1.0]]), np.array([9.0]), 0.0)
    assert "weight is 0" in why
    for norm in (2, np.inf):
        why = rows_imply_bound(_inv(env, norm, w=(1.0, 0.0, 1.0)), [[0, 1e-300, 0]], [9.0], 0)
        assert "weight is 0" in why


@pytest.mark.parametrize("norm", [1, 2, np.inf])
@pytest.mark.parametrize("y", [(0.25, -0.5, 1.0), (0.1, 0.2, 0.3)])
def test_rows_imply_bound_is_exact_at_the_boundary(env, norm, y):
    """d with d + e(v) = bound (or the least float above) passes; one ulp below fails."""
    prob = _inv(env, norm, y=y)
    v = {1: [1.0, -2.0, 0.5], 2: [0.75, 1.0, 0.0], np.inf: [0.5, -1.0, 0.0]}[norm]
    e = -sum((Fraction(a) * Fraction(b) for a, b in zip(v, y, strict=True)), Fraction(0))
    dyadic = y == (0.25, -0.5, 1.0)
    bound = 0.75 if dyadic else 0.7
    d = _boundary_d(bound, e)
    assert rows_imply_bound(prob, [v], [d], bound) is None
    why = rows_imply_bound(prob, [v], [float(np.nextafter(d, -np.inf))], bound)
    assert "below the claimed bound" in why
    if dyadic:  # the boundary is a float: d + e == bound exactly
        assert Fraction(d) + e == Fraction(bound)


@pytest.mark.parametrize("sense", ["min", "max"])
def test_rows_imply_bound_linear(env, sense):
    c0 = 0.1
    prob = OutputObjective(env["net"], C_OBJ, sense=sense, constant=c0, box=(LO, HI))
    sig = 1.0 if sense == "min" else -1.0
    v = [sig * C_OBJ]
    e = Fraction(sig) * Fraction(c0)
    bound = 0.3 * sig  # g = sig * obj >= 0.3
    d = _boundary_d(Fraction(sig * bound), e)
    assert rows_imply_bound(prob, v, [d], bound) is None
    assert "below the claimed bound" in rows_imply_bound(
        prob, v, [float(np.nextafter(d, -np.inf))], bound
    )
    # a row other than sigma * c is no minorant of a linear objective, even a smaller multiple
    for bad in ([-sig * C_OBJ], [0.5 * sig * C_OBJ], [np.nextafter(sig * C_OBJ, np.inf)]):
        assert "not the objective's c" in rows_imply_bound(prob, bad, [d], bound)


def test_rows_imply_bound_rejects_bad_input(env):
    prob = _inv(env, 1)
    assert "shape" in rows_imply_bound(prob, [[1.0, 0.0]], [0.0], 0.0)
    assert "finite" in rows_imply_bound(prob, [[1.0, 0.0, 0.0]], [np.nan], 0.0)
    assert "finite" in rows_imply_bound(prob, [[1.0, 0.0, 0.0]], [0.0], np.inf)
    feas = Feasibility(env["net"], C=np.eye(3)[:1], d=[0.0], box=(LO, HI))
    assert "no linear minorant rows" in rows_imply_bound(feas, [[1.0, 0, 0]], [0.0], 0.0)
