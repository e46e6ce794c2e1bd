"""A VNN-LIB property's disjunctive normal form as arrays: :class:`_Compiler` turns each
conjunction of inequalities (:mod:`netopt.vnnlib.compile`) into a
:class:`~netopt.vnnlib.property.Disjunct` (an input box, input rows, output rows), and
:func:`_to_property` checks the declared variables against the network's and builds the
:class:`~netopt.vnnlib.property.VnnlibProperty`.
"""

from __future__ import annotations

import bisect
import logging
from typing import TYPE_CHECKING

import numpy as np

from netopt.errors import InputError
from netopt.vnnlib.compile import _Conj, _Dnf, _Group
from netopt.vnnlib.property import Disjunct, VnnlibProperty

if TYPE_CHECKING:
    from netopt.vnnlib.compile import _Reader

log = logging.getLogger("netopt")


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


def _to_property(
    reader: _Reader,
    dnf: _Dnf,
    path: str | None,
    source: str,
    n_inputs: int | None,
    n_outputs: int | None,
    max_bytes: int,
) -> VnnlibProperty:
    """The property of a DNF ``reader`` evaluated: sizes checked, arrays built, empty boxes dropped.

    Shared by the VNN-LIB 1.0 reader and the 2.0 one (:mod:`netopt.vnnlib.v2`), which fill
    ``reader.declared`` and build the DNF each their own way.
    """
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
