"""The ``netopt`` command: info, ops, --help, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.nets import ROOT, make_model
from onnx import helper

from netopt.cli import build_parser, main

DIGITS = ROOT / "examples" / "models" / "digits_mlp.onnx"


def test_info_table(capsys):
    assert main(["info", str(DIGITS)]) == 0
    out = capsys.readouterr().out
    assert "affine" in out and "ReLUs      64" in out and "unsupported none" in out
    assert "pixels (64,)" in out and "logits (10,)" in out


def test_info_json(capsys):
    assert main(["info", str(DIGITS), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["relus"] == 64 and info["parameters"] == 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    assert info["inputs"] == {"pixels": [64]} and info["unsupported"] == []


def test_info_lists_unsupported_ops(tmp_path, capsys):
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["h"], transB=1, name="fc"),
        helper.make_node("Erf", ["h"], ["y"], name="the_erf"),
    ]
    p = tmp_path / "m.onnx"
    p.write_bytes(
        make_model(nodes, ["N", 4], ["N", 3], {"w": rng.normal(size=(3, 4))}).SerializeToString()
    )
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err
    assert "the_erf" in err and "Erf" in err
    assert main(["info", str(p), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["unsupported"][0]["node"] == "the_erf"


def test_error_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("netopt: error:") and "nope.onnx" in err[0]


def test_input_shape_option(tmp_path, capsys):
    p = tmp_path / "sym.onnx"
    p.write_bytes(
        make_model(
            [helper.make_node("Relu", ["x"], ["y"])], ["N", "F"], ["N", "F"]
        ).SerializeToString()
    )
    assert main(["info", str(p)]) == 2
    assert "input_shapes" in capsys.readouterr().err
    assert main(["info", str(p), "--input-shape", "x=7"]) == 0
    assert "x (7,)" in capsys.readouterr().out
    assert main(["info", str(p), "--input-shape", "x=a,b"]) == 2


@pytest.mark.parametrize("cmd", [[], ["info"], ["ops"]])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*cmd, "--help"])
    assert e.value.code == 0
    assert "usage: netopt" in capsys.readouterr().out


GRID = """\
name = "grid"
[[family]]
kind = "sat3"
label = "s"
n = [5, 6]
ratio = [3.0, 4.0, 5.0]
[[family]]
kind = "mlp"
widths = [[3, 5, 2], [4, 6, 2]]
[[method]]
name = "milp"
[[method]]
name = "adam"
families = ["mlp"]
"""


def test_bench_header_counts_what_runs(tmp_path, capsys, monkeypatch):
    # 8 families x 2 methods would be 16; adam runs on the 2 mlp families only: 10 tasks
    import netopt.bench.runner

    seen = {}

    def run_suite(suite, db, **kw):  # counts only: running the tasks is not the point here
        seen["tasks"] = len(suite.tasks())
        counts = {"done": seen["tasks"], "failed": 0, "timeout": 0, "crashed": 0}
        return {**counts, "pending": 0, "running": 0}

    monkeypatch.setattr(netopt.bench.runner, "run_suite", run_suite)
    suite = tmp_path / "grid.toml"
    suite.write_text(GRID)
    assert main(["bench", str(suite), "--db", str(tmp_path / "g.sqlite")]) == 0
    header = capsys.readouterr().err.splitlines()[0]
    assert seen["tasks"] == 10
    assert "10 tasks = 10 runs x 1 seed x 1 time limit" in header
    assert "8 instances in 8 families, 2 methods; 6 method-family pairs skipped" in header


def test_gen_from_cnf_names_files_after_it(tmp_path, capsys):
    cnf = tmp_path / "uf3-two.cnf"
    cnf.write_text("c a small formula\np cnf 3 2\n1 -2 3 0\n-1 2 0\n")
    assert main(["gen", "sat3", str(cnf), "--out", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"uf3-two_box.{k}" for k in ("cnf", "json", "onnx", "vnnlib")]
    assert "uf3-two_box" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "uf3-two_box.json").read_text())["name"] == "uf3-two_box"
