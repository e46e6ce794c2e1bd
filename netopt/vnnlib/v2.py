"""VNN-LIB 2.0 properties, read through the format's reference bindings (the ``vnnlib`` package).

VNN-LIB 2.0 (https://www.vnnlib.org) starts with a version header and declares each network and
its tensors by name, element type and shape::

    (vnnlib-version <2.0>)
    (declare-network N
        (declare-input X float32 [1, 3])
        (declare-output Y float32 [2]))
    (assert (and (>= X[0,0] -1.0) (<= X[0,0] 1.0)))
    (assert (<= Y[0] Y[1]))

The bindings (``pip install "netopt[vnnlib]"``, a C++ extension) parse and type-check the file;
:func:`read_v2` maps the query to the same :class:`~netopt.vnnlib.property.VnnlibProperty` the
VNN-LIB 1.0 reader produces:

* the element ``X[i, j]`` of an input of shape ``(m, n)`` is the flattened (row-major) input
  ``X_{i*n+j}`` of 1.0, likewise for the output;
* each comparison goes through the 1.0 reader's checks (every coefficient and bound in float32's
  normal range, no constraint mixing inputs and outputs, a strict inequality read as non-strict,
  ``=`` as two inequalities);
* ``and`` and ``or`` are distributed in the same order and under the same ``max_disjuncts`` cap,
  counted operand by operand before a product is built.

Read: one network with one input and one output (the networks netopt loads); ``and``, ``or`` and
``<= < >= > =`` over linear arithmetic. Refused, each with an :class:`~netopt.errors.InputError`
naming the file: several networks, several inputs or outputs, hidden-node variables, ``!=``,
nonlinear terms, and whatever the bindings reject (their message and line are passed on).
"""

from __future__ import annotations

import json
import math
from typing import Any

from netopt.errors import InputError
from netopt.vnnlib.compile import _FALSE, _TRUE, _Dnf, _Ineq, _Lin, _Reader
from netopt.vnnlib.sexpr import _Atom, _List

__all__ = ["read_v2", "INSTALL_HINT"]

#: What to run when the bindings are missing.
INSTALL_HINT = 'pip install "netopt[vnnlib]"'

_OPS = {
    "LessEqual": "<=",
    "LessThan": "<",
    "GreaterEqual": ">=",
    "GreaterThan": ">",
    "Equal": "=",
    "NotEqual": "!=",
}


def _bindings(source: str) -> Any:
    """The ``vnnlib`` package, or :class:`InputError` saying how to install it."""
    try:
        import vnnlib
    except ImportError:
        vnnlib = None
    # (a folder named vnnlib on sys.path, without the package, imports as an empty namespace)
    if vnnlib is None or not hasattr(vnnlib, "parse_query_string"):
        raise InputError(
            f"{source}: a VNN-LIB 2.0 file ((vnnlib-version ...) header); netopt reads 2.0 through "
            f"the format's reference bindings, which are not installed: {INSTALL_HINT}"
        )
    return vnnlib


def _binding_error(source: str, e: Exception) -> InputError:
    """The bindings' error (a JSON report of the parse and type errors) as one InputError."""
    try:
        report = json.loads(str(e))
        errors = report["errors"]
    except (ValueError, KeyError, TypeError):
        return InputError(f"{source}: not a valid VNN-LIB 2.0 file ({e})")
    parts = []
    for err in errors[:3]:
        line = err.get("line")
        where = f"line {line}: " if line is not None else ""
        hint = f" ({err['hint']})" if err.get("hint") else ""
        parts.append(f"{where}{err.get('message', 'error')}{hint}")
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    return InputError(
        f"{source}: not a valid VNN-LIB 2.0 file: {'; '.join(parts)}{more}; fix the file "
        "(see https://www.vnnlib.org for the 2.0 grammar)"
    )


def read_v2(reader: _Reader, text: str) -> _Dnf:
    """Evaluate a VNN-LIB 2.0 text into ``reader``'s declarations and a DNF.

    Parameters
    ----------
    reader : _Reader
        The 1.0 reader's evaluator: its ``declared`` table is filled with ``X_0 .. X_{n-1}``
        and ``Y_0 .. Y_{m-1}`` from the declared shapes, and its checks and cap are used for
        every comparison and connective.
    text : str
        The file's text (its first command ``(vnnlib-version ...)``).

    Returns
    -------
    list
        The DNF of the conjunction of all assertions, for
        :func:`netopt.vnnlib.arrays._to_property`.

    Raises
    ------
    netopt.errors.InputError
        The bindings are not installed (the message says ``pip install "netopt[vnnlib]"``),
        reject the file, or the query uses what netopt does not read (see the module docstring).
    """
    source = reader.source
    vnnlib = _bindings(source)
    try:
        query = vnnlib.parse_query_string(text)
    except vnnlib.VNNLibException as e:
        raise _binding_error(source, e) from None
    nets = list(query.networks)
    if len(nets) != 1:
        raise InputError(
            f"{source}: the property declares {len(nets)} networks; netopt reads properties of "
            "one network"
        )
    net = nets[0]
    if list(net.hidden):
        raise InputError(
            f"{source}: the property declares hidden-node variables "
            f"({', '.join(h.name for h in net.hidden)}); netopt constrains inputs and outputs only"
        )
    ins, outs = list(net.inputs), list(net.outputs)
    if len(ins) != 1 or len(outs) != 1:
        raise InputError(
            f"{source}: network {net.name} declares {len(ins)} inputs and {len(outs)} outputs; "
            "netopt reads one input and one output tensor (the flattened X and Y of VNN-LIB 1.0)"
        )
    ev = _Evaluator(reader, ins[0], outs[0])
    asserts: list[_Dnf] = []
    count = 1
    assertions = list(query.assertions)
    for k, a in enumerate(assertions):
        asserts.append(ev.formula(a.expr))
        count *= len(asserts[-1])
        if count > reader.max_disjuncts:
            raise ev.too_many(count, a.expr, len(assertions) - k - 1)
    return reader.conjoin(asserts)


class _Evaluator:
    """Walks the bindings' boolean expressions into the 1.0 reader's DNF."""

    def __init__(self, reader: _Reader, inp: Any, out: Any) -> None:
        self.reader = reader
        self.names = {inp.name: "X", out.name: "Y"}
        self.shapes = {inp.name: list(inp.shape), out.name: list(out.shape)}
        for tensor, kind in ((inp, "X"), (out, "Y")):
            n = math.prod(int(s) for s in tensor.shape)
            reader.declared.update((f"{kind}_{i}", (kind, i)) for i in range(n))

    def node(self, expr: Any) -> _List:
        """A stand-in for the 1.0 reader's expression node (its text and line), for errors."""
        text = str(expr).strip()
        if text.startswith("(") and text.endswith(")"):
            text = text[1:-1]
        line = _line(expr)
        return _List(tuple(_Atom(t, line) for t in text.split()), line)

    def too_many(self, count: int, expr: Any, n_left: int) -> InputError:
        upto = f" up to this operand ({n_left} more not read)" if n_left else ""
        return InputError(
            f"{self.reader.source}: the disjunctive normal form would have {count} disjuncts"
            f"{upto}, more than max_disjuncts={self.reader.max_disjuncts} (passed at "
            f"{str(expr)[:60]}); pass a larger max_disjuncts to load_vnnlib if memory allows, or "
            "split the property into several files (one per disjunct of an outer or)"
        )

    def formula(self, expr: Any) -> _Dnf:
        kind = type(expr).__name__
        if kind in ("And", "Or"):
            dnfs: list[_Dnf] = []
            count = 1 if kind == "And" else 0
            args = list(expr.args)
            for k, a in enumerate(args):
                dnfs.append(self.formula(a))
                count = count * len(dnfs[-1]) if kind == "And" else count + len(dnfs[-1])
                if count > self.reader.max_disjuncts:
                    raise self.too_many(count, a, len(args) - k - 1)
            return self.reader.conjoin(dnfs) if kind == "And" else self.reader.disjoin(dnfs)
        if kind in _OPS:
            return self.comparison(expr, _OPS[kind])
        raise InputError(
            f"{self.reader.source}: unsupported formula {str(expr)[:80]!r}; netopt supports "
            "and, or, <=, >=, <, >, = over linear terms"
        )

    def comparison(self, expr: Any, op: str) -> _Dnf:
        node = self.node(expr)
        if op == "!=":
            raise self.reader.error(
                node,
                "unsupported comparison !=",
                "a counterexample region with != is not closed; write it as an or of < and >",
            )
        if op in ("<", ">"):
            self.reader.n_strict += 1
        a, b = self.linear(expr.lhs, node), self.linear(expr.rhs, node)
        if op in ("<=", "<", "="):
            pairs = [(a, b), (b, a)] if op == "=" else [(a, b)]
        else:
            pairs = [(b, a)]
        ineqs: list[_Ineq] = []
        for lhs, rhs in pairs:
            ineq = self.reader.inequality(lhs, rhs, node)
            if ineq is False:
                return _FALSE
            if ineq is not True:
                ineqs.append(ineq)
        return [(tuple(ineqs),)] if ineqs else _TRUE

    def linear(self, term: Any, node: _List) -> _Lin:
        """A side of a comparison as ``({"X_i": coefficient}, constant)``."""
        try:
            lin = term.to_linear_expr()
        except Exception as e:  # the bindings raise their own class for a nonlinear term
            raise self.reader.error(
                node, f"not a linear term ({e})", "netopt reads linear constraints only"
            ) from None
        coef: dict[str, float] = {}
        for t in lin.terms:
            var = t.var
            kind = self.names.get(var.name)
            if kind is None:
                raise self.reader.error(
                    node,
                    f"{var.name} is not the declared input or output",
                    "constrain the network's input and output only",
                )
            shape = self.shapes[var.name]
            idx = [int(i) for i in var.indices]
            if len(idx) != len(shape) or any(
                not 0 <= i < s for i, s in zip(idx, shape, strict=True)
            ):
                raise self.reader.error(
                    node,
                    f"index {idx} of {var.name} is outside its shape {shape}",
                    "index every element within the declared shape",
                )
            flat = 0
            for i, s in zip(idx, shape, strict=True):
                flat = flat * s + i  # row-major, as the 1.0 names X_i number the elements
            name = f"{kind}_{flat}"
            coef[name] = coef.get(name, 0.0) + float(t.coeff)
        return coef, float(lin.constant)


def _line(expr: Any) -> int:
    """The line of the first variable or literal in ``expr`` (0 when none says)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        line = getattr(e, "line", None)
        if isinstance(line, int) and line > 0:
            return line
        stack.extend(reversed(e.children()))
    return 0
