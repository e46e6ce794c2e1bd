"""Every registered method runs from ``netopt invert`` (``--formulation``, ``--option``).

Each method solves the same small inversion (a 3-4-2 ReLU MLP on the box [-1, 1]^3) once,
in-process, with ``--json``; its certificate must be sound: the point inside the box, ``f(x)``
and the objective recomputed in float64 agree with what it states, and no method beats the
optimum the exact MILP proves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import netopt
from netopt import formulations
from netopt.cli import build_parser, main

#: options a method needs on this net (the input is a vector, not an image), and short runs
OPTIONS = {
    "lifted_bregman": ["--option", "image_shape=1,3"],
    "adr_gd": ["--option", "steps=200"],
    "surfing": ["--option", "steps_per_stage=50"],
}


@pytest.fixture(scope="module")
def inst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("methods")
    assert main(["gen", "mlp", "--widths", "3,4,2", "--target", "outside", "--out", str(d)]) == 0
    (p,) = d.glob("*.json")
    return p


def _invert(inst: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Exit status, certificate (None if nothing was printed) and stderr of one invert."""
    rc = main(["invert", str(inst), "--json", *argv])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if out.strip() else None), err


@pytest.fixture(scope="module")
def optimum(inst: Path) -> float:
    from netopt.instances import load_instance

    res = load_instance(inst).problem.solve("milp")
    assert res.status == "optimal"
    return float(res.objective)


def test_help_lists_every_method(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["invert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in formulations.available())


#: the methods of Feasibility problems only (``--within``): test_bab_decides_within_from_the_cli
FEASIBILITY_ONLY = ("bab",)


@pytest.mark.parametrize(
    "method", [m for m in formulations.available() if m not in FEASIBILITY_ONLY]
)
def test_every_method_runs_from_the_cli(inst, optimum, capsys, method):
    rc, cert, err = _invert(inst, capsys, "--formulation", method, *OPTIONS.get(method, []))
    assert rc == 0, err
    ev = cert["evidence"]
    assert ev["status"] in ("optimal", "feasible", "time_limit"), ev
    from netopt.instances import load_instance

    loaded = load_instance(inst)
    prob = loaded.problem
    x = np.asarray(ev["x"], dtype=np.float64).reshape(prob.net.input_shape)
    assert np.all(x >= -1 - 1e-9) and np.all(x <= 1 + 1e-9)
    y = netopt.load(loaded.model_path).forward(x[None])[0]
    assert np.allclose(y.reshape(-1), np.asarray(ev["y"]).reshape(-1), atol=1e-9)
    obj = float(prob.evaluate(y[None])[0])
    assert obj == pytest.approx(ev["objective"], abs=1e-9)
    assert obj >= optimum - 1e-6  # no method beats the proven optimum


def test_bab_decides_within_from_the_cli(inst, capsys):
    # a target the network reaches within 1e3 (exit 10: a witness), and one far out of reach
    # (exit 20: unsat, with the branch-and-bound tree in the certificate)
    onnx_path = str(inst.with_suffix(".onnx"))
    for target, rc_want in (("0,0", 10), ("50,50", 20)):
        argv = ["invert", onnx_path, "--json", "--target", target, "--box", "-1", "1"]
        rc = main([*argv, "--within", "1e3" if rc_want == 10 else "0.1", "--formulation", "bab"])
        out, err = capsys.readouterr()
        assert rc == rc_want, err
        cert = json.loads(out)
        if rc_want == 10:
            assert cert["evidence"]["witness"]
        else:
            assert cert["kind"] == "infeasible" and "proof" in cert["evidence"]


def test_layerwise_lp_takes_the_common_time_limit(inst, capsys):
    rc, cert, err = _invert(inst, capsys, "--formulation", "layerwise_lp", "--time-limit", "10")
    assert rc == 0 and cert["evidence"]["x"] is not None
    # the layer-wise LPs have no time limit: said, not refused
    assert "--time-limit ignored" in err or not err


def test_option_values_are_read_as_declared(inst, capsys):
    # milp's relax is a bool, n_samples an int, tighten a string or None
    argv = ["--option", "relax=true", "--option", "n_samples=8", "--option", "tighten=none"]
    rc, cert, _ = _invert(inst, capsys, *argv)
    assert rc == 0 and cert["evidence"]["x"] is not None


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--option", "n_sample=8"], "did you mean n_samples"),
        (["--option", "n_samples=many"], "n_samples"),
        (["--option", "relax=maybe"], "relax"),
        (["--option", "n_samples"], "expected KEY=VALUE"),
        (["--option", "n_samples=8", "--option", "n_samples=9"], "given twice"),
        (["--option", "bounds=interval", "--bounds", "interval"], "give it once"),
        (["--formulation", "nosuch"], "available: "),
    ],
)
def test_bad_option_is_one_error(inst, capsys, argv, needle):
    assert main(["invert", str(inst), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("netopt: error:") and needle in err[0], err
