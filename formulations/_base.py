"""The formulation base class: a rule table keyed by IR op and a support check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from netopt.ir import Graph


class Formulation:
    """IR + problem (+ bounds) -> model. Never imports a solver package.

    Subclasses fill :attr:`rules` with :meth:`rule` and implement :meth:`build`.
    """

    name: ClassVar[str] = ""
    #: the model type its output is (backends declare which they accept)
    model_type: ClassVar[str] = ""
    rules: ClassVar[dict[str, Callable]] = {}

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
                f"formulation '{cls.name}' cannot model {len(bad)} op(s){where}:\n{lines}\n"
                "Smooth activations (sigmoid, tanh, softmax) need a first-order method."
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
