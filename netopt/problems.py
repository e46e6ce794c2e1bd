"""What the user asks: an objective or constraint on the network's output over an input domain.

Problems are solver-independent. Each knows how to evaluate itself in float64 from a forward pass
(:meth:`Problem.evaluate`), which is how every result is re-checked, and describes its objective to
formulations through :meth:`Problem.spec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from netopt.network import Network
    from netopt.result import Result

__all__ = [
    "Domain",
    "Problem",
    "Inversion",
    "OutputObjective",
    "Feasibility",
    "CrossEntropy",
    "parse_norm",
]


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


class Problem:
    """Base class: a network, an input domain, and an objective (always minimized internally).

    Subclasses define :meth:`evaluate` (float64 objective of outputs) and :meth:`spec`.
    """

    sense = "min"

    def __init__(
        self, net: Network, domain: Domain | None = None, *, box=None, **domain_kw: Any
    ) -> None:
        from netopt.network import Network

        # a path or a model where a Network belongs fails later with an AttributeError
        if not isinstance(net, Network):
            raise InputError(
                f"net must be a netopt Network (from netopt.load), got {type(net).__name__}"
            )
        self.net = net
        if domain is None:
            domain = Domain.make(net.input_shape, box, **domain_kw)
        elif box is not None or domain_kw:
            raise InputError("pass either a Domain or box/center/eps/A/b/integer, not both")
        elif not isinstance(domain, Domain):
            raise InputError(f"domain must be a netopt Domain, got {type(domain).__name__}")
        if domain.shape != tuple(net.input_shape):
            raise InputError(
                f"the domain has shape {domain.shape}; the network input is {net.input_shape}"
            )
        self.domain = domain

    # -- to be provided by subclasses
    def evaluate(self, y: np.ndarray) -> np.ndarray:
        """Objective of outputs ``y`` (batched ``(B, *out)`` -> ``(B,)``), in the problem's sense."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """Solver-neutral description of the objective for formulations."""
        raise NotImplementedError

    def penalty(self, X: np.ndarray) -> np.ndarray:
        """The part of the objective that depends on the input itself (batched ``(B,)``).

        Zero for every problem whose objective is a function of the output only; see
        :class:`CrossEntropy` for one with an L2 term on the input.
        """
        return np.zeros(len(X))

    # -- shared
    def objective_of_input(self, x: np.ndarray) -> float:
        """The objective at input ``x``, recomputed by the float64 reference interpreter."""
        xb = np.asarray(x, dtype=np.float64).reshape(1, *self.net.input_shape)
        y = self.net.forward(xb)
        return float(self.evaluate(y)[0] + self.penalty(xb)[0])

    def solve(self, formulation: str = "milp", solver: str | None = None, **options: Any) -> Result:
        """Solve with a formulation and a backend; see :func:`netopt.solve.solve`.

        ``solver`` defaults to the formulation's natural backend (``"highs"`` for ``"milp"``,
        ``"torch"`` for the first-order formulations ``"admm"``, ``"adam"``, ``"gd"``, ...).
        """
        from netopt.solve import solve

        if options.get("start") is not None:
            # checked here, before any bound or model is built, for every formulation alike
            options["start"] = self.check_start(options["start"])
        return solve(self, formulation=formulation, solver=solver, **options)

    def check_start(self, start: Any) -> np.ndarray:
        """Starting point(s) as float64, or :class:`InputError` naming what is wrong.

        Parameters
        ----------
        start : array
            One point (the input's shape, or flat) or a batch of ``k`` points, shaped
            ``(k, *input_shape)`` or ``(k, n)`` (the exact MILP tries each).

        Returns
        -------
        ndarray
            One point shaped like the input, or ``(k, *input_shape)``.
        """
        shape = tuple(self.net.input_shape)
        n = int(np.prod(shape, dtype=np.int64))
        if isinstance(start, list | tuple) and any(np.ndim(u) > 0 for u in start):
            # a list of points, each flat or shaped: stacked point by point, since numpy
            # cannot stack points of different layouts itself
            pts = [_float_array(u, f"start[{k}]") for k, u in enumerate(start)]
            if len({u.shape for u in pts}) > 1:
                for k, u in enumerate(pts):
                    if u.size != n:
                        raise InputError(
                            f"start[{k}] has {u.size} entries (shape {u.shape}); the network "
                            f"input has {n} (shape {shape})"
                        )
                start = np.stack([u.reshape(shape) for u in pts])
        x = _float_array(start, "start")
        if x.size == n:
            x = x.reshape(shape)
        elif x.ndim >= 2 and x.shape[0] > 0 and x.shape[1:] in (shape, (n,)):
            x = x.reshape((x.shape[0], *shape))
        else:
            raise InputError(
                f"start has {x.size} entries (shape {x.shape}); the network input has {n} "
                f"(shape {shape}): give one point, or a batch shaped (k, {n})"
            )
        if not np.all(np.isfinite(x)):
            k = np.argwhere(~np.isfinite(x.reshape(-1)))[0].tolist()
            raise InputError(f"start contains NaN or inf at flat index {k}")
        return x

    def describe(self) -> str:
        return type(self).__name__


def _target(net: Network, target: Any, what: str = "target") -> np.ndarray:
    if target is None:
        raise InputError(f"{what} is required")
    t = _float_array(target, what)
    shape = tuple(net.output_shape)
    if t.size != int(np.prod(shape)):
        raise InputError(
            f"{what} has {t.size} entries (shape {t.shape}); the network output is {shape}"
        )
    t = t.reshape(shape)
    if not np.all(np.isfinite(t)):
        raise InputError(
            f"{what} contains NaN or inf at {np.argwhere(~np.isfinite(t))[0].tolist()}"
        )
    return t


class Inversion(Problem):
    r"""Minimize :math:`\| w \odot (f(x) - y) \|_p` over the input domain, :math:`p \in \{1, 2, \infty\}`.

    Parameters
    ----------
    net : Network
    target : array
        The output ``y`` to reach (the network's output shape).
    norm : 1, 2 or inf
        ``p``; ``p = 2`` needs a backend with mixed-integer quadratic support (Gurobi) for the
        exact MILP.
    weights : array, optional
        Non-negative per-output weights ``w`` (default 1).
    box, domain, center, eps, A, b, integer, binary :
        The input domain (see :class:`Domain`).
    """

    def __init__(
        self, net: Network, target: Any, norm: Any = 1, weights: Any = None, **kw: Any
    ) -> None:
        super().__init__(net, **kw)
        self.target = _target(net, target)
        self.norm = parse_norm(norm)
        w = (
            np.ones(net.output_shape)
            if weights is None
            else _arr(weights, tuple(net.output_shape), "weights")
        )
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise InputError("weights must be finite and non-negative")
        self.weights = w

    def evaluate(self, y: np.ndarray) -> np.ndarray:
        r = (self.weights * (np.asarray(y) - self.target)).reshape(len(y), -1)
        if self.norm == 1:
            return np.abs(r).sum(axis=1)
        if self.norm == 2:
            return np.sqrt((r**2).sum(axis=1))
        return np.abs(r).max(axis=1)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "norm",
            "p": self.norm,
            "target": self.target.reshape(-1),
            "weights": self.weights.reshape(-1),
        }

    def describe(self) -> str:
        p = {1.0: "1", 2.0: "2", np.inf: "inf"}[self.norm]
        return f"minimize ||w*(f(x) - y)||_{p}"


class OutputObjective(Problem):
    r"""Optimize :math:`c^\top f(x) + c_0` (``sense`` "min" or "max") over the input domain.

    Margins (``c = e_i - e_j``) and output ranges (``c = \pm e_i``) are special cases.
    """

    def __init__(
        self, net: Network, c: Any, sense: str = "min", constant: float = 0.0, **kw: Any
    ) -> None:
        super().__init__(net, **kw)
        self.c = _arr(c, tuple(net.output_shape), "c")
        if not np.all(np.isfinite(self.c)):
            raise InputError("c must be finite")
        if sense not in ("min", "max"):
            raise InputError(f"sense must be 'min' or 'max', got {sense!r}")
        self.sense = sense
        self.constant = _float_scalar(constant, "constant")
        if not np.isfinite(self.constant):
            raise InputError(f"constant must be finite, got {constant!r}")

    def evaluate(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y).reshape(len(y), -1) @ self.c.reshape(-1) + self.constant

    def spec(self) -> dict[str, Any]:
        return {"kind": "linear", "c": self.c.reshape(-1), "c0": self.constant, "sense": self.sense}

    def describe(self) -> str:
        return f"{self.sense}imize c.f(x) + c0"


class Feasibility(Problem):
    r"""Does some ``x`` in the domain reach ``|f(x) - y| <= tol`` (or ``C f(x) <= d``)?

    The objective is the largest constraint violation :math:`\max_i (C f(x) - d)_i`, so a witness
    has objective :math:`\le 0`; "infeasible" is a proof that no input satisfies the constraints.

    Parameters
    ----------
    target, tol : the point form, ``|f(x) - target|_inf <= tol``
    C, d : the polyhedral form on the flattened output, ``C f(x) <= d``
    """

    def __init__(
        self,
        net: Network,
        target: Any = None,
        tol: float = 1e-6,
        *,
        C: Any = None,
        d: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(net, **kw)
        n = int(np.prod(net.output_shape))
        if C is not None or d is not None:
            if target is not None:
                raise InputError("give either target/tol or C/d")
            if C is None or d is None:
                raise InputError("polyhedral output constraints need both C and d")
            self.C = np.atleast_2d(_float_array(C, "C"))
            self.d = _float_array(d, "d").reshape(-1)
            if self.C.shape != (len(self.d), n):
                raise InputError(f"C must have shape ({len(self.d)}, {n}); got {self.C.shape}")
            self.target = None
        else:
            t = _target(net, target).reshape(-1)
            tol = _float_scalar(tol, "tol")
            if not np.isfinite(tol) or tol < 0:
                raise InputError(f"tol must be finite and non-negative, got {tol}")
            self.C = np.vstack([np.eye(n), -np.eye(n)])
            self.d = np.concatenate([t + tol, -(t - tol)])
            self.target = t.reshape(net.output_shape)
        self.tol = _float_scalar(tol, "tol")
        if not (np.all(np.isfinite(self.C)) and np.all(np.isfinite(self.d))):
            raise InputError("C and d must be finite")

    def evaluate(self, y: np.ndarray) -> np.ndarray:
        r = np.asarray(y).reshape(len(y), -1) @ self.C.T - self.d
        return r.max(axis=1) if r.shape[1] else np.zeros(len(y))

    def spec(self) -> dict[str, Any]:
        return {"kind": "feasibility", "C": self.C, "d": self.d}

    def describe(self) -> str:
        return "find x with C f(x) <= d"


# --------------------------------------------------------------------------- smooth objectives
# Problems below are smooth: only the first-order formulations (gradient methods, ADMM) solve
# them; the exact MILP path refuses them with a FormulationError.


class CrossEntropy(Problem):
    r"""Minimize the softmax cross-entropy of the output to a class, plus an L2 term on the input.

    .. math::

        \min_{x \in D} \; \ell(f(x)) + \frac{\lambda}{2} \| x - x_{\mathrm{ref}} \|_2^2,
        \qquad \ell(z) = -z_c + \log \sum_j e^{z_j},

    the objective of Wong & Kolter (2017)'s LeNet experiments (cross-entropy with an L2
    regularizer, or within a box). The network's output ``z`` is read as logits (a network that
    ends in a softmax should be cut before it).

    Parameters
    ----------
    net : Network
    label : int
        The class ``c`` to reach (an index into the flattened output).
    l2 : float
        :math:`\lambda \ge 0` (default 0: no regularization).
    x_ref : array, optional
        The L2 term's center (default 0; the input's shape or a scalar).
    box, domain, center, eps :
        The input domain (see :class:`Domain`).

    Notes
    -----
    :meth:`evaluate` returns the output term :math:`\ell(f(x))` only; :meth:`penalty` the input
    term; :meth:`objective_of_input` their sum, which is what every result reports.
    """

    def __init__(
        self, net: Network, label: int, l2: float = 0.0, x_ref: Any = None, **kw: Any
    ) -> None:
        super().__init__(net, **kw)
        n = int(np.prod(net.output_shape))
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise InputError(f"label must be an integer class index, got {label!r}")
        if not 0 <= int(label) < n:
            raise InputError(f"label {label} is out of range: the network has {n} outputs")
        l2 = _float_scalar(l2, "l2")
        if not np.isfinite(l2) or l2 < 0:
            raise InputError(f"l2 must be a finite non-negative number, got {l2}")
        self.label = int(label)
        self.l2 = float(l2)
        shape = tuple(net.input_shape)
        self.x_ref = np.zeros(shape) if x_ref is None else _arr(x_ref, shape, "x_ref")
        if not np.all(np.isfinite(self.x_ref)):
            raise InputError("x_ref must be finite")

    def evaluate(self, y: np.ndarray) -> np.ndarray:
        z = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        m = z.max(axis=1, keepdims=True)  # log-sum-exp, shifted for stability
        lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
        return lse - z[:, self.label]

    def penalty(self, X: np.ndarray) -> np.ndarray:
        r""":math:`\frac{\lambda}{2} \| x - x_{\mathrm{ref}} \|^2` for each row of ``X``."""
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        if self.l2 == 0.0:
            return np.zeros(len(X))
        return 0.5 * self.l2 * ((X - self.x_ref.reshape(-1)) ** 2).sum(axis=1)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "cross_entropy",
            "label": self.label,
            "l2": self.l2,
            "x_ref": self.x_ref.reshape(-1),
        }

    def describe(self) -> str:
        reg = f" + {self.l2:g}/2 ||x - x_ref||^2" if self.l2 else ""
        return f"minimize cross-entropy(f(x), class {self.label}){reg}"


def as_problem_list(problems: Problem | Sequence[Problem]) -> list[Problem]:
    return [problems] if isinstance(problems, Problem) else list(problems)


def _inf_list(a: np.ndarray) -> list:
    return [
        None if not np.isfinite(v) else float(v)
        for v in np.asarray(a, dtype=np.float64).reshape(-1)
    ]


def _from_inf_list(v: list, sign: float) -> np.ndarray:
    return np.array([sign * np.inf if t is None else t for t in v], dtype=np.float64)


def problem_to_json(p: Problem) -> dict[str, Any]:
    """A JSON-able description of a problem (for certificates); inverse of :func:`problem_from_json`."""
    d: dict[str, Any] = {
        "type": type(p).__name__,
        "domain": {
            "lo": _inf_list(p.domain.lo),
            "hi": _inf_list(p.domain.hi),
            "A": None if p.domain.A is None else p.domain.A.tolist(),
            "b": None if p.domain.b is None else p.domain.b.tolist(),
            "integer": None if p.domain.integer is None else p.domain.integer.reshape(-1).tolist(),
        },
    }
    if isinstance(p, Inversion):
        d.update(
            target=p.target.reshape(-1).tolist(),
            norm="inf" if np.isinf(p.norm) else int(p.norm),
            weights=p.weights.reshape(-1).tolist(),
        )
    elif isinstance(p, OutputObjective):
        d.update(c=p.c.reshape(-1).tolist(), sense=p.sense, constant=p.constant)
    elif isinstance(p, Feasibility):
        d.update(C=p.C.tolist(), d=p.d.tolist(), tol=p.tol)
    elif isinstance(p, CrossEntropy):
        d.update(label=p.label, l2=p.l2, x_ref=p.x_ref.reshape(-1).tolist())
    return d


def _json_array(v: Any, where: str, ndim: int = 1, *, nulls: float | None = None) -> np.ndarray:
    """A JSON list (``ndim`` deep) of numbers as float64; :class:`InputError` naming ``where``.

    Parameters
    ----------
    v : any
        The parsed JSON value.
    where : str
        Its name in messages (``"problem.target"``).
    ndim : int
        1 for a vector, 2 for a matrix (a list of equally long rows).
    nulls : float, optional
        What a JSON null stands for (``-inf``/``inf`` for an unbounded box side); by default
        nulls are refused.
    """
    if not isinstance(v, list):
        raise InputError(f"{where} must be a list of numbers, got {_json_type(v)}")
    if ndim == 1:
        out = []
        for i, t in enumerate(v):
            if t is None and nulls is not None:
                out.append(nulls)
            elif isinstance(t, int | float) and not isinstance(t, bool):
                try:
                    out.append(float(t))
                except OverflowError:  # a JSON integer beyond float range
                    raise InputError(f"{where}[{i}] is out of range") from None
            else:
                raise InputError(f"{where}[{i}] must be a number, got {_json_type(t)}")
        return np.array(out, dtype=np.float64)
    rows = [_json_array(r, f"{where}[{i}]", ndim - 1, nulls=nulls) for i, r in enumerate(v)]
    if len({r.shape for r in rows}) > 1:
        raise InputError(f"{where} has rows of different lengths")
    return np.array(rows, dtype=np.float64) if rows else np.zeros((0,) * ndim)


def _json_type(v: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if v is None:
        return "null"
    return names.get(type(v), "a number" if isinstance(v, int | float) else type(v).__name__)


def _json_number(d: dict[str, Any], key: str, where: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{where}.{key} must be a number, got {_json_type(v)}")
    try:
        return float(v)
    except OverflowError:
        raise InputError(f"{where}.{key} is out of range") from None


def problem_from_json(net: Network, d: dict[str, Any]) -> Problem:
    """Rebuild a problem on ``net`` from :func:`problem_to_json`'s output.

    The description comes from a file (a certificate), so every field is checked: a missing
    key, a value of the wrong type or length, NaN in the domain raise :class:`InputError`
    naming the field (``problem.domain.lo``, ``problem.target``, ...), never another exception.
    An empty box (``lo > hi`` somewhere) is accepted: it is what an infeasibility claim about
    the domain says, and a point cannot lie in it.
    """
    if not isinstance(d, dict):
        raise InputError(f"the problem must be a JSON object, got {_json_type(d)}")
    for key in ("type", "domain"):
        if key not in d:
            raise InputError(f"problem.{key} is missing")
    t = d["type"]
    if not isinstance(t, str):
        raise InputError(f"problem.type must be a string, got {_json_type(t)}")
    dom = d["domain"]
    if not isinstance(dom, dict):
        raise InputError(f"problem.domain must be a JSON object, got {_json_type(dom)}")
    shape = tuple(net.input_shape)
    n = int(np.prod(shape, dtype=np.int64))
    box = []
    for key, side in (("lo", -np.inf), ("hi", np.inf)):
        if key not in dom:
            raise InputError(f"problem.domain.{key} is missing")
        a = _json_array(dom[key], f"problem.domain.{key}", nulls=side)
        if a.size != n:
            raise InputError(
                f"problem.domain.{key} has {a.size} entries; the network input has {n}"
            )
        if np.isnan(a).any():
            raise InputError(f"problem.domain.{key} contains NaN")
        box.append(a.reshape(shape))
    A = b = None
    if dom.get("A") is not None or dom.get("b") is not None:
        if dom.get("A") is None or dom.get("b") is None:
            raise InputError("problem.domain: linear input constraints need both A and b")
        A = _json_array(dom["A"], "problem.domain.A", 2)
        b = _json_array(dom["b"], "problem.domain.b")
        if A.shape != (len(b), n):
            raise InputError(f"problem.domain.A must have shape ({len(b)}, {n}); got {A.shape}")
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
            raise InputError("problem.domain.A and b must be finite")
    integer = None
    if dom.get("integer") is not None:
        m = dom["integer"]
        if not isinstance(m, list) or len(m) != n or not all(v in (True, False) for v in m):
            raise InputError(f"problem.domain.integer must be a list of {n} booleans")
        integer = np.asarray(m, dtype=bool).reshape(shape)
    domain = Domain(box[0], box[1], A, b, integer)
    if t not in ("Inversion", "OutputObjective", "Feasibility", "CrossEntropy"):
        raise InputError(f"unknown problem type {t!r} in the certificate")
    try:
        return _problem_of_type(net, t, d, domain)
    except InputError as e:
        msg = str(e)
        # the constructors' own messages name the argument; say it is the problem's field
        raise InputError(msg if msg.startswith("problem") else f"problem: {msg}") from None


def _problem_of_type(net: Network, t: str, d: dict[str, Any], domain: Domain) -> Problem:
    """The ``t`` problem of :func:`problem_from_json` from its checked fields."""

    def need(*keys: str) -> None:
        for k in keys:
            if k not in d:
                raise InputError(f"problem.{k} is missing (problem type {t} needs it)")

    if t == "Inversion":
        need("target", "norm", "weights")
        if not isinstance(d["norm"], int | float | str) or isinstance(d["norm"], bool):
            raise InputError(f"problem.norm must be 1, 2 or 'inf', got {_json_type(d['norm'])}")
        return Inversion(
            net,
            _json_array(d["target"], "problem.target"),
            norm=d["norm"],
            weights=_json_array(d["weights"], "problem.weights"),
            domain=domain,
        )
    if t == "OutputObjective":
        need("c", "sense", "constant")
        if not isinstance(d["sense"], str):
            raise InputError(f"problem.sense must be 'min' or 'max', got {_json_type(d['sense'])}")
        return OutputObjective(
            net,
            _json_array(d["c"], "problem.c"),
            sense=d["sense"],
            constant=_json_number(d, "constant", "problem"),
            domain=domain,
        )
    if t == "Feasibility":
        need("C", "d")
        C = _json_array(d["C"], "problem.C", 2)
        dd = _json_array(d["d"], "problem.d")
        tol = _json_number(d, "tol", "problem") if d.get("tol") is not None else 0.0
        f = Feasibility(net, C=C, d=dd, domain=domain)
        f.tol = tol
        return f
    if t == "CrossEntropy":
        need("label", "l2", "x_ref")
        label = d["label"]
        if isinstance(label, bool) or not isinstance(label, int):
            raise InputError(f"problem.label must be an integer, got {_json_type(label)}")
        return CrossEntropy(
            net,
            label,
            l2=_json_number(d, "l2", "problem"),
            x_ref=_json_array(d["x_ref"], "problem.x_ref"),
            domain=domain,
        )
    raise AssertionError(t)  # pragma: no cover - problem_from_json checked the type
