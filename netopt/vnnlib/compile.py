"""Evaluating VNN-LIB 1.0 s-expressions into a disjunctive normal form.

:class:`_Reader` evaluates the commands of one file (declarations and assertions) into a DNF of
linear inequalities, checking every number against :data:`MIN_MAGNITUDE` and
:data:`MAX_MAGNITUDE` and the disjunct count against its cap as it goes;
:mod:`netopt.vnnlib.arrays` turns the DNF into the :class:`~netopt.vnnlib.property.Disjunct` s
of a property.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from dataclasses import dataclass

import numpy as np

from netopt.errors import InputError
from netopt.vnnlib.sexpr import _Atom, _List, _Node, _render

log = logging.getLogger("netopt")

#: The largest magnitude of a number in a property: float32's largest finite value (see the
#: :mod:`netopt.vnnlib` docstring for why).
MAX_MAGNITUDE = float(np.finfo(np.float32).max)
#: The smallest magnitude of a nonzero number in a property: float32's smallest normal value.
MIN_MAGNITUDE = float(np.finfo(np.float32).tiny)
# an index with more digits is refused at its declaration: no network has 10**18 inputs, and
# int() refuses strings over 4300 digits with a ValueError
_MAX_INDEX_DIGITS = 18

# ASCII only: in Unicode mode \d also matches other scripts' digits, which float() and int()
# accept ("X_1\u0661" would be a second name for X_11)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_VARIABLE = re.compile(r"([XY])_(0|[1-9]\d*)", re.ASCII)
_IGNORED_COMMANDS = frozenset(
    {"set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"}
)
_COMPARISONS = frozenset({"<=", ">=", "<", ">", "="})
_TERM_OPS = frozenset({"+", "-", "*", "/"})


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
