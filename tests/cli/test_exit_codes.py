"""Exit statuses of the deciding commands (the SAT-solver convention) and their ``--help``.

``netopt check`` exits 10 (sat), 20 (unsat), 0 (unknown), 2 (usage or input error);
``netopt invert --within TOL`` decides feasibility the same way; an optimization problem exits 0.
Generated instances keep every solve short: a realizable target (sat) and an unreachable one
(unsat, proven by the MILP).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netopt.cli import build_parser, main


@pytest.fixture(scope="module")
def inst(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{kind: instance JSON}`` for a realizable and an unreachable target on a 3-4-2 MLP."""
    d = tmp_path_factory.mktemp("exit_codes")
    out = {}
    for kind in ("realizable", "unreachable"):
        argv = ["gen", "mlp", "--widths", "3,4,2", "--target", kind, "--out", str(d / kind)]
        assert main(argv) == 0
        (out[kind],) = (d / kind).glob("*.json")
    return out


def test_check_sat_is_10(inst, capsys):
    p = inst["realizable"]
    assert main(["check", str(p.with_suffix(".onnx")), str(p.with_suffix(".vnnlib"))]) == 10
    assert capsys.readouterr().out.startswith("sat")


def test_check_unsat_is_20(inst, capsys):
    p = inst["unreachable"]
    rc = main(["check", str(p.with_suffix(".onnx")), str(p.with_suffix(".vnnlib")), "--json"])
    assert rc == 20
    assert json.loads(capsys.readouterr().out)["verdict"] == "unsat"


def test_check_usage_error_is_2(inst, capsys):
    p = inst["realizable"]
    assert main(["check", str(p.with_suffix(".onnx")), str(p.parent / "nope.vnnlib")]) == 2
    assert capsys.readouterr().err.startswith("netopt: error:")


def test_invert_within_sat_is_10(inst, capsys):
    assert main(["invert", str(inst["realizable"]), "--within", "1e-3"]) == 10
    assert "verdict    sat" in capsys.readouterr().out


def test_invert_within_unsat_is_20(inst, capsys):
    assert main(["invert", str(inst["unreachable"]), "--within", "1e-3", "--json"]) == 20
    cert = json.loads(capsys.readouterr().out)
    assert cert["evidence"]["status"] == "infeasible"


def test_invert_within_undecided_is_0(inst, capsys):
    # a first-order method finds no witness of an unreachable target and proves nothing
    argv = ["invert", str(inst["unreachable"]), "--within", "1e-3", "--formulation", "adam"]
    assert main([*argv, "--option", "max_iter=20"]) == 0
    assert "verdict    unknown" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["realizable", "unreachable"])
def test_invert_optimization_is_0(inst, capsys, kind):
    assert main(["invert", str(inst[kind])]) == 0


@pytest.mark.parametrize("cmd", ["check", "invert"])
def test_help_states_exit_statuses(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([cmd, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status" in text and "10 sat" in text and "20 unsat" in text
    assert "0 unknown" in text
