"""VNN-LIB 2.0 through the reference bindings: the same property, and the same verdict, as 1.0."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import onnx
import pytest
from helpers.nets import NETS, make_model
from onnx import helper

import netopt
from netopt.cli import main
from netopt.errors import InputError
from netopt.vnnlib import load_vnnlib
from netopt.vnnlib.check import check
from netopt.vnnlib.reader import is_version_2

try:  # (tests/ is on sys.path: without the package, tests/vnnlib imports as an empty namespace)
    import vnnlib as bindings

    HAVE_BINDINGS = hasattr(bindings, "parse_query_string")
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_BINDINGS = False

needs_bindings = pytest.mark.skipif(
    not HAVE_BINDINGS, reason="the VNN-LIB 2.0 bindings are not installed (netopt[vnnlib])"
)

V2_HEAD = """; a property of a 2-input, 2-output network
(vnnlib-version <2.0>)
(declare-network N
    (declare-input X float32 [1, 2])
    (declare-output Y float32 [1, 2]))
"""
V1_HEAD = """; the same property in VNN-LIB 1.0
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
"""

# (2.0 body, 1.0 body): the same region written in each version
PAIRS = {
    "box and output": (
        "(assert (and (>= X[0,0] -1.0) (<= X[0,0] 1.0) (>= X[0,1] 0.0) (<= X[0,1] 0.5)))\n"
        "(assert (>= Y[0,0] 100.0))",
        "(assert (and (>= X_0 -1.0) (<= X_0 1.0) (>= X_1 0.0) (<= X_1 0.5)))\n"
        "(assert (>= Y_0 100.0))",
    ),
    "or of ands, linear input row": (
        "(assert (and (>= X[0,0] -1.0) (<= X[0,0] 1.0) (>= X[0,1] -1.0) (<= X[0,1] 1.0)))\n"
        "(assert (or (<= Y[0,0] Y[0,1]) (and (>= Y[0,0] 3.0) (<= (+ X[0,0] X[0,1]) 1.0))))",
        "(assert (and (>= X_0 -1.0) (<= X_0 1.0) (>= X_1 -1.0) (<= X_1 1.0)))\n"
        "(assert (or (<= Y_0 Y_1) (and (>= Y_0 3.0) (<= (+ X_0 X_1) 1.0))))",
    ),
    "and of ors (distribution order), strict, equality, scaling": (
        "(assert (or (<= X[0,0] 0.0) (>= X[0,0] 0.5)))\n"
        "(assert (or (< (* 2.0 Y[0,1]) 4.0) (== Y[0,0] 0.5) (> (- Y[0,0] Y[0,1]) 1.0)))",
        "(assert (or (<= X_0 0.0) (>= X_0 0.5)))\n"
        "(assert (or (< (* 2.0 Y_1) 4.0) (= Y_0 0.5) (> (- Y_0 Y_1) 1.0)))",
    ),
}


def same(a, b) -> bool:
    return (a.n_inputs, a.n_outputs) == (b.n_inputs, b.n_outputs) and a.disjuncts == b.disjuncts


@needs_bindings
@pytest.mark.parametrize("name", list(PAIRS))
def test_v2_text_reads_to_the_same_property_as_v1(name):
    v2, v1 = PAIRS[name]
    p2 = load_vnnlib(V2_HEAD + v2)
    p1 = load_vnnlib(V1_HEAD + v1)
    assert len(p1.disjuncts) >= 1 and same(p2, p1)
    # with the network's sizes given too, and as a file
    assert same(load_vnnlib(V2_HEAD + v2, n_inputs=2, n_outputs=2), p1)


@needs_bindings
@pytest.mark.parametrize("name", list(PAIRS))
def test_files_written_by_the_bindings_read_the_same(tmp_path, name):
    """The bindings' own rendering of the parsed query, as .vnnlib and .vnnlib.gz files."""
    v2, v1 = PAIRS[name]
    text = str(bindings.parse_query_string(V2_HEAD + v2))
    assert text.lstrip().startswith("(vnnlib-version")
    f = tmp_path / "prop.vnnlib"
    f.write_text(text)
    g = tmp_path / "prop.vnnlib.gz"
    g.write_bytes(gzip.compress(text.encode()))
    p1 = load_vnnlib(V1_HEAD + v1)
    for path in (f, g, str(f)):
        p = load_vnnlib(path)
        assert same(p, p1) and p.path == str(path)


@needs_bindings
def test_row_major_flattening_of_a_matrix_input():
    head = (
        "(vnnlib-version <2.0>)\n(declare-network N (declare-input X float32 [2, 3])"
        " (declare-output Y float32 [1]))\n"
    )
    p = load_vnnlib(head + "(assert (<= X[1,2] 0.25))\n(assert (>= (- X[0,1] X[1,0]) 1.0))")
    dj = p.disjuncts[0]
    assert p.n_inputs == 6 and dj.hi[5] == 0.25 and np.isinf(dj.hi[:5]).all()
    assert dj.A_in.tolist() == [[0.0, -1.0, 0.0, 1.0, 0.0, 0.0]] and dj.b_in.tolist() == [-1.0]


@needs_bindings
@pytest.mark.parametrize(
    "body,match",
    [
        ("(assert (<= (* X[0,0] X[0,1]) 1.0))", "not a linear term"),
        ("(assert (<= (+ X[0,0] Y[0,0]) 1.0))", "mixes input"),
        ("(assert (!= X[0,0] 1.0))", "unsupported comparison !="),
        ("(assert (<= X[0,5] 1.0))", "not a valid VNN-LIB 2.0 file.*line 6"),
        ("(assert (<= X[0,0] 1.0)", "not a valid VNN-LIB 2.0 file"),
    ],
)
def test_v2_errors_are_input_errors_naming_the_source(body, match):
    with pytest.raises(InputError, match=match) as e:
        load_vnnlib(V2_HEAD + body)
    assert str(e.value).startswith("<vnnlib text>")


@needs_bindings
def test_v2_refuses_several_networks_and_respects_the_cap():
    two = (
        "(vnnlib-version <2.0>)\n"
        "(declare-network A (declare-input X float32 [1]) (declare-output Y float32 [1]))\n"
        "(declare-network B (declare-input U float32 [1]) (declare-output V float32 [1]))\n"
        "(assert (<= X[0] 1.0))\n(assert (<= U[0] 1.0))\n"
    )
    with pytest.raises(InputError, match="2 networks"):
        load_vnnlib(two)
    ors = "(assert (or (<= X[0,0] 0.0) (>= X[0,0] 1.0)))\n" * 3
    with pytest.raises(InputError, match="max_disjuncts=4"):
        load_vnnlib(V2_HEAD + ors, max_disjuncts=4)
    assert len(load_vnnlib(V2_HEAD + ors, max_disjuncts=8).disjuncts) == 2


def test_missing_bindings_say_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vnnlib", None)  # import vnnlib raises ImportError
    with pytest.raises(InputError, match=r'pip install "netopt\[vnnlib\]"'):
        load_vnnlib(V2_HEAD + "(assert (<= X[0,0] 1.0))")


def test_the_1_0_reader_takes_every_file_it_took_before():
    """Only a text whose first command is (vnnlib-version ...) goes to the 2.0 reader, and the
    1.0 reader refused every such text before (unsupported command): nothing it accepted moved."""
    files = sorted(NETS.glob("*/*.vnnlib")) if NETS.is_dir() else []
    for f in files:
        assert not is_version_2(f.read_text())
    for text in (
        V1_HEAD + "(assert (<= X_0 1))",
        "; (vnnlib-version <2.0>) in a comment\n" + V1_HEAD + "(assert (<= X_0 1))",
        '(set-info :source "vnnlib-version")\n' + V1_HEAD + "(assert (<= X_0 1))",
        "\n\n  ;\n" + V1_HEAD,
    ):
        assert not is_version_2(text)
        load_vnnlib(text)
    assert is_version_2("; header\n\n  ( vnnlib-version <2.0>)\n")


def _net(tmp_path) -> str:
    """y = W x + b, 2 inputs and 2 outputs."""
    W = np.array([[1.0, 2.0], [-1.0, 0.5]], dtype=np.float32)
    b = np.array([0.5, -0.25], dtype=np.float32)
    m = make_model(
        [
            helper.make_node("MatMul", ["x", "Wt"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["y"]),
        ],
        [1, 2],
        [1, 2],
        {"Wt": W.T.copy(), "b": b},
    )
    path = tmp_path / "affine.onnx"
    onnx.save(m, path)
    return str(path)


@needs_bindings
@pytest.mark.parametrize(
    "v2,v1,verdict",
    [
        # unsat: y_0 = x_0 + 2 x_1 + 0.5 <= 3.5 on the box
        (
            "(assert (and (>= X[0,0] -1.0) (<= X[0,0] 1.0) (>= X[0,1] -1.0) (<= X[0,1] 1.0)))\n"
            "(assert (>= Y[0,0] 100.0))",
            "(assert (and (>= X_0 -1.0) (<= X_0 1.0) (>= X_1 -1.0) (<= X_1 1.0)))\n"
            "(assert (>= Y_0 100.0))",
            "unsat",
        ),
        # sat in the second disjunct only
        (
            "(assert (and (>= X[0,0] -1.0) (<= X[0,0] 1.0) (>= X[0,1] -1.0) (<= X[0,1] 1.0)))\n"
            "(assert (or (>= Y[0,0] 100.0) (>= Y[0,0] 3.0)))",
            "(assert (and (>= X_0 -1.0) (<= X_0 1.0) (>= X_1 -1.0) (<= X_1 1.0)))\n"
            "(assert (or (>= Y_0 100.0) (>= Y_0 3.0)))",
            "sat",
        ),
    ],
)
def test_check_decides_v2_as_v1(tmp_path, capsys, v2, v1, verdict):
    model = _net(tmp_path)
    f2, f1 = tmp_path / "p2.vnnlib", tmp_path / "p1.vnnlib"
    f2.write_text(V2_HEAD + v2)
    f1.write_text(V1_HEAD + v1)
    net = netopt.load(model)
    r2, r1 = check(net, f2, time_limit=30), check(net, f1, time_limit=30)
    assert r2.verdict == r1.verdict == verdict
    assert r2.disjunct_status == r1.disjunct_status
    if verdict == "sat":
        assert r2.confirmed and np.array_equal(r2.x, r1.x)
    codes = [main(["check", model, str(f)]) for f in (f2, f1)]
    out = capsys.readouterr().out.splitlines()
    assert codes[0] == codes[1] == {"sat": 10, "unsat": 20}[verdict]
    assert [line for line in out if not line.strip().startswith("disjunct")][0] == verdict
