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

VNN-LIB 2.0 files (first command ``(vnnlib-version <2.0>)``) are read through the format's
reference bindings into the same property, under the same checks and caps
(:mod:`netopt.vnnlib.v2`; ``pip install "netopt[vnnlib]"``).

The modules: :mod:`~netopt.vnnlib.sexpr` (tokens and nested lists), :mod:`~netopt.vnnlib.compile`
(formulas to a DNF), :mod:`~netopt.vnnlib.arrays` (the DNF to arrays),
:mod:`~netopt.vnnlib.reader` (files, limits,
:func:`load_vnnlib`), :mod:`~netopt.vnnlib.v2`, :mod:`~netopt.vnnlib.property` (the property
classes) and :mod:`~netopt.vnnlib.check` (deciding a property on a network; imported on its own,
it needs the solvers).
"""

from netopt.vnnlib.compile import MAX_MAGNITUDE, MIN_MAGNITUDE
from netopt.vnnlib.property import Disjunct, VnnlibProperty
from netopt.vnnlib.reader import DEFAULT_MAX_BYTES, DEFAULT_MAX_DISJUNCTS, load_vnnlib
from netopt.vnnlib.sexpr import MAX_DEPTH

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
