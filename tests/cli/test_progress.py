"""The live progress line of ``netopt invert`` / ``netopt check`` and ``check``'s events.

The line is read back from the captured stderr: its segments are separated by carriage returns,
the last one (before the newline that ends it) must show the figures the summary prints.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import onnx
import pytest
from helpers.nets import ROOT, make_model
from onnx import helper

import netopt
from netopt.cli import main
from netopt.cli.live import LiveLine
from netopt.control import relative_gap
from netopt.vnnlib.check import check

DIGITS = ROOT / "examples" / "models" / "digits_mlp.onnx"
#: a target no input of the box reaches: the MILP runs until its budget ends
FAR = "50,0,0,0,0,0,0,0,0,-50"
#: the exact pipeline's phases, in the order they run
MILP_PHASES = ["start", "local search", "bounds", "tightening", "build", "solve"]

HEAD = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
BOX = "(assert (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1)))\n"


@pytest.fixture(scope="module")
def sum_net(tmp_path_factory: pytest.TempPathFactory):
    """``y = x_0 + x_1`` over the unit box (y ranges over [0, 2])."""
    d = tmp_path_factory.mktemp("sum")
    m = make_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [1, 2],
        [1, 1],
        {"W": np.array([[1.0], [1.0]], dtype=np.float32)},
    )
    onnx.save(m, d / "sum.onnx")
    return d / "sum.onnx"


def _segments(err: str) -> list[str]:
    """The live line's successive contents (the text between carriage returns / newlines)."""
    return [s.strip() for s in re.split(r"[\r\n]", err) if s.strip()]


def _field(line: str, name: str) -> float:
    m = re.search(rf"{name} (\S+)", line)
    assert m, (name, line)
    return float(m.group(1).rstrip("%"))


def test_milp_events_arrive_in_phase_order_with_the_result_gap():
    net = netopt.load(DIGITS)
    prob = netopt.Inversion(net, np.array([float(v) for v in FAR.split(",")]), norm=1, box=(0, 16))
    events: list[dict] = []
    res = prob.solve("milp", time_limit=4, progress=events.append)
    phases = [e["phase"] for e in events]
    firsts = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert firsts == MILP_PHASES
    assert all(b["elapsed"] >= a["elapsed"] for a, b in zip(events, events[1:], strict=False))
    for e in events:  # every event's gap is the result's formula on its own figures
        assert e["gap"] == relative_gap(e.get("incumbent"), e.get("bound"))
    # the figures are in the problem's units: no incumbent below the float64 optimum's bound
    assert all(e["incumbent"] >= res.bound - 1e-6 for e in events if e.get("incumbent"))


def test_invert_progress_line_ends_with_the_summary_figures(tmp_path, capsys):
    rc = main(
        ["invert", str(DIGITS), "--target", FAR, "--box", "0", "16"]
        + ["--time-limit", "4", "--progress", "--out", str(tmp_path / "c.json")]
    )
    assert rc == 0
    cap = capsys.readouterr()
    segs = _segments(cap.err)
    shown = [s.split("  ")[0] for s in segs]
    # every phase was shown as it ran, in order, then the final line
    firsts = [p for i, p in enumerate(shown) if i == 0 or shown[i - 1] != p]
    assert firsts == ["loading", *MILP_PHASES, "done"]
    assert cap.err.endswith("\n") and "\r" in cap.err
    last = segs[-1]
    out = {ln.split()[0]: ln.split()[1] for ln in cap.out.splitlines() if ln.strip()}
    assert _field(last, "incumbent") == pytest.approx(float(out["objective"]), rel=1e-5)
    assert _field(last, "bound") == pytest.approx(float(out["bound"]), rel=1e-5, abs=1e-9)
    doc = json.loads((tmp_path / "c.json").read_text())
    gap = relative_gap(float(out["objective"]), float(out["bound"]))
    assert _field(last, "gap") == pytest.approx(100 * gap, abs=0.006)
    assert doc["evidence"]["status"] == out["status"] and out["status"] in last


def test_no_live_line_off_a_terminal(capsys):
    # stderr captured by pytest is not a terminal: nothing extra without --progress
    rc = main(["invert", str(DIGITS), "--target", FAR, "--box", "0", "16", "--time-limit", "2"])
    assert rc == 0
    assert capsys.readouterr().err == ""


def test_check_emits_each_disjunct_and_phase_in_order(sum_net):
    net = netopt.load(sum_net)
    events: list[dict] = []
    prop = HEAD + BOX + "(assert (or (>= Y_0 5) (<= Y_0 -1) (>= Y_0 1.5)))"
    r = check(net, prop, progress=events.append)
    assert r.verdict == "sat" and r.disjunct_status == ["unsat", "unsat", "sat"]
    seen = [(e["disjunct"], e["phase"]) for e in events]
    assert seen == [(1, "sampling"), (1, "crown"), (2, "sampling"), (2, "crown"), (3, "sampling")]
    assert all(e["disjuncts"] == 3 for e in events)


def test_check_milp_events_carry_the_disjunct(sum_net):
    net = netopt.load(sum_net)
    events: list[dict] = []
    # no sampling, no attack, no input splitting, and CROWN cannot refute y >= 1.5: the MILP
    # decides
    r = check(
        net,
        HEAD + BOX + "(assert (>= Y_0 1.5))",
        progress=events.append,
        n_samples=0,
        bab_time=0,
        attack_time=0,
    )
    assert r.verdict == "sat" and r.details[0]["method"] == "milp"
    milp = [e for e in events if e["phase"].startswith("milp: ")]
    assert milp and all(e["disjunct"] == 1 and e["disjuncts"] == 1 for e in milp)
    assert milp[0]["phase"] == "milp: start"


def test_check_progress_line_shows_disjunct_k_of_n(sum_net, capsys):
    prop = sum_net.parent / "three.vnnlib"
    prop.write_text(HEAD + BOX + "(assert (or (>= Y_0 5) (<= Y_0 -1) (>= Y_0 1.5)))")
    assert main(["check", str(sum_net), str(prop), "--progress"]) == 10
    cap = capsys.readouterr()
    segs = _segments(cap.err)
    assert segs[0].startswith("loading") and segs[1].startswith("disjunct 1/3  sampling")
    assert any(s.startswith("disjunct 3/3  sampling") for s in segs)
    assert segs[-1].startswith("done") and segs[-1].endswith("sat")
    assert cap.out.startswith("sat")
    # the final line's seconds are the summary's (the command's wall time)
    wall = re.search(r"([\d.]+) s in all", cap.out).group(1)
    assert segs[-1] == f"done  {wall} s  sat"


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_live_line_is_throttled_but_draws_every_phase():
    buf, clock = io.StringIO(), _Clock()
    line = LiveLine(buf, rate=5.0, clock=clock)
    line({"phase": "solve", "elapsed": 0.0})
    for i in range(100):  # a burst within 0.1 s: no redraw
        clock.t = 0.001 * i
        line({"phase": "solve", "elapsed": clock.t, "incumbent": 10.0 - i, "bound": 1.0})
    assert buf.getvalue().count("\r") == 1
    clock.t = 0.25  # past the period: the next event is drawn with the latest figures
    line({"phase": "solve", "elapsed": 0.25, "incumbent": 2.0})
    assert buf.getvalue().count("\r") == 2 and "incumbent 2  bound 1  gap 50.00%" in line.last_text
    line({"phase": "recheck", "elapsed": 0.26})  # a new phase is drawn at once
    assert buf.getvalue().count("\r") == 3 and line.last_text.startswith("recheck  0.3 s")
    line.finish(incumbent=1.5, bound=1.0, elapsed=0.3)
    assert buf.getvalue().endswith("\n")
    assert line.last_text == "done  0.3 s  incumbent 1.5  bound 1  gap 33.33%"


def test_live_line_pads_over_a_longer_previous_line():
    buf = io.StringIO()
    line = LiveLine(buf)
    line({"phase": "a long phase name", "elapsed": 1.0, "incumbent": 123456.0})
    line({"phase": "b", "elapsed": 1.0})
    first, second = buf.getvalue().split("\r")[1:]
    assert len(second) == len(first) and second.rstrip() == line.last_text


def test_live_line_starts_afresh_for_each_disjunct():
    buf = io.StringIO()
    line = LiveLine(buf)
    line({"phase": "milp: solve", "elapsed": 1.0, "disjunct": 1, "disjuncts": 2, "bound": 3.0})
    line({"phase": "sampling", "elapsed": 2.0, "disjunct": 2, "disjuncts": 2})
    assert line.last_text == "disjunct 2/2  sampling  2.0 s"
