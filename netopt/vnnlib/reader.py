"""Reading a VNN-LIB file: the file itself (``.gz`` included), the size limits, the entry point.

Why a reader of our own for VNN-LIB 1.0: no well-kept VNN-LIB parser on PyPI handles these files
with linear terms and DNF conversion. ``vnnlib`` 1.0.x (the VNN-LIB 2.0 reference bindings, a
C++ extension) rejects the VNN-LIB 1.0 files VNN-COMP publishes (``(declare-const X_0 Real)`` is
a syntax error there); ``vnnlib`` 0.0.1 (an alpha that reads 1.0 files) drops an input-only
linear constraint such as ``(<= (+ X_0 X_1) 1)`` without a word and returns a wrong box, fails
on a mixed input-output constraint with a bare AssertionError, and reports no line numbers. The
language needed here is a few s-expression forms, and reading it ourselves lets every error name
the file, line and expression. VNN-LIB 2.0 files (``(vnnlib-version <2.0>)``) are the one case
the reference bindings do read, so they go through them (:mod:`netopt.vnnlib.v2`).
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path

import numpy as np

from netopt.errors import InputError
from netopt.vnnlib.arrays import _to_property
from netopt.vnnlib.compile import _Reader
from netopt.vnnlib.property import VnnlibProperty
from netopt.vnnlib.sexpr import _LINE_BREAK, _read_sexprs

log = logging.getLogger("netopt")

#: The default cap on the number of disjuncts of the disjunctive normal form.
DEFAULT_MAX_DISJUNCTS = 10_000
#: The default cap on the bytes of the disjuncts' arrays (an estimate made before building them).
DEFAULT_MAX_BYTES = 2**30


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
        ``str`` containing ``declare-const`` or ``(vnnlib-version`` is taken as text. A text
        whose first command is ``(vnnlib-version <2.0>)`` is VNN-LIB 2.0, read through the
        format's reference bindings (``pip install "netopt[vnnlib]"``); see
        :func:`netopt.vnnlib.v2.read_v2` for what of 2.0 is read.
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
        isinstance(path_or_text, str)
        and "declare-const" not in path_or_text
        and "(vnnlib-version" not in path_or_text
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
    if is_version_2(text):
        from netopt.vnnlib.v2 import read_v2

        dnf = read_v2(reader, text)
        return _to_property(reader, dnf, path, source, n_inputs, n_outputs, max_bytes)
    try:
        dnf = reader.run(_read_sexprs(text, source))
    except RecursionError as e:
        # a backstop: _read_sexprs caps the nesting at MAX_DEPTH, which fits the default
        # recursion limit unless the caller's own stack is already deep
        raise InputError(
            f"{source}: the formulas are nested too deeply to read; flatten the and/or nesting"
        ) from e
    return _to_property(reader, dnf, path, source, n_inputs, n_outputs, max_bytes)


def is_version_2(text: str) -> bool:
    """Whether the first command of ``text`` (after comments and blank lines) is
    ``(vnnlib-version ...)``, the header of VNN-LIB 2.0; VNN-LIB 1.0 has no such command."""
    for line in _LINE_BREAK.split(text):
        code = line.split(";", 1)[0].strip()
        if code:
            return code.startswith("(") and code[1:].lstrip().startswith("vnnlib-version")
    return False
