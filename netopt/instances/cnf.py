r"""CNF formulas: DIMACS input and output, random and planted 3-SAT, and SAT ground truth.

A formula over variables :math:`x_1, \dots, x_n` is a tuple of clauses; a clause is a tuple of
non-zero integers (DIMACS literals: ``i`` is :math:`x_i`, ``-i`` is :math:`\lnot x_i`).

Simplification (documented, applied by :meth:`CNF.simplified` and by the reduction): a literal
repeated in a clause is kept once (:math:`a \lor a \lor b \equiv a \lor b`), and a clause holding a
literal and its complement is always true and is dropped. Neither changes the set of satisfying
assignments; afterwards every clause is on distinct variables, which the reduction's gap proof
uses (:mod:`netopt.instances.sat3`).

Ground truth comes from python-sat (CaDiCaL) when it is installed, with a brute-force
enumeration (:func:`brute_force_sat`, ``n <= 22``) as an independent check for small formulas.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netopt.errors import InputError, SolverUnavailableError

__all__ = [
    "CNF",
    "read_dimacs",
    "parse_dimacs",
    "random_ksat",
    "random_3sat",
    "planted_3sat",
    "random_formula",
    "clauses_for_ratio",
    "sat_solve",
    "brute_force_sat",
    "all_assignments",
    "SAT_THRESHOLD",
]

#: The empirical satisfiability threshold of random 3-SAT (clauses per variable).
SAT_THRESHOLD = 4.26


@dataclass(frozen=True)
class CNF:
    """A formula in conjunctive normal form.

    Attributes
    ----------
    n : int
        Number of variables (``>= 1``); variables that occur in no clause are allowed.
    clauses : tuple of tuple of int
        DIMACS literals, each ``1 <= |l| <= n``.
    """

    n: int
    clauses: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise InputError(f"a formula needs n >= 1 variables, got n = {self.n!r}")
        cl = tuple(tuple(int(v) for v in c) for c in self.clauses)
        for j, c in enumerate(cl):
            for v in c:
                if v == 0 or abs(v) > self.n:
                    raise InputError(
                        f"clause {j + 1} has literal {v}; literals are +-1 .. +-{self.n}"
                    )
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "clauses", cl)

    @property
    def m(self) -> int:
        """Number of clauses."""
        return len(self.clauses)

    def simplified(self) -> CNF:
        """Drop repeated literals within a clause and clauses with complementary literals."""
        out = []
        for c in self.clauses:
            lits = tuple(dict.fromkeys(c))  # first occurrence order
            if any(-v in lits for v in lits):
                continue
            out.append(lits)
        return CNF(self.n, tuple(out))

    def satisfied_by(self, assignment: Sequence[bool]) -> bool:
        """Whether the Boolean ``assignment`` (index ``i - 1`` for :math:`x_i`) satisfies it."""
        return self.n_falsified(assignment) == 0

    def n_falsified(self, assignment: Sequence[bool]) -> int:
        """Number of clauses with no true literal under ``assignment``."""
        a = np.asarray(assignment, dtype=bool).reshape(-1)
        if a.size != self.n:
            raise InputError(f"an assignment needs {self.n} values, got {a.size}")
        return sum(not any(a[abs(v) - 1] == (v > 0) for v in c) for c in self.clauses)

    def to_dimacs(self, comments: Iterable[str] = ()) -> str:
        """DIMACS text (``p cnf n m`` header, one clause per line)."""
        lines = [f"c {t}" for t in comments]
        lines.append(f"p cnf {self.n} {self.m}")
        lines += [" ".join(map(str, c)) + " 0" for c in self.clauses]
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike, comments: Iterable[str] = ()) -> None:
        Path(path).write_text(self.to_dimacs(comments))


def parse_dimacs(text: str, source: str = "<string>") -> CNF:
    """Parse DIMACS CNF text.

    Accepted: ``c`` comment lines, one ``p cnf N M`` header before the clauses, clauses as
    literals terminated by ``0`` (a clause may span lines, several may share one), and the
    ``%`` end marker of the SATLIB files. A final clause without its ``0`` is accepted.

    Raises
    ------
    InputError
        Naming ``source`` and the line: a missing or malformed header, a token that is not an
        integer, a literal outside ``+-1..+-N``, a clause count that differs from the header,
        or a formula with no clauses.
    """
    n = m = None
    clauses: list[tuple[int, ...]] = []
    cur: list[int] = []
    last_line = 0
    for k, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("c"):
            continue
        if line.startswith("%"):
            break
        if line.startswith("p"):
            parts = line.split()
            if n is not None:
                raise InputError(f"{source}, line {k}: a second 'p' header")
            if len(parts) != 4 or parts[1] != "cnf":
                raise InputError(
                    f"{source}, line {k}: expected 'p cnf <vars> <clauses>', got {line!r}"
                )
            try:
                n, m = int(parts[2]), int(parts[3])
            except ValueError:
                raise InputError(
                    f"{source}, line {k}: the header's counts must be integers: {line!r}"
                ) from None
            if n < 1 or m < 0:
                raise InputError(
                    f"{source}, line {k}: the header declares {n} variables and {m} clauses; "
                    "a formula needs at least one variable"
                )
            continue
        if n is None:
            raise InputError(f"{source}, line {k}: a clause before the 'p cnf' header: {line!r}")
        for tok in line.split():
            try:
                v = int(tok)
            except ValueError:
                raise InputError(f"{source}, line {k}: {tok!r} is not an integer literal") from None
            if v == 0:
                clauses.append(tuple(cur))
                cur = []
            elif abs(v) > n:
                raise InputError(
                    f"{source}, line {k}: literal {v} but the header declares {n} variables"
                )
            else:
                cur.append(v)
        last_line = k
    if n is None:
        raise InputError(f"{source}: no 'p cnf <vars> <clauses>' header")
    if cur:
        clauses.append(tuple(cur))
    if len(clauses) != m:
        raise InputError(
            f"{source}: the header declares {m} clauses but the file has {len(clauses)}"
            + (f" (last clause on line {last_line})" if last_line else "")
        )
    if not clauses:
        raise InputError(f"{source}: the formula has no clauses (every assignment satisfies it)")
    return CNF(n, tuple(clauses))


def read_dimacs(path: str | os.PathLike) -> CNF:
    """Read a DIMACS CNF file (see :func:`parse_dimacs`)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a text file (DIMACS CNF is plain text)") from None
    return parse_dimacs(text, str(p))


def clauses_for_ratio(n: int, ratio: float) -> int:
    """``m = round(ratio * n)``, refusing ratios that give no clause."""
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio > 0):
        raise InputError(f"the clause ratio must be a positive number, got {ratio!r}")
    m = int(round(ratio * n))
    if m < 1:
        raise InputError(f"clause ratio {ratio} gives {m} clauses for n = {n}; raise it")
    return m


def _check_nm(n: int, m: int, k: int, per_set: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < k:
        raise InputError(
            f"random {k}-SAT needs n >= {k} variables (distinct per clause), got {n!r}"
        )
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise InputError(f"the number of clauses must be a positive integer, got {m!r}")
    avail = math.comb(int(n), k) * per_set
    if m > avail:
        raise InputError(
            f"{m} distinct clauses requested but only {avail} exist with {k} distinct variables "
            f"over n = {n}: the clause ratio {m / n:.3g} cannot be met; lower it or raise n"
        )


def random_ksat(n: int, m: int, k: int = 3, seed: int | np.random.Generator = 0) -> CNF:
    r"""Uniform random k-SAT: ``m`` distinct clauses, each on ``k`` distinct variables.

    Each clause picks its variable set uniformly and each sign with probability 1/2; a clause
    already drawn is redrawn (so ``m`` may not exceed :math:`2^k \binom{n}{k}`).
    """
    _check_nm(n, m, k, 2**k)
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    while len(out) < m:
        vs = rng.choice(n, size=k, replace=False) + 1
        c = tuple(
            sorted((int(v) if s else -int(v)) for v, s in zip(vs, rng.random(k) < 0.5, strict=True))
        )
        if c not in seen:
            seen.add(c)
            out.append(c)
    return CNF(int(n), tuple(out))


def random_3sat(n: int, m: int, seed: int | np.random.Generator = 0) -> CNF:
    """Uniform random 3-SAT with ``m`` distinct clauses (see :func:`random_ksat`)."""
    return random_ksat(n, m, 3, seed)


def planted_3sat(
    n: int, m: int, seed: int | np.random.Generator = 0
) -> tuple[CNF, tuple[bool, ...]]:
    r"""A satisfiable 3-SAT formula with a planted solution.

    Draws a uniform assignment :math:`\alpha`, then ``m`` distinct uniform 3-clauses among the
    :math:`7 \binom{n}{3}` that :math:`\alpha` satisfies (rejecting the falsified ones).

    Returns
    -------
    (CNF, assignment)
    """
    _check_nm(n, m, 3, 7)
    rng = np.random.default_rng(seed)
    alpha = tuple(bool(b) for b in rng.random(n) < 0.5)
    seen: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    while len(out) < m:
        vs = rng.choice(n, size=3, replace=False) + 1
        c = tuple(
            sorted((int(v) if s else -int(v)) for v, s in zip(vs, rng.random(3) < 0.5, strict=True))
        )
        if c in seen or not any(alpha[abs(v) - 1] == (v > 0) for v in c):
            continue
        seen.add(c)
        out.append(c)
    return CNF(int(n), tuple(out)), alpha


def random_formula(
    n: int,
    m: int,
    satisfiable: bool | None = None,
    seed: int | np.random.Generator = 0,
    *,
    max_tries: int = 1000,
) -> tuple[CNF, tuple[bool, ...] | None]:
    """Uniform random 3-SAT conditioned on its satisfiability (rejection sampling).

    Parameters
    ----------
    satisfiable : bool or None
        Keep drawing until the SAT solver's verdict is this (``None``: take the first draw).
    max_tries : int
        Give up after this many draws: the ratio ``m / n`` makes the requested verdict too rare
        (e.g. unsatisfiable formulas far below the threshold 4.26).

    Returns
    -------
    (CNF, assignment or None)
        A satisfying assignment from the SAT solver, or ``None`` when unsatisfiable.
    """
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        f = random_3sat(n, m, rng)
        a = sat_solve(f)
        if satisfiable is None or (a is not None) == satisfiable:
            return f, a
    want = "satisfiable" if satisfiable else "unsatisfiable"
    raise InputError(
        f"no {want} formula in {max_tries} random draws with n = {n}, m = {m} "
        f"(ratio {m / n:.3g}): the ratio cannot be met for {want} formulas; "
        + ("raise it (the threshold is about 4.26)" if not satisfiable else "lower it")
    )


def sat_solve(cnf: CNF, solver: str = "cadical153") -> tuple[bool, ...] | None:
    """A satisfying assignment by python-sat, or ``None`` if the formula is unsatisfiable."""
    try:
        from pysat.solvers import Solver
    except ImportError:
        raise SolverUnavailableError(
            "SAT ground truth needs python-sat: pip install python-sat"
        ) from None
    clauses = [list(c) for c in cnf.clauses]
    if any(len(c) == 0 for c in clauses):
        return None  # an empty clause is false; some SAT solvers reject it
    with Solver(name=solver, bootstrap_with=clauses) as s:
        if not s.solve():
            return None
        model = s.get_model() or []
    val = {abs(v): v > 0 for v in model}
    return tuple(val.get(i, False) for i in range(1, cnf.n + 1))


def brute_force_sat(cnf: CNF, max_n: int = 22) -> tuple[bool, ...] | None:
    """A satisfying assignment by enumerating all :math:`2^n` assignments (vectorized)."""
    if cnf.n > max_n:
        raise InputError(f"brute force over 2^{cnf.n} assignments is too many (max_n = {max_n})")
    n = cnf.n
    chunk = 1 << min(n, 16)
    for start in range(0, 1 << n, chunk):
        idx = np.arange(start, min(start + chunk, 1 << n), dtype=np.int64)
        bits = ((idx[:, None] >> np.arange(n)) & 1).astype(bool)  # bit i -> x_{i+1}
        ok = np.ones(len(idx), dtype=bool)
        for c in cnf.clauses:
            sat = np.zeros(len(idx), dtype=bool)
            for v in c:
                sat |= bits[:, abs(v) - 1] == (v > 0)
            ok &= sat
        if ok.any():
            return tuple(bool(b) for b in bits[int(np.argmax(ok))])
    return None


def all_assignments(n: int) -> Iterable[tuple[bool, ...]]:
    """Every Boolean assignment of ``n`` variables (for exhaustive tests)."""
    return itertools.product((False, True), repeat=n)
