"""The formulation base class: a rule table keyed by IR op and a support check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from netopt.ir import Graph, Op


class Formulation:
    """IR + problem (+ bounds) -> model. Never imports a solver package.

    Subclasses fill :attr:`rules` with :meth:`rule` and implement :meth:`build`.
    """

    name: ClassVar[str] = ""
    #: the model type its output is (backends declare which they accept)
    model_type: ClassVar[str] = ""
    rules: ClassVar[dict[str, Callable]] = {}
    #: what :meth:`require_support` says the formulation cannot do, and what to do instead
    support_verb: ClassVar[str] = "model"
    support_hint: ClassVar[str] = (
        "Smooth activations (sigmoid, tanh, softmax) need a first-order method."
    )

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.rules = dict(cls.rules)  # each subclass owns its table

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
