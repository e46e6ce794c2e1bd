"""The VNN-LIB reader under hostile input: each fuzzing finding as a regression test, the
fuzzer's oracle checked against known-bad results, and a seeded slice of the mutation fuzzer.

The long run is ``python benchmarks/fuzz/fuzz_vnnlib.py`` (5000 mutants; see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers.nets import NETS, ROOT

from netopt.errors import InputError, NetoptError
from netopt.vnnlib import (
    MAX_DEPTH,
    MAX_MAGNITUDE,
    MIN_MAGNITUDE,
    Disjunct,
    load_vnnlib,
)

DECL = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
FUZZ = ROOT / "benchmarks" / "fuzz" / "fuzz_vnnlib.py"


def vnn(body: str) -> str:
    """X_0, X_1, Y_0 declared on lines 1-3; ``body`` starts on line 4."""
    return DECL + body


def fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_vnnlib", FUZZ)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def run_limited(code: str, mib: int = 1024, timeout: float = 60) -> dict:
    """Run ``code`` in a fresh interpreter whose address space may grow by ``mib``.

    The denial-of-service reproducers run there: a regression must end in a MemoryError in that
    process, not take the memory of the machine the tests share. ``code`` prints one JSON line.
    """
    prelude = textwrap.dedent(
        f"""
        import json, resource, time
        import netopt.vnnlib
        from netopt.errors import NetoptError
        pages = int(open("/proc/self/statm").read().split()[0])
        cap = pages * resource.getpagesize() + {mib} * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))

        def outcome(fn):
            t0 = time.perf_counter()
            try:
                fn()
                cls, msg = "parsed", ""
            except NetoptError as e:
                cls, msg = "netopt", str(e)
            except BaseException as e:
                cls, msg = type(e).__name__, str(e)[:200]
            return {{"cls": cls, "msg": msg, "s": time.perf_counter() - t0}}
        """
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- declarations
def test_huge_indices_fail_fast_with_bounded_memory() -> None:
    """``X_1000000000000`` ended in a MemoryError, 30 digits in an OverflowError, ``X_100000000``
    took 8 s and 4 GB: ``range(max_index + 1)`` was built. Now each is an InputError in
    milliseconds, within 256 MiB."""
    got = run_limited(
        """
        L = netopt.vnnlib.load_vnnlib
        d = "(declare-const X_0 Real)(declare-const Y_0 Real)"
        cases = {
            "1e12": lambda: L("(declare-const X_1000000000000 Real)" + d),
            "1e12 given": lambda: L("(declare-const X_1000000000000 Real)" + d, 1, 1),
            "1e8": lambda: L("(declare-const X_100000000 Real)" + d),
            "30 digits": lambda: L("(declare-const X_" + "9" * 30 + " Real)" + d),
            "5000 digits": lambda: L("(declare-const Y_" + "7" * 5000 + " Real)" + d),
            "n given 1e12": lambda: L(d, 10**12, 1),
        }
        print(json.dumps({k: outcome(f) for k, f in cases.items()}))
        """,
        mib=256,
    )
    for case, out in got.items():
        assert out["cls"] == "netopt", (case, out)
        assert out["s"] < 1.0, (case, out)
    assert got["1e12"]["msg"] == (
        "<vnnlib text>: X_1000000000000 is declared but X_1 .. X_999999999999 not; VNN-LIB "
        "declares exactly X_0 .. X_1000000000000, one per element of the flattened network "
        "input: declare the missing ones"
    )
    assert "X_1000000000000 beyond them" in got["1e12 given"]["msg"]
    assert "X_1 .. X_99999999 not" in got["1e8"]["msg"]
    for case in ("30 digits", "5000 digits"):
        msg = got[case]["msg"]
        assert msg.startswith("<vnnlib text>:1: the index of ") and "more than any network" in msg
    assert (
        "X_0 .. X_999999999999 expected; X_1 .. X_999999999999 missing"
        in (got["n given 1e12"]["msg"])
    )


def test_an_eighteen_digit_index_reaches_the_count_check() -> None:
    big = "1" + "0" * 17  # 18 digits: still an index, refused by the count
    with pytest.raises(InputError, match=rf"X_{big} is declared but X_1 \.\. X_{int(big) - 1}"):
        load_vnnlib(f"(declare-const X_0 Real)(declare-const X_{big} Real)(declare-const Y_0 Real)")
    with pytest.raises(InputError, match=r":1: the index of X_10{18} has 19 digits"):
        load_vnnlib(f"(declare-const X_{big}0 Real)(declare-const Y_0 Real)")


@pytest.mark.parametrize(
    "decls, sizes, fragment",
    [
        ("X_0 X_2 X_5", None, "X_5 is declared but X_1, X_3, X_4 not"),
        ("X_0 X_1 X_2 X_3 X_9", None, "X_9 is declared but X_4 .. X_8 not"),
        (
            "X_0 X_1 X_2 X_3 X_4",
            (3, 1),
            "(X_0 .. X_4) but n_inputs=3 was given (X_0 .. X_2 expected; ",
        ),
        ("X_0 X_1 X_2 X_3 X_4", (3, 1), "X_3, X_4 beyond them)"),
        ("X_0 X_2", (3, 1), "declares 2 inputs (X_0, X_2) but n_inputs=3"),
        ("X_0 X_2", (3, 1), "expected; X_1 missing)"),
        ("X_1 X_7", (2, 1), "expected; X_0 missing, X_7 beyond them)"),
    ],
)
def test_declaration_messages_name_the_missing_and_extra_indices(
    decls: str, sizes: tuple[int, int] | None, fragment: str
) -> None:
    text = "".join(f"(declare-const {v} Real)" for v in decls.split()) + "(declare-const Y_0 Real)"
    with pytest.raises(InputError) as info:
        load_vnnlib(text, *(sizes or ()))
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------- numbers
# (body on line 4, fragments of the message); each gave NaN or inf bounds, or a bound out of
# float32's range that a float32 network cannot meet
BAD_NUMBERS = [
    ("(assert (<= (/ X_0 1e-320) 1))", ["the number 1e-320 is nonzero but smaller", "(/ X_0 1e-320)"]),
    ("(assert (<= X_0 (- 1e400 1e400)))", ["the number 1e400 is larger in magnitude", "(- 1e400 1e400)"]),
    ("(assert (<= (* 1e308 10 X_0) 1))", ["the number 1e308 is larger", "(* 1e308 10 X_0)"]),
    ("(assert (<= Y_0 1.797e308))", ["the number 1.797e308", "(<= Y_0 1.797e308)"]),
    ("(assert (<= Y_0 1e400))", ["the number 1e400", "(<= Y_0 1e400)"]),
    ("(assert (>= X_0 -1e400))", ["the number -1e400", "(>= X_0 -1e400)"]),
    ("(assert (<= X_0 3.5e38))", ["the number 3.5e38 is larger in magnitude than 3.40282e+38"]),
    ("(assert (<= X_0 1e-39))", ["the number 1e-39 is nonzero but smaller"]),
    # computed: each step of a product, sum or quotient is checked
    ("(assert (<= (* 1e30 1e30 X_0) 1))", ["the product of the constant factors is 1e+60"]),
    ("(assert (<= (* 1e-20 1e-20 X_0) 1))", ["the product of the constant factors is 1e-40"]),
    ("(assert (<= Y_0 (+ 3e38 3e38)))", ["the constant this term computes is 6e+38"]),
    ("(assert (<= (/ (* 1e30 X_0) 1e-30) 1))", ["the coefficient of X_0 this term computes is 1e+60"]),
    ("(assert (<= (* 3e38 Y_0) (* -3e38 Y_0)))", ["the coefficient of Y_0 in this constraint is 6e+38"]),
    ("(assert (<= (- 3e38) (- (- 3e38))))", ["the bound of this constraint is 6e+38"]),
    # one input variable: the box bound r / a it gives
    ("(assert (<= (* 1e-30 X_0) 1e30))", ["the bound X_0 <= 1e+60 it gives is larger"]),
    ("(assert (<= (* -1e30 X_0) 1e-30))", ["the bound X_0 >= -1e-60 it gives is nonzero but"]),
]  # fmt: skip


@pytest.mark.parametrize("body, fragments", BAD_NUMBERS, ids=[b[0][8:40] for b in BAD_NUMBERS])
def test_numbers_out_of_range_are_refused_at_their_line(body: str, fragments: list[str]) -> None:
    with pytest.raises(InputError) as info:
        load_vnnlib(vnn("(assert (<= X_1 1))\n" + body))  # the bad one on line 5
    msg = str(info.value)
    assert msg.startswith("<vnnlib text>:5: "), msg
    for frag in fragments:
        assert frag in msg, msg
    assert "between 1.2e-38 and 3.4e+38 in magnitude" in msg


def test_out_of_range_number_in_a_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "overflow.vnnlib"
    p.write_text(vnn("\n\n(assert (<= Y_0 1e400))"))
    with pytest.raises(InputError, match=rf"^{p}:6: the number 1e400 is larger in magnitude"):
        load_vnnlib(p)


def test_the_range_limits_themselves_are_accepted() -> None:
    (dj,) = load_vnnlib(
        vnn(
            f"(assert (<= X_0 {MAX_MAGNITUDE!r}))\n(assert (>= X_0 {-MAX_MAGNITUDE!r}))\n"
            f"(assert (<= X_1 {MIN_MAGNITUDE!r}))\n(assert (>= X_1 -0))\n"
            f"(assert (<= (* {MAX_MAGNITUDE!r} Y_0) {MIN_MAGNITUDE!r}))\n(assert (<= (* 0 X_0) 1))"
        )
    ).disjuncts
    assert (dj.lo[0], dj.hi[0]) == (-MAX_MAGNITUDE, MAX_MAGNITUDE)
    assert (dj.lo[1], dj.hi[1]) == (0.0, MIN_MAGNITUDE) and not np.signbit(dj.lo[1])
    np.testing.assert_array_equal(dj.C, [[MAX_MAGNITUDE]])
    np.testing.assert_array_equal(dj.d, [MIN_MAGNITUDE])
    assert MAX_MAGNITUDE == float(np.finfo(np.float32).max)
    assert MIN_MAGNITUDE == float(np.finfo(np.float32).tiny)


def test_division_is_left_associative_and_exact() -> None:
    (dj,) = load_vnnlib(
        vnn("(assert (<= (+ (/ X_0 3) (/ X_1 2 4)) 1))\n(assert (<= (/ (* 3 Y_0) 3) (/ 1 3)))")
    ).disjuncts
    np.testing.assert_array_equal(dj.A_in, [[1 / 3, 0.125]])
    np.testing.assert_array_equal(dj.C, [[1.0]])
    np.testing.assert_array_equal(dj.d, [1 / 3])
    with pytest.raises(InputError, match=r":4: division by zero in \(/ X_0 2 0\)"):
        load_vnnlib(vnn("(assert (<= (/ X_0 2 0) 1))"))


def test_disjunct_refuses_nan_and_misplaced_infinities() -> None:
    ok = dict(
        lo=[-np.inf, 0.0], hi=[1.0, np.inf], A_in=np.zeros((0, 2)), b_in=[], C=[[1.0]], d=[0.0]
    )
    assert Disjunct(**ok).contains([0.5, 7.0], [0.0])  # -inf / +inf: no bound
    for field, value in [
        ("lo", [np.nan, 0.0]),
        ("hi", [1.0, np.nan]),
        ("lo", [np.inf, 0.0]),
        ("hi", [-np.inf, 1.0]),
        ("d", [np.inf]),
        ("d", [np.nan]),
        ("C", [[-np.inf]]),
        ("A_in", [[np.nan, 0.0]]),
    ]:
        kwargs = {**ok, field: value}
        if field == "A_in":
            kwargs["b_in"] = [0.0]
        with pytest.raises(InputError, match=rf"non-finite values in {field}\b"):
            Disjunct(**kwargs)


# ---------------------------------------------------------------------------- structure
def test_nesting_past_max_depth_names_the_line() -> None:
    def nested(depth: int) -> str:
        # the assert is level 1, its formula level 2: ``depth`` levels in all
        n = depth - 2
        return vnn("\n(assert " + "(and " * n + "(<= X_0 1)" + ")" * n + ")")

    (dj,) = load_vnnlib(nested(MAX_DEPTH)).disjuncts
    assert dj.hi[0] == 1.0
    with pytest.raises(
        InputError,
        match=rf"^<vnnlib text>:5: expressions nested too deeply: .*level {MAX_DEPTH + 1}",
    ):
        load_vnnlib(nested(MAX_DEPTH + 1))
    # unclosed and deep: the depth error comes first, at its line, with no RecursionError
    # from rendering the expression
    with pytest.raises(InputError, match=r"^<vnnlib text>:4: expressions nested too deeply"):
        load_vnnlib(vnn("(assert " + "(and " * 100_000))
    deep_closed = "(" * 3000 + ")" * 3000
    with pytest.raises(InputError, match=r"^<vnnlib text>:4: expressions nested too deeply"):
        load_vnnlib(vnn(deep_closed))


def test_a_deep_caller_stack_still_gets_a_netopt_error() -> None:
    # the RecursionError backstop: MAX_DEPTH fits the default recursion limit, but not when
    # the caller has used most of it already
    text = vnn("(assert " + "(and " * (MAX_DEPTH - 3) + "(<= X_0 1)" + ")" * (MAX_DEPTH - 3) + ")")

    def descend(k: int):
        return descend(k - 1) if k else load_vnnlib(text)

    with pytest.raises(InputError, match="nested too deeply to read"):
        descend(sys.getrecursionlimit() - 150)


def test_disjunct_cap_costs_linear_time() -> None:
    # the cap's check recomputed a prefix sum or product per operand: quadratic, 98 s for a
    # 1.2 MB (or false false ... ) under max_disjuncts=1
    t0 = time.perf_counter()
    text = vnn("(assert (or " + "false " * 200_000 + "(<= Y_0 1) (<= Y_0 2)))")
    with pytest.raises(InputError, match=r":4: the disjunctive normal form would have 2 disjuncts"):
        load_vnnlib(text, max_disjuncts=1)
    text = vnn(
        "(assert (and "
        + "true " * 200_000
        + " (or (<= Y_0 1) (<= Y_0 2)) (or false (<= Y_0 3) (<= Y_0 4))))"
    )
    with pytest.raises(InputError, match=r"would have 4 disjuncts, more than max_disjuncts=3"):
        load_vnnlib(text, max_disjuncts=3)
    assert time.perf_counter() - t0 < 10.0
    # 300 ors of two: refused at the 14th (2**14 > 10 000, on line 4 + 13), the rest unread
    ors = "\n".join("(assert (or (<= Y_0 1) (<= Y_0 2)))" for _ in range(300))
    with pytest.raises(InputError) as info:
        load_vnnlib(vnn(ors))
    assert str(info.value).startswith(
        "<vnnlib text>:17: the disjunctive normal form would have 16384 disjuncts up to this "
        "operand (286 more not read), more than max_disjuncts=10000 (passed at this operand)"
    )


def test_the_disjunct_cap_holds_while_the_operands_are_read() -> None:
    """Each operand of an or was capped, but all of them were held before the sum was checked:
    300 copies of a legal 8192-disjunct product (a 113 kB file) took 5.7 s and 410 MB before
    the error, 3000 copies ten times that. The count now runs operand by operand: the error
    comes at the second copy, within a 384 MiB address-space allowance."""
    product = "(and " + " ".join(f"(or (<= Y_0 {k}) (<= Y_0 -{k}))" for k in range(13)) + ")"
    text = "(declare-const X_0 Real)(declare-const Y_0 Real)\n(assert (or\n"
    text += "\n".join([product] * 300) + "))"
    got = run_limited(
        f"""
        text = {text!r}
        print(json.dumps(outcome(lambda: netopt.vnnlib.load_vnnlib(text))))
        """,
        mib=384,
    )
    assert got["cls"] == "netopt", got
    assert got["msg"].startswith(
        "<vnnlib text>:4: the disjunctive normal form would have 16384 disjuncts up to this "
        "operand (298 more not read)"
    ), got
    assert got["s"] < 5.0, got


@pytest.mark.parametrize("bad", [float("nan"), 2.5, None, "10", True, 0, -1])
def test_caps_must_be_positive_integers(bad: object) -> None:
    for name in ("max_disjuncts", "max_bytes"):
        with pytest.raises(InputError, match=rf"{name} must be at least 1 and an integer"):
            load_vnnlib(vnn(""), **{name: bad})


def test_max_bytes_bounds_the_arrays_a_small_file_can_demand() -> None:
    """Under max_disjuncts, 10 000 disjuncts of a 40 000-input box would still take 6.4 GB:
    the arrays are estimated before they are built."""
    n = 20_000
    decl = "".join(f"(declare-const X_{i} Real)" for i in range(n)) + "(declare-const Y_0 Real)"
    text = decl + "\n(assert (or " + " ".join(f"(<= Y_0 {k})" for k in range(100)) + "))"
    with pytest.raises(InputError) as info:
        load_vnnlib(text, max_bytes=2**24)
    msg = str(info.value)
    assert msg.startswith("<vnnlib text>: the property's 100 disjuncts over 20000 inputs")
    assert "more than max_bytes=16777216" in msg
    prop = load_vnnlib(text, max_bytes=2**25)  # 100 * 2 * 20 000 * 8 B = 32 MB fits
    used = sum(a.nbytes for dj in prop.disjuncts for a in (dj.lo, dj.hi, dj.C, dj.d))
    assert len(prop.disjuncts) == 100 and 32_000_000 <= used <= 2**25


# ---------------------------------------------------------------------------- bytes and files
def test_empty_and_comment_only_files_name_the_file(tmp_path: Path) -> None:
    for name, content in [("empty", b""), ("comments", b"; nothing\n;(declare-const X_0 Real)\n")]:
        p = tmp_path / f"{name}.vnnlib"
        p.write_bytes(content)
        with pytest.raises(InputError, match=rf"^{p}: no inputs declared"):
            load_vnnlib(p)


def test_binary_garbage_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "garbage.vnnlib"
    p.write_bytes(vnn("(assert (<= X_0 1))").encode() + bytes(range(256)))
    with pytest.raises(InputError, match=rf"^{p}: cannot read the file .*utf-8"):
        load_vnnlib(p)
    p.write_bytes(vnn("(assert (<= X_0 1\x00))").encode())  # valid UTF-8, but a NUL
    with pytest.raises(InputError, match=rf"^{p}:4: cannot parse the number '1\\x00'"):
        load_vnnlib(p)


def test_corrupt_gzip_is_an_input_error(tmp_path: Path) -> None:
    good = gzip.compress(vnn("(assert (<= X_0 1))").encode(), mtime=0)
    p = tmp_path / "p.vnnlib.gz"
    # a bad deflate block is a zlib.error, which is not an OSError: it used to escape
    for bad in (good[:12] + b"\xff" * 8 + good[20:], good[:-9], good[:-8] + b"\0" * 8):
        p.write_bytes(bad)
        with pytest.raises(InputError, match=rf"^{p}: cannot read the file"):
            load_vnnlib(p)


def test_non_ascii_digits_are_not_numbers_or_indices() -> None:
    # in Unicode mode \d matched them, and float("\u0661.\u0665") is 1.5
    with pytest.raises(InputError, match=r":4: cannot parse the number '\u0661\.\u0665'"):
        load_vnnlib(vnn("(assert (<= X_0 \u0661.\u0665))"))
    with pytest.raises(InputError, match=r":1: unknown variable 'X_1\u0661'"):
        load_vnnlib("(declare-const X_1\u0661 Real)" + DECL)


def test_comments_end_only_at_a_line_feed_or_carriage_return() -> None:
    # str.splitlines() also ended lines at \x0c, \x1c-\x1e, \x85 and \u2028: the rest of the
    # comment was read as code
    plain = load_vnnlib(vnn("(assert (<= X_0 1))"))
    for brk in ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]:
        text = vnn(f"; note{brk}(assert (<= X_0 -99))\n(assert (<= X_0 1))")
        assert load_vnnlib(text) == plain, repr(brk)
    # CR alone and CR LF still end lines: the line numbers stay right
    for nl in ["\r", "\r\n"]:
        text = nl.join(
            ["(declare-const X_0 Real)", "(declare-const Y_0 Real)", "; c", "(assert (<= X_0 foo))"]
        )
        with pytest.raises(InputError, match=r"^<vnnlib text>:4: unknown variable 'foo'"):
            load_vnnlib(text)


def test_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    text = vnn("(assert (<= X_0 1))")
    p = tmp_path / "bom.vnnlib"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_vnnlib(p).disjuncts == load_vnnlib(text).disjuncts
    assert load_vnnlib("\ufeff" + text).disjuncts == load_vnnlib(text).disjuncts


def test_odd_paths_are_input_errors(tmp_path: Path) -> None:
    cases = {
        "a" * 5000: "cannot be opened (File name too long)",
        str(tmp_path / "x\x00y.vnnlib"): "no such file",
        str(tmp_path): "is a folder, not a file",
        str(tmp_path / "absent.vnnlib"): "no such file",
        "   ": "empty string",
    }
    fifo = tmp_path / "pipe.vnnlib"
    os.mkfifo(fifo)  # reading it would block: refused before any read
    cases[str(fifo)] = "is not a regular file"
    for path, fragment in cases.items():
        with pytest.raises(InputError) as info:
            load_vnnlib(path)
        assert fragment in str(info.value), (path[:40], str(info.value))
        assert len(str(info.value)) < 400  # a 5000-character name is shortened
    # a file whose name has parentheses is a file, not text
    p = tmp_path / "prop(1).vnnlib"
    p.write_text(vnn("(assert (<= X_0 1))"))
    assert load_vnnlib(p).path == str(p)


def test_meaning_preserving_rewrites_give_the_identical_property() -> None:
    base = vnn(
        "(assert (<= 0 X_0 1))\n(assert (>= X_1 -1))\n(assert (<= X_1 (/ 1 2)))\n"
        "(assert (or (<= Y_0 (- 3)) (> Y_0 (* 2 5))))"
    )
    rewrites = [
        base.replace("\n", "\n\n ; comment (assert false)\n\t").replace(" ", "  "),
        base.replace("(>= X_1 -1)", "(<= -1 X_1)").replace("(> Y_0 (* 2 5))", "(< (* 2 5) Y_0)"),
        base.replace("(<= Y_0 (- 3))", "(and (and (<= (+ Y_0) (- (- (- 3))))))"),
        base.replace("(assert (<= X_1 (/ 1 2)))", "(assert (and (<= (* 1 X_1) (/ 1 2 1.0))))"),
    ]
    expected = load_vnnlib(base)
    for text in rewrites:
        assert load_vnnlib(text) == expected, text


# ---------------------------------------------------------------------------- the fuzzer
def test_the_oracle_flags_what_it_should() -> None:
    """The fuzzer's verdicts on known results: a fuzzer that cannot say BAD proves nothing."""
    fz = fuzz_module()

    def cls(fn, check=lambda p: None, timeout=2.0):
        return fz.classify(fn, check, timeout, NetoptError).cls

    def boom():
        raise ZeroDivisionError("x")

    def spin():
        while True:
            pass

    def oom():
        raise MemoryError

    def reject():
        raise InputError("file:1: no")

    assert cls(boom) == "BAD:exception:ZeroDivisionError"
    assert cls(spin, timeout=0.2) == "BAD:hang"
    assert cls(oom) == "BAD:memory"
    assert cls(reject) == "error"
    assert cls(lambda: 1) == "parsed"
    assert cls(lambda: 1, check=lambda p: "BAD:range") == "BAD:range"

    import netopt.vnnlib as mod

    text = vnn("(assert (<= X_0 1))\n(assert (<= Y_0 2))")
    good = load_vnnlib(text)
    assert fz.malformed(good, text, None, mod) is None
    assert fz.malformed(good, text, (2, 1), mod) is None
    assert fz.malformed(good, text, (3, 1), mod) == "BAD:shape"
    assert fz.malformed(good, text.replace("X_1", "X_9"), None, mod) == "BAD:shape"

    def fake(**arrays):  # Disjunct refuses these now: the older reader returned them
        dj = dict(lo=np.zeros(2), hi=np.ones(2), A_in=np.zeros((0, 2)), b_in=np.zeros(0))
        dj |= dict(C=np.ones((1, 1)), d=np.zeros(1)) | arrays
        return SimpleNamespace(n_inputs=2, n_outputs=1, disjuncts=(SimpleNamespace(**dj),))

    assert fz.malformed(fake(d=np.array([np.nan])), text, None, mod) == "BAD:nonfinite"
    assert fz.malformed(fake(hi=np.array([1.0, np.nan])), text, None, mod) == "BAD:nonfinite"
    assert fz.malformed(fake(d=np.array([np.inf])), text, None, mod) == "BAD:nonfinite"
    assert fz.malformed(fake(hi=np.array([1.0, 1e300])), text, None, mod) == "BAD:range"
    assert fz.malformed(fake(C=np.array([[1e-320]])), text, None, mod) == "BAD:range"
    assert fz.malformed(fake(lo=np.array([2.0, 0.0])), text, None, mod) == "BAD:empty_box_kept"

    swapped = load_vnnlib(vnn("(assert (<= Y_0 2))\n(assert (<= X_0 1))\n(assert (<= Y_0 3))"))
    twice = load_vnnlib(vnn("(assert (<= Y_0 3))\n(assert (<= X_0 1))\n(assert (<= Y_0 2))"))
    assert fz.same(swapped, twice, "set") and not fz.same(swapped, twice, "exact")
    assert not fz.same(good, swapped, "set")


def test_every_mutation_kind_runs_on_every_kind_of_seed() -> None:
    import random

    fz = fuzz_module()
    rng = random.Random(5)
    pool = fz.seeds(NETS)
    picked = pool[:3] + [s for s in pool if s.name.startswith(("acasxu/prop_2", "mnistfc/prop_0"))]
    for s in picked:
        for kind in fz.KINDS:
            mutants = [fz.mutate(rng, kind, s) for _ in range(3)]
            assert all(isinstance(m, str | bytes) for m in mutants)
            assert any(m != s.text for m in mutants), (kind, s.name)


def test_fuzz_slice(tmp_path: Path) -> None:
    """300 seeded mutants of every kind (about 15 s): no bad outcome, and every class seen."""
    out = tmp_path / "fuzz.json"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    args = ["--n", "300", "--seed", "11", "--timeout", "5", "--memory-mib", "2048"]
    p = subprocess.run(
        [sys.executable, str(FUZZ), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert out.is_file(), p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["n_bad"] == 0 and p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    fz = fuzz_module()
    assert set(report["counts"]) == set(fz.KINDS)
    totals: dict[str, int] = {}
    for counts in report["counts"].values():
        for k, n in counts.items():
            totals[k] = totals.get(k, 0) + n
    assert sum(totals.values()) == 300
    assert totals.keys() == {"error", "parsed", "same"}, totals
    # the rewrites were checked against their seed, not only parsed
    assert all(report["counts"][k].get("same", 0) >= 1 for k in fz.PRESERVING), report["counts"]
    if (NETS / "acasxu").is_dir():
        assert "acasxu" in p.stdout and "mnistfc" in p.stdout
    assert math.isfinite(report["wall"])


def test_a_false_before_the_blow_up_empties_the_and_a_false_after_it_does_not() -> None:
    # the documented price of counting while reading: the error comes before the false is read
    ors = " ".join(["(or " + " ".join(f"(<= Y_0 {k})" for k in range(200)) + ")"] * 2)
    assert load_vnnlib(vnn(f"(assert (and false {ors}))"), max_disjuncts=1000).disjuncts == ()
    with pytest.raises(InputError, match=r"would have 40000 disjuncts up to this operand \(1 more"):
        load_vnnlib(vnn(f"(assert (and {ors} false))"), max_disjuncts=1000)


@pytest.mark.skipif(not (NETS / "test" / "test_nano.onnx").is_file(), reason="no shared nets")
def test_the_cli_prints_one_line_for_each_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from netopt.cli import main

    net = str(NETS / "test" / "test_nano.onnx")
    bodies = {
        "overflow": "(declare-const X_0 Real)(declare-const Y_0 Real)\n(assert (<= Y_0 1e400))",
        "index": "(declare-const X_1000000000000 Real)(declare-const X_0 Real)(declare-const Y_0 Real)",
        "deep": "(declare-const X_0 Real)(declare-const Y_0 Real)\n(assert " + "(and " * 300,
    }
    for name, body in bodies.items():
        p = tmp_path / f"{name}.vnnlib"
        p.write_text(body)
        assert main(["check", net, str(p)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"netopt: error: {p}") and err.count("\n") == 1, err
