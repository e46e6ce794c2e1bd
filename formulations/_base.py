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
  gradient methods) builds one model for many problems and runs them at once on the torch backend;
* an iterative method (layer-wise LPs, lifted Bregman, ADR-GD, Surfing) implements :meth:`run`
  over its own algorithm module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from netopt.ir import Graph, Op
from netopt.options import Schema, from_signature

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


def chain_support(
    graph: Graph, refusal: Callable[[Op], str | None], method: str, *, branches: bool = True
) -> list[tuple[str, str, str]]:
    """``(op id, IR op, reason)`` for the methods that invert a single chain of layers.

    Every op that ``refusal`` rejects is listed with its ONNX node; with ``branches`` an op whose
    output feeds several ops is listed too; a graph with several inputs or outputs adds one row.
    """
    bad = []
    for o in graph.ops:
        why = refusal(o)
        if why is None and branches and o.outputs[0] not in graph.outputs:
            if len(graph.consumers(o.outputs[0])) > 1:
                why = f"its output feeds several ops; {method} inverts a single chain"
        if why:
            bad.append((o.id, o.op, why + (f" (from ONNX {o.origin})" if o.origin else "")))
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        bad.append(
            (
                "<graph>",
                "-",
                f"{len(graph.inputs)} inputs / {len(graph.outputs)} outputs; {method} inverts "
                "single-input, single-output chains",
            )
        )
    return bad


def keyword_options(
    name: str, fn: Callable, extra: Sequence[str] = (), *, drop: Sequence[str] = ()
) -> Schema:
    """Method ``name``'s options: ``fn``'s keyword-only parameters (their defaults' types
    checked), plus ``extra`` names that ``fn`` takes through ``**options``, less ``drop``."""
    s = from_signature(f"method '{name}'", fn, sorted(extra))
    return Schema(s.owner, [o for o in s.options.values() if o.name not in drop])


def no_backend(method: str, solver: str | None, runs_on: str) -> None:
    """Refuse a ``solver`` for a method that chooses no backend (it runs on ``runs_on``)."""
    if solver is not None and solver != runs_on:
        from netopt.errors import IncompatibleBackendError

        raise IncompatibleBackendError(
            f"method '{method}' runs on {runs_on} and takes no solver; got solver={solver!r}"
        )
