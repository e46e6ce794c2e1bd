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
