"""The input domain of a problem: a box, optional linear constraints and integer coordinates.

Also the argument checks every problem constructor shares: numbers, arrays and masks are read
strictly (no strings, no NaN) and every mistake is an :class:`~netopt.errors.InputError` naming
the argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.errors import InputError


def _float_array(v: Any, what: str) -> np.ndarray:
    """``v`` as a float64 array, or :class:`InputError` naming ``what``.

    Strings are refused even when numpy could parse them (``"1.5"``): an argument of the wrong
    type is a mistake to report, not to guess at. Complex numbers, objects and integers beyond
    float range are refused too, never left to a ``TypeError``/``OverflowError`` deep inside.
    """
    if isinstance(v, str | bytes):
        raise InputError(f"{what} must be numbers (an array or a list), got the string {v!r}")
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as e:
        raise InputError(f"{what} is not numeric ({e})") from None
    return a


def _float_scalar(v: Any, what: str) -> float:
    """``v`` as a Python float, or :class:`InputError` naming ``what`` (no strings, no bools)."""
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        raise InputError(f"{what} must be a number, got {v!r}")
    try:
        return float(v)
    except OverflowError:  # an integer beyond float range
        raise InputError(f"{what} is out of range: {v!r}") from None


def _arr(v: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    a = _float_array(v, what)
    if a.size == int(np.prod(shape, dtype=np.int64)) and a.ndim > 0:
        a = a.reshape(shape)
    try:
        a = np.broadcast_to(a, shape).copy()
    except ValueError:
        raise InputError(f"{what} has shape {a.shape}; expected {shape} (or a scalar)") from None
    if np.isnan(a).any():
        raise InputError(f"{what} contains NaN at {np.argwhere(np.isnan(a))[0].tolist()}")
    return a


def _mask(v: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A boolean mask of ``shape`` (or broadcastable to it), or :class:`InputError`.

    ``np.asarray("a", dtype=bool)`` is ``True``: a string would silently mark every
    coordinate, so only booleans and 0/1 numbers are read as a mask.
    """
    a = np.asarray(v)
    if a.dtype.kind not in "biuf" or (a.dtype.kind != "b" and not np.isin(a, (0, 1)).all()):
        raise InputError(f"{what} must be a boolean mask (True/False or 0/1), got {v!r}")
    try:
        return np.broadcast_to(a.astype(bool), shape)
    except ValueError:
        raise InputError(f"{what} has shape {a.shape}; expected {shape} (or a scalar)") from None


@dataclass
class Domain:
    """The input domain: a box, optionally with ``A x <= b`` and integer coordinates.

    Attributes
    ----------
    lo, hi : ndarray
        Box bounds with the input's shape (``-inf``/``inf`` where unbounded).
    A, b : ndarray or None
        Extra linear constraints on the flattened input, ``A x <= b``.
    integer : ndarray of bool
        Coordinates restricted to integers (binary when their box is [0, 1]).
    """

    lo: np.ndarray
    hi: np.ndarray
    A: np.ndarray | None = None
    b: np.ndarray | None = None
    integer: np.ndarray | None = None

    @classmethod
    def make(
        cls,
        shape: tuple[int, ...],
        box: tuple[Any, Any] | None = None,
        *,
        center: Any = None,
        eps: float | None = None,
        A: Any = None,
        b: Any = None,
        integer: Any = None,
        binary: Any = None,
    ) -> Domain:
        """Build and validate a domain.

        Parameters
        ----------
        shape : tuple of int
            The network's input shape.
        box : (lo, hi), optional
            Scalars or arrays of the input's shape.
        center, eps : optional
            An l_inf ball ``|x - center| <= eps``, intersected with ``box``.
        A, b : optional
            Linear constraints ``A @ x.ravel() <= b``.
        integer, binary : optional
            Boolean masks (input shape) of integer / binary coordinates.
        """
        lo = np.full(shape, -np.inf)
        hi = np.full(shape, np.inf)
        if box is not None:
            # a bare number or a string has no (lo, hi) to unpack: say so, not "has no len()"
            if isinstance(box, str | bytes) or not (
                isinstance(box, Sequence) or (isinstance(box, np.ndarray) and box.ndim > 0)
            ):
                raise InputError(f"box must be a pair (lo, hi), got {box!r}")
            if len(box) != 2:
                raise InputError(f"box must be (lo, hi), got {box!r}")
            lo = _arr(box[0], shape, "box lo")
            hi = _arr(box[1], shape, "box hi")
            # lo = +inf or hi = -inf leaves no point, and is never what an "unbounded side" means
            if np.any(np.isposinf(lo)) or np.any(np.isneginf(hi)):
                raise InputError("box lo must be below +inf and box hi above -inf")
        if center is not None or eps is not None:
            if center is None or eps is None:
                raise InputError("an l_inf ball needs both center and eps")
            eps = _float_scalar(eps, "eps")
            if not np.isfinite(eps) or eps < 0:
                raise InputError(f"eps must be a finite non-negative number, got {eps}")
            c = _arr(center, shape, "center")
            lo, hi = np.maximum(lo, c - eps), np.minimum(hi, c + eps)
        if np.any(lo > hi):
            k = np.argwhere(lo > hi)[0].tolist()
            raise InputError(
                f"the input box is empty: lo > hi at index {k} ({lo[tuple(k)]} > {hi[tuple(k)]})"
            )
        intmask = np.zeros(shape, dtype=bool)
        if integer is not None:
            intmask |= _mask(integer, shape, "integer")
        if binary is not None:
            bm = _mask(binary, shape, "binary")
            intmask |= bm
            lo, hi = np.where(bm, np.maximum(lo, 0), lo), np.where(bm, np.minimum(hi, 1), hi)
        if intmask.any():
            lo, hi = np.where(intmask, np.ceil(lo), lo), np.where(intmask, np.floor(hi), hi)
            if np.any(lo > hi):
                raise InputError("an integer coordinate has no integer in its box")
        Am = bm_ = None
        if A is not None or b is not None:
            if A is None or b is None:
                raise InputError("linear input constraints need both A and b")
            n = int(np.prod(shape))
            Am = np.atleast_2d(_float_array(A, "A"))
            bm_ = _float_array(b, "b").reshape(-1)
            if Am.shape != (len(bm_), n):
                raise InputError(
                    f"A must have shape ({len(bm_)}, {n}) for b of length {len(bm_)}; got {Am.shape}"
                )
            if not (np.all(np.isfinite(Am)) and np.all(np.isfinite(bm_))):
                raise InputError("A and b must be finite")
        return cls(lo, hi, Am, bm_, intmask if intmask.any() else None)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.lo.shape

    @property
    def bounded(self) -> bool:
        return bool(np.all(np.isfinite(self.lo)) and np.all(np.isfinite(self.hi)))

    def contains(self, x: np.ndarray, tol: float = 1e-9) -> bool:
        """Whether ``x`` lies in the domain (within ``tol``)."""
        x = np.asarray(x, dtype=np.float64).reshape(self.shape)
        ok = bool(np.all(x >= self.lo - tol) and np.all(x <= self.hi + tol))
        if self.A is not None:
            ok &= bool(np.all(self.A @ x.reshape(-1) <= self.b + tol))
        if self.integer is not None:
            ok &= bool(np.all(np.abs(x[self.integer] - np.round(x[self.integer])) <= tol))
        return ok

    def project(self, x: np.ndarray) -> np.ndarray:
        """Clip to the box and round integer coordinates (repairs solver round-off)."""
        x = np.clip(np.asarray(x, dtype=np.float64).reshape(self.shape), self.lo, self.hi)
        if self.integer is not None:
            x = np.where(self.integer, np.round(x), x)
        return x

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points of the domain (uniform in the box; rows violating ``A x <= b`` dropped)."""
        if not self.bounded:
            lo = np.where(
                np.isfinite(self.lo), self.lo, np.where(np.isfinite(self.hi), self.hi - 1, -1)
            )
            hi = np.where(np.isfinite(self.hi), self.hi, lo + 2)
        else:
            lo, hi = self.lo, self.hi
        x = rng.uniform(lo, hi, (n, *self.shape))
        if self.integer is not None:
            x = np.where(self.integer, np.round(x), x)
            x = np.clip(x, self.lo, self.hi)
        if self.A is not None:
            x = x[np.all(x.reshape(n, -1) @ self.A.T <= self.b, axis=1)]
        return x


def parse_norm(norm: Any) -> float:
    """1, 2 or inf (also "1", "2", "inf", "l1", "linf")."""
    key = str(norm).lower().lstrip("l")
    table = {"1": 1.0, "1.0": 1.0, "2": 2.0, "2.0": 2.0, "inf": np.inf, "infinity": np.inf}
    if key not in table:
        raise InputError(f"norm must be 1, 2 or inf, got {norm!r}")
    return table[key]
