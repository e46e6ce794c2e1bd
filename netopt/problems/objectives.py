"""The problem kinds: Inversion, OutputObjective, Feasibility and CrossEntropy.

Each is registered with :func:`~netopt.problems.base.register_kind` and writes and reads its own
JSON fields (:meth:`~netopt.problems.base.Problem.to_json`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.errors import InputError
from netopt.problems.base import Problem, _json_array, _json_number, _json_type, register_kind
from netopt.problems.domain import Domain, _arr, _float_array, _float_scalar, parse_norm

if TYPE_CHECKING:  # pragma: no cover
    from netopt.network import Network

__all__ = ["Inversion", "OutputObjective", "Feasibility", "CrossEntropy"]


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


@register_kind
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

    def trivial_bound(self) -> tuple[float, str] | None:
        return 0.0, "a norm is non-negative"

    def _json_fields(self) -> dict[str, Any]:
        return {
            "target": self.target.reshape(-1).tolist(),
            "norm": "inf" if np.isinf(self.norm) else int(self.norm),
            "weights": self.weights.reshape(-1).tolist(),
        }

    @classmethod
    def _from_json_fields(
        cls, net: Network, d: dict[str, Any], domain: Domain, need: Any
    ) -> Inversion:
        need("target", "norm", "weights")
        if not isinstance(d["norm"], int | float | str) or isinstance(d["norm"], bool):
            raise InputError(f"problem.norm must be 1, 2 or 'inf', got {_json_type(d['norm'])}")
        return cls(
            net,
            _json_array(d["target"], "problem.target"),
            norm=d["norm"],
            weights=_json_array(d["weights"], "problem.weights"),
            domain=domain,
        )


@register_kind
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

    def _json_fields(self) -> dict[str, Any]:
        return {"c": self.c.reshape(-1).tolist(), "sense": self.sense, "constant": self.constant}

    @classmethod
    def _from_json_fields(
        cls, net: Network, d: dict[str, Any], domain: Domain, need: Any
    ) -> OutputObjective:
        need("c", "sense", "constant")
        if not isinstance(d["sense"], str):
            raise InputError(f"problem.sense must be 'min' or 'max', got {_json_type(d['sense'])}")
        return cls(
            net,
            _json_array(d["c"], "problem.c"),
            sense=d["sense"],
            constant=_json_number(d, "constant", "problem"),
            domain=domain,
        )


@register_kind
class Feasibility(Problem):
    r"""Does some ``x`` in the domain reach ``|f(x) - y| <= tol`` (or ``C f(x) <= d``)?

    The objective is the largest constraint violation :math:`\max_i (C f(x) - d)_i`, so a witness
    has objective :math:`\le 0`; "infeasible" is a proof that no input satisfies the constraints.

    Parameters
    ----------
    target, tol : the point form, ``|f(x) - target|_inf <= tol``
    C, d : the polyhedral form on the flattened output, ``C f(x) <= d``
    """

    feasibility = True

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

    def _json_fields(self) -> dict[str, Any]:
        return {"C": self.C.tolist(), "d": self.d.tolist(), "tol": self.tol}

    @classmethod
    def _from_json_fields(
        cls, net: Network, d: dict[str, Any], domain: Domain, need: Any
    ) -> Feasibility:
        need("C", "d")
        C = _json_array(d["C"], "problem.C", 2)
        dd = _json_array(d["d"], "problem.d")
        tol = _json_number(d, "tol", "problem") if d.get("tol") is not None else 0.0
        f = cls(net, C=C, d=dd, domain=domain)
        f.tol = tol
        return f


# --------------------------------------------------------------------------- smooth objectives
# Problems below are smooth: only the first-order formulations (gradient methods, ADMM) solve
# them; the exact MILP path refuses them with a FormulationError.


@register_kind
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

    def _json_fields(self) -> dict[str, Any]:
        return {"label": self.label, "l2": self.l2, "x_ref": self.x_ref.reshape(-1).tolist()}

    @classmethod
    def _from_json_fields(
        cls, net: Network, d: dict[str, Any], domain: Domain, need: Any
    ) -> CrossEntropy:
        need("label", "l2", "x_ref")
        label = d["label"]
        if isinstance(label, bool) or not isinstance(label, int):
            raise InputError(f"problem.label must be an integer, got {_json_type(label)}")
        return cls(
            net,
            label,
            l2=_json_number(d, "l2", "problem"),
            x_ref=_json_array(d["x_ref"], "problem.x_ref"),
            domain=domain,
        )
