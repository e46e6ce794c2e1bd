"""The VNN-LIB reader: the shared VNN-COMP properties, synthetic grammar cases and every error."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import logging
from pathlib import Path

import numpy as np
import pytest
from helpers.nets import NETS

from netopt.errors import InputError, NetoptError
from netopt.vnnlib import Disjunct, VnnlibProperty, load_vnnlib

VNNLIB_FILES = sorted(NETS.glob("*/*.vnnlib")) if NETS.is_dir() else []

# the flattened sizes of the networks the shared properties belong to
SIZES = {"acasxu": (5, 5), "mnistfc": (784, 10), "conv": (784, 10)}
TEST_SIZES = {"test_prop.vnnlib": (5, 5)}  # the other test/ properties are 1 -> 1


def vnn(body: str, n_x: int = 1, n_y: int = 1) -> str:
    """Declarations of X_0.., Y_0.. on lines 1..n_x+n_y, then ``body`` from the next line on."""
    decl = [f"(declare-const X_{i} Real)" for i in range(n_x)]
    decl += [f"(declare-const Y_{j} Real)" for j in range(n_y)]
    return "\n".join(decl) + "\n" + body


def assert_same(p: VnnlibProperty, q: VnnlibProperty) -> None:
    assert (p.n_inputs, p.n_outputs, len(p.disjuncts)) == (
        q.n_inputs,
        q.n_outputs,
        len(q.disjuncts),
    )
    for a, b in zip(p.disjuncts, q.disjuncts, strict=True):
        for f in dataclasses.fields(Disjunct):
            np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name))


def shared(rel: str) -> Path:
    p = NETS / rel
    if not p.is_file():
        pytest.skip(f"{p} is absent (the shared networks folder sits beside the checkout)")
    return p


@functools.cache
def _load_path(path: Path) -> VnnlibProperty:
    return load_vnnlib(path)


def load_shared(rel: str) -> VnnlibProperty:
    """A shared property, parsed once per session (the result is immutable)."""
    return _load_path(shared(rel))


# ---------------------------------------------------------------------------- shared files
@pytest.mark.skipif(not VNNLIB_FILES, reason=f"the shared networks folder {NETS} is absent")
@pytest.mark.parametrize("path", VNNLIB_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shared_property_parses(path: Path) -> None:
    n_in, n_out = SIZES.get(path.parent.name) or TEST_SIZES.get(path.name, (1, 1))
    prop = _load_path(path)
    assert (prop.n_inputs, prop.n_outputs) == (n_in, n_out)
    assert prop.path == str(path)
    assert prop.disjuncts
    # the same with the sizes given, from the text itself
    again = load_vnnlib(path.read_text(), n_in, n_out)
    assert again.path is None
    assert again == dataclasses.replace(prop, path=None)
    for dj in prop.disjuncts:
        # every shared property is an input box (bounded everywhere) plus output constraints
        assert dj.lo.shape == dj.hi.shape == (n_in,)
        assert np.all(np.isfinite(dj.lo)) and np.all(np.isfinite(dj.hi))
        assert np.all(dj.lo <= dj.hi)
        assert dj.A_in.shape == (0, n_in) and dj.b_in.shape == (0,)
        assert dj.C.shape[1] == n_out and dj.C.shape[0] == dj.d.shape[0] >= 1


def test_acasxu_prop_1() -> None:
    prop = load_vnnlib(shared("acasxu/prop_1.vnnlib"), 5, 5)
    assert prop.n_inputs == 5 and len(prop.disjuncts) == 1
    (dj,) = prop.disjuncts
    np.testing.assert_array_equal(dj.lo, [0.6, -0.5, -0.5, 0.45, -0.5])
    np.testing.assert_array_equal(dj.hi, [0.679857769, 0.5, 0.5, 0.5, -0.45])
    # (>= Y_0 3.991125645861615) reads -Y_0 <= -3.991125645861615
    np.testing.assert_array_equal(dj.C, [[-1.0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(dj.d, [-3.991125645861615])
    lo, hi = prop.input_box()
    np.testing.assert_array_equal(lo, dj.lo)
    np.testing.assert_array_equal(hi, dj.hi)
    x = (dj.lo + dj.hi) / 2
    assert prop.violated_by(x, [4.0, 0, 0, 0, 0]) == 0
    assert prop.violated_by(x, [3.99, 0, 0, 0, 0]) is None
    assert prop.violated_by(x + [1, 0, 0, 0, 0], [4.0, 0, 0, 0, 0]) is None
    # the shape does not matter, only the flattened size: ACAS Xu's input is [1, 1, 1, 5]
    assert prop.violated_by(x.reshape(1, 1, 1, 5), np.array([[4.0, 0, 0, 0, 0]])) == 0


def test_acasxu_prop_2_coc_maximal() -> None:
    (dj,) = load_vnnlib(shared("acasxu/prop_2.vnnlib")).disjuncts
    expected = np.zeros((4, 5))
    expected[:, 0] = -1.0
    expected[np.arange(4), np.arange(1, 5)] = 1.0  # Y_j - Y_0 <= 0
    np.testing.assert_array_equal(dj.C, expected)
    np.testing.assert_array_equal(dj.d, np.zeros(4))


@pytest.mark.parametrize(
    "rel", ["acasxu/prop_3.vnnlib", "acasxu/prop_4.vnnlib", "test/test_prop.vnnlib"]
)
def test_acasxu_prop_3_4_coc_minimal(rel: str) -> None:
    (dj,) = load_vnnlib(shared(rel), 5, 5).disjuncts
    expected = np.zeros((4, 5))
    expected[:, 0] = 1.0
    expected[np.arange(4), np.arange(1, 5)] = -1.0  # Y_0 - Y_j <= 0, j = 1..4
    np.testing.assert_array_equal(dj.C, expected)
    np.testing.assert_array_equal(dj.d, np.zeros(4))
    assert dj.lo[0] == (-0.303531156 if "acasxu" in rel else -0.30353115613746867)


def test_acasxu_prop_4_degenerate_box_is_kept() -> None:
    # X_2 in [0, 0]: a point, not an empty box
    (dj,) = load_vnnlib(shared("acasxu/prop_4.vnnlib")).disjuncts
    assert dj.lo[2] == dj.hi[2] == 0.0
    assert not np.signbit(dj.lo[2])  # (>= X_2 0.0) gives 0.0, not -0.0


@pytest.mark.parametrize(
    "rel, eps, label",
    [
        ("mnistfc/prop_0_0.03.vnnlib", 0.029999999329447746, 8),
        ("mnistfc/prop_0_0.05.vnnlib", 0.05000000074505806, 8),
        ("conv/avgpool_prop_0_0.02.vnnlib", 0.019999999552965164, 2),
    ],
)
def test_mnist_properties_one_disjunct_per_other_class(rel: str, eps: float, label: int) -> None:
    # the input box (an l_inf ball of radius eps around an image, clipped to [0, 1]) is asserted
    # at top level, then one (or (and (>= Y_i Y_label)) ...) over the nine other classes: the
    # DNF repeats the box in each of the 9 disjuncts
    prop = load_shared(rel)
    assert (prop.n_inputs, prop.n_outputs) == (784, 10)
    others = [i for i in range(10) if i != label]
    assert len(prop.disjuncts) == 9
    lo, hi = prop.input_box()
    assert (lo[0], hi[0]) == (0.0, eps)  # a background pixel: [0, 0 + eps]
    assert lo.min() == 0.0 and hi.max() == 1.0
    assert np.all(hi - lo <= 2 * eps + 1e-7)  # float32 images: centres are not exact
    interior = (lo > 0) & (hi < 1)
    np.testing.assert_allclose(hi[interior] - lo[interior], 2 * eps, atol=1e-7)
    for i, dj in zip(others, prop.disjuncts, strict=True):
        np.testing.assert_array_equal(dj.lo, lo)
        np.testing.assert_array_equal(dj.hi, hi)
        row = np.zeros(10)
        row[label], row[i] = 1.0, -1.0  # Y_i >= Y_label  <=>  Y_label - Y_i <= 0
        np.testing.assert_array_equal(dj.C, [row])
        np.testing.assert_array_equal(dj.d, [0.0])
    x = ((lo + hi) / 2).reshape(1, 784, 1)  # mnist-net_256x2's input shape
    y = np.zeros(10)
    y[label] = 1.0
    assert prop.violated_by(x, y) is None  # the label wins: robust here
    y[others[3]] = 1.5
    assert prop.violated_by(x, y) == 3


@pytest.mark.parametrize("name", ["test_small.vnnlib", "test_tiny.vnnlib"])
def test_test_small_bounds_inside_or(name: str) -> None:
    prop = load_vnnlib(shared(f"test/{name}"), 1, 1)
    (dj,) = prop.disjuncts
    np.testing.assert_array_equal(dj.lo, [-1.0])
    np.testing.assert_array_equal(dj.hi, [1.0])
    np.testing.assert_array_equal(dj.C, [[-1.0]])
    np.testing.assert_array_equal(dj.d, [-100.0])


def test_test_nano() -> None:
    (dj,) = load_vnnlib(shared("test/test_nano.vnnlib")).disjuncts
    np.testing.assert_array_equal(dj.C, [[1.0]])
    np.testing.assert_array_equal(dj.d, [-1.0])


def test_declared_sizes_must_match_the_network() -> None:
    with pytest.raises(InputError, match=r"784 inputs \(X_0 \.\. X_783\) but n_inputs=5"):
        load_vnnlib(shared("mnistfc/prop_0_0.03.vnnlib"), n_inputs=5)
    with pytest.raises(InputError, match=r"5 outputs \(Y_0 \.\. Y_4\) but n_outputs=11"):
        load_vnnlib(shared("acasxu/prop_1.vnnlib"), 5, n_outputs=11)


# ---------------------------------------------------------------------------- DNF
def test_two_top_level_ors_give_the_product() -> None:
    prop = load_vnnlib(
        vnn(
            "(assert (or (<= Y_0 1) (<= Y_0 2)))\n"
            "(assert (<= X_0 5))\n"
            "(assert (or (>= Y_1 10) (>= Y_1 20) (>= Y_1 30)))\n",
            1,
            2,
        )
    )
    assert len(prop.disjuncts) == 6
    # the first or varies slowest; rows keep the textual order
    got = [(dj.C.tolist(), dj.d.tolist()) for dj in prop.disjuncts]
    expected = [
        ([[1.0, 0.0], [0.0, -1.0]], [a, -b]) for a in (1.0, 2.0) for b in (10.0, 20.0, 30.0)
    ]
    assert got == expected
    assert all(dj.hi[0] == 5.0 and dj.lo[0] == -np.inf for dj in prop.disjuncts)


def test_nested_and_or_distribution() -> None:
    # (a or (b and (c or d))) and e  ->  a&e, b&c&e, b&d&e
    prop = load_vnnlib(
        vnn("(assert (and (or (<= Y_0 1) (and (<= Y_0 2) (or (<= Y_0 3) (<= Y_0 4)))) (<= Y_0 5)))")
    )
    assert [dj.d.tolist() for dj in prop.disjuncts] == [[1, 5], [2, 3, 5], [2, 4, 5]]


def test_or_of_input_boxes_and_hull() -> None:
    prop = load_vnnlib(
        vnn(
            "(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))\n"
            "            (and (>= X_0 2) (<= X_0 3) (>= X_1 -1) (<= X_1 0.5))))\n"
            "(assert (<= Y_0 0))",
            2,
        )
    )
    assert len(prop.disjuncts) == 2
    lo, hi = prop.input_box()
    np.testing.assert_array_equal(lo, [0.0, -1.0])
    np.testing.assert_array_equal(hi, [3.0, 1.0])
    assert prop.violated_by([0.5, 0.5], [-1.0]) == 0
    assert prop.violated_by([2.5, -0.5], [-1.0]) == 1
    assert prop.violated_by([1.5, 0.0], [-1.0]) is None  # in the hull, in no box
    assert prop.violated_by([0.5, 0.5], [1.0]) is None


def test_empty_boxes_are_dropped_with_a_debug_message(caplog: pytest.LogCaptureFixture) -> None:
    text = vnn(
        "(assert (or (and (>= X_0 1) (<= X_0 0)) (and (>= X_0 0) (<= X_0 1))))\n(assert (<= Y_0 0))"
    )
    with caplog.at_level(logging.DEBUG, logger="netopt"):
        prop = load_vnnlib(text)
    assert len(prop.disjuncts) == 1 and prop.disjuncts[0].hi[0] == 1.0
    assert any("dropping disjunct 0" in r.getMessage() for r in caplog.records)


def test_empty_region(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="netopt"):
        prop = load_vnnlib(vnn("(assert (or))"))
    assert prop.disjuncts == ()
    assert "holds trivially" in caplog.text
    lo, hi = prop.input_box()
    assert lo[0] == np.inf and hi[0] == -np.inf
    assert prop.violated_by([0.0], [0.0]) is None


def test_no_assert_and_empty_and_are_true() -> None:
    for body in ["", "(assert (and))", "(assert true)", "(assert (<= 1 2))"]:
        (dj,) = load_vnnlib(vnn(body)).disjuncts
        assert dj.lo[0] == -np.inf and dj.hi[0] == np.inf and dj.C.shape == (0, 1)
        assert dj.contains([123.0], [-4e9])
    assert load_vnnlib(vnn("(assert (or (<= 2 1) false))")).disjuncts == ()


def test_cap_on_the_number_of_disjuncts() -> None:
    ors = "\n".join(
        "(assert (or " + " ".join(f"(<= Y_0 {k})" for k in range(10)) + "))" for _ in range(5)
    )
    text = vnn(ors)
    with pytest.raises(InputError, match=r"<vnnlib text>:7: .*100000 disjuncts.*max_disjuncts"):
        load_vnnlib(text)  # the default cap, 10000, is passed at the 5th assert (line 7)
    with pytest.raises(InputError, match=r":4: .*max_disjuncts=50"):
        load_vnnlib(text, max_disjuncts=50)  # 10 * 10 > 50 at the 2nd assert (line 4)
    assert len(load_vnnlib(vnn(ors.split("\n", 2)[0]), max_disjuncts=10).disjuncts) == 10
    with pytest.raises(InputError, match=r":4: .*would have 11 disjuncts"):
        load_vnnlib(vnn("(assert (or\n" + " ".join(["(<= Y_0 1)"] * 11) + "))"), max_disjuncts=10)


# ---------------------------------------------------------------------------- comparisons, terms
def test_strict_inequalities_are_read_as_non_strict() -> None:
    strict = load_vnnlib(vnn("(assert (< X_0 1))\n(assert (> X_0 -1))\n(assert (> Y_0 Y_1))", 1, 2))
    loose = load_vnnlib(
        vnn("(assert (<= X_0 1))\n(assert (>= X_0 -1))\n(assert (>= Y_0 Y_1))", 1, 2)
    )
    assert_same(strict, loose)
    np.testing.assert_array_equal(strict.disjuncts[0].C, [[-1.0, 1.0]])
    assert strict.violated_by([1.0], [2.0, 2.0]) == 0  # on the boundary: the closure


def test_equality_gives_two_inequalities() -> None:
    (dj,) = load_vnnlib(
        vnn("(assert (= X_0 0.5))\n(assert (= (+ X_1 X_2) 1))\n(assert (= Y_0 2))", 3)
    ).disjuncts
    assert dj.lo[0] == dj.hi[0] == 0.5
    np.testing.assert_array_equal(dj.A_in, [[0, 1, 1], [0, -1, -1]])
    np.testing.assert_array_equal(dj.b_in, [1, -1])
    np.testing.assert_array_equal(dj.C, [[1], [-1]])
    np.testing.assert_array_equal(dj.d, [2, -2])


def test_simple_bounds_go_into_the_box_tightest_wins() -> None:
    (dj,) = load_vnnlib(
        vnn(
            "(assert (<= X_0 0.5))\n(assert (<= X_0 0.7))\n(assert (<= -1 X_0))\n"
            "(assert (>= X_0 -2))\n(assert (<= (* 2 X_1) 1))\n(assert (>= (* -2 X_1) 1))\n"
            "(assert (<= X_2 (- 0.5)))\n(assert (>= (/ X_3 4) 0.25))\n(assert (<= (+ X_3 1) 3))\n"
            "(assert (<= (- X_2) 1))",
            4,
        )
    ).disjuncts
    np.testing.assert_array_equal(dj.lo, [-1.0, -np.inf, -1.0, 1.0])
    np.testing.assert_array_equal(dj.hi, [0.5, -0.5, -0.5, 2.0])
    assert dj.A_in.shape == (0, 4) and dj.C.shape == (0, 1)


def test_linear_expressions() -> None:
    (dj,) = load_vnnlib(
        vnn(
            "(assert (<= (+ (* 2 X_0) (- X_1) (* X_2 -3) 1) 4))\n"
            "(assert (>= (- X_0 X_1 (* 0.5 X_2)) (- 2)))\n"
            "(assert (<= (* 2 (+ X_0 X_0) 3) (+ X_1 1)))\n"
            "(assert (<= (- Y_0 Y_1 Y_2) (* 2 Y_2)))\n"
            "(assert (<= Y_0 Y_1))\n"
            "(assert (<= (+ Y_0 (* 0 X_0)) 7))",  # a zero coefficient does not mix X and Y
            3,
            3,
        )
    ).disjuncts
    np.testing.assert_array_equal(dj.A_in, [[2, -1, -3], [-1, 1, 0.5], [12, -1, 0]])
    np.testing.assert_array_equal(dj.b_in, [3, 2, 1])
    np.testing.assert_array_equal(dj.C, [[1, -1, -3], [1, -1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(dj.d, [0, 0, 7])


def test_chained_comparison() -> None:
    (dj,) = load_vnnlib(vnn("(assert (<= 0 X_0 1))\n(assert (>= 3 Y_0 2))")).disjuncts
    assert (dj.lo[0], dj.hi[0]) == (0.0, 1.0)
    np.testing.assert_array_equal(dj.C, [[1.0], [-1.0]])
    np.testing.assert_array_equal(dj.d, [3.0, -2.0])


@pytest.mark.parametrize(
    "token, value",
    [
        ("1e-3", 1e-3),
        ("1.5E+2", 150.0),
        ("-2.5e-1", -0.25),
        ("+4", 4.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("007", 7.0),
        ("3.991125645861615", 3.991125645861615),
    ],
)
def test_numbers(token: str, value: float) -> None:
    (dj,) = load_vnnlib(vnn(f"(assert (<= X_0 {token}))")).disjuncts
    assert dj.hi[0] == value


def test_comments_and_layout() -> None:
    text = (
        "; header (with parentheses: (assert (<= X_0 -100)))\n"
        "(declare-const X_0 Real) ; inline comment\n"
        "(declare-const Y_0 Real)\r\n"
        "(set-logic QF_LRA)\n"
        "(assert\n  (<= X_0\n     ; a comment inside an expression )\n     2))\n"
        "(assert (>= X_0 1))(assert (<= Y_0 0))(check-sat)"
    )
    (dj,) = load_vnnlib(text).disjuncts
    assert (dj.lo[0], dj.hi[0]) == (1.0, 2.0)
    np.testing.assert_array_equal(dj.d, [0.0])


def test_paths_text_and_gzip(tmp_path: Path) -> None:
    text = vnn("(assert (<= X_0 1))")
    plain = tmp_path / "p.vnnlib"
    plain.write_text(text)
    packed = tmp_path / "p.vnnlib.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for src, path in [
        (plain, str(plain)),
        (str(plain), str(plain)),
        (packed, str(packed)),
        (text, None),
    ]:
        prop = load_vnnlib(src)
        assert prop.path == path and prop.disjuncts[0].hi[0] == 1.0


# ---------------------------------------------------------------------------- points
def test_contains_and_violated_by_with_tolerance() -> None:
    prop = load_vnnlib(
        vnn(
            "(assert (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1)))\n"
            "(assert (<= (+ X_0 X_1) 1))\n"
            "(assert (or (>= Y_0 Y_1) (>= Y_0 5)))",
            2,
            2,
        )
    )
    a, b = prop.disjuncts
    assert a.contains([0.5, 0.5], [1.0, 0.0]) and not b.contains([0.5, 0.5], [1.0, 0.0])
    assert not a.contains([0.6, 0.6], [1.0, 0.0])  # outside A_in x <= b_in
    assert a.contains([0.5, 0.5 + 1e-12], [1.0, 0.0])  # within the default tolerance
    assert not a.contains([0.5, 0.5 + 1e-6], [1.0, 0.0])
    assert a.contains([0.5, 0.5 + 1e-6], [1.0, 0.0], tol=1e-5)
    assert not a.contains([np.nan, 0.0], [1.0, 0.0])
    assert prop.violated_by([0.2, 0.2], [1.0, 0.0]) == 0
    assert prop.violated_by([0.2, 0.2], [5.0, 9.0]) == 1
    assert prop.violated_by([0.2, 0.2], [4.0, 9.0]) is None
    assert prop.violated_by([1.2, 0.0], [1.0, 0.0]) is None
    with pytest.raises(InputError, match="x has 3 elements but the property has 2 inputs"):
        prop.violated_by([0.0, 0.0, 0.0], [0.0, 0.0])
    with pytest.raises(InputError, match="y has 1 elements"):
        a.contains([0.0, 0.0], [0.0])


def test_equality_and_construction_checks() -> None:
    text = vnn("(assert (<= X_0 1))\n(assert (<= Y_0 1))")
    assert load_vnnlib(text) == load_vnnlib(text)
    assert load_vnnlib(text) != load_vnnlib(vnn("(assert (<= X_0 2))\n(assert (<= Y_0 1))"))
    lo = np.zeros(2)
    dj = Disjunct(lo, [1, 1], np.zeros((0, 2)), [], [[1.0]], [0.0])  # lists are converted
    assert dj.hi.dtype == np.float64 and lo.flags.writeable  # a copy: the caller's array is kept
    assert dj.contains([0.5, 0.5], [0.0]) and not dj.contains([0.5, 0.5], [0.1])
    with pytest.raises(InputError, match="Disjunct needs"):
        Disjunct(lo, np.ones(3), np.zeros((0, 2)), [], [[1.0]], [0.0])
    with pytest.raises(InputError, match="disjunct 0 has 2 inputs"):
        VnnlibProperty(None, 3, 1, (dj,))


def test_deep_nesting_is_an_input_error() -> None:
    deep = "(assert " + "(and " * 5000 + "(<= X_0 1)" + ")" * 5000 + ")"
    with pytest.raises(InputError, match="nested too deeply"):
        load_vnnlib(vnn(deep))
    (dj,) = load_vnnlib(vnn("(assert " + "(and " * 50 + "(<= X_0 1)" + ")" * 50 + ")")).disjuncts
    assert dj.hi[0] == 1.0


def test_results_are_frozen_and_read_only() -> None:
    prop = load_vnnlib(vnn("(assert (<= X_0 1))\n(assert (<= Y_0 1))"))
    assert isinstance(prop, VnnlibProperty)
    dj = prop.disjuncts[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        dj.lo = np.zeros(1)  # type: ignore[misc]
    for f in dataclasses.fields(Disjunct):
        arr = getattr(dj, f.name)
        assert arr.dtype == np.float64 and not arr.flags.writeable


# ---------------------------------------------------------------------------- errors
# (body, line of the offending expression, fragments the message must contain); the
# declarations X_0, X_1, Y_0 take lines 1-3, so the body starts on line 4
ERRORS = [
    ("(declare-const Z_0 Real)", 4, ["unknown variable 'Z_0'", "X_0, X_1"]),
    ("(assert (<= X_0 foo))", 4, ["unknown variable 'foo'"]),
    ("\n(assert (<= X_7 1))", 5, ["undeclared variable X_7", "(declare-const X_7 Real)"]),
    ("(assert (<= Y_1 1))", 4, ["undeclared variable Y_1"]),
    ("(assert (<= X_0 X_1))\n(assert (<= (* X_0 X_1) 1))", 5, ["nonlinear", "(* X_0 X_1)"]),
    ("(assert (<= (/ 1 X_0) 1))", 4, ["division by a variable"]),
    ("(assert (<= (ite true X_0 X_1) 1))", 4, ["unsupported operator 'ite'"]),
    ("(assert (<= (max X_0 X_1) 1))", 4, ["unsupported operator 'max'"]),
    ("(assert (not (<= X_0 1)))", 4, ["unsupported operator 'not'"]),
    ("(assert (<= X_0 1)))", 4, ["unbalanced parentheses", "')' closes nothing"]),
    ("(assert (<= X_0 1)\n\n", 4, ["unbalanced parentheses", "never closed"]),
    ("(assert (<= X_0 1.2.3))", 4, ["cannot parse the number '1.2.3'"]),
    ("(assert (<= X_0 1e))", 4, ["cannot parse the number '1e'"]),
    ("(assert (<= X_0 0x1F))", 4, ["cannot parse the number '0x1F'"]),
    ("(assert (<= X_0 inf))", 4, ["unknown variable 'inf'"]),
    ("(assert (<= (+ X_0 Y_0) 1))", 4, ["mixed input-output constraints", "(+ X_0 Y_0)"]),
    ("(assert (<= X_0 Y_0))", 4, ["netopt does not support mixed input-output"]),
    ("(declare-fun f (Real) Real)", 4, ["unsupported command 'declare-fun'"]),
    ("(declare-const X_2 Int)", 4, ["unsupported sort 'Int'"]),
    ("(declare-const X_0 Real)", 4, ["X_0 is declared twice"]),
    ("(declare-const X_01 Real)", 4, ["unknown variable 'X_01'"]),
    ("(assert (<= X_0))", 4, ["<= needs at least two terms"]),
    ("(assert (<= X_0 1) (<= X_1 1))", 4, ["assert takes one formula"]),
    ("(assert X_0)", 4, ["'X_0' is not a formula"]),
    ("(assert (+ X_0 1))", 4, ["stands where a formula is expected"]),
    ("(assert (<= (and X_0) 1))", 4, ["stands where a term is expected"]),
    ("(assert ((<= X_0 1)))", 4, ["expected an operator"]),
    ("(assert (<= (/ X_0 0) 1))", 4, ["division by zero"]),
    ("X_0", 4, ["outside any command"]),
]


@pytest.mark.parametrize("body, line, fragments", ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_errors_name_the_line_and_expression(body: str, line: int, fragments: list[str]) -> None:
    with pytest.raises(InputError) as info:
        load_vnnlib(vnn(body, 2, 1))
    msg = str(info.value)
    assert msg.startswith(f"<vnnlib text>:{line}: "), msg
    for frag in fragments:
        assert frag in msg, msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, NetoptError)


def test_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.vnnlib"
    p.write_text(vnn("(assert (<= X_0 1))\n(assert (<= Y_0 (* Y_0 Y_0)))"))
    with pytest.raises(InputError, match=rf"^{p}:4: unsupported operator: nonlinear product"):
        load_vnnlib(p)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file; pass the path of a .vnnlib file"):
        load_vnnlib(tmp_path / "absent.vnnlib")
    with pytest.raises(InputError, match="no such file"):
        load_vnnlib(str(tmp_path / "absent.vnnlib"))
    with pytest.raises(InputError, match="is a folder"):
        load_vnnlib(tmp_path)
    bad = tmp_path / "bad.vnnlib.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(InputError, match="cannot read the file"):
        load_vnnlib(bad)


def test_declaration_errors() -> None:
    with pytest.raises(InputError, match=r"X_2 is declared but X_1 not"):
        load_vnnlib("(declare-const X_0 Real)(declare-const X_2 Real)(declare-const Y_0 Real)")
    with pytest.raises(InputError, match="no outputs declared"):
        load_vnnlib("(declare-const X_0 Real)(assert (<= X_0 1))")
    with pytest.raises(InputError, match=r"declares 1 inputs \(X_0\) but n_inputs=2"):
        load_vnnlib(vnn("(assert (<= X_0 1))"), n_inputs=2)
    with pytest.raises(InputError, match="n_outputs must be a positive integer"):
        load_vnnlib(vnn(""), n_outputs=0)
    with pytest.raises(InputError, match="max_disjuncts must be at least 1"):
        load_vnnlib(vnn(""), max_disjuncts=0)
    with pytest.raises(InputError, match="empty string"):
        load_vnnlib("")
    with pytest.raises(InputError, match="text that declares no variables"):
        load_vnnlib("(assert (<= 1 2))\n")
    with pytest.raises(InputError, match="takes a path or the property text"):
        load_vnnlib(42)  # type: ignore[arg-type]
