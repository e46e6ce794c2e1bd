"""Mutation fuzzing of the VNN-LIB reader: every mutant is a netopt error or a well-formed property.

    python benchmarks/fuzz/fuzz_vnnlib.py [--n 5000] [--seed 0] [--timeout 5] [--module PATH]

Starts from real properties (``../shared/nets/acasxu/*.vnnlib``, ``../shared/nets/mnistfc/*.vnnlib``
beside the checkout, when present) and a few hand-written ones covering the grammar, applies one
mutation kind per mutant (chosen at random, seeded) and loads the mutant with
:func:`netopt.vnnlib.load_vnnlib`, from a file or as text, with or without the network's sizes.

Outcome classes:

* ``error``: a :class:`netopt.errors.NetoptError`, fine;
* ``parsed``: the mutant parsed into a well-formed property: the numbers are finite (``lo`` may be
  ``-inf`` and ``hi`` ``+inf``: no bound) and 0 or within ``[MIN_MAGNITUDE, MAX_MAGNITUDE]``, the
  shapes match the ``declare-const`` s counted independently in the mutant's text (and the sizes
  passed), boxes are non-empty, at most ``max_disjuncts`` disjuncts and ``max_bytes`` of arrays,
  and ``violated_by`` answers for a point of the first box;
* ``same``: a meaning-preserving rewrite (whitespace and comments, ``(<= a b)`` <-> ``(>= b a)``,
  a formula wrapped in ``(and f)``, a term in ``(+ t)``, reordered asserts, deep ``(and (and
  ...))`` nesting, ``(or f f ... f)``) parsed to the same property as its seed: identical arrays,
  or the same set of disjuncts and rows where the rewrite reorders them; a rewrite may also fail
  with the one error it is allowed (nesting too deep, too many disjuncts);
* ``BAD:...``: anything else: another exception, a hang past ``--timeout`` seconds of CPU
  time plus one per MB of mutant (or ten times that on the clock), a MemoryError (the process runs under an address-space
  limit, ``--memory-mib`` above its size at start), a malformed property, or a rewrite that
  changed the meaning. The script exits 1 when there is any.

``--module PATH`` loads another copy of ``vnnlib.py`` in its place (e.g. ``git show
3f56777:netopt/vnnlib.py > /tmp/old.py``, the reader before it was a package) to count the bad
outcomes of an older reader with the same seed. Prints the machine, a table of mutation kind x
outcome class, and the bad examples.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import importlib.util
import inspect
import json
import logging
import os
import platform
import random
import re
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
NETS = ROOT.parent / "shared" / "nets"
SIZES = {"acasxu": (5, 5), "mnistfc": (784, 10)}
# the fuzzer's own cap on the arrays: the property of the default (1 GiB) holds, and mutants
# stay cheap enough for thousands of them
MAX_BYTES = 2**26

# --------------------------------------------------------------------------- seeds
_DECL = "".join(f"(declare-const X_{i} Real)\n" for i in range(3)) + "".join(
    f"(declare-const Y_{j} Real)\n" for j in range(3)
)
HAND: dict[str, tuple[str, tuple[int, int]]] = {
    # every construct of the grammar, on 3 inputs and 3 outputs
    "hand/grammar": (
        "; a hand-written property (comments, every operator)\n"
        "(set-logic QF_LRA)\n" + _DECL + "(assert (<= 0 X_0 1))\n"
        "(assert (and (>= X_1 -0.5) (<= X_1 0.5) (< X_2 2.5e-1) (> X_2 -.25)))\n"
        "(assert (<= (+ (* 2 X_0) (- X_1) (/ X_2 4)) 1.5))\n"
        "(assert (or (and (<= Y_0 Y_1) (>= (- Y_2 Y_1) 3)) (= Y_1 (* 0.5 Y_2)) (> Y_0 1e3)))\n"
        "(check-sat)\n",
        (3, 3),
    ),
    # two top-level ors (a product of disjuncts) with boxes inside them
    "hand/product": (
        _DECL + "(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2) (<= X_0 3))))\n"
        "(assert (and (<= -1 X_1 1) (<= -1 X_2 1)))\n"
        "(assert (or (<= Y_0 -1) (>= Y_1 (+ Y_2 0.001)) (<= (- Y_0 Y_2) 0)))\n",
        (3, 3),
    ),
    # a ACAS Xu-like shape: box, then a conjunction of output comparisons
    "hand/acas_like": (
        _DECL + "(assert (<= X_0 0.679857769))\n(assert (>= X_0 0.6))\n"
        "(assert (<= X_1 0.5))\n(assert (>= X_1 -0.5))\n(assert (<= X_2 0.5))\n"
        "(assert (>= X_2 -0.5))\n(assert (and (<= Y_0 Y_1) (<= Y_0 Y_2)))\n",
        (3, 3),
    ),
}


@dataclass(frozen=True)
class Seed:
    """A valid property the mutants start from."""

    name: str
    text: str
    sizes: tuple[int, int]


def seeds(nets: Path = NETS) -> list[Seed]:
    """The hand-written seeds, then the shared ACAS Xu and MNIST properties (if present)."""
    out = [Seed(k, t, s) for k, (t, s) in HAND.items()]
    for family, sizes in SIZES.items():
        for p in sorted((nets / family).glob("*.vnnlib")) if (nets / family).is_dir() else []:
            out.append(Seed(f"{family}/{p.name}", p.read_text(), sizes))
    return out


# --------------------------------------------------------------------------- s-expressions
_TOKEN = re.compile(r";[^\n]*|\(|\)|[^\s();]+")
_NUMBER = re.compile(r"(?<![\w.])[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")
_INDEX = re.compile(r"\b([XY])_(\d+)\b")
_COMPARISONS = ("<=", ">=", "<", ">", "=")
_MIRROR = {"<=": ">=", ">=": "<=", "<": ">", ">": "<"}

Tree = list  # a list of str (atoms) and Trees


def parse(text: str) -> Tree:
    """The top-level expressions of a (balanced) seed, comments dropped."""
    stack: list[Tree] = [[]]
    for tok in _TOKEN.findall(text):
        if tok.startswith(";"):
            continue
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    assert len(stack) == 1, "seeds are balanced"
    return stack[0]


def show(tree: Tree | str) -> str:
    """Text of an expression (iterative: mutants nest thousands of levels deep)."""
    out: list[str] = []
    stack: list[Any] = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, str):
            out.append(t)
        else:
            out.append("(")
            stack.append(")")
            for k in range(len(t) - 1, -1, -1):
                stack.append(t[k])
                if k:
                    stack.append(" ")
    return "".join(out)


def show_top(top: Tree) -> str:
    return "\n".join(show(t) for t in top) + "\n"


def nodes(top: Tree) -> list[tuple[Tree, int, str]]:
    """Every subexpression as ``(parent, index, role)``; role is "formula", "term" or "other"."""
    out: list[tuple[Tree, int, str]] = []
    stack: list[tuple[Tree, str]] = [(top, "top")]
    while stack:
        t, role = stack.pop()
        head = t[0] if t and isinstance(t[0], str) else None
        for k, child in enumerate(t):
            if role == "top":
                r = "command"
            elif head == "assert" or head in ("and", "or"):
                r = "formula" if k else "other"
            elif head in _COMPARISONS or head in ("+", "-", "*", "/"):
                r = "term" if k else "other"
            else:
                r = "other"
            out.append((t, k, r))
            if isinstance(child, list):
                stack.append((child, r))
    return out


# --------------------------------------------------------------------------- mutations
Mutation = Callable[[random.Random, Seed], str | bytes]
EXTREMES = [
    "1e400", "-1e400", "1e308", "1.797e308", "1.7976931348623157e308", "-1.797e308", "3.5e38",
    "3.4028234663852886e38", "1e39", "1e-320", "4.9e-324", "1e-45", "1e-39", "-1e-300", "1e-38",
    "0", "-0", "-0.0", "nan", "NaN", "inf", "-inf", "+inf", "Infinity", "1e", "1e+", "0x10",
    "1_000", "1" * 400, "9" * 5000, "0." + "0" * 400 + "1", "1e-9999999999", "1e9999999999",
]  # fmt: skip
HUGE_INDICES = [10**6, 10**8, 10**9, 10**12, 2**63 - 1, 2**63, 2**64, 10**18, 10**19, 10**30]
GARBAGE = [
    b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\x85", "\u2028".encode(), "\u0661".encode(),
    "\u00a0".encode(), b"\x0c", b"\x0b", b"\x1c", b"\r", b"|", b'"', b"#", "\ud7ff".encode(),
    "é".encode(), b"\x80\x81", b"\xc3", "\U0001f600".encode(),
]  # fmt: skip


def _pick_node(rng: random.Random, top: Tree, role: str, pred=None) -> tuple[Tree, int] | None:
    cands = [(p, k) for p, k, r in nodes(top) if r == role and (pred is None or pred(p[k]))]
    return rng.choice(cands) if cands else None


def _spans(text: str, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    return list(pattern.finditer(text))


def _code_tokens(text: str) -> list[re.Match[str]]:
    return [m for m in _TOKEN.finditer(text) if not m.group().startswith(";")]


def m_drop_token(rng: random.Random, s: Seed) -> str:
    m = rng.choice(_code_tokens(s.text))
    return s.text[: m.start()] + s.text[m.end() :]


def m_dup_line(rng: random.Random, s: Seed) -> str:
    lines = s.text.split("\n")
    k = rng.randrange(len(lines))
    return "\n".join(lines[: k + 1] + [lines[k]] * rng.choice([1, 1, 2, 100]) + lines[k + 1 :])


def m_swap_operands(rng: random.Random, s: Seed) -> str:
    top = parse(s.text)
    lists = [p[k] for p, k, _ in nodes(top) if isinstance(p[k], list) and len(p[k]) >= 3]
    t = rng.choice(lists)
    i, j = rng.sample(range(len(t)), 2)  # may move the operator too
    t[i], t[j] = t[j], t[i]
    return show_top(top)


def m_number(rng: random.Random, s: Seed) -> str:
    spans = _spans(s.text, _NUMBER)
    m = rng.choice(spans)
    new = rng.choice(EXTREMES) if rng.random() < 0.8 else "-" + m.group().lstrip("+-")
    if rng.random() < 0.2:  # every number at once
        return _NUMBER.sub(lambda _: new, s.text)
    return s.text[: m.start()] + new + s.text[m.end() :]


def m_index(rng: random.Random, s: Seed) -> str:
    spans = _spans(s.text, _INDEX)
    m = rng.choice(spans)
    huge = rng.choice([str(i) for i in HUGE_INDICES] + ["1" + "0" * 5000, "9" * 40])
    if rng.random() < 0.5:  # rename one variable everywhere: declarations stay unique
        old = m.group()
        return re.sub(rf"\b{re.escape(old)}\b", f"{m.group(1)}_{huge}", s.text)
    return s.text[: m.start()] + f"{m.group(1)}_{huge}" + s.text[m.end() :]


def m_unbalance(rng: random.Random, s: Seed) -> str:
    toks = _code_tokens(s.text)
    if rng.random() < 0.5:
        parens = [m for m in toks if m.group() in "()"]
        m = rng.choice(parens)
        return s.text[: m.start()] + s.text[m.end() :]
    m = rng.choice(toks)
    at = rng.choice([m.start(), m.end()])
    return s.text[:at] + rng.choice(["(", ")", "((((", "))"]) + s.text[at:]


def m_garbage(rng: random.Random, s: Seed) -> bytes:
    data = s.text.encode()
    junk = (
        rng.choice(GARBAGE)
        if rng.random() < 0.6
        else bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    )
    at = rng.randrange(len(data) + 1)
    return data[:at] + junk + data[at:]


def m_gzip(rng: random.Random, s: Seed) -> bytes:
    """The seed gzipped (read from a ``.vnnlib.gz`` file), most often then corrupted."""
    data = bytearray(gzip.compress(s.text.encode(), mtime=0))
    how = rng.choice(["intact", "flip", "flip", "truncate", "header"])
    if how == "flip":
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(10, len(data))] ^= rng.randrange(1, 256)
    elif how == "truncate":
        del data[rng.randrange(len(data)) :]
    elif how == "header":
        data[rng.randrange(2, 10)] ^= rng.randrange(1, 256)
    return bytes(data)


def m_flip_cmp(rng: random.Random, s: Seed) -> str:
    top = parse(s.text)
    hit = _pick_node(
        rng, top, "formula", lambda t: isinstance(t, list) and t and t[0] in _COMPARISONS
    )
    assert hit is not None
    t = hit[0][hit[1]]
    t[0] = rng.choice([op for op in _COMPARISONS if op != t[0]] + ["=>", "distinct", "<=="])
    return show_top(top)


def m_truncate(rng: random.Random, s: Seed) -> str:
    return s.text[: rng.randrange(len(s.text))]


def m_widen(rng: random.Random, s: Seed) -> str:
    """More inputs (up to 10**5 declarations) and an or of many copies of one assert."""
    top = parse(s.text)
    n_in = s.sizes[0]
    k = int(10 ** rng.uniform(0, 5))
    extra = [["declare-const", f"X_{n_in + i}", "Real"] for i in range(k)]
    asserts = [t for t in top if t and t[0] == "assert"]
    a = rng.choice(asserts)
    a[1] = ["or"] + [a[1]] * int(10 ** rng.uniform(0, 4))
    last = max(i for i, t in enumerate(top) if t and t[0] == "declare-const")
    return show_top(top[: last + 1] + extra + top[last + 1 :])


# ---- meaning-preserving rewrites
_SPACES = [
    " ", "\t", "\n", "  \n\t ", "\r\n", "\n\n\n", " ; a comment\n", "\n; (assert (<= X_0 -99))\n",
    " ; \x0c(assert (<= X_0 -99))\n", " ; \u2028(assert (<= X_0 -99))\n",
    " ; \x85(assert false)\n", " ; \x1c\x1d\x1e(assert false)\n", "\x0c", "\x0b",
]  # fmt: skip


def m_whitespace(rng: random.Random, s: Seed) -> str:
    toks = _code_tokens(s.text)
    picks = sorted(rng.sample(range(len(toks)), min(len(toks), rng.randint(1, 20))))
    out, last = [], 0
    for i in picks:
        at = toks[i].end()
        out += [s.text[last:at], rng.choice(_SPACES)]
        last = at
    return "".join(out) + s.text[last:]


def m_flip_sides(rng: random.Random, s: Seed) -> str:
    top = parse(s.text)
    for p, k, r in nodes(top):
        t = p[k]
        if r == "formula" and isinstance(t, list) and len(t) == 3 and t[0] in _MIRROR:
            if rng.random() < 0.5:
                p[k] = [_MIRROR[t[0]], t[2], t[1]]
    return show_top(top)


def m_wrap(rng: random.Random, s: Seed) -> str:
    top = parse(s.text)
    for p, k, r in nodes(top):
        if rng.random() < 0.3:
            if r == "formula":
                p[k] = [rng.choice(["and", "or"]), p[k]]
            elif r == "term":
                p[k] = rng.choice(
                    [["+", p[k]], ["*", "1", p[k]], ["*", p[k], "1.0"], ["-", ["-", p[k]]]]
                )
                if rng.random() < 0.2:
                    p[k] = ["/", p[k], "1"]
    return show_top(top)


def m_reorder_asserts(rng: random.Random, s: Seed) -> str:
    top = parse(s.text)
    slots = [i for i, t in enumerate(top) if t and t[0] == "assert"]
    moved = [top[i] for i in slots]
    rng.shuffle(moved)
    for i, t in zip(slots, moved, strict=True):
        top[i] = t
    return show_top(top)


def m_nest_deep(rng: random.Random, s: Seed) -> str:
    top = parse(s.text)
    role = rng.choice(["formula", "term"])
    hit = _pick_node(rng, top, role) or _pick_node(rng, top, "formula")
    assert hit is not None
    p, k = hit
    t = p[k]
    for _ in range(int(10 ** rng.uniform(0, 3.5))):
        t = ["and" if role == "formula" else "+", t]
    p[k] = t
    return show_top(top)


def m_or_repeat(rng: random.Random, s: Seed) -> str:
    top = parse(s.text)
    a = rng.choice([t for t in top if t and t[0] == "assert"])
    a[1] = ["or"] + [a[1]] * int(10 ** rng.uniform(0.3, 4.5))
    return show_top(top)


DESTRUCTIVE: dict[str, Mutation] = {
    "drop_token": m_drop_token,
    "dup_line": m_dup_line,
    "swap_operands": m_swap_operands,
    "number_extreme": m_number,
    "index_huge": m_index,
    "unbalance": m_unbalance,
    "garbage_bytes": m_garbage,
    "flip_cmp": m_flip_cmp,
    "truncate": m_truncate,
    "gzip": m_gzip,
    "widen": m_widen,
}
# rewrite -> (mutation, how the result is compared, the error it may give instead)
PRESERVING: dict[str, tuple[Mutation, str, str | None]] = {
    "whitespace": (m_whitespace, "exact", None),
    "flip_sides": (m_flip_sides, "exact", None),
    "wrap": (m_wrap, "exact", None),
    "reorder_asserts": (m_reorder_asserts, "set", None),
    "nest_deep": (m_nest_deep, "exact", "nested too deeply"),
    "or_repeat": (m_or_repeat, "set", "max_disjuncts|max_bytes"),
}
KINDS = [*DESTRUCTIVE, "combo", *PRESERVING]


def mutate(rng: random.Random, kind: str, s: Seed) -> str | bytes:
    """One mutant of ``s`` of the given kind (``combo``: 2-4 destructive ones in a row)."""
    if kind in PRESERVING:
        return PRESERVING[kind][0](rng, s)
    if kind != "combo":
        return DESTRUCTIVE[kind](rng, s)
    data: str | bytes = s.text
    for _ in range(rng.randint(2, 4)):
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        try:
            # the structural ones need balanced text; fall back to a text-level one
            data = rng.choice(list(DESTRUCTIVE.values()))(rng, Seed(s.name, text, s.sizes))
        except (AssertionError, IndexError, ValueError):
            data = m_truncate(rng, Seed(s.name, text, s.sizes)) if text else text
    return data


# --------------------------------------------------------------------------- oracle
class Hang(BaseException):
    """Raised by the timer: a BaseException, so no ``except Exception`` in the reader eats it."""


@contextlib.contextmanager
def deadline(cpu_seconds: float, wall_factor: float = 10.0) -> Iterator[None]:
    """Raise :class:`Hang` after ``cpu_seconds`` of CPU time, or ``wall_factor`` times as long
    on the clock.

    CPU time, so that other jobs on a shared machine do not turn a slow parse into a "hang";
    the wall clock as well, for a read that blocks without using the CPU.
    """

    def fire(signum: int, frame: object) -> None:
        raise Hang("cpu" if signum == signal.SIGPROF else "wall")

    old = {sig: signal.signal(sig, fire) for sig in (signal.SIGPROF, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    signal.setitimer(signal.ITIMER_REAL, cpu_seconds * wall_factor)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in old.items():
            signal.signal(sig, handler)


def declared_counts(data: str | bytes) -> tuple[int, int]:
    """``X_i`` and ``Y_j`` declared in the text, counted without the reader.

    Each count is -1 unless the indices are exactly ``0 .. n-1`` (then no property may parse).
    """
    if isinstance(data, bytes) and data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)  # it parsed, so it decompresses
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    code = "\n".join(line.split(";", 1)[0] for line in re.split(r"\r\n|\r|\n", text))
    found = re.findall(r"\(\s*declare-const\s+([XY])_([0-9]+)\s+Real\s*\)", code)
    counts = []
    for kind in "XY":
        idx = {int(i) for k, i in found if k == kind}
        counts.append(len(idx) if idx and max(idx) == len(idx) - 1 else -1)
    return counts[0], counts[1]


def malformed(
    prop: Any, data: str | bytes, sizes: tuple[int, int] | None, mod: ModuleType
) -> str | None:
    """Why a parsed property is not well-formed (a ``BAD:`` class), or None."""
    n_in, n_out = prop.n_inputs, prop.n_outputs
    if (n_in, n_out) != declared_counts(data) or (sizes is not None and (n_in, n_out) != sizes):
        return "BAD:shape"
    if len(prop.disjuncts) > mod.DEFAULT_MAX_DISJUNCTS:
        return "BAD:over_max_disjuncts"
    nbytes = 0
    top = getattr(mod, "MAX_MAGNITUDE", float(np.finfo(np.float32).max))
    tiny = getattr(mod, "MIN_MAGNITUDE", float(np.finfo(np.float32).tiny))
    for dj in prop.disjuncts:
        arrays = (dj.lo, dj.hi, dj.A_in, dj.b_in, dj.C, dj.d)
        nbytes += sum(a.nbytes for a in arrays)
        if dj.lo.shape != (n_in,) or dj.hi.shape != (n_in,) or dj.A_in.shape[1:] != (n_in,):
            return "BAD:shape"
        if dj.C.shape[1:] != (n_out,) or dj.b_in.shape != dj.A_in.shape[:1]:
            return "BAD:shape"
        if dj.d.shape != dj.C.shape[:1]:
            return "BAD:shape"
        if any(np.isnan(a).any() for a in arrays):
            return "BAD:nonfinite"
        if np.any(dj.lo == np.inf) or np.any(dj.hi == -np.inf):
            return "BAD:nonfinite"
        if any(np.isinf(a).any() for a in arrays[2:]):
            return "BAD:nonfinite"
        if not np.all(dj.lo <= dj.hi):
            return "BAD:empty_box_kept"
        for a in arrays:
            v = np.abs(a[np.isfinite(a)])
            if np.any(v > top) or np.any((v > 0) & (v < tiny)):
                return "BAD:range"
    if nbytes > MAX_BYTES:
        return "BAD:over_max_bytes"
    if prop.disjuncts:
        dj = prop.disjuncts[0]
        x = np.clip(np.zeros(n_in), dj.lo, dj.hi)
        if prop.violated_by(x, np.zeros(n_out)) not in (None, *range(len(prop.disjuncts))):
            return "BAD:violated_by"
    return None


def canonical(prop: Any) -> frozenset:
    """The property as a set of disjuncts, each a box and sets of rows: order-free."""

    def rows(A: np.ndarray, b: np.ndarray) -> frozenset:
        return frozenset(tuple(map(float, r)) + (float(v),) for r, v in zip(A, b, strict=True))

    return frozenset(
        (
            tuple(map(float, dj.lo)),
            tuple(map(float, dj.hi)),
            rows(dj.A_in, dj.b_in),
            rows(dj.C, dj.d),
        )
        for dj in prop.disjuncts
    )


def same(a: Any, b: Any, how: str) -> bool:
    if (a.n_inputs, a.n_outputs) != (b.n_inputs, b.n_outputs):
        return False
    if how == "set":
        return canonical(a) == canonical(b)
    return len(a.disjuncts) == len(b.disjuncts) and all(
        x == y for x, y in zip(a.disjuncts, b.disjuncts, strict=True)
    )


@dataclass
class Outcome:
    cls: str
    seconds: float
    message: str = ""


def load(
    mod: ModuleType, data: str | bytes, sizes: tuple[int, int] | None, as_text: bool, tmp: Path
) -> Any:
    """``mod.load_vnnlib`` on the mutant, as text or from a file."""
    kwargs: dict[str, Any] = {}
    if "max_bytes" in inspect.signature(mod.load_vnnlib).parameters:
        kwargs["max_bytes"] = MAX_BYTES
    n_in, n_out = sizes if sizes is not None else (None, None)
    if as_text and isinstance(data, str) and "declare-const" in data:
        return mod.load_vnnlib(data, n_in, n_out, **kwargs)
    path = tmp / ("mutant.vnnlib.gz" if data[:2] == b"\x1f\x8b" else "mutant.vnnlib")
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return mod.load_vnnlib(path, n_in, n_out, **kwargs)


def classify(
    load_fn: Callable[[], Any],
    check: Callable[[Any], str | None],
    timeout: float,
    netopt_error: type[BaseException],
) -> Outcome:
    """Run ``load_fn`` under a deadline and sort the result into an outcome class.

    ``check`` gets the parsed property and returns None (fine: ``parsed`` or ``same``) or a
    ``BAD:`` class; a ``str`` it returns that does not start with ``BAD`` is taken as the class.
    """
    t0 = time.perf_counter()
    try:
        with deadline(timeout):
            prop = load_fn()
    except Hang as e:
        limit = (
            f"{timeout:.1f} s of CPU" if str(e) == "cpu" else f"{timeout * 10:.0f} s on the clock"
        )
        return Outcome("BAD:hang", time.perf_counter() - t0, f"over {limit}")
    except MemoryError:
        return Outcome("BAD:memory", time.perf_counter() - t0, "MemoryError")
    except netopt_error as e:
        return Outcome("error", time.perf_counter() - t0, str(e))
    except Exception as e:
        return Outcome(f"BAD:exception:{type(e).__name__}", time.perf_counter() - t0, str(e)[:300])
    dt = time.perf_counter() - t0
    try:
        verdict = check(prop)
    except Exception as e:  # e.g. violated_by failing on the parsed property
        return Outcome(f"BAD:check:{type(e).__name__}", dt, str(e)[:300])
    return Outcome(verdict or "parsed", dt)


@dataclass
class Report:
    """Counts per mutation kind and outcome class, and the bad examples."""

    counts: dict[str, collections.Counter] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    slowest: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    bad: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_bad(self) -> int:
        return sum(n for c in self.counts.values() for k, n in c.items() if k.startswith("BAD"))

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {k: dict(c) for k, c in self.counts.items()},
            "slowest": dict(self.slowest),
            "n_bad": self.n_bad,
            "bad": self.bad,
        }


def load_module(path: str | None) -> ModuleType:
    """``netopt.vnnlib``, or another copy of it loaded from ``path``."""
    if path is None:
        import netopt.vnnlib

        return netopt.vnnlib
    spec = importlib.util.spec_from_file_location("vnnlib_under_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def run(
    n: int,
    seed: int = 0,
    *,
    timeout: float = 5.0,
    module: str | None = None,
    nets: Path = NETS,
    kinds: list[str] | None = None,
    progress: bool = False,
) -> Report:
    """Fuzz ``n`` mutants with ``random.Random(seed)``; the same arguments give the same mutants."""
    # "the region is empty" warnings and debug lines are expected for mutants: keep them quiet,
    # and give the caller (a test session) its level back
    logger = logging.getLogger("netopt")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _fuzz(n, seed, timeout, module, nets, kinds, progress)
    finally:
        logger.setLevel(level)


def _fuzz(
    n: int,
    seed: int,
    timeout: float,
    module: str | None,
    nets: Path,
    kinds: list[str] | None,
    progress: bool,
) -> Report:
    from netopt.errors import NetoptError

    mod = load_module(module)
    rng = random.Random(seed)
    pool = seeds(nets)
    kinds = kinds or KINDS
    expected: dict[tuple[str, tuple[int, int] | None], Any] = {}
    report = Report()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for i in range(n):
            kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
            s = rng.choice(pool)
            sizes = s.sizes if kind not in ("widen", "combo") and rng.random() < 0.5 else None
            as_text = rng.random() < 0.5
            data = mutate(rng, kind, s)

            def check(prop: Any, kind: str = kind, s: Seed = s, sizes=sizes, data=data):
                if (bad := malformed(prop, data, sizes, mod)) is not None:
                    return bad
                if kind not in PRESERVING:
                    return None
                key = (s.name, sizes)
                if key not in expected:
                    expected[key] = load(mod, s.text, sizes, True, tmp)
                return "same" if same(prop, expected[key], PRESERVING[kind][1]) else "BAD:changed"

            # reading is linear in the text (about 0.5 us a byte on the machine of RESULTS.md):
            # a mutant of several MB gets a second per MB on top of the timeout
            out = classify(
                lambda data=data, sizes=sizes, as_text=as_text: load(
                    mod, data, sizes, as_text, tmp
                ),
                check,
                timeout + len(data) / 1e6,
                NetoptError,
            )
            if kind in PRESERVING and out.cls == "error":
                allowed = PRESERVING[kind][2]
                if allowed is None or not re.search(allowed, out.message):
                    out.cls = "BAD:changed"
            report.counts[kind][out.cls] += 1
            report.slowest[kind] = max(report.slowest[kind], out.seconds)
            if out.cls.startswith("BAD"):
                shown = data if isinstance(data, str) else data.decode("utf-8", "replace")
                report.bad.append(
                    {
                        "i": i,
                        "kind": kind,
                        "seed": s.name,
                        "sizes": sizes,
                        "class": out.cls,
                        "message": out.message[:300],
                        "mutant_head": shown[:200],
                    }
                )
            if progress and (i + 1) % 500 == 0:
                print(f"  {i + 1}/{n} mutants, {report.n_bad} bad", file=sys.stderr, flush=True)
    return report


def table(report: Report) -> str:
    """A markdown table: one row per mutation kind, one column per outcome class."""
    classes = ["error", "parsed", "same"]
    classes += sorted({c for cnt in report.counts.values() for c in cnt} - set(classes))
    head = "| kind | mutants | " + " | ".join(classes) + " | slowest s |"
    lines = [head, "|" + "---|" * (len(classes) + 3)]
    total: collections.Counter = collections.Counter()
    for kind in KINDS:
        if kind not in report.counts:
            continue
        c = report.counts[kind]
        total.update(c)
        cells = " | ".join(str(c.get(k, 0)) for k in classes)
        lines.append(f"| {kind} | {sum(c.values())} | {cells} | {report.slowest[kind]:.2f} |")
    cells = " | ".join(str(total.get(k, 0)) for k in classes)
    lines.append(f"| **all** | {sum(total.values())} | {cells} | |")
    return "\n".join(lines)


def limit_memory(mib: int) -> None:
    """Cap the address space at its current size plus ``mib``: a blow-up is a MemoryError."""
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    now = pages * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (now + mib * 2**20, resource.RLIM_INFINITY))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="mutants (default 5000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--timeout", type=float, default=5.0, help="CPU seconds per mutant before a hang"
    )
    ap.add_argument("--memory-mib", type=int, default=3072, help="address space above the start")
    ap.add_argument("--module", help="another vnnlib.py to fuzz instead of netopt.vnnlib")
    ap.add_argument("--nets", type=Path, default=NETS)
    ap.add_argument("--kinds", nargs="*", choices=KINDS)
    ap.add_argument("--json", type=Path, help="also write the counts and bad examples here")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()

    import netopt.vnnlib  # noqa: F401  (imports done before the address-space limit)

    if args.memory_mib > 0:
        limit_memory(args.memory_mib)
    pool = seeds(args.nets)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}; module: "
        f"{args.module or 'netopt.vnnlib'}"
    )
    print(
        f"{args.n} mutants, seed {args.seed}, timeout {args.timeout} s, memory +{args.memory_mib} "
        f"MiB; {len(pool)} seeds ({', '.join(sorted({s.name.split('/')[0] for s in pool}))})"
    )
    t0 = time.perf_counter()
    report = run(
        args.n,
        args.seed,
        timeout=args.timeout,
        module=args.module,
        nets=args.nets,
        kinds=args.kinds,
        progress=args.progress,
    )
    wall = time.perf_counter() - t0
    print(table(report))
    print(f"\nwall {wall:.1f} s; bad outcomes: {report.n_bad}")
    for b in report.bad[:20]:
        print(f"  #{b['i']} {b['kind']} on {b['seed']} (sizes {b['sizes']}): {b['class']}")
        print(f"      {b['message'][:200]!r}")
    if args.json:
        args.json.write_text(json.dumps({**report.to_json(), "wall": wall, "n": args.n}, indent=1))
    sys.exit(1 if report.n_bad else 0)


if __name__ == "__main__":
    main()
