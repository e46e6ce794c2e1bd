"""The property object: the counterexample region as a union of polyhedra in input-output space.

Both readers (:mod:`netopt.vnnlib.reader` for VNN-LIB 1.0, :mod:`netopt.vnnlib.v2` for 2.0)
produce a :class:`VnnlibProperty`; :func:`netopt.vnnlib.check.check` decides one on a network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netopt.errors import InputError


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
