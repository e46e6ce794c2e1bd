"""The method protocol: every registered method is one :class:`Formulation` subclass.

A method declares what it takes — :meth:`Formulation.accepts` (the problem: its kind, its
domain) and :meth:`Formulation.check_support` (the network: an op rule table) — and runs with
:meth:`Formulation.run`, which returns an :class:`~netopt.result.Outcome`: its candidate points
and its claim. The pipeline (:func:`netopt.solve.solve`) turns the Outcome into a re-checked
Result with :func:`netopt.result.assemble`; no method builds a Result itself.

Three shapes share the protocol:

* a model formulation (:class:`netopt.formulations._model.ModelFormulation`, the MILP) compiles
  the problem into a solver-neutral model for a backend and maps the raw solution back;
* a batched formulation (:class:`netopt.formulations._batch.BatchedFormulation`: ADMM and the
  gradient methods) builds one model for many problems and runs them at once in torch;
* an iterative method (layer-wise LPs, lifted Bregman, ADR-GD, Surfing) implements :meth:`run`
  over its own algorithm module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from netopt.ir import Graph
from netopt.options import Check, Schema, from_signature, integer, number

if TYPE_CHECKING:  # pragma: no cover
    from netopt.problems import Problem
    from netopt.result import Outcome


class Formulation:
    """A method: what it accepts, what it supports, and how it runs.

    Subclasses fill :attr:`rules` with :meth:`rule` (or override :meth:`check_support`) and
    implement :meth:`run` (or :meth:`run_batch` when :attr:`batched`).
    """

    name: ClassVar[str] = ""
    #: the model type its output is (backends declare which they accept)
    model_type: ClassVar[str] = ""
    #: the backend used when the caller names none (None: the method needs no backend)
    default_backend: ClassVar[str | None] = None
    #: True when :meth:`run_batch` solves many problems on one network in one run
    batched: ClassVar[bool] = False
    rules: ClassVar[dict[str, Callable]] = {}
    #: what :meth:`require_support` says the formulation cannot do, and what to do instead
    support_verb: ClassVar[str] = "model"
    support_hint: ClassVar[str] = (
        "Smooth activations (sigmoid, tanh, softmax) need a first-order method."
    )

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.rules = dict(cls.rules)  # each subclass owns its table

    # ------------------------------------------------------------------ the protocol
    def accepts(self, problem: Problem) -> list[str]:
        """Why this method cannot take ``problem`` (its kind or domain); empty when it can."""
        return []

    def run(self, problem: Problem, solver: str | None = None, **options: Any) -> Outcome:
        """Solve ``problem``: candidate points and the claim about them (not yet re-checked)."""
        if self.batched:
            return self.run_batch([problem], solver, **options)[0]
        raise NotImplementedError(f"method '{self.name}' implements no run()")

    def run_batch(
        self, problems: Sequence[Problem], solver: str | None = None, **options: Any
    ) -> list[Outcome]:
        """Solve several problems (one :meth:`run` each, unless the method batches them)."""
        return [self.run(p, solver, **options) for p in problems]

    @classmethod
    def options(cls) -> Schema | None:
        """The options ``Problem.solve`` passes to this method, declared (None: undeclared)."""
        return None

    @classmethod
    def option_names(cls) -> tuple[str, ...] | None:
        """The names of :meth:`options` (what the bench and the command line offer)."""
        s = cls.options()
        return None if s is None else s.names

    @classmethod
    def rule(cls, *ops: str) -> Callable[[Callable], Callable]:
        """Decorator registering the rule of one or more IR ops."""

        def deco(fn: Callable) -> Callable:
            for op in ops:
                if op in cls.rules:
                    raise RuntimeError(f"{cls.__name__}: rule for '{op}' registered twice")
                cls.rules[op] = fn
            return fn

        return deco

    @classmethod
    def require_support(cls, graph: Graph, where: str = "") -> None:
        """Raise one :class:`FormulationError` listing every op without a rule."""
        from netopt.errors import FormulationError

        bad = cls.check_support(graph)
        if bad:
            lines = "\n".join(f"  - {i} ({op}): {why}" for i, op, why in bad)
            raise FormulationError(
                f"formulation '{cls.name}' cannot {cls.support_verb} {len(bad)} op(s){where}:\n"
                f"{lines}\n{cls.support_hint}"
            )

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        """``(op id, IR op, reason)`` for every op this formulation cannot handle."""
        return [
            (
                o.id,
                o.op,
                f"no {cls.name} rule for '{o.op}'"
                + (f" (from ONNX {o.origin})" if o.origin else ""),
            )
            for o in graph.ops
            if o.op not in cls.rules
        ]


def keyword_options(
    name: str,
    fn: Callable,
    extra: Sequence[str] = (),
    *,
    drop: Sequence[str] = (),
    checks: Mapping[str, Check] | None = None,
) -> Schema:
    """Method ``name``'s options: ``fn``'s keyword-only parameters (their defaults' types
    checked), plus ``extra`` names that ``fn`` takes through ``**options``, less ``drop``.

    ``checks`` gives the options whose type a default cannot tell (None, a string, a tuple,
    an ``extra`` name) their validator (:mod:`netopt.options`), or overrides a default's.
    """
    s = from_signature(f"method '{name}'", fn, sorted(extra))
    checks = dict(checks or {})
    stray = sorted(set(checks) - set(s.names))
    if stray:  # a typo here would silently leave an option unchecked
        raise RuntimeError(f"method '{name}': checks for undeclared option(s) {stray}")
    return Schema(
        s.owner,
        [
            replace(o, check=checks.get(o.name, o.check))
            for o in s.options.values()
            if o.name not in drop
        ],
    )


# ----------------------------------------------------------------- validators the methods share
#: the torch dtypes the first-order methods take by name (netopt.torch_utils.resolve_dtype)
DTYPE_NAMES = ("float32", "float", "float64", "double", "float16", "bfloat16")
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu|meta)(:\d+)?")


def torch_device(v: Any) -> str | None:
    """None (cuda when available, else cpu), a ``torch.device``, or a device string."""
    if v is None or type(v).__name__ == "device":  # a torch.device, without importing torch
        return None
    if isinstance(v, str) and _DEVICE.fullmatch(v):
        return None
    return "must be a torch device: 'cpu', 'cuda', 'cuda:0', ..."


def torch_dtype(v: Any) -> str | None:
    """None, a dtype name of :data:`DTYPE_NAMES`, or a floating ``torch.dtype``."""
    if v is None or (type(v).__name__ == "dtype" and getattr(v, "is_floating_point", False)):
        return None
    if isinstance(v, str) and v.replace("torch.", "") in DTYPE_NAMES:
        return None
    return "must be 'float32' or 'float64' (or a floating torch dtype)"


def array_like(v: Any) -> str | None:
    """None or numbers: a scalar, a (nested) list, an array, a list of arrays, a tensor."""
    if v is None:
        return None
    if isinstance(v, str | bytes | dict | bool):
        return "must be an array of numbers"
    try:
        np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        # a list of points of different layouts is fine: each must be numbers
        if isinstance(v, list | tuple) and v and all(array_like(e) is None for e in v):
            return None
        return "must be an array of numbers"
    return None


def number_pair(v: Any) -> str | None:
    """None or two finite numbers ``(low, high)`` with ``low <= high``."""
    if v is None:
        return None
    ok = isinstance(v, list | tuple | np.ndarray) and len(v) == 2
    ok = ok and all(number(none=False)(e) is None for e in v)
    if not ok or float(v[0]) > float(v[1]):
        return "must be a pair of numbers (low, high) with low <= high"
    return None


def verbosity(v: Any) -> str | None:
    """None, True / False, or an integer level."""
    ok = v is None or isinstance(v, bool | int | np.integer)
    return None if ok else "must be True or False (or an integer level)"


def solver_name(v: Any) -> str | None:
    """None or a non-empty name (another library's solver, checked by that library)."""
    return None if v is None or (isinstance(v, str) and v) else "must be a solver name (a string)"


def pair_of_arrays(v: Any) -> str | None:
    """None or ``(lo, hi)``: two numbers or arrays of numbers."""
    if v is None:
        return None
    ok = isinstance(v, list | tuple) and len(v) == 2 and all(array_like(e) is None for e in v)
    return None if ok and all(e is not None for e in v) else "must be a pair (lo, hi) of arrays"


def grid_shape(v: Any) -> str | None:
    """None or ``(H, W)``: two positive integers."""
    if v is None:
        return None
    ok = isinstance(v, list | tuple) and len(v) == 2
    ok = ok and all(integer(low=1, none=False)(e) is None for e in v)
    return None if ok else "must be a pair (H, W) of positive integers"


def mapping(v: Any) -> str | None:
    """None or a dict of option names to values (a backend's own options)."""
    return None if v is None or isinstance(v, dict) else "must be a dict of option names to values"


def no_backend(method: str, solver: str | None, runs_on: str = "torch") -> None:
    """Refuse any ``solver`` for a method that runs its own iterations (it has no backend).

    Every such method refuses alike, whatever the name (``solver="torch"`` included); a torch
    method points to the ``device`` option, which chooses where it runs.

    Raises
    ------
    IncompatibleBackendError
        ``solver`` is not None.
    """
    if solver is not None:
        from netopt.errors import IncompatibleBackendError

        where = (
            ", and choose where it runs with the device option (device='cpu' or device='cuda')"
            if runs_on == "torch"
            else ""
        )
        raise IncompatibleBackendError(
            f"method '{method}' runs its own iterations in {runs_on} and takes no solver "
            f"(got solver={solver!r}); leave solver out{where}"
        )
