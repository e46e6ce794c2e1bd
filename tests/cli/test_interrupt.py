"""Ctrl-C keeps the work: ``netopt invert`` / ``netopt check`` interrupted, and the time budget.

The interrupt is raised deterministically from inside the run (a progress callable calls
:func:`netopt.control.request_interrupt` once a given phase starts), and once for real: SIGINT
sent to ``python -m netopt invert`` after its first progress line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers.nets import NETS, ROOT, make_model
from onnx import helper

import netopt
import netopt.cli.check as cli_check
import netopt.cli.invert as cli_invert
import netopt.vnnlib.check as check_mod
from netopt import control
from netopt.certificate import Certificate
from netopt.cli import main
from netopt.cli.check import disjunct_lines
from netopt.cli.live import LiveLine
from netopt.result import Status
from netopt.vnnlib.check import CheckResult, check

DIGITS = ROOT / "examples" / "models" / "digits_mlp.onnx"
FAR = "50,0,0,0,0,0,0,0,0,-50"
HEAD = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
BOX = "(assert (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1)))\n"
#: three disjuncts on y = x_0 + x_1 over the unit box: unsat (CROWN), unsat, sat (sampling)
THREE = HEAD + BOX + "(assert (or (>= Y_0 5) (<= Y_0 -1) (>= Y_0 1.5)))"


@pytest.fixture(autouse=True)
def _no_leftover_request():
    """A request outside a guarded run stays set: never let it reach the next test. And Python's
    own Ctrl-C handler for the test: a shell that starts a job in the background leaves SIGINT
    ignored, and the guard leaves an ignored SIGINT (or an application's handler) alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    control.clear_interrupt()
    yield
    control.clear_interrupt()
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def sum_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``y = x_0 + x_1`` (y ranges over [0, 2] on the unit box)."""
    d = tmp_path_factory.mktemp("sum")
    m = make_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [1, 2],
        [1, 1],
        {"W": np.array([[1.0], [1.0]], dtype=np.float32)},
    )
    onnx.save(m, d / "sum.onnx")
    (d / "three.vnnlib").write_text(THREE)
    return d / "sum.onnx"


def _interrupting_line(
    phase_prefix: str, disjunct: int | None = None, with_bound: bool = False
) -> type[LiveLine]:
    """A live line that asks the run to stop when a phase starting with ``phase_prefix`` does
    (with ``with_bound``: once that phase reports a bound)."""

    class Interrupting(LiveLine):
        def __call__(self, ev: dict) -> None:
            if (
                ev["phase"].startswith(phase_prefix)
                and ev.get("disjunct") == disjunct
                and (not with_bound or ev.get("bound") is not None)
            ):
                control.request_interrupt()
            super().__call__(ev)

    return Interrupting


# ------------------------------------------------------------------------------------ invert


def test_interrupted_invert_keeps_its_point_and_bound(tmp_path, monkeypatch, capsys):
    # the solver's first report carries its proven bound; stop the run there
    monkeypatch.setattr(cli_invert, "LiveLine", _interrupting_line("solve", with_bound=True))
    out = tmp_path / "cert.json"
    argv = ["invert", str(DIGITS), "--target", FAR, "--box", "0", "16", "--time-limit", "60"]
    assert main([*argv, "--progress", "--out", str(out)]) == 130
    text = capsys.readouterr().out
    assert "status     interrupted" in text
    assert "objective  " in text and "bound      " in text  # the best point and the bound so far
    doc = json.loads(out.read_text())
    assert doc["evidence"]["status"] == "interrupted"
    assert doc["evidence"]["objective"] >= doc["evidence"]["bound"]
    # a valid certificate: re-checked from scratch against the model
    assert main(["verify", str(out), str(DIGITS)]) == 0
    assert Certificate.load(out).verify(netopt.load(DIGITS))


@pytest.mark.parametrize(
    "method,opts",
    [
        ("adam", {}),
        ("gd", {}),
        ("admm", {}),
        ("adr_gd", {}),
        ("layerwise_lp", {}),
        ("lifted_bregman", {"regularizer": "box"}),
        ("surfing", {}),
    ],
)
def test_iterative_methods_stop_with_claim_interrupted(method, opts):
    from netopt import formulations
    from netopt.result import assemble

    net = netopt.load(DIGITS)
    norm = 2 if method in ("layerwise_lp", "lifted_bregman", "surfing") else 1
    target = np.array([float(v) for v in FAR.split(",")])
    prob = netopt.Inversion(net, target, norm=norm, box=(0, 16))
    # outside a guarded solve the request stays set: the method's loop sees it at once
    control.request_interrupt()
    out = formulations.get(method)().run(prob, None, **opts)
    res = assemble(prob, out)
    assert out.claim == "interrupted" and res.status == Status.INTERRUPTED
    if method == "layerwise_lp":
        # stopped before the input layer was inverted: a latent is no input, so no point
        assert res.x is None
    else:
        # what the loop had: a point of the box, its objective re-checked in float64
        assert res.x is not None and np.all((res.x >= 0) & (res.x <= 16))
        assert res.objective == pytest.approx(prob.objective_of_input(res.x))
    if method in ("adam", "gd"):
        assert out.extra["stop"] == "interrupted" and out.extra["iterations"] == 1


def test_a_second_ctrl_c_ends_the_command(monkeypatch, capsys):
    class Raising(LiveLine):
        def __call__(self, ev: dict) -> None:
            if ev["phase"] == "bounds":
                raise KeyboardInterrupt  # what the guard raises on a second Ctrl-C

    monkeypatch.setattr(cli_invert, "LiveLine", Raising)
    argv = ["invert", str(DIGITS), "--target", FAR, "--box", "0", "16", "--progress"]
    assert main(argv) == 130
    assert capsys.readouterr().err.strip().endswith("netopt: interrupted")


def test_sigint_to_a_running_invert(tmp_path):
    """A real Ctrl-C during the solve: exit 130, the certificate written, status interrupted."""
    onnx_path = NETS / "bench" / "mlp_5-50-50-50-5_seed0.onnx"
    if not onnx_path.is_file():
        pytest.skip(f"{onnx_path} is absent")
    spec = json.loads((NETS / "bench" / "targets.json").read_text())[onnx_path.name]
    target = tmp_path / "target.json"
    target.write_text(json.dumps(spec["targets"]["beyond_ia"]))
    out = tmp_path / "cert.json"
    lo, hi = spec["box"]
    cmd = [sys.executable, "-m", "netopt", "invert", str(onnx_path), "--target", str(target)]
    cmd += ["--box", str(lo), str(hi), "--time-limit", "300", "--progress", "--out", str(out)]
    # the MILP: the default certifies this instance by branch and bound in about 20 s
    cmd += ["--formulation", "milp"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # (an ignored SIGINT is inherited, and Python keeps it ignored: the default for the command)
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        seen = b""
        while b"bounds" not in seen:  # the live line shows a phase of the solve: it has begun
            chunk = p.stderr.read1(256)
            assert chunk, seen  # the command ended before
            seen += chunk
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, (seen + stderr).decode()[-2000:]
    assert b"status     interrupted" in stdout
    doc = json.loads(out.read_text())
    assert doc["evidence"]["status"] == "interrupted"
    assert main(["verify", str(out), str(onnx_path)]) == 0


@pytest.fixture
def solver_calls(monkeypatch) -> list[tuple[float, float]]:
    """``(seconds since the fixture started, time_limit)`` of every HiGHS solve, and a network
    load that takes a second (a large model): the command's budget must pay for it."""
    import time

    from netopt.solvers.highs_backend import HighsBackend

    t0 = time.perf_counter()
    seen: list[tuple[float, float]] = []
    solve, load = HighsBackend.solve, netopt.load

    def spy(self, model, **opts):
        if "time_limit" in opts:  # the exact model's solve (not an LP of the local search)
            seen.append((time.perf_counter() - t0, opts["time_limit"]))
        return solve(self, model, **opts)

    def slow_load(*a, **k):
        time.sleep(1.0)
        return load(*a, **k)

    monkeypatch.setattr(HighsBackend, "solve", spy)
    monkeypatch.setattr(netopt, "load", slow_load)
    return seen


def test_invert_solver_gets_what_the_command_has_left(solver_calls, capsys):
    argv = ["invert", str(DIGITS), "--target", FAR, "--box", "0", "16", "--time-limit", "4"]
    assert main(argv) == 0
    # the solver's limit ends within the command's 4 s: the load, the local search and the bound
    # tightening came out of the same budget
    assert solver_calls and all(0 < lim and at + lim <= 4 for at, lim in solver_calls)


def test_check_milp_gets_at_most_what_the_command_has_left(
    solver_calls, tmp_path, monkeypatch, capsys
):
    import netopt.bounds.branch

    # y = (x_0 + x_1, x_0 - x_1): each of y_0 >= 1.9 and y_1 >= 0.5 is reachable in the unit box
    # (CROWN refutes neither row), both at once are not (x_0 >= 1.2); no sample satisfies them
    # and, with input splitting out of the way, the exact model decides
    d = tmp_path
    m = make_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [1, 2],
        [1, 2],
        {"W": np.array([[1.0, 1.0], [1.0, -1.0]], dtype=np.float32)},
    )
    onnx.save(m, d / "two.onnx")
    head = HEAD + "(declare-const Y_1 Real)\n"
    (d / "p.vnnlib").write_text(head + BOX + "(assert (and (>= Y_0 1.9) (>= Y_1 0.5)))")
    monkeypatch.setattr(netopt.bounds.branch, "branch_and_bound", lambda *a, **k: None)
    assert main(["check", str(d / "two.onnx"), str(d / "p.vnnlib"), "--time-limit", "10"]) == 20
    assert "unsat by milp" in capsys.readouterr().out
    assert solver_calls and all(0 < lim and at + lim <= 10 for at, lim in solver_calls)


# ------------------------------------------------------------------------------------- check


def test_interrupted_check_lists_the_rest_as_not_tried(sum_net):
    net = netopt.load(sum_net)

    def stop_at_second(ev: dict) -> None:
        if ev["disjunct"] == 2:
            control.request_interrupt()

    r = check(net, THREE, progress=stop_at_second)
    assert r.stopped == "interrupted" and r.verdict == "unknown"
    assert r.disjunct_status == ["unsat", "unknown", "not tried"]
    assert json.loads(r.to_json())["stopped"] == "interrupted"
    assert not control.interrupted()  # the guard forgets the request when the check ends


def test_cli_check_interrupted_exits_130(sum_net, monkeypatch, capsys):
    monkeypatch.setattr(cli_check, "LiveLine", _interrupting_line("sampling", disjunct=2))
    rc = main(["check", str(sum_net), str(sum_net.parent / "three.vnnlib"), "--progress"])
    assert rc == 130
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "unknown"
    assert lines[1].startswith("  disjunct 0: unsat by crown in ")
    assert lines[2].startswith("  disjunct 1: unknown, stopped before crown (interrupted)")
    assert lines[3] == "  disjunct 2: not tried (interrupted)"


class _RunsOutAfterFirstCrown(check_mod.Deadline):
    """A deadline that is spent once the first disjunct's CROWN phase has started."""

    spent = False

    def remaining(self) -> float:
        return 0.0 if type(self).spent else super().remaining()


def test_check_out_of_time_lists_only_the_disjuncts_it_tried(sum_net, monkeypatch, capsys):
    class Line(LiveLine):
        def __call__(self, ev: dict) -> None:
            if ev["phase"] == "crown":
                _RunsOutAfterFirstCrown.spent = True
            super().__call__(ev)

    monkeypatch.setattr(_RunsOutAfterFirstCrown, "spent", False)
    monkeypatch.setattr(check_mod, "Deadline", _RunsOutAfterFirstCrown)
    monkeypatch.setattr(cli_check, "LiveLine", Line)
    prop = str(sum_net.parent / "three.vnnlib")
    out = sum_net.parent / "verdict.json"
    rc = main(["check", str(sum_net), prop, "--time-limit", "100", "--progress", "--out", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "unknown"
    assert lines[1].startswith("  disjunct 0: unsat by crown in ")
    assert lines[2:4] == [
        "  disjunct 1: not tried (time limit)",
        "  disjunct 2: not tried (time limit)",
    ]
    doc = json.loads(out.read_text())
    assert doc["disjunct_status"] == ["unsat", "not tried", "not tried"]
    assert doc["stopped"] == "time limit"


def test_sat_lists_later_disjuncts_as_not_tried(sum_net, capsys):
    prop = sum_net.parent / "early.vnnlib"
    prop.write_text(HEAD + BOX + "(assert (or (>= Y_0 5) (>= Y_0 1) (>= Y_0 7)))")
    assert main(["check", str(sum_net), str(prop)]) == 10
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  disjunct 0: unsat by crown")
    assert lines[2].startswith("  disjunct 1: sat by sampling")
    assert lines[3] == "  disjunct 2: not tried (counterexample found in another disjunct)"


def test_disjunct_lines_name_every_disjunct():
    r = CheckResult("unknown", stopped="time limit", disjunct_status=["unknown", "not tried"])
    r.details = [{"disjunct": 0, "verdict": "unknown", "method": "milp", "seconds": 1.5}]
    assert disjunct_lines(r) == [
        "  disjunct 0: unknown by milp in 1.50 s",
        "  disjunct 1: not tried (time limit)",
    ]
