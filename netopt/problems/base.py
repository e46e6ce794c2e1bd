"""The problem base class and the registry of problem kinds.

A problem is a network, an input domain and an objective (always minimized internally). Each
kind is one class registered by name with :func:`register_kind`; it knows how to

* evaluate itself in float64 from a forward pass (:meth:`Problem.evaluate` and
  :meth:`Problem.penalty`), which is how every result is re-checked;
* describe its objective to formulations (:meth:`Problem.spec`);
* write and read itself as JSON (:meth:`Problem.to_json`, :meth:`Problem.from_json`), the form a
  certificate or an instance file stores;
* give the bound that holds without solving anything (:meth:`Problem.trivial_bound`).

Code outside this package asks a problem through these hooks instead of testing its class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from netopt.errors import InputError
from netopt.problems.domain import Domain, _float_array

if TYPE_CHECKING:  # pragma: no cover
    from netopt.network import Network
    from netopt.result import Result

__all__ = ["Problem", "KINDS", "register_kind", "as_problem_list"]

#: Every problem kind, by name (the ``"type"`` of its JSON): filled by :func:`register_kind`.
KINDS: dict[str, type[Problem]] = {}

_P = TypeVar("_P", bound="type[Problem]")


def register_kind(cls: _P) -> _P:
    """Class decorator: register a :class:`Problem` subclass under its class name.

    The name is what :meth:`Problem.to_json` writes as ``"type"`` and what
    :meth:`Problem.from_json` looks up, so it must stay stable once certificates exist.
    """
    name = cls.__name__
    if name in KINDS and KINDS[name] is not cls:
        raise ValueError(f"a problem kind named {name!r} is already registered")
    cls.kind = name
    KINDS[name] = cls
    return cls


class Problem:
    """Base class: a network, an input domain, and an objective (always minimized internally).

    Subclasses define :meth:`evaluate` (float64 objective of outputs), :meth:`spec` and their
    JSON fields (:meth:`_json_fields`, :meth:`_from_json_fields`), and are registered with
    :func:`register_kind`.
    """

    sense = "min"
    #: The registered name (set by :func:`register_kind`): the ``"type"`` of the JSON.
    kind: ClassVar[str] = ""
    #: Whether the objective is a constraint violation (a decision problem): a point with
    #: objective <= 0 is a witness, "infeasible" means no input satisfies the constraints, and a
    #: solver's bound on its model (whose objective is 0) is no claim about the violation.
    feasibility: ClassVar[bool] = False

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

    def trivial_bound(self) -> tuple[float, str] | None:
        """A lower bound on the (minimized) objective that holds for every input, and why.

        Returns
        -------
        (bound, reason) or None
            E.g. ``(0.0, "a norm is non-negative")`` for an inversion: a point reaching the
            bound is optimal without any solver. None when the kind has no such bound.
        """
        return None

    def _json_fields(self) -> dict[str, Any]:
        """The kind's own JSON fields (everything but ``type`` and ``domain``)."""
        raise NotImplementedError

    @classmethod
    def _from_json_fields(
        cls, net: Network, d: dict[str, Any], domain: Domain, need: Any
    ) -> Problem:
        """The problem from its JSON object ``d`` (fields not yet checked) and parsed ``domain``.

        ``need(*keys)`` raises :class:`InputError` naming the first key missing from ``d``.
        """
        raise NotImplementedError

    # -- JSON
    def to_json(self) -> dict[str, Any]:
        """A JSON-able description of the problem (for certificates); see :meth:`from_json`.

        ``{"type": kind, "domain": {"lo", "hi", "A", "b", "integer"}, **fields of the kind}``,
        with unbounded box sides written as null.
        """
        dom = self.domain
        d: dict[str, Any] = {
            "type": self.kind,
            "domain": {
                "lo": _inf_list(dom.lo),
                "hi": _inf_list(dom.hi),
                "A": None if dom.A is None else dom.A.tolist(),
                "b": None if dom.b is None else dom.b.tolist(),
                "integer": None if dom.integer is None else dom.integer.reshape(-1).tolist(),
            },
        }
        d.update(self._json_fields())
        return d

    @staticmethod
    def from_json(net: Network, d: dict[str, Any]) -> Problem:
        """Rebuild a problem on ``net`` from :meth:`to_json`'s output (any registered kind).

        The description comes from a file (a certificate), so every field is checked: a missing
        key, a value of the wrong type or length, NaN in the domain raise :class:`InputError`
        naming the field (``problem.domain.lo``, ``problem.target``, ...), never another
        exception. An empty box (``lo > hi`` somewhere) is accepted: it is what an infeasibility
        claim about the domain says, and a point cannot lie in it.
        """
        if not isinstance(d, dict):
            raise InputError(f"the problem must be a JSON object, got {_json_type(d)}")
        for key in ("type", "domain"):
            if key not in d:
                raise InputError(f"problem.{key} is missing")
        t = d["type"]
        if not isinstance(t, str):
            raise InputError(f"problem.type must be a string, got {_json_type(t)}")
        domain = _domain_from_json(net, d["domain"])
        if t not in KINDS:
            raise InputError(f"unknown problem type {t!r} in the certificate")

        def need(*keys: str) -> None:
            for k in keys:
                if k not in d:
                    raise InputError(f"problem.{k} is missing (problem type {t} needs it)")

        try:
            return KINDS[t]._from_json_fields(net, d, domain, need)
        except InputError as e:
            msg = str(e)
            # the constructors' own messages name the argument; say it is the problem's field
            raise InputError(msg if msg.startswith("problem") else f"problem: {msg}") from None

    # -- shared
    def objective_of_input(self, x: np.ndarray) -> float:
        """The objective at input ``x``, recomputed by the float64 reference interpreter."""
        xb = np.asarray(x, dtype=np.float64).reshape(1, *self.net.input_shape)
        y = self.net.forward(xb)
        return float(self.evaluate(y)[0] + self.penalty(xb)[0])

    def solve(self, formulation: str = "auto", solver: str | None = None, **options: Any) -> Result:
        """Solve with a formulation and a backend; see :func:`netopt.solve.solve`.

        The default ``"auto"`` is exact: branch and bound where it is measured the stronger (few
        inputs, a box), then the MILP (:mod:`netopt.formulations.auto`). ``solver`` defaults to
        the formulation's natural backend (``"highs"`` for ``"milp"``); the first-order
        formulations (``"admm"``, ``"adam"``, ``"gd"``, ...) take none.
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


def as_problem_list(problems: Problem | Sequence[Problem]) -> list[Problem]:
    return [problems] if isinstance(problems, Problem) else list(problems)


def _inf_list(a: np.ndarray) -> list:
    return [
        None if not np.isfinite(v) else float(v)
        for v in np.asarray(a, dtype=np.float64).reshape(-1)
    ]


def _from_inf_list(v: list, sign: float) -> np.ndarray:
    return np.array([sign * np.inf if t is None else t for t in v], dtype=np.float64)


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


def _domain_from_json(net: Network, dom: Any) -> Domain:
    """The ``problem.domain`` object of :meth:`Problem.from_json`, checked field by field."""
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
    return Domain(box[0], box[1], A, b, integer)
