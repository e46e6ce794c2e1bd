"""Bad arguments give exactly one netopt error, before any work: never a traceback.

Table-driven. The CLI cases run ``netopt.cli.main`` in-process and expect exit status 2 and a
single ``netopt: error: ...`` line naming the offending value or file; the API cases expect a
:class:`netopt.NetoptError` whose message names the argument. A tiny ReLU network (3 inputs,
2 outputs) and a ``netopt gen mlp`` instance on the same widths keep every solve short.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
from netopt.cli import main
from netopt.problems import Inversion

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model, a generated instance (ONNX + JSON + VNN-LIB) and odd files and folders."""
    d = tmp_path_factory.mktemp("bad_args")
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1),
    ]
    inits = {
        "w1": rng.normal(size=(4, 3)),
        "b1": rng.normal(size=4),
        "w2": rng.normal(size=(2, 4)),
        "b2": rng.normal(size=2),
    }
    model = d / "tiny.onnx"
    model.write_bytes(make_model(nodes, ["N", 3], ["N", 2], inits).SerializeToString())
    assert main(["gen", "mlp", "--widths", "3,4,2", "--out", str(d / "inst")]) == 0
    (inst,) = (d / "inst").glob("*.json")
    (d / "folder").mkdir()
    (d / "folder.json").mkdir()  # a folder named like an instance
    (d / "empty.json").write_text("{}")
    (d / "dict.json").write_text('{"a": [1, 2], "b": [3, 4]}')
    (d / "strings.json").write_text('["a", "b"]')
    (d / "target.json").write_text('{"target": [-0.5, 0.2], "note": "other keys are fine"}')
    (d / "a_file").write_text("x")
    return {
        "dir": d,
        "model": model,
        "inst": inst,
        "inst_onnx": inst.with_suffix(".onnx"),
        "inst_vnnlib": inst.with_suffix(".vnnlib"),
    }


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``netopt ARGV`` in-process: (exit status, stdout, stderr)."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own exit, as the console script would see it
        rc = int(e.code or 0)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_one_error(rc: int, err: str, *needles: str) -> str:
    """Exit 2 and exactly one ``netopt: error:`` line on stderr naming every needle."""
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("netopt: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def bad_instance(files: dict[str, Path], tag: str, mutate: Callable[[dict], Any]) -> str:
    """A copy of the generated instance JSON, beside its ONNX file, changed by ``mutate``."""
    d = copy.deepcopy(json.loads(files["inst"].read_text()))
    mutate(d)
    p = files["inst"].with_name(f"bad_{tag}.json")
    p.write_text(json.dumps(d))
    return str(p)


def _set(*path: Any, value: Any = None, drop: bool = False) -> Callable[[dict], None]:
    def mutate(d: dict) -> None:
        for k in path[:-1]:
            d = d[k]
        if drop:
            del d[path[-1]]
        else:
            d[path[-1]] = value

    return mutate


# ----------------------------------------------------------------------------- the CLI table

QUICK = ["--time-limit", "5", "--quiet"]

# (id, argv with {placeholders} from `files`, text the error line must contain)
CLI_CASES: list[tuple[str, list[str], list[str]]] = [
    # --out that cannot be written: refused before the solve
    ("out_folder", ["invert", "{model}", "--target", "0,0", "--box", "0", "1", "--out", "{dir}/folder"], ["--out", "folder", "is a folder"]),
    ("out_missing_folder", ["invert", "{model}", "--target", "0,0", "--box", "0", "1", "--out", "{dir}/nodir/c.json"], ["--out", "nodir", "does not exist"]),
    ("out_under_a_file", ["invert", "{model}", "--target", "0,0", "--box", "0", "1", "--out", "{dir}/a_file/c.json"], ["--out", "a_file"]),
    ("check_out_folder", ["check", "{inst_onnx}", "{inst_vnnlib}", "--out", "{dir}/folder"], ["--out", "is a folder"]),
    ("check_out_missing_folder", ["check", "{inst_onnx}", "{inst_vnnlib}", "--out", "{dir}/nodir/r.json"], ["--out", "nodir"]),
    # a device torch does not see (none on a CPU machine; not 8 on any we test on)
    ("check_device_missing", ["check", "{inst_onnx}", "{inst_vnnlib}", "--device", "cuda:7"], ["'cuda:7'", "CUDA device"]),
    ("check_device_word", ["check", "{inst_onnx}", "{inst_vnnlib}", "--device", "gpu"], ["'gpu'", "not a torch device"]),
    # --start, --target, --box values
    ("start_wrong_length", ["invert", "{model}", "--target", "0,0", "--box", "0", "1", "--start", "1,2"], ["--start", "'1,2'", "2 entries", "3"]),
    ("start_nan", ["invert", "{model}", "--target", "0,0", "--box", "0", "1", "--start", "1,nan,0"], ["--start", "finite"]),
    ("target_empty_object", ["invert", "{model}", "--target", "{dir}/empty.json", "--box", "0", "1"], ["--target", "empty.json", '"target"']),
    ("target_dict_of_lists", ["invert", "{model}", "--target", "{dir}/dict.json", "--box", "0", "1"], ["--target", "dict.json", '"target"', "plain JSON list"]),
    ("target_strings", ["invert", "{model}", "--target", "{dir}/strings.json", "--box", "0", "1"], ["--target", "strings.json", "list of numbers"]),
    ("target_missing_file", ["invert", "{model}", "--target", "{dir}/nope.json", "--box", "0", "1"], ["--target", "nope.json", "no such file"]),
    ("target_folder", ["invert", "{model}", "--target", "{dir}/folder", "--box", "0", "1"], ["--target", "folder", "is a folder"]),
    ("target_words", ["invert", "{model}", "--target", "a,b", "--box", "0", "1"], ["--target", "'a,b'"]),
    ("target_inf", ["invert", "{model}", "--target", "inf,0", "--box", "0", "1"], ["--target", "finite"]),
    ("target_wrong_length", ["invert", "{model}", "--target", "1,2,3", "--box", "0", "1"], ["target", "3 entries"]),
    ("box_words", ["invert", "{model}", "--target", "0,0", "--box", "a", "1"], ["--box", "'a'"]),
    ("box_empty", ["invert", "{model}", "--target", "0,0", "--box", "1", "0"], ["box", "empty"]),
    ("box_negative_empty", ["invert", "{model}", "--target", "0,0", "--box", "-1e-3", "-2e-3"], ["box", "empty"]),
    ("box_eq_form_empty", ["invert", "{model}", "--target", "0,0", "--box=-1e-3,-2e-3"], ["box", "empty"]),
    # argparse's own errors, in netopt's one-line format
    ("norm_3", ["invert", "{model}", "--target", "0,0", "--norm", "3"], ["--norm", "1, 2 or inf", "'3'"]),
    ("time_limit_word", ["invert", "{model}", "--target", "0,0", "--time-limit", "abc"], ["--time-limit", "'abc'"]),
    ("time_limit_negative", ["invert", "{model}", "--target", "0,0", "--time-limit", "-5"], ["--time-limit", "'-5'"]),
    ("time_limit_nan", ["invert", "{model}", "--target", "0,0", "--time-limit", "nan"], ["--time-limit", "'nan'"]),
    ("gap_negative", ["invert", "{model}", "--target", "0,0", "--gap", "-1e-3"], ["--gap", "'-1e-3'"]),
    ("threads_zero", ["invert", "{model}", "--target", "0,0", "--threads", "0"], ["--threads", "'0'"]),
    ("check_time_limit_word", ["check", "{inst_onnx}", "{inst_vnnlib}", "--time-limit", "x"], ["--time-limit", "'x'"]),
    ("unknown_option", ["invert", "{model}", "--nope"], ["--nope"]),
    # folders where a file is expected
    ("instance_folder", ["invert", "{dir}/folder.json"], ["folder.json", "is a folder"]),
    ("model_folder", ["invert", "{dir}/folder", "--target", "0,0"], ["folder", "is a folder"]),
    ("check_property_folder", ["check", "{inst_onnx}", "{dir}/folder"], ["folder", "is a folder"]),
    ("verify_certificate_folder", ["verify", "{dir}/folder", "{model}"], ["folder", "is a folder"]),
    ("verify_model_folder", ["verify", "{inst}", "{dir}/folder"], ["folder", "is a folder"]),
    ("gen_sat3_folder", ["gen", "sat3", "{dir}/folder", "--out", "{dir}/gen_out"], ["folder", "is a folder"]),
    ("bench_folder", ["bench", "{dir}/folder"], ["folder", "is a folder"]),
    ("info_folder", ["info", "{dir}/folder"], ["folder", "is a folder"]),
    ("info_input_shape_zero", ["info", "{model}", "--input-shape", "x=0"], ["--input-shape", "'x=0'", "positive"]),
    # netopt gen's numbers
    ("gen_mlp_box_reversed", ["gen", "mlp", "--box", "1", "-1", "--out", "{dir}/gen_out"], ["--box", "LO must be below HI"]),
    ("gen_mlp_box_nan", ["gen", "mlp", "--box", "nan", "1", "--out", "{dir}/gen_out"], ["--box", "'nan'"]),
    ("gen_mlp_region_tol", ["gen", "mlp", "--region-tol", "-1", "--out", "{dir}/gen_out"], ["--region-tol", "'-1'"]),
    ("gen_mlp_widths_zero", ["gen", "mlp", "--widths", "3,0,2", "--out", "{dir}/gen_out"], ["--widths", "'3,0,2'"]),
    ("gen_mlp_norm", ["gen", "mlp", "--norm", "3", "--out", "{dir}/gen_out"], ["--norm", "'3'"]),
    ("gen_seed_negative", ["gen", "mlp", "--seed", "-1", "--out", "{dir}/gen_out"], ["--seed", "'-1'"]),
    ("bench_workers_zero", ["bench", "{dir}/none.toml", "--workers", "0"], ["--workers", "'0'"]),
    ("bench_progress_nan", ["bench", "{dir}/none.toml", "--progress-every", "nan"], ["--progress-every", "'nan'"]),
    ("report_tol_negative", ["report", "{dir}/none.sqlite", "--objective-tol", "-1"], ["--objective-tol", "'-1'"]),
    ("report_xtol_word", ["report", "{dir}/none.sqlite", "--x-star-tol", "abc"], ["--x-star-tol", "'abc'"]),
    ("gen_expansive_noise", ["gen", "expansive", "--noise", "-0.1", "--out", "{dir}/gen_out"], ["--noise", "'-0.1'"]),
    ("gen_sat3_vars_zero", ["gen", "sat3", "--vars", "0", "--out", "{dir}/gen_out"], ["--vars", "'0'"]),
    ("gen_sat3_ratio", ["gen", "sat3", "--vars", "5", "--ratio", "inf", "--out", "{dir}/gen_out"], ["--ratio", "'inf'"]),
    ("gen_out_is_a_file", ["gen", "mlp", "--widths", "3,4,2", "--out", "{dir}/a_file"], ["a_file"]),
]  # fmt: skip

# (id, mutation of the generated instance JSON, text the error line must contain)
INSTANCE_CASES: list[tuple[str, Callable[[dict], None], list[str]]] = [
    ("attachments_list", _set("attachments", value=["x.cnf"]), ["attachments", "object"]),
    ("attachment_not_a_name", _set("attachments", value={"cnf": 5}), ["attachments['cnf']"]),
    ("domain_null", _set("problem", "domain", value=None), ["problem.domain", "object"]),
    ("domain_without_lo", _set("problem", "domain", "lo", drop=True), ["problem.domain", "'lo'"]),
    ("domain_lo_strings", _set("problem", "domain", "lo", value=["a", "b", "c"]), ["problem.domain.lo"]),
    ("domain_lo_short", _set("problem", "domain", value={"lo": [0.0], "hi": [1.0]}), ["box", "network input"]),
    ("format_version_abc", _set("format_version", value="abc"), ["format_version", "'abc'"]),
    ("format_version_newer", _set("format_version", value=99), ["format version 99", "upgrade"]),
    ("model_dot", _set("model", value="."), ["model", "folder"]),
    ("model_number", _set("model", value=5), ["model", "5"]),
    ("model_missing", _set("model", value="nope.onnx"), ["nope.onnx", "missing"]),
    ("norm_abc", _set("problem", "norm", value="abc"), ["problem.norm", "'abc'"]),
    ("norm_3", _set("problem", "norm", value=3), ["problem.norm", "3"]),
    ("region_tol_abc", _set("region_tol", value="abc"), ["region_tol", "'abc'"]),
    ("region_tol_negative", _set("region_tol", value=-1), ["region_tol", "-1"]),
    ("target_abc", _set("problem", "target", value="abc"), ["problem.target", "'abc'"]),
    ("target_wrong_length", _set("problem", "target", value=[1.0]), ["target", "1 entries"]),
    ("problem_list", _set("problem", value=[1]), ["Inversion"]),
    ("ground_truth_list", _set("ground_truth", value=[1]), ["ground_truth", "object"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "needles"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_bad_argument(files, capsys, argv: list[str], needles: list[str]) -> None:
    names = {k: str(v) for k, v in files.items()}
    rc, out, err = run([a.format(**names) for a in argv], capsys)
    assert_one_error(rc, err, *needles)
    assert out == "" or "objective" not in out  # refused before the solve


@pytest.mark.parametrize(
    ("mutate", "needles"), [c[1:] for c in INSTANCE_CASES], ids=[c[0] for c in INSTANCE_CASES]
)
def test_cli_bad_instance(files, capsys, mutate, needles: list[str]) -> None:
    p = bad_instance(files, "x", mutate)
    rc, _, err = run(["invert", p, *QUICK], capsys)
    assert_one_error(rc, err, Path(p).name, *needles)


def test_instance_still_loads(files, capsys) -> None:
    """The checks refuse nothing netopt gen writes."""
    rc, out, err = run(["invert", str(files["inst"]), *QUICK], capsys)
    assert rc == 0, err
    assert "objective" in out


# ----------------------------------------------------------------------------- numbers with a minus


@pytest.mark.parametrize(
    "box",
    [["--box", "-1e-3", "1"], ["--box=-1e-3,1"], ["--box", "-.001", "1"]],
    ids=["two_values", "eq_form", "leading_dot"],
)
def test_negative_values_work_as_typed(files, capsys, box: list[str]) -> None:
    argv = ["invert", str(files["model"]), "--target", "-0.5,0.2", *box, "--json", *QUICK]
    rc, out, err = run(argv, capsys)
    assert rc == 0, err
    ev = json.loads(out)["evidence"]
    assert ev["problem"]["target"] == [-0.5, 0.2]
    assert ev["problem"]["domain"]["lo"] == [-1e-3] * 3
    assert ev["problem"]["domain"]["hi"] == [1.0] * 3


def test_negative_target_eq_form_and_start(files, capsys) -> None:
    argv = [
        "invert",
        str(files["model"]),
        "--target=-0.5,0.2",
        "--box",
        "-1",
        "1",
        "--start",
        "-0.5,-0.25,0",
        "--json",
        *QUICK,
    ]
    rc, out, err = run(argv, capsys)
    assert rc == 0, err
    assert json.loads(out)["evidence"]["problem"]["target"] == [-0.5, 0.2]


def test_target_json_object_with_its_key(files, capsys) -> None:
    """``{"target": [...], "note": ...}`` (examples/models/digits_target.json's form) is read."""
    argv = ["invert", str(files["model"]), "--target", str(files["dir"] / "target.json")]
    rc, out, err = run([*argv, "--box", "0", "1", "--json", *QUICK], capsys)
    assert rc == 0, err
    assert json.loads(out)["evidence"]["problem"]["target"] == [-0.5, 0.2]


def test_gen_mlp_negative_box(files, capsys) -> None:
    out_dir = files["dir"] / "gen_neg"
    rc, _, err = run(
        ["gen", "mlp", "--widths", "3,4,2", "--box=-2,-1", "--out", str(out_dir)], capsys
    )
    assert rc == 0, err
    (p,) = out_dir.glob("*.json")
    assert json.loads(p.read_text())["problem"]["domain"]["lo"] == [-2.0] * 3


# ----------------------------------------------------------------------------- --out after the solve

DEV_FULL = Path("/dev/full")


@pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full to fail a write")
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_invert_out_fails_after_solve_result_still_printed(files, capsys, as_json: bool) -> None:
    """/dev/full passes every check before the solve and fails the write (ENOSPC) after it."""
    argv = [
        "invert",
        str(files["model"]),
        "--target",
        "0,0",
        "--box",
        "0",
        "1",
        "--out",
        str(DEV_FULL),
    ]
    rc, out, err = run([*argv, *QUICK, *(["--json"] if as_json else [])], capsys)
    assert_one_error(rc, err, "--out", str(DEV_FULL), "cannot write")
    if as_json:
        assert json.loads(out)["evidence"]["objective"] is not None
    else:
        assert "objective" in out and "claim" in out and "certificate written" not in out


@pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full to fail a write")
def test_check_out_fails_after_solve_verdict_still_printed(files, capsys) -> None:
    argv = ["check", str(files["inst_onnx"]), str(files["inst_vnnlib"]), "--out", str(DEV_FULL)]
    rc, out, err = run([*argv, "--time-limit", "20"], capsys)
    assert_one_error(rc, err, "--out", str(DEV_FULL))
    assert out.split()[0] in ("sat", "unsat", "unknown", "timeout")


def test_invert_out_removed_during_solve(files, capsys, monkeypatch) -> None:
    """The folder of --out vanishes while the solver runs: the result is printed, then the error."""
    out_dir = files["dir"] / "vanishing"
    out_dir.mkdir()
    real_solve = Inversion.solve

    def solve_then_remove(self, *a, **kw):
        res = real_solve(self, *a, **kw)
        out_dir.rmdir()
        return res

    monkeypatch.setattr(Inversion, "solve", solve_then_remove)
    argv = ["invert", str(files["model"]), "--target", "0,0", "--box", "0", "1"]
    rc, out, err = run([*argv, "--out", str(out_dir / "c.json"), *QUICK], capsys)
    assert_one_error(rc, err, "--out", "c.json")
    assert "objective" in out


def test_out_check_leaves_no_file_behind(files, capsys) -> None:
    """The writability test creates and removes the file; a refused run leaves nothing."""
    target = files["dir"] / "left.json"
    rc, _, err = run(
        ["invert", str(files["model"]), "--target", "0,0", "--out", str(target), *QUICK], capsys
    )
    assert rc == 2 and "box" in err  # fails after the --out check, before the solve
    assert not target.exists()


# ----------------------------------------------------------------------------- the API table


@pytest.fixture(scope="module")
def net(files):
    return netopt.load(files["model"])


API_CASES: list[tuple[str, Callable[[Any], Any], str]] = [
    ("target_string", lambda n: Inversion(n, "ab", box=(0, 1)), "target must be numbers.*'ab'"),
    ("target_objects", lambda n: Inversion(n, [object(), 1], box=(0, 1)), "target is not numeric"),
    ("target_complex", lambda n: Inversion(n, [1j, 0], box=(0, 1)), "target is not numeric"),
    ("target_huge_int", lambda n: Inversion(n, [10**400, 0], box=(0, 1)), "target is not numeric"),
    ("box_scalar", lambda n: Inversion(n, [0, 0], box=1.0), r"box must be a pair \(lo, hi\), got 1.0"),
    ("box_string", lambda n: Inversion(n, [0, 0], box="ab"), "box must be a pair"),
    ("box_three", lambda n: Inversion(n, [0, 0], box=(0, 1, 2)), "box must be"),
    ("box_lo_plus_inf", lambda n: Inversion(n, [0, 0], box=(np.inf, np.inf)), r"box lo must be below \+inf"),
    ("weights_string", lambda n: Inversion(n, [0, 0], weights="ab", box=(0, 1)), "weights must be numbers"),
    ("norm_3", lambda n: Inversion(n, [0, 0], norm=3, box=(0, 1)), "norm must be 1, 2 or inf"),
    ("eps_string", lambda n: Inversion(n, [0, 0], center=0, eps="a"), "eps must be a number"),
    ("integer_string", lambda n: Inversion(n, [0, 0], box=(0, 1), integer="a"), "integer must be a boolean mask"),
    ("A_string", lambda n: Inversion(n, [0, 0], box=(0, 1), A="a", b=1), "A must be numbers"),
    ("domain_string", lambda n: Inversion(n, [0, 0], domain="a"), "domain must be a netopt Domain"),
    ("net_path", lambda n: Inversion("tiny.onnx", [0, 0], box=(0, 1)), "net must be a netopt Network"),
    ("constant_string", lambda n: netopt.OutputObjective(n, [1, 0], constant="a", box=(0, 1)), "constant must be a number"),
    ("tol_string", lambda n: netopt.Feasibility(n, [0, 0], tol="a", box=(0, 1)), "tol must be a number"),
    ("C_string", lambda n: netopt.Feasibility(n, C="a", d=[1], box=(0, 1)), "C must be numbers"),
    ("l2_string", lambda n: netopt.CrossEntropy(n, 0, l2="a", box=(0, 1)), "l2 must be a number"),
    ("solve_time_limit_string", lambda n: Inversion(n, [0, 0], box=(0, 1)).solve(time_limit="10"), "time_limit"),
    ("solve_start_wrong_length", lambda n: Inversion(n, [0, 0], box=(0, 1)).solve(start=np.zeros(2), time_limit=5), "start has 2 entries.*has 3"),
    ("solve_start_nan", lambda n: Inversion(n, [0, 0], box=(0, 1)).solve(start=[0, np.nan, 0], time_limit=5), "start contains NaN"),
    ("solve_start_first_order", lambda n: Inversion(n, [0, 0], box=(0, 1)).solve("adam", start=np.zeros(4)), "start has 4 entries"),
    ("solve_start_ragged_list", lambda n: Inversion(n, [0, 0], box=(0, 1)).solve(start=[np.zeros(3), np.zeros(2)], time_limit=5), r"start\[1\] has 2 entries"),
    ("solve_start_batch_wrong_width", lambda n: Inversion(n, [0, 0], box=(0, 1)).solve(start=np.zeros((2, 4)), time_limit=5), r"start has 8 entries \(shape \(2, 4\)\)"),
    ("load_passes_int", lambda n: netopt.load(n.onnx_bytes, passes=[42]), r"passes\[0\] = 42 is not callable"),
    ("load_passes_string", lambda n: netopt.load(n.onnx_bytes, passes="x"), "passes must be a sequence"),
    ("load_input_shapes_letters", lambda n: netopt.load(n.onnx_bytes, input_shapes={"x": ("a",)}), r"input_shapes\['x'\] = \('a',\): expected a tuple of positive integers"),
    ("load_input_shapes_list", lambda n: netopt.load(n.onnx_bytes, input_shapes=[3]), "input_shapes must be a mapping"),
    ("load_input_shapes_zero", lambda n: netopt.load(n.onnx_bytes, input_shapes={"x": (0,)}), "positive integers"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "match"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_api_bad_argument(net, call: Callable[[Any], Any], match: str) -> None:
    with pytest.raises(netopt.NetoptError, match=match):
        call(net)


def test_api_good_arguments_still_work(net) -> None:
    """The checks refuse nothing valid: arrays, tuples, numpy scalars, an ndarray box."""
    p = Inversion(net, np.array([0.0, 0.0]), norm="inf", box=np.array([[0.0] * 3, [1.0] * 3]))
    r = p.solve("milp", time_limit=5, start=[0.5, 0.5, 0.5])
    assert r.objective is not None
    # a batch of starts, which the exact MILP tries in turn
    assert p.solve("milp", time_limit=5, start=np.full((2, 3), 0.25)).objective is not None
    assert netopt.load(net.onnx_bytes, passes=(), input_shapes={"x": (3,)}).input_shape == (3,)
    netopt.Feasibility(net, [0, 0], tol=np.float32(0.1), box=(0, 1))
    netopt.CrossEntropy(net, np.int64(1), l2=1, box=(-1, 1))


def test_out_check_does_not_touch_existing_file(files, capsys) -> None:
    """An existing --out file is opened for appending to test it: unchanged if the run fails."""
    target = files["dir"] / "existing.json"
    target.write_text("keep me")
    before = os.stat(target).st_mtime_ns
    rc, _, _ = run(
        ["invert", str(files["model"]), "--target", "0,0", "--out", str(target), *QUICK], capsys
    )
    assert rc == 2  # no --box: refused after the --out check
    assert target.read_text() == "keep me" and os.stat(target).st_mtime_ns == before
