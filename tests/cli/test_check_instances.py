"""``netopt check --instances``: a VNN-COMP instances.csv decided in one process, the results CSV
against the competition's verdicts, and counterexample files that onnxruntime confirms."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from helpers.nets import NETS, require_nets

import netopt
from netopt.cli import main
from netopt.cli.instances import counterexample_text, read_instances
from netopt.errors import InputError
from netopt.vnnlib import load_vnnlib


def _verdicts() -> dict[tuple[str, str], str]:
    with open(NETS / "acasxu" / "verdicts.csv") as f:
        return {(r["onnx"], r["vnnlib"]): r["verdict"] for r in csv.DictReader(f)}


def _parse_counterexample(text: str) -> tuple[str, dict[str, float]]:
    first, rest = text.split("\n", 1)
    pairs = re.findall(r"\((X_\d+|Y_\d+) ([^()\s]+)\)", rest)
    return first, {k: float(v) for k, v in pairs}


def test_counterexample_text_reads_back_exactly():
    x = np.array([0.1, -1 / 3, 1e-300])
    y = np.array([2.5, -7.25e10])
    head, vals = _parse_counterexample(counterexample_text(x, y))
    assert head == "sat"
    assert [vals[f"X_{i}"] for i in range(3)] == x.tolist()
    assert [vals[f"Y_{j}"] for j in range(2)] == y.tolist()


@pytest.mark.parametrize(
    "line, words",
    [
        ("a.onnx,b.vnnlib", "3 fields"),
        ("a.onnx,b.vnnlib,ten", "'ten' is not a number"),
        ("a.onnx,b.vnnlib,-3", "must be a number > 0"),
        ("a.onnx,b.vnnlib,nan", "must be a number > 0"),
        ("missing.onnx,b.vnnlib,10", "missing.onnx is not a file"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path, line, words):
    (tmp_path / "a.onnx").write_bytes(b"")
    (tmp_path / "b.vnnlib").write_text("")
    f = tmp_path / "instances.csv"
    f.write_text("# a comment\n\n" + line + "\n")
    with pytest.raises(InputError, match=rf"instances.csv, line 3: .*{re.escape(words)}"):
        read_instances(f)
    assert main(["check", "--instances", str(f), "--results", str(tmp_path / "r.csv")]) == 2


def test_paths_are_relative_to_the_csv(tmp_path):
    require_nets()
    f = tmp_path / "instances.csv"
    rel = "../" * len(tmp_path.parts) + str(NETS / "acasxu").lstrip("/")
    f.write_text(f"{rel}/ACASXU_run2a_4_5_batch_2000.onnx,{rel}/prop_2.vnnlib,5\n")
    ((onnx, vnn, t),) = read_instances(f)
    assert onnx.resolve() == (NETS / "acasxu" / "ACASXU_run2a_4_5_batch_2000.onnx").resolve()
    assert t == 5.0


def test_instances_decided_in_one_process(tmp_path, capsys):
    require_nets()
    acas = NETS / "acasxu"
    nano = NETS / "test"
    f = tmp_path / "instances.csv"
    f.write_text(
        f"{acas}/ACASXU_run2a_4_5_batch_2000.onnx,{acas}/prop_2.vnnlib,30\n"
        f"{nano}/test_nano.onnx,{nano}/test_nano.vnnlib,30\n"
        # a property of another network's size: that instance is an error, the others go on
        f"{nano}/test_nano.onnx,{acas}/prop_2.vnnlib,30\n"
        f"{acas}/ACASXU_run2a_1_9_batch_2000.onnx,{acas}/prop_3.vnnlib,30\n"
    )
    results = tmp_path / "out" / "results.csv"
    results.parent.mkdir()
    assert main(["check", "--instances", str(f), "--results", str(results)]) == 0
    rows = list(csv.DictReader(results.open()))
    assert [r["result"] for r in rows][2] == "error" and "inputs" in rows[2]["message"]
    verdicts = _verdicts()
    for r in (rows[0], rows[3]):
        key = (r["onnx"].rsplit("/", 1)[-1], r["vnnlib"].rsplit("/", 1)[-1])
        assert r["result"] == verdicts[key] == "sat"
    assert rows[1]["result"] == "unsat"  # CROWN proves y >= 0 on the box: y <= -1 cannot hold
    # each counterexample: inputs in the property's box, outputs as onnxruntime computes them,
    # and the property's output constraints hold
    cex = sorted((results.parent / "results_counterexamples").iterdir())
    assert [c.name for c in cex] == [
        "ACASXU_run2a_1_9_batch_2000__prop_3.counterexample",
        "ACASXU_run2a_4_5_batch_2000__prop_2.counterexample",
    ]
    for c, (onnx_name, vnn_name) in zip(
        cex, [("ACASXU_run2a_1_9_batch_2000.onnx", "prop_3.vnnlib"),
              ("ACASXU_run2a_4_5_batch_2000.onnx", "prop_2.vnnlib")], strict=True
    ):  # fmt: skip
        head, vals = _parse_counterexample(c.read_text())
        assert head == "sat"
        net = netopt.load(acas / onnx_name)
        x = np.array([vals[f"X_{i}"] for i in range(5)])
        y = np.array([vals[f"Y_{j}"] for j in range(5)])
        np.testing.assert_allclose(
            y, np.asarray(net.run_onnxruntime(x.reshape(net.input_shape))).reshape(-1), rtol=1e-6
        )
        prop = load_vnnlib(acas / vnn_name, n_inputs=5, n_outputs=5)
        assert any(
            np.all(x >= dj.lo - 1e-12) and np.all(x <= dj.hi + 1e-12)
            and np.all(dj.C @ y - dj.d <= 1e-5)
            for dj in prop.disjuncts
        )  # fmt: skip
    out = capsys.readouterr().out
    assert "4/4 instances: 1 error, 2 sat, 1 unsat" in out


def test_model_and_instances_are_exclusive(tmp_path):
    assert main(["check", "a.onnx", "b.vnnlib", "--instances", "x.csv"]) == 2
    assert main(["check"]) == 2
