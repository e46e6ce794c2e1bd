"""VNN-LIB verdicts, counterexamples confirmed by onnxruntime, certificates re-checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers.nets import NETS, ROOT, require_nets

import netopt
from netopt.certificate import Certificate
from netopt.cli import main
from netopt.problems import Inversion
from netopt.result import Status
from netopt.vnnlib.check import check

DIGITS = ROOT / "examples" / "models" / "digits_mlp.onnx"


@pytest.mark.parametrize(
    "net,prop,verdict",
    [
        ("test/test_nano.onnx", "test/test_nano.vnnlib", "unsat"),
        ("test/test_tiny.onnx", "test/test_tiny.vnnlib", "unsat"),
        ("test/test_small.onnx", "test/test_small.vnnlib", "unsat"),
        ("acasxu/ACASXU_run2a_1_1_batch_2000.onnx", "test/test_prop.vnnlib", "unsat"),
        ("acasxu/ACASXU_run2a_1_1_batch_2000.onnx", "acasxu/prop_1.vnnlib", "unsat"),
        ("acasxu/ACASXU_run2a_1_1_batch_2000.onnx", "acasxu/prop_4.vnnlib", "unsat"),
    ],
)
def test_verdicts(net, prop, verdict):
    require_nets()
    r = check(netopt.load(NETS / net), NETS / prop, time_limit=60)
    assert r.verdict == verdict


def test_small_dense_networks_are_checked_without_scipy_sparse_or_torch():
    """ACAS Xu in a fresh process: its bounds, input splitting and proof (1_1 prop 1, unsat)
    and the attack's region walk with its LPs (1_9 prop 7, sat) import neither scipy.sparse
    (0.15 s) nor torch: the dense layers' maps are built and composed by numpy."""
    require_nets()
    code = (
        "import io, json, sys\n"
        "from contextlib import redirect_stdout\n"
        "from netopt.cli import main\n"
        "got = []\n"
        "for net, prop in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    out = io.StringIO()\n"
        "    with redirect_stdout(out):\n"
        "        main(['check', net, prop, '--json'])\n"
        "    got.append(json.loads(out.getvalue())['verdict'])\n"
        "print(*got, 'scipy.sparse' in sys.modules, 'torch' in sys.modules)\n"
    )
    a = NETS / "acasxu"
    args = [a / "ACASXU_run2a_1_1_batch_2000.onnx", a / "prop_1.vnnlib"]
    args += [a / "ACASXU_run2a_1_9_batch_2000.onnx", a / "prop_7.vnnlib"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["unsat", "sat", "False", "False"], out.stdout


def test_attack_finds_what_sampling_misses_and_onnxruntime_confirms_it():
    """MNIST 256x2 at eps 0.05 around image 3: the competition's consensus is "sat" (8 tools);
    uniform samples of the 784-dimensional box miss the counterexample, the falsifier finds it."""
    require_nets()
    net = netopt.load(NETS / "mnistfc" / "mnist-net_256x2.onnx")
    r = check(net, NETS / "mnistfc" / "prop_3_0.05.vnnlib", time_limit=60, bab_time=0)
    assert r.verdict == "sat" and r.confirmed
    assert [d["method"] for d in r.details][-1] == "attack"
    dj = r.disjunct
    prop = netopt.load_vnnlib(NETS / "mnistfc" / "prop_3_0.05.vnnlib", 784, 10)
    lo, hi = prop.disjuncts[dj].lo, prop.disjuncts[dj].hi
    assert np.all(r.x.reshape(-1) >= lo) and np.all(r.x.reshape(-1) <= hi)
    C, d = prop.disjuncts[dj].C, prop.disjuncts[dj].d
    assert np.all(C @ np.asarray(r.y_onnxruntime, dtype=np.float64).reshape(-1) - d <= 1e-5)


def test_sat_counterexample_is_confirmed_by_onnxruntime():
    """Tighten ACAS Xu property 1's threshold until it is violated: the witness must hold in ORT."""
    require_nets()
    net = netopt.load(NETS / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx")
    text = (NETS / "acasxu" / "prop_1.vnnlib").read_text().replace("3.991125645861615", "-0.02")
    r = check(net, text, time_limit=60)
    assert r.verdict == "sat" and r.confirmed
    assert 0.6 <= r.x.reshape(-1)[0] <= 0.679857769
    assert r.y_onnxruntime[0] >= -0.02 - 1e-5
    # the same through the MILP alone (no sampling, no attack, no branch and bound)
    r2 = check(net, text, time_limit=60, n_samples=0, bab_time=0, attack_time=0)
    assert r2.verdict == "sat" and r2.confirmed and r2.details[-1]["method"] == "milp"


def test_unsat_by_milp_alone():
    require_nets()
    net = netopt.load(NETS / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx")
    r = check(net, NETS / "acasxu" / "prop_4.vnnlib", time_limit=120, n_samples=0, bab_time=0)
    assert r.verdict == "unsat" and r.details[0]["method"] in ("milp", "crown")


def test_certificate_roundtrip_and_tampering(tmp_path):
    net = netopt.load(DIGITS)
    target = json.loads((DIGITS.parent / "digits_target.json").read_text())["target"]
    res = Inversion(net, target, norm=1, box=(0, 1)).solve(time_limit=60)
    assert res.status == Status.OPTIMAL and res.x is not None
    assert res.objective > 1.0 and res.gap <= 1e-6  # an unreachable "very confident 3"
    p = tmp_path / "c.json"
    res.certificate.save(p)
    rep = Certificate.load(p).verify(DIGITS)
    assert rep["ok"], rep
    # a tampered objective is caught
    d = json.loads(p.read_text())
    d["evidence"]["objective"] = d["evidence"]["objective"] - 0.5
    p.write_text(json.dumps(d))
    assert not Certificate.load(p).verify(DIGITS)["ok"]
    # a different model is caught
    require_nets()
    d["evidence"]["objective"] += 0.5
    p.write_text(json.dumps(d))
    other = NETS / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx"
    rep = Certificate.load(p).verify(other)
    assert not rep["ok"] and not rep["checks"][0]["ok"]


def test_cli_invert_verify_check(tmp_path, capsys):
    require_nets()
    t = tmp_path / "t.json"
    t.write_text(json.dumps({"target": [3.7452884848949517, 0.1939554363489151]}))
    cert = tmp_path / "cert.json"
    net = NETS / "bench" / "mlp_10-32-32-2_seed0.onnx"
    assert (
        main(
            [
                "invert",
                str(net),
                "--target",
                str(t),
                "--box",
                "-1",
                "1",
                "--time-limit",
                "5",
                "--formulation",
                "milp",
                "--quiet",
                "--out",
                str(cert),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "objective" in out and "bound" in out
    # every re-checkable claim holds; the MILP's bound is the solver's word alone: exit 3
    assert main(["verify", str(cert), str(net)]) == 3
    assert main(["verify", str(cert), str(net), "--allow-attested"]) == 0
    assert "verified" in capsys.readouterr().out
    assert (
        main(
            [
                "check",
                str(NETS / "test" / "test_nano.onnx"),
                str(NETS / "test" / "test_nano.vnnlib"),
            ]
        )
        == 20
    )
    assert capsys.readouterr().out.startswith("unsat")
    assert main(["invert", str(net), "--target", "1,2,3", "--box", "-1", "1"]) == 2
    assert "target" in capsys.readouterr().err


def test_infeasible_certificate():
    require_nets()
    net = netopt.load(NETS / "bench" / "mlp_10-32-32-2_seed0.onnx")
    from netopt.problems import Feasibility

    r = Feasibility(net, [3.7452884848949517, 0.1939554363489151], tol=1e-3, box=(-1, 1)).solve(
        time_limit=60
    )
    assert r.status == Status.INFEASIBLE and r.verdict == "unsat"
    c = r.certificate
    assert c.kind == "infeasible" and "solver" in c.claim


def test_disjunct_status_lists_every_disjunct(tmp_path):
    """Tried disjuncts carry their verdict; those never reached are "not tried"."""
    import numpy as np
    import onnx
    from helpers.nets import make_model
    from onnx import helper

    m = make_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [1, 2],
        [1, 1],
        {"W": np.array([[1.0], [1.0]], dtype=np.float32)},
    )
    onnx.save(m, tmp_path / "sum.onnx")
    net = netopt.load(tmp_path / "sum.onnx")
    head = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
    box = "(assert (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1)))\n"
    r = check(net, head + box + "(assert (or (>= Y_0 5) (>= Y_0 1) (>= Y_0 7)))")
    assert r.verdict == "sat" and r.disjunct_status == ["unsat", "sat", "not tried"]
    assert json.loads(r.to_json())["disjunct_status"] == r.disjunct_status
    r = check(net, head + box + "(assert (or (>= Y_0 5) (>= Y_0 7)))")
    assert r.verdict == "unsat" and r.disjunct_status == ["unsat", "unsat"]


def test_sampled_centre_outside_the_input_constraints_is_no_counterexample(tmp_path):
    """The box's centre x = 0 satisfies y = x_0 >= 0 but not x_0 + x_1 <= -1.5; on the region
    x_0 <= -0.5, so the property is unsat and no point may be claimed."""
    import onnx
    from helpers.nets import make_model
    from onnx import helper

    m = make_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [1, 2],
        [1, 1],
        {"W": np.array([[1.0], [0.0]], dtype=np.float32)},
    )
    onnx.save(m, tmp_path / "x0.onnx")
    net = netopt.load(tmp_path / "x0.onnx")
    prop = (
        "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
        "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 -1))\n(assert (<= X_1 1))\n"
        "(assert (<= (+ X_0 X_1) -1.5))\n(assert (>= Y_0 0))\n"
    )
    r = check(net, prop, time_limit=30)
    assert r.verdict == "unsat", (r.verdict, r.x, r.details)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"bab_time": -1.0}, "bab_time"),
        ({"attack_time": -1.0}, "attack_time"),
        ({"attack_time": float("nan")}, "attack_time"),
    ],
)
def test_bad_phase_times_are_option_errors(kw, name):
    from netopt.errors import OptionError

    require_nets()
    net = netopt.load(NETS / "test" / "test_nano.onnx")
    with pytest.raises(OptionError, match=name):
        check(net, NETS / "test" / "test_nano.vnnlib", **kw)


def test_disjuncts_over_one_box_share_one_tree_and_each_keeps_its_proof(tmp_path):
    """ACAS Xu prop 10 is four disjuncts over one box: decided by one input-splitting tree,
    each disjunct "unsat" with its own proof, the certificate fully re-checked."""
    require_nets()
    onnx_path = NETS / "acasxu" / "ACASXU_run2a_4_5_batch_2000.onnx"
    prop_path = NETS / "acasxu" / "prop_10.vnnlib"
    net = netopt.load(onnx_path)
    r = check(net, prop_path, time_limit=60)
    assert r.verdict == "unsat" and r.disjunct_status == ["unsat"] * 4
    by_k = {d["disjunct"]: d for d in r.details}
    assert all("4 disjuncts at once" in by_k[k]["method"] for k in range(4))
    proofs = [by_k[k]["proof"] for k in range(4)]
    prop = netopt.load_vnnlib(prop_path, 5, 5)
    for k, P in enumerate(proofs):
        assert np.array_equal(P.C, prop.disjuncts[k].C) and np.array_equal(P.d, prop.disjuncts[k].d)
    cert = Certificate.from_check(r, prop_path, net)
    cert.save(tmp_path / "c.json")
    rep = Certificate.load(tmp_path / "c.json").verify(onnx_path, vnnlib_path=prop_path)
    assert rep["ok"] and rep["fully_checked"] and not rep["unchecked"], rep


@pytest.mark.parametrize("eps", ["0.03", "0.05"])
@pytest.mark.parametrize("image", range(5))
def test_crown_pass_over_every_disjunct_agrees_with_each_disjuncts_crown(image, eps):
    """The one batched CROWN pass that lets a robustness property skip its attack closes every
    disjunct exactly when step 2's CROWN, disjunct by disjunct, closes each (MNIST 256x2)."""
    require_nets()
    from netopt.problems import Domain
    from netopt.vnnlib.check.decide import PROOF_MARGIN, _crown_closes_all, _crown_rows

    net = netopt.load(NETS / "mnistfc" / "mnist-net_256x2.onnx")
    prop = netopt.load_vnnlib(NETS / "mnistfc" / f"prop_{image}_{eps}.vnnlib", 784, 10)
    each = []
    for dj in prop.disjuncts:
        dom = Domain.make((784,), (dj.lo, dj.hi))
        low, proof = _crown_rows(net, dom, dj)
        each.append(proof is not None)
        if proof is None:
            assert not np.any(low - dj.d > PROOF_MARGIN * (1 + np.abs(dj.d)))
    assert _crown_closes_all(net, prop) == all(each)


def test_crown_pass_on_disjuncts_of_their_own_boxes_and_row_counts(tmp_path, monkeypatch):
    """Disjuncts over different boxes with one or two rows each: the pass closes them all only
    where each disjunct's own CROWN does; a property it closes is decided with no attack, every
    disjunct by its CROWN proof, and the certificate is re-checked in full."""
    from netopt.problems import Domain
    from netopt.vnnlib.check.decide import _crown_closes_all, _crown_rows

    net = netopt.load(DIGITS)
    x0 = np.full(64, 0.5)
    y0 = net.forward(x0[None]).reshape(-1)
    # per disjunct: its box radius and rows (output, sign): "Y_a <= y0_a - 0.5" (sign +1) or
    # "Y_a >= y0_a + 0.5" (sign -1), each 0.5 from holding at x0: CROWN closes it on a small
    # box, not on a wide one
    spec = [(0.001, [(1, 1)]), (0.002, [(2, 1), (3, -1)]), (0.4, [(4, 1)])]
    header = [f"(declare-const X_{i} Real)" for i in range(64)]
    header += [f"(declare-const Y_{i} Real)" for i in range(10)]

    def text(n: int) -> str:
        ors = []
        for r, rows in spec[:n]:
            lo, hi = np.clip(x0 - r, 0, 1), np.clip(x0 + r, 0, 1)
            terms = [f"(>= X_{i} {float(lo[i])!r}) (<= X_{i} {float(hi[i])!r})" for i in range(64)]
            for a, sgn in rows:
                op, b = ("<=", y0[a] - 0.5) if sgn > 0 else (">=", y0[a] + 0.5)
                terms.append(f"({op} Y_{a} {float(b)!r})")
            ors.append("(and " + " ".join(terms) + ")")
        return "\n".join(header) + "\n(assert (or " + " ".join(ors) + "))\n"

    verdicts = {}
    for n in (2, 3):
        prop = netopt.load_vnnlib(text(n), 64, 10)
        assert [dj.C.shape[0] for dj in prop.disjuncts] == [len(rows) for _, rows in spec[:n]]
        each = [
            _crown_rows(net, Domain.make((64,), (dj.lo, dj.hi)), dj)[1] is not None
            for dj in prop.disjuncts
        ]
        verdicts[n] = _crown_closes_all(net, prop)
        assert verdicts[n] == all(each)
    assert verdicts == {2: True, 3: False}  # (the wide third box is not closed)
    import netopt.attack as attack
    import netopt.vnnlib.check.decide as decide

    assert list(decide._crown_closed(net, netopt.load_vnnlib(text(3), 64, 10))) == [1, 1, 0]
    attacked = []
    real = decide._attack_all
    monkeypatch.setattr(decide, "_attack_all", lambda *a, **k: attacked.append(1) or real(*a, **k))
    boxes = []
    falsify = attack.falsify_disjuncts
    monkeypatch.setattr(
        attack,
        "falsify_disjuncts",
        lambda n, djs, **k: boxes.append(len(djs)) or falsify(n, djs, **k),
    )
    r3 = check(net, text(3), time_limit=10)
    # the wide box's disjunct is open: attacked at once with the others still open (none: the
    # pass closed the two small boxes, which have no counterexample to find), and its
    # counterexample credited to it (disjunct 2, not the attack's first and only problem)
    assert attacked == [1] and boxes[0] == 1
    assert r3.verdict == "sat"
    assert [(d["disjunct"], d["method"]) for d in r3.details] == [(2, "attack")]
    attacked.clear()
    path = tmp_path / "p.vnnlib"
    path.write_text(text(2))
    r = check(net, path, time_limit=60)
    assert not attacked  # CROWN closes every disjunct: no attack at all
    assert r.verdict == "unsat" and [d["method"] for d in r.details] == ["crown", "crown"]
    cert = Certificate.from_check(r, path, net)
    rep = cert.verify(DIGITS, vnnlib_path=path)
    assert rep["ok"] and rep["fully_checked"], rep


def test_the_device_given_reaches_the_attack_and_branch_and_bound(monkeypatch):
    """``check(device="cpu")``: every branch-and-bound search runs on the device given, and
    the attack on this MLP keeps its numpy engine (a CPU too, with no torch start-up): spies.
    The verdict is the competition's (MNIST 256x2 prop_0_0.03, unsat by ReLU splitting), and
    its certificate is re-checked."""
    require_nets()
    pytest.importorskip("torch")
    import netopt.attack as attack
    import netopt.bounds.branch as branch

    seen: list = []

    def spy(real):
        def call(*a, **kw):
            seen.append((real.__name__, kw.get("device")))
            return real(*a, **kw)

        return call

    for mod, name in (
        (attack, "falsify"),
        (attack, "falsify_disjuncts"),
        (branch, "branch_and_bound"),
    ):
        monkeypatch.setattr(mod, name, spy(getattr(mod, name)))
    net = netopt.load(NETS / "mnistfc" / "mnist-net_256x2.onnx")
    r = check(net, NETS / "mnistfc" / "prop_0_0.03.vnnlib", time_limit=60, device="cpu")
    assert r.verdict == "unsat"
    assert {d for n, d in seen if n == "branch_and_bound"} == {"cpu"}
    assert {d for n, d in seen if n.startswith("falsify")} == {None}
    assert "falsify_disjuncts" in {n for n, _ in seen}
    cert = Certificate.from_check(r, NETS / "mnistfc" / "prop_0_0.03.vnnlib", net)
    rep = cert.verify(net)
    assert rep["outcome"] == "verified" and rep["fully_checked"], rep["checks"]
