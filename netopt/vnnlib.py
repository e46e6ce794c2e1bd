"""Read VNN-LIB properties (the VNN-COMP format) into boxes and linear constraints.

A VNN-LIB file (https://www.vnnlib.org) is SMT-LIB text over real constants: the flattened
network inputs are declared ``(declare-const X_i Real)`` (row-major index ``i``), the flattened
outputs ``(declare-const Y_j Real)``, and the ``assert`` formulas together describe the
**counterexample** region: the property is violated ("sat") exactly when some input ``x`` in the
region has an output ``y = f(x)`` in the region too.

:func:`load_vnnlib` turns the conjunction of all assertions into disjunctive normal form, a union
of :class:`Disjunct` s. Each disjunct is an input box ``lo <= x <= hi``, further linear input
constraints ``A_in x <= b_in`` and linear output constraints ``C y <= d``.

Supported grammar (everything else is an :class:`~netopt.errors.InputError` naming the file,
line and expression)::

    command  := (declare-const NAME Real) | (assert formula)
              | (set-logic ..) | (set-info ..) | (set-option ..) | (check-sat) | (get-model) | (exit)
    formula  := (and formula*) | (or formula*) | (CMP term term+) | true | false
    CMP      := <= | >= | < | > | =
    term     := NUMBER | NAME | (+ term+) | (- term) | (- term term+) | (* term+) | (/ term NUMBER*)

``*`` and ``/`` must stay linear (at most one factor with variables, divisors constant). NAME is
``X_i`` or ``Y_j`` (``i``, ``j`` without leading zeros). NUMBER is an integer, a decimal or
scientific notation, optionally signed (``-0.5``: not SMT-LIB, but what VNN-COMP files use).
Comments run from ``;`` to the end of the line. Chained comparisons ``(<= a b c)`` mean
``a <= b`` and ``b <= c``, as in SMT-LIB.

Strict inequalities are read as non-strict: ``(< a b)`` becomes ``a <= b``. The region is then
the closure of the one written, which is what optimization over it can use anyway (a solver works
with closed sets and a tolerance); a point found on the boundary of a strict constraint is a
counterexample only up to that tolerance. ``(= a b)`` becomes ``a <= b`` and ``b <= a``.

Limits (each one an :class:`~netopt.errors.InputError` naming the file, and the line where there
is one, never a raw Python exception):

* **Numbers.** Every number of the property, written or computed (a literal, each intermediate
  result of ``+ - * /``, a coefficient or bound of a constraint, the box bound ``r / a`` of
  ``a * X_i <= r``), must be 0 or have a magnitude in [:data:`MIN_MAGNITUDE`,
  :data:`MAX_MAGNITUDE`], float32's normal range (about 1.2e-38 to 3.4e38). Why float32: the
  networks are float32 ONNX models, whose inputs and outputs cannot exceed 3.4e38, and
  counterexamples are confirmed by onnxruntime in float32, so a larger bound on an input or
  output means no bound and a sampled input beyond it would turn into inf. Why it is sound in
  float64: one operation on two accepted values (a product is at most 1.2e77, a quotient at most
  2.9e76, and at least 3.5e-77 when nonzero) can neither overflow nor underflow, so checking
  after every operation sees the exact rounded value, never an inf, a NaN or a product that
  underflowed to 0; and the checks downstream, ``C @ y - d`` with ``|y| <= 3.4e38``, stay far
  from float64's 1.8e308 for any number of outputs below 1e200.
* **Nesting.** At most :data:`MAX_DEPTH` levels of parentheses (the reader recurses once per
  level; VNN-COMP files use fewer than ten).
* **Size.** At most ``max_disjuncts`` disjuncts, counted operand by operand as the ``and``,
  ``or`` and ``assert`` operands are read: the error comes at the operand that passes the cap,
  before the rest is read or a product is built (so ``(and A B false)`` is refused when ``A`` and
  ``B`` alone pass the cap, while ``(and false A B)`` is empty). At most ``max_bytes`` for the
  disjuncts' arrays (each disjunct holds dense ``n_inputs`` and ``n_outputs``
  rows, so the disjunct count alone does not bound the memory: 10 000 disjuncts over 40 000
  inputs would take 6.4 GB).
* **Declarations** are checked against their count without enumerating the indices, so
  ``X_1000000000000`` costs nothing before its error.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import logging
import math
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from netopt.errors import InputError

__all__ = [
    "Disjunct",
    "VnnlibProperty",
    "load_vnnlib",
    "DEFAULT_MAX_DISJUNCTS",
    "DEFAULT_MAX_BYTES",
    "MAX_MAGNITUDE",
    "MIN_MAGNITUDE",
    "MAX_DEPTH",
]

log = logging.getLogger("netopt")

#: The default cap on the number of disjuncts of the disjunctive normal form.
DEFAULT_MAX_DISJUNCTS = 10_000
#: The default cap on the bytes of the disjuncts' arrays (an estimate made before building them).
DEFAULT_MAX_BYTES = 2**30
#: The largest magnitude of a number in a property: float32's largest finite value (see the
#: module docstring for why).
MAX_MAGNITUDE = float(np.finfo(np.float32).max)
#: The smallest magnitude of a nonzero number in a property: float32's smallest normal value.
MIN_MAGNITUDE = float(np.finfo(np.float32).tiny)
#: The deepest nesting of parentheses read. The reader recurses once per level (two Python
#: frames) and Python's default recursion limit is 1000 frames: this leaves room for the caller.
MAX_DEPTH = 256
# an index with more digits is refused at its declaration: no network has 10**18 inputs, and
# int() refuses strings over 4300 digits with a ValueError
_MAX_INDEX_DIGITS = 18

# Why a reader of our own: no well-kept VNN-LIB parser on PyPI handles these files with linear
# terms and DNF conversion. ``vnnlib`` 1.0.x (the VNN-LIB 2.0 reference bindings, a C++
# extension) rejects the VNN-LIB 1.0 files VNN-COMP publishes (``(declare-const X_0 Real)`` is a
# syntax error there); ``vnnlib`` 0.0.1 (an alpha that reads 1.0 files) drops an input-only
# linear constraint such as ``(<= (+ X_0 X_1) 1)`` without a word and returns a wrong box,
# fails on a mixed input-output constraint with a bare AssertionError, and reports no line
# numbers. The language needed here is a few s-expression forms, and reading it ourselves lets
# every error name the file, line and expression.

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
# ASCII only: in Unicode mode \d also matches other scripts' digits, which float() and int()
# accept ("X_1\u0661" would be a second name for X_11)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_VARIABLE = re.compile(r"([XY])_(0|[1-9]\d*)", re.ASCII)
# SMT-LIB ends lines (and comments) at a line feed; str.splitlines() would also end them at a
# form feed, \x1c-\x1e, \x85 or \u2028, turning the rest of a comment into code
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_IGNORED_COMMANDS = frozenset(
    {"set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"}
)
_COMPARISONS = frozenset({"<=", ">=", "<", ">", "="})
_TERM_OPS = frozenset({"+", "-", "*", "/"})


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only float64 copy (a copy: the caller's array keeps its flags)."""
    try:
        out = np.array(a, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise InputError(f"not a numeric array ({e})") from e
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Disjunct:
    """One conjunction of the counterexample region: a polyhedron in input-output space.

    ``(x, y)`` lies in the disjunct when ``lo <= x <= hi``, ``A_in @ x <= b_in`` and
    ``C @ y <= d``, with ``x`` and ``y`` the flattened (row-major) input and output.

    Attributes
    ----------
    lo, hi : numpy.ndarray
        ``(n_inputs,)`` input box; ``-inf`` / ``+inf`` where the property sets no bound. Every
        bound on a single input variable (``(<= X_3 0.5)``, ``(<= (* 2 X_3) 1)``) is folded in
        here, the tightest one winning.
    A_in, b_in : numpy.ndarray
        ``(k, n_inputs)`` and ``(k,)``: the input constraints over two or more variables,
        ``A_in @ x <= b_in``; ``k = 0`` when there are none.
    C, d : numpy.ndarray
        ``(m, n_outputs)`` and ``(m,)``: the output constraints ``C @ y <= d`` (``m`` may be 0:
        then every output of an input in the box is a counterexample).

    All arrays are stored as read-only float64 copies (the shapes are checked on
    construction). Two disjuncts are equal when all their arrays are.
    """

    lo: np.ndarray
    hi: np.ndarray
    A_in: np.ndarray
    b_in: np.ndarray
    C: np.ndarray
    d: np.ndarray

    def __post_init__(self) -> None:
        for f in ("lo", "hi", "A_in", "b_in", "C", "d"):
            object.__setattr__(self, f, _readonly(getattr(self, f)))
        n = self.lo.shape[0] if self.lo.ndim == 1 else -1
        ok = (
            self.lo.ndim == 1
            and self.hi.shape == (n,)
            and self.A_in.ndim == 2
            and self.A_in.shape[1] == n
            and self.b_in.shape == (self.A_in.shape[0],)
            and self.C.ndim == 2
            and self.d.shape == (self.C.shape[0],)
        )
        if not ok:
            raise InputError(
                "Disjunct needs lo, hi of shape (n,), A_in (k, n), b_in (k,), C (m, n_out) and "
                f"d (m,); got lo {self.lo.shape}, hi {self.hi.shape}, A_in {self.A_in.shape}, "
                f"b_in {self.b_in.shape}, C {self.C.shape}, d {self.d.shape}"
            )
        # NaN compares false both ways, so a NaN bound or row would silently drop a constraint
        # (or, in a check "C y - d <= 0", declare everything safe); infinities are allowed only
        # where they mean "no bound". (One comparison per array: lo < inf is False for NaN.)
        bad = [] if (self.lo < np.inf).all() else ["lo (NaN or +inf)"]
        bad += [] if (self.hi > -np.inf).all() else ["hi (NaN or -inf)"]
        bad += [f for f in ("A_in", "b_in", "C", "d") if not np.isfinite(getattr(self, f)).all()]
        if bad:
            raise InputError(
                f"Disjunct has non-finite values in {', '.join(bad)}; only lo = -inf and "
                "hi = +inf (no bound) are allowed"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Disjunct):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f), getattr(other, f))
            for f in ("lo", "hi", "A_in", "b_in", "C", "d")
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking contents: compare, don't hash

    def contains(self, x: np.ndarray, y: np.ndarray, tol: float = 1e-9) -> bool:
        """Whether ``(x, y)`` lies in this disjunct, each constraint checked up to ``tol``.

        Parameters
        ----------
        x, y : array_like
            An input and an output, any shape with ``n_inputs`` / ``n_outputs`` elements
            (flattened row-major).
        tol : float
            Absolute slack allowed on every constraint (``lo - tol <= x``, ``C @ y <= d + tol``,
            ...), computed in float64. A NaN anywhere makes the answer False.

        Returns
        -------
        bool
        """
        x = _flat(x, self.lo.shape[0], "x", "inputs")
        y = _flat(y, self.C.shape[1], "y", "outputs")
        return bool(
            np.all(x >= self.lo - tol)
            and np.all(x <= self.hi + tol)
            and np.all(self.A_in @ x <= self.b_in + tol)
            and np.all(self.C @ y <= self.d + tol)
        )


@dataclass(frozen=True)
class VnnlibProperty:
    """A VNN-LIB property: the counterexample region as a union of :class:`Disjunct` s.

    The safety property holds when no ``(x, f(x))`` lies in any disjunct; a point in one of
    them is a counterexample ("sat" in VNN-COMP terms).

    Attributes
    ----------
    path : str or None
        The file it was read from (None when it was given as text).
    n_inputs, n_outputs : int
        The number of declared ``X_i`` and ``Y_j``: the network's flattened input and output
        sizes.
    disjuncts : tuple of Disjunct
        The disjunctive normal form of the conjunction of all assertions, in the order the
        distribution produces (the first operand of an ``or`` varies slowest). Disjuncts with
        an empty box are left out; an empty tuple means the region is empty, i.e. the property
        holds trivially.
    """

    path: str | None
    n_inputs: int
    n_outputs: int
    disjuncts: tuple[Disjunct, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "disjuncts", tuple(self.disjuncts))
        for k, dj in enumerate(self.disjuncts):
            if dj.lo.shape[0] != self.n_inputs or dj.C.shape[1] != self.n_outputs:
                raise InputError(
                    f"disjunct {k} has {dj.lo.shape[0]} inputs and {dj.C.shape[1]} outputs, "
                    f"the property {self.n_inputs} and {self.n_outputs}"
                )

    def violated_by(self, x: np.ndarray, y: np.ndarray, tol: float = 1e-9) -> int | None:
        """The index of the first disjunct containing ``(x, y)``, or None if there is none.

        Parameters
        ----------
        x, y : array_like
            An input and its output (flattened row-major), e.g. ``y = net(x)``.
        tol : float
            Absolute slack on every constraint, see :meth:`Disjunct.contains`.

        Returns
        -------
        int or None
            None means ``(x, y)`` is not a counterexample.
        """
        x = _flat(x, self.n_inputs, "x", "inputs")
        y = _flat(y, self.n_outputs, "y", "outputs")
        for i, dj in enumerate(self.disjuncts):
            if dj.contains(x, y, tol):
                return i
        return None

    def input_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The hull of the disjuncts' input boxes: elementwise min of ``lo``, max of ``hi``.

        Every counterexample input lies in this box (the ``A_in`` constraints only shrink the
        region further), so it is a sound input domain for bounds over the whole property.

        Returns
        -------
        lo, hi : numpy.ndarray
            ``(n_inputs,)`` each. With no disjuncts (an empty region) the hull is empty:
            ``lo = +inf``, ``hi = -inf``.
        """
        lo = np.full(self.n_inputs, np.inf)
        hi = np.full(self.n_inputs, -np.inf)
        for dj in self.disjuncts:
            np.minimum(lo, dj.lo, out=lo)
            np.maximum(hi, dj.hi, out=hi)
        return lo, hi


def _flat(v: np.ndarray, n: int, name: str, what: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} is not a numeric array ({e})") from e
    if a.shape[0] != n:
        raise InputError(
            f"{name} has {a.shape[0]} elements but the property has {n} {what}; "
            f"pass the flattened network {what[:-1]}"
        )
    return a


# --------------------------------------------------------------------------- reading
# (NamedTuples, not dataclasses: a 75 kB MNIST property has ~20 000 tokens, and they build faster)
class _Atom(NamedTuple):
    """A token: a symbol or number, with the line it is on."""

    text: str
    line: int


class _List(NamedTuple):
    """A parenthesized expression, with the line of its opening parenthesis."""

    items: tuple[_Atom | _List, ...]
    line: int


_Node = _Atom | _List


def _render(node: _Node, limit: int = 80) -> str:
    """The expression as text, shortened to ``limit`` characters for error messages.

    Iterative, and it stops once past ``limit``: the expression may be nested thousands of levels
    deep or hold a million items, and an error message must not fail on it.
    """
    out: list[str] = []
    size = 0
    # (items of an open list, index of the next one); the root is a pseudo-list of one item
    stack: list[tuple[tuple[_Node, ...], int]] = [((node,), 0)]
    while stack and size <= limit:
        items, k = stack[-1]
        if k == len(items):
            stack.pop()
            if not stack:
                break
            piece = ")"
        else:
            stack[-1] = (items, k + 1)
            child = items[k]
            sep = " " if k and len(stack) > 1 else ""
            if isinstance(child, _Atom):
                piece = sep + child.text
            else:
                piece = sep + "("
                stack.append((child.items, 0))
        out.append(piece)
        size += len(piece)
    s = "".join(out)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _read_sexprs(text: str, source: str) -> list[_Node]:
    """Tokenize and read the top-level s-expressions (iteratively: no recursion limit).

    Nesting deeper than :data:`MAX_DEPTH` is refused here, at the line of the ``(`` that passes
    it, because evaluating the formulas recurses once per level.
    """
    stack: list[tuple[int, list[_Node]]] = [(0, [])]
    new = tuple.__new__  # builds a NamedTuple twice as fast as its generated __new__
    for lineno, line in enumerate(_LINE_BREAK.split(text), start=1):
        code = line.split(";", 1)[0]
        for tok in _TOKEN.findall(code):
            if tok == "(":
                if len(stack) > MAX_DEPTH:
                    raise InputError(
                        f"{source}:{lineno}: expressions nested too deeply: this '(' opens level "
                        f"{len(stack)}, more than the {MAX_DEPTH} netopt reads; flatten the "
                        "nesting ((and a (and b c)) is (and a b c), (+ (+ a b) c) is (+ a b c))"
                    )
                stack.append((lineno, []))
            elif tok == ")":
                if len(stack) == 1:
                    raise InputError(
                        f"{source}:{lineno}: unbalanced parentheses: ')' closes nothing; "
                        "remove it or add the missing '('"
                    )
                start, items = stack.pop()
                stack[-1][1].append(new(_List, (tuple(items), start)))
            else:
                stack[-1][1].append(new(_Atom, (tok, lineno)))
    if len(stack) > 1:
        start, items = stack[-1]
        head = _render(_List(tuple(items), start), 60).removesuffix(")")
        raise InputError(
            f"{source}:{start}: unbalanced parentheses: the '(' opened on line {start} "
            f"(it starts {head} ...) is never closed; add the missing ')'"
        )
    return stack[0][1]


# --------------------------------------------------------------------------- linear algebra
# A linear expression: ({variable name: coefficient}, constant).
_Lin = tuple[dict[str, float], float]


@dataclass(frozen=True)
class _Ineq:
    """``sum(coef[v] * v) <= rhs`` over variables of one kind (``'X'`` or ``'Y'``)."""

    kind: str
    coef: tuple[tuple[int, float], ...]
    rhs: float


# A conjunction is a tuple of groups (tuples of inequalities); groups are shared between the
# disjuncts a distribution produces, so a big common part (an input box conjoined with an `or`
# of output constraints) is stored and converted to arrays once, not once per disjunct.
_Group = tuple[_Ineq, ...]
_Conj = tuple[_Group, ...]
_Dnf = list[_Conj]

_TRUE: _Dnf = [()]
_FALSE: _Dnf = []


class _Reader:
    """Evaluates the commands of one file into declarations and a DNF."""

    def __init__(self, source: str, max_disjuncts: int) -> None:
        self.source = source
        self.max_disjuncts = max_disjuncts
        self.declared: dict[str, tuple[str, int]] = {}
        self.n_strict = 0

    def error(self, node: _Node, what: str, todo: str, context: _Node | None = None) -> InputError:
        """``file:line: what in (expression); todo``; a bare token is shown in its context."""
        shown = context if isinstance(node, _Atom) else node
        where = f" in {_render(shown)}" if shown is not None else ""
        return InputError(f"{self.source}:{node.line}: {what}{where}; {todo}")

    def value(
        self,
        v: float,
        what: str,
        node: _Node,
        context: _Node | None = None,
        *,
        written: bool = False,
    ) -> float:
        """``v`` if it is 0 or within float32's normal range, else an error on ``node``.

        ``what`` names the number in the message: "the number 1e400" (``written``: the text
        already shows the value) or "the coefficient of X_0 this term computes".
        """
        if v == 0.0 or MIN_MAGNITUDE <= abs(v) <= MAX_MAGNITUDE:
            return v
        shown = "" if written else f" {v:.6g}"  # inf and nan print as such
        if math.isnan(v):  # (cannot come from checked operands; kept for safety)
            why, todo = "not a number", "check the operation"
        elif abs(v) > MAX_MAGNITUDE:
            why = f"larger in magnitude than {MAX_MAGNITUDE:.6g} (float32's largest value)"
            todo = (
                "leave the bound out if no bound is meant, or rescale the constraint (divide "
                "both sides by a power of 10)"
            )
        else:
            why = (
                f"nonzero but smaller in magnitude than {MIN_MAGNITUDE:.6g} (float32's smallest "
                "normal value)"
            )
            todo = (
                "write 0 if the term is negligible, or rescale the constraint (multiply both "
                "sides by a power of 10)"
            )
        raise self.error(
            node,
            f"{what} is{shown}{',' if shown else ''} {why}",
            f"netopt accepts numbers, written or computed, that are 0 or between "
            f"{MIN_MAGNITUDE:.2g} and {MAX_MAGNITUDE:.2g} in magnitude: {todo}",
            context,
        )

    def linear(self, t: _Lin, node: _List) -> _Lin:
        """``t`` with every coefficient and its constant checked by :meth:`value`."""
        for v, c in t[0].items():
            self.value(c, f"the coefficient of {v} this term computes", node)
        self.value(t[1], "the constant this term computes", node)
        return t

    # ---------------------------------------------------------------- commands
    def run(self, nodes: list[_Node]) -> _Dnf:
        asserts: list[_Dnf] = []
        assert_nodes: list[_Node] = []
        count = 1  # the disjuncts of the conjunction of the asserts so far
        for i, node in enumerate(nodes):
            if isinstance(node, _Atom):
                raise self.error(
                    node,
                    f"'{node.text}' outside any command",
                    "VNN-LIB files consist of (declare-const ...) and (assert ...) commands",
                )
            head = node.items[0] if node.items else None
            name = head.text if isinstance(head, _Atom) else None
            if name == "declare-const":
                self.declare(node)
            elif name == "assert":
                if len(node.items) != 2:
                    raise self.error(
                        node, "assert takes one formula", "write one (assert ...) per formula"
                    )
                asserts.append(self.formula(node.items[1]))
                assert_nodes.append(node)
                count *= len(asserts[-1])
                if count > self.max_disjuncts:
                    n_left = sum(
                        isinstance(n, _List)
                        and bool(n.items)
                        and isinstance(n.items[0], _Atom)
                        and n.items[0].text == "assert"
                        for n in nodes[i + 1 :]
                    )
                    raise self.too_many(count, tuple(assert_nodes), len(assert_nodes) - 1, n_left)
            elif name in _IGNORED_COMMANDS:
                log.debug("%s:%d: ignoring (%s ...)", self.source, node.line, name)
            else:
                raise self.error(
                    node,
                    f"unsupported command {name or _render(node)!r}",
                    "netopt reads (declare-const X_i Real), (declare-const Y_j Real) and "
                    "(assert ...) only",
                )
        return self.conjoin(asserts)

    def declare(self, node: _List) -> None:
        items = node.items
        if len(items) != 3 or not all(isinstance(n, _Atom) for n in items):
            raise self.error(
                node,
                "malformed declaration",
                "write (declare-const X_0 Real) or (declare-const Y_0 Real)",
            )
        name, sort = items[1].text, items[2].text
        m = _VARIABLE.fullmatch(name)
        if m is None:
            raise self.error(
                node,
                f"unknown variable {name!r}",
                "VNN-LIB names the flattened inputs X_0, X_1, ... and the outputs Y_0, Y_1, ...",
            )
        if len(m.group(2)) > _MAX_INDEX_DIGITS:
            raise self.error(
                node,
                f"the index of {name if len(name) <= 24 else name[:20] + '...'} has "
                f"{len(m.group(2))} digits, "
                f"more than any network's flattened size ({_MAX_INDEX_DIGITS} at most)",
                "VNN-LIB declares X_0 .. X_{n-1} and Y_0 .. Y_{m-1} for a network with n "
                "inputs and m outputs; check that the property belongs to this network",
            )
        if sort != "Real":
            raise self.error(
                node, f"unsupported sort {sort!r} for {name}", "declare every variable as Real"
            )
        if name in self.declared:
            raise self.error(node, f"{name} is declared twice", "remove the second declaration")
        self.declared[name] = (m.group(1), int(m.group(2)))

    # ---------------------------------------------------------------- formulas
    def formula(self, node: _Node) -> _Dnf:
        if isinstance(node, _Atom):
            if node.text == "true":
                return _TRUE
            if node.text == "false":
                return _FALSE
            raise self.error(
                node,
                f"{node.text!r} is not a formula",
                "assert a comparison such as (<= X_0 1.0), or an and/or of comparisons",
            )
        op = self.head(node)
        args = node.items[1:]
        if op in ("and", "or"):
            # the count is checked operand by operand: holding every operand first would let
            # (or A A ... A), each A a legal 8192-disjunct product, take operands x cap memory
            dnfs: list[_Dnf] = []
            count = 1 if op == "and" else 0
            for k, a in enumerate(args):
                dnfs.append(self.formula(a))
                count = count * len(dnfs[-1]) if op == "and" else count + len(dnfs[-1])
                if count > self.max_disjuncts:
                    raise self.too_many(count, args, k)
            return self.conjoin(dnfs) if op == "and" else self.disjoin(dnfs)
        if op in _COMPARISONS:
            return self.comparison(node, op, args)
        if op in _TERM_OPS:
            raise self.error(
                node,
                f"the term ({op} ...) stands where a formula is expected",
                "compare it: (<= ... c)",
            )
        raise self.error(
            node,
            f"unsupported operator {op!r}",
            "netopt supports and, or, <=, >=, <, >, = over linear terms (+, -, *, / by constants); "
            "rewrite the property with these",
        )

    def head(self, node: _List) -> str:
        if not node.items or not isinstance(node.items[0], _Atom):
            raise self.error(
                node, "expected an operator after '('", "write (op arg ...), e.g. (<= X_0 1)"
            )
        return node.items[0].text

    def comparison(self, node: _List, op: str, args: tuple[_Node, ...]) -> _Dnf:
        if len(args) < 2:
            raise self.error(node, f"{op} needs at least two terms", "write (<= a b)")
        if op in ("<", ">"):
            self.n_strict += 1
        terms = [self.term(a, node) for a in args]
        ineqs: list[_Ineq] = []
        for a, b in itertools.pairwise(terms):
            if op in ("<=", "<", "="):
                pairs = [(a, b), (b, a)] if op == "=" else [(a, b)]
            else:
                pairs = [(b, a)]
            for lhs, rhs in pairs:
                ineq = self.inequality(lhs, rhs, node)
                if ineq is False:
                    return _FALSE
                if ineq is not True:
                    ineqs.append(ineq)
        return [(tuple(ineqs),)] if ineqs else _TRUE

    def inequality(self, lhs: _Lin, rhs: _Lin, node: _Node) -> _Ineq | bool:
        """``lhs <= rhs`` as an :class:`_Ineq`, or a bool when no variable is left.

        The coefficients, the bound and (for one input variable) the box bound ``rhs / a`` are
        checked by :meth:`_Reader.value`: moving the terms to one side can push them out of range.
        """
        coef = dict(lhs[0])
        for v, c in rhs[0].items():
            coef[v] = coef.get(v, 0.0) - c
        coef = {v: c for v, c in coef.items() if c != 0.0}
        bound = rhs[1] - lhs[1] + 0.0  # no -0.0 in b_in, d
        for v, c in coef.items():
            self.value(c, f"the coefficient of {v} in this constraint", node)
        self.value(bound, "the bound of this constraint", node)
        if not coef:
            return bool(0.0 <= bound)
        if len(coef) == 1:
            ((v, c),) = coef.items()
            if self.declared[v][0] == "X":
                # the box bound _Compiler.group computes from this inequality
                side = "<=" if c > 0 else ">="
                self.value(
                    bound / c, f"the bound {v} {side} {bound / c:.6g} it gives", node, written=True
                )
        kinds = {self.declared[v][0] for v in coef}
        if len(kinds) > 1:
            raise self.error(
                node,
                "a constraint mixes input (X) and output (Y) variables",
                "netopt does not support mixed input-output constraints; "
                "constrain the inputs and the outputs separately",
            )
        items = tuple(sorted((self.declared[v][1], c) for v, c in coef.items()))
        return _Ineq(kinds.pop(), items, bound)

    # ---------------------------------------------------------------- terms
    def term(self, node: _Node, parent: _List) -> _Lin:
        if isinstance(node, _Atom):
            return self.atom(node, parent)
        op = self.head(node)
        args = [self.term(a, node) for a in node.items[1:]] if op in _TERM_OPS else []
        if op in _TERM_OPS and not args:
            raise self.error(node, f"{op} needs at least one term", f"write ({op} a b)")
        # every operand is checked (by this method or atom()), and each step below is checked
        # again: one float64 operation on two values in range cannot overflow or underflow, so
        # no inf, NaN or silent 0 gets past a check (see the module docstring)
        if op == "+":
            return self.linear(_sum(args), node)
        if op == "-":
            if len(args) == 1:
                return _scale(args[0], -1.0)
            return self.linear(_sum([args[0], *(_scale(a, -1.0) for a in args[1:])]), node)
        if op == "*":
            variable = [a for a in args if a[0]]
            if len(variable) > 1:
                raise self.error(
                    node,
                    "unsupported operator: nonlinear product",
                    "netopt handles linear constraints only: multiply variables by constants",
                )
            factor = 1.0
            for a in args:
                if not a[0]:  # one factor at a time: a product of many could under/overflow
                    factor = self.value(factor * a[1], "the product of the constant factors", node)
            return self.linear(_scale(variable[0], factor), node) if variable else ({}, factor)
        if op == "/":
            if any(a[0] for a in args[1:]):
                raise self.error(
                    node,
                    "unsupported operator: division by a variable",
                    "netopt handles linear constraints only: divide by constants",
                )
            out = args[0]
            for a in args[1:]:  # (/ a b c) is (a / b) / c, one checked division at a time
                if a[1] == 0.0:
                    raise self.error(node, "division by zero", "fix the divisor")
                out = self.linear(({v: c / a[1] for v, c in out[0].items()}, out[1] / a[1]), node)
            return out
        if op in _COMPARISONS or op in ("and", "or"):
            raise self.error(
                node,
                f"the formula ({op} ...) stands where a term is expected",
                "use a number, a variable or a linear term",
            )
        raise self.error(
            node,
            f"unsupported operator {op!r}",
            "netopt supports linear terms built with +, -, * and / by constants; "
            "rewrite the property with these",
        )

    def atom(self, node: _Atom, parent: _List) -> _Lin:
        text = node.text
        if text in self.declared:
            return {text: 1.0}, 0.0
        if _VARIABLE.fullmatch(text):
            raise self.error(
                node,
                f"undeclared variable {text}",
                f"declare it with (declare-const {text} Real) before the assert that uses it",
                parent,
            )
        if text[0].isdigit() or text[0] in "+-.":
            if _NUMBER.fullmatch(text):
                return {}, self.value(
                    float(text), f"the number {text[:40]}", node, parent, written=True
                )
            raise self.error(
                node,
                f"cannot parse the number {text!r}",
                "write integers, decimals or scientific notation such as 1.5e-3",
                parent,
            )
        raise self.error(
            node,
            f"unknown variable {text!r}",
            "terms use numbers and the declared X_i (inputs) and Y_j (outputs)",
            parent,
        )

    # ---------------------------------------------------------------- DNF
    @staticmethod
    def disjoin(dnfs: list[_Dnf]) -> _Dnf:
        """The union of the operands' disjunctions (a concatenation)."""
        return [c for d in dnfs for c in d]

    @staticmethod
    def conjoin(dnfs: list[_Dnf]) -> _Dnf:
        """Distribute ``and`` over the operands' disjunctions (a cartesian product).

        Runs of operands with a single disjunct (the usual box constraints) are merged into one
        group shared by every product term; the textual order of the constraints is kept. The
        caller has checked the size of the product against the cap.
        """
        if any(not d for d in dnfs):
            return _FALSE
        template: list[_Group | int] = []  # a fixed group, or the index of a varying operand
        run: list[_Ineq] = []
        varying: list[_Dnf] = []
        for d in dnfs:
            if len(d) == 1:
                run.extend(i for g in d[0] for i in g)
                continue
            if run:
                template.append(tuple(run))
                run = []
            template.append(len(varying))
            varying.append(d)
        if run:
            template.append(tuple(run))
        out: _Dnf = []
        for choice in itertools.product(*varying):
            conj: list[_Group] = []
            for t in template:
                conj.extend(choice[t] if isinstance(t, int) else (t,))
            out.append(tuple(conj))
        return out

    def too_many(
        self, count: int, nodes: tuple[_Node, ...], at: int, n_left: int | None = None
    ) -> InputError:
        """The error for a running disjunct count that passes ``max_disjuncts`` at ``nodes[at]``.

        Raised there, before the operands after it are read (``n_left`` of them; by default the
        rest of ``nodes``): the count is exact when there are none.
        """
        n_left = len(nodes) - at - 1 if n_left is None else n_left
        upto = f" up to this operand ({n_left} more not read)" if n_left else ""
        return self.error(
            nodes[at],
            f"the disjunctive normal form would have {count} disjuncts{upto}, more than "
            f"max_disjuncts={self.max_disjuncts} (passed at this operand)",
            "pass a larger max_disjuncts to load_vnnlib if memory allows, or split the property "
            "into several files (one per disjunct of an outer or)",
        )


def _sum(terms: list[_Lin]) -> _Lin:
    coef: dict[str, float] = {}
    const = 0.0
    for c, k in terms:
        const += k
        for v, a in c.items():
            coef[v] = coef.get(v, 0.0) + a
    return coef, const


def _scale(t: _Lin, s: float) -> _Lin:
    return {v: s * a for v, a in t[0].items()}, s * t[1]


# --------------------------------------------------------------------------- arrays
class _Compiler:
    """Turns groups of inequalities into arrays, once per group."""

    def __init__(self, n_in: int, n_out: int) -> None:
        self.n_in, self.n_out = n_in, n_out
        self.cache: dict[int, tuple] = {}

    def group(self, g: _Group) -> tuple:
        key = id(g)  # groups stay alive in the DNF while the cache is used
        if key not in self.cache:
            lo_i, lo_v, hi_i, hi_v, a_rows, b, c_rows, d = [], [], [], [], [], [], [], []
            for q in g:
                if q.kind == "X" and len(q.coef) == 1:
                    # a single input variable: a * x_i <= r is a box bound
                    (i, a) = q.coef[0]
                    # (+ 0.0 turns the -0.0 of "x >= 0" read as "-x <= 0" into 0.0)
                    if a > 0:
                        hi_i.append(i)
                        hi_v.append(q.rhs / a + 0.0)
                    else:
                        lo_i.append(i)
                        lo_v.append(q.rhs / a + 0.0)
                    continue
                row = np.zeros(self.n_in if q.kind == "X" else self.n_out)
                for i, a in q.coef:
                    row[i] = a
                if q.kind == "X":
                    a_rows.append(row)
                    b.append(q.rhs)
                else:
                    c_rows.append(row)
                    d.append(q.rhs)
            self.cache[key] = (
                np.array(lo_i, dtype=np.intp),
                np.array(lo_v, dtype=np.float64),
                np.array(hi_i, dtype=np.intp),
                np.array(hi_v, dtype=np.float64),
                a_rows,
                b,
                c_rows,
                d,
            )
        return self.cache[key]

    def disjunct(self, conj: _Conj) -> Disjunct:
        lo = np.full(self.n_in, -np.inf)
        hi = np.full(self.n_in, np.inf)
        a_rows: list[np.ndarray] = []
        b: list[float] = []
        c_rows: list[np.ndarray] = []
        d: list[float] = []
        for g in conj:
            lo_i, lo_v, hi_i, hi_v, ga, gb, gc, gd = self.group(g)
            np.maximum.at(lo, lo_i, lo_v)  # the tightest bound wins, repeats included
            np.minimum.at(hi, hi_i, hi_v)
            a_rows += ga
            b += gb
            c_rows += gc
            d += gd
        return Disjunct(
            lo=lo,
            hi=hi,
            A_in=np.array(a_rows).reshape(len(a_rows), self.n_in),
            b_in=np.array(b),
            C=np.array(c_rows).reshape(len(c_rows), self.n_out),
            d=np.array(d),
        )


# --------------------------------------------------------------------------- entry point
def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct indices as runs ``(first, last)`` of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _gaps(indices: list[int], n: int) -> list[tuple[int, int]]:
    """The runs of ``0 .. n-1`` missing from sorted distinct ``indices`` (never enumerated)."""
    gaps: list[tuple[int, int]] = []
    nxt = 0
    for i in indices:
        if i >= n:
            break
        if i > nxt:
            gaps.append((nxt, i - 1))
        nxt = i + 1
    if nxt < n:
        gaps.append((nxt, n - 1))
    return gaps


def _names(kind: str, runs: list[tuple[int, int]], limit: int = 5) -> str:
    """``X_0 .. X_4, X_7, X_9, ...``: the first ``limit`` runs, a run of three or more as a range."""
    if not runs:
        return "none"
    parts: list[str] = []
    for a, b in runs:
        if b - a >= 2:
            parts.append(f"{kind}_{a} .. {kind}_{b}")
        else:
            parts.extend(f"{kind}_{i}" for i in range(a, b + 1))  # one or two names
    return ", ".join(parts[:limit]) + (", ..." if len(parts) > limit else "")


def _count(declared: dict[str, tuple[str, int]], kind: str, given: int | None, source: str) -> int:
    """The number of ``kind`` variables, checked to be exactly ``kind_0 .. kind_{n-1}``.

    The indices are distinct (names are unique and have no leading zeros), so after sorting
    they are ``0 .. n-1`` exactly when there are ``n`` of them and the last is ``n - 1``: the
    check never builds ``range(n)``, whatever index the file declares.
    """
    word = "inputs" if kind == "X" else "outputs"
    indices = sorted(i for k, i in declared.values() if k == kind)
    if given is None:
        if not indices:
            raise InputError(
                f"{source}: no {word} declared; declare them with (declare-const {kind}_0 Real), "
                f"(declare-const {kind}_1 Real), ..."
            )
        n = indices[-1] + 1
        if len(indices) != n:
            raise InputError(
                f"{source}: {kind}_{n - 1} is declared but {_names(kind, _gaps(indices, n))} "
                f"not; VNN-LIB declares exactly {kind}_0 .. {kind}_{n - 1}, one per element of "
                f"the flattened network {word[:-1]}: declare the missing ones"
            )
        return n
    if len(indices) != given or indices[-1] != given - 1:
        wrong = []
        if missing := _gaps(indices, given):
            wrong.append(f"{_names(kind, missing)} missing")
        if beyond := indices[bisect.bisect_left(indices, given) :]:
            wrong.append(f"{_names(kind, _runs(beyond))} beyond them")
        raise InputError(
            f"{source}: the property declares {len(indices)} {word} "
            f"({_names(kind, _runs(indices))}) but n_{word}={given} was given "
            f"({_names(kind, [(0, given - 1)])} expected; {', '.join(wrong)}); check that the "
            "property belongs to this network"
        )
    return int(given)


def _array_bytes(dnf: _Dnf, n_in: int, n_out: int, stop: int) -> int:
    """The bytes of the disjuncts' arrays (``lo``, ``hi``, ``A_in``, ``b_in``, ``C``, ``d``).

    Every disjunct stores its own copy of its groups' rows (the row counts of a shared group are
    computed once). Stops counting once past ``stop``: the result is then a lower bound.
    """
    rows: dict[int, tuple[int, int]] = {}
    total = 0
    for conj in dnf:
        n_a = n_c = 0
        for g in conj:
            r = rows.get(id(g))
            if r is None:
                r = rows[id(g)] = (
                    sum(1 for q in g if q.kind == "X" and len(q.coef) > 1),
                    sum(1 for q in g if q.kind == "Y"),
                )
            n_a += r[0]
            n_c += r[1]
        total += 8 * (2 * n_in + n_a * (n_in + 1) + n_c * (n_out + 1))
        if total > stop:
            break
    return total


def _read_file(path: str) -> str:
    """The text of a ``.vnnlib`` (or ``.vnnlib.gz``) file; every failure an InputError."""
    if not path.strip():
        raise InputError("load_vnnlib got an empty string; pass a .vnnlib path or its text")
    p = Path(path)
    try:
        # (is_file() raises for some errors: a name too long, a permission denied on a parent)
        if p.is_file():
            what = None
        elif p.is_dir():
            what = "is a folder, not a file"
        elif p.exists():
            what = "is not a regular file"  # a FIFO or a device: a read could block or not end
        else:
            what = "no such file"
    except (OSError, ValueError) as e:
        what = f"cannot be opened ({e.strerror if isinstance(e, OSError) else e})"
    if what is not None and ("(" in path or "\n" in path):
        raise InputError(
            f"load_vnnlib got text that declares no variables ({path[:60]!r}...); "
            "a VNN-LIB property declares its inputs and outputs with "
            "(declare-const X_0 Real), (declare-const Y_0 Real), ..."
        )
    shown = path if len(path) <= 200 else path[:200] + "..."
    if what is not None:
        raise InputError(
            f"{shown}: {what}; pass the path of a .vnnlib file, or the property text itself"
        )
    try:
        raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as e:
        raise InputError(
            f"{shown}: cannot read the file ({e}); pass a UTF-8 text .vnnlib file"
        ) from e


def load_vnnlib(
    path_or_text: str | os.PathLike[str],
    n_inputs: int | None = None,
    n_outputs: int | None = None,
    *,
    max_disjuncts: int = DEFAULT_MAX_DISJUNCTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> VnnlibProperty:
    """Read a VNN-LIB property into a union of polyhedra (the counterexample region).

    Parameters
    ----------
    path_or_text : str or os.PathLike
        A ``.vnnlib`` file (``.vnnlib.gz`` is decompressed), or the property text itself: a
        ``str`` containing ``declare-const`` is taken as text.
    n_inputs, n_outputs : int, optional
        The network's flattened input and output sizes. When given, the file must declare
        exactly ``X_0..X_{n_inputs-1}`` and ``Y_0..Y_{n_outputs-1}``; when left out, they are
        inferred from the declarations (which must still be contiguous from 0).
    max_disjuncts : int
        Cap on the number of disjuncts of the disjunctive normal form. Distributing ``and``
        over ``or`` multiplies the disjunct counts (two asserted ``or`` s of 100 give 10 000),
        so the cap stops a blow-up before it is built.
    max_bytes : int
        Cap on the bytes of the disjuncts' arrays, estimated before they are built. Each
        disjunct holds its own dense box and constraint rows, so ``max_disjuncts`` alone does
        not bound the memory when the network is wide (the default, 1 GiB, holds 10 000
        disjuncts of a 784-input box many times over).

    Returns
    -------
    VnnlibProperty
        All ``assert`` s conjoined and brought to disjunctive normal form: the union of its
        ``disjuncts`` is the set of ``(x, y)`` pairs that violate the safety property.

    Raises
    ------
    netopt.errors.InputError
        A missing, unreadable or non-UTF-8 file (a folder, a FIFO, a corrupt ``.gz``); a
        syntax error (unbalanced parentheses, a number that does not parse, nesting deeper
        than :data:`MAX_DEPTH`); an unknown or undeclared variable; an unsupported operator or
        command (``not``, ``ite``, ``max``, nonlinear ``*``, ``declare-fun``, ...); a number,
        written or computed, that is not 0 and outside [:data:`MIN_MAGNITUDE`,
        :data:`MAX_MAGNITUDE`]; a constraint mixing inputs and outputs; declarations that do
        not match ``n_inputs``/``n_outputs``; a disjunctive normal form over ``max_disjuncts``
        or arrays over ``max_bytes``. The message gives the file, and the line and expression
        where there is one.

    Notes
    -----
    Strict inequalities are read as non-strict and ``=`` as two inequalities (see the module
    docstring). A constraint on one input variable goes into the box ``lo``/``hi``, any other
    input constraint into ``A_in``/``b_in`` and an output constraint into ``C``/``d``.
    Disjuncts whose box is empty (``lo > hi``, e.g. from ``(and (>= X_0 1) (<= X_0 0))``)
    cannot be satisfied and are dropped (logged at debug level).

    Examples
    --------
    >>> prop = load_vnnlib('''
    ... (declare-const X_0 Real)
    ... (declare-const Y_0 Real)
    ... (declare-const Y_1 Real)
    ... (assert (and (>= X_0 -1) (<= X_0 1)))
    ... (assert (<= Y_0 Y_1))
    ... ''')
    >>> prop.disjuncts[0].C, prop.disjuncts[0].d
    (array([[ 1., -1.]]), array([0.]))
    """
    path: str | None
    if isinstance(path_or_text, os.PathLike) or (
        isinstance(path_or_text, str) and "declare-const" not in path_or_text
    ):
        path = os.fsdecode(path_or_text)
        source = path
        text = _read_file(path)
    elif isinstance(path_or_text, str):
        path, source, text = None, "<vnnlib text>", path_or_text
    else:
        raise InputError(
            f"load_vnnlib takes a path or the property text, not {type(path_or_text).__name__}"
        )
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    for name, cap in (("max_disjuncts", max_disjuncts), ("max_bytes", max_bytes)):
        # an int check, not just "< 1": a NaN cap would pass every comparison and cap nothing
        if not isinstance(cap, int | np.integer) or isinstance(cap, bool) or cap < 1:
            raise InputError(f"{name} must be at least 1 and an integer, not {cap!r}")
    for name, n in (("n_inputs", n_inputs), ("n_outputs", n_outputs)):
        if n is not None and (not isinstance(n, int | np.integer) or n < 1):
            raise InputError(f"{name} must be a positive integer or None, not {n!r}")

    reader = _Reader(source, max_disjuncts)
    try:
        dnf = reader.run(_read_sexprs(text, source))
    except RecursionError as e:
        # a backstop: _read_sexprs caps the nesting at MAX_DEPTH, which fits the default
        # recursion limit unless the caller's own stack is already deep
        raise InputError(
            f"{source}: the formulas are nested too deeply to read; flatten the and/or nesting"
        ) from e
    n_in = _count(reader.declared, "X", n_inputs, source)
    n_out = _count(reader.declared, "Y", n_outputs, source)
    size = _array_bytes(dnf, n_in, n_out, max_bytes)
    if size > max_bytes:
        raise InputError(
            f"{source}: the property's {len(dnf)} disjuncts over {n_in} inputs and {n_out} "
            f"outputs would take at least {size / 2**20:.0f} MiB of arrays, more than "
            f"max_bytes={max_bytes}; pass a larger max_bytes to "
            "load_vnnlib if memory allows, or split the property into several files"
        )
    if reader.n_strict:
        log.debug(
            "%s: %d strict inequalities read as non-strict (the closure of the region)",
            source,
            reader.n_strict,
        )

    compiler = _Compiler(n_in, n_out)
    disjuncts: list[Disjunct] = []
    for k, conj in enumerate(dnf):
        dj = compiler.disjunct(conj)
        empty = np.flatnonzero(dj.lo > dj.hi)
        if empty.size:
            i = int(empty[0])
            log.debug(
                "%s: dropping disjunct %d: its box is empty (X_%d in [%g, %g]), so it can never "
                "be satisfied",
                source,
                k,
                i,
                dj.lo[i],
                dj.hi[i],
            )
            continue
        disjuncts.append(dj)
    if not disjuncts:
        log.warning(
            "%s: the counterexample region is empty, so the property holds trivially", source
        )
    log.debug("%s: %d inputs, %d outputs, %d disjuncts", source, n_in, n_out, len(disjuncts))
    return VnnlibProperty(path=path, n_inputs=n_in, n_outputs=n_out, disjuncts=tuple(disjuncts))
