r"""Gradient methods: the network and the objective as one differentiable function.

The model is :math:`x \mapsto \phi(f(x)) + r(x)` in torch (the network through
:class:`netopt.torch_module.GraphModule`), minimized over a box by a first-order method of the
``torch`` backend. The method is part of the formulation's name so that it reads as
``prob.solve("adam")``:

========== ===========================================================================
key        iteration (:math:`\Pi` is the projection onto the box, identity without one)
========== ===========================================================================
``gd``     :math:`x \leftarrow \Pi(x - \eta \nabla)`
``adam``   :math:`x \leftarrow \Pi(x - \eta \hat m / (\sqrt{\hat v} + \epsilon))` (Adam moments)
``pgd``    :math:`x \leftarrow \Pi(x - \eta \nabla / \|\nabla\|_2)` (normalized, l2 steepest)
``sign_pgd`` :math:`x \leftarrow \Pi(x - \eta \operatorname{sign} \nabla)` (l_inf steepest)
========== ===========================================================================

``"gradient"`` is the family itself (``method=`` chooses; default Adam). Every op with a torch
rule is supported, smooth activations included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from netopt.formulations import register
from netopt.formulations._batch import BatchedFormulation
from netopt.ir import Graph
from netopt.problems import Problem

__all__ = ["Gradient", "GradientModel", "METHODS"]

#: the gradient methods of the torch backend
METHODS = ("gd", "adam", "pgd", "sign_pgd")


@dataclass
class GradientModel:
    """The problems (one network) and the method; the backend builds the torch function."""

    problems: list[Problem]
    method: str
    meta: dict[str, Any] = field(default_factory=dict)

    def size(self) -> dict[str, int]:
        return {"problems": len(self.problems)}


@register("gradient")
class Gradient(BatchedFormulation):
    """The network plus objective for a gradient method (``method`` in :data:`METHODS`)."""

    name = "gradient"
    model_type = "GradientModel"
    method: ClassVar[str] = "adam"

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        from netopt.ops import OPS

        # every IR op has a torch rule (a meta-test of torch_module says so); a graph op outside
        # the vocabulary is the only thing a gradient method cannot run
        return [(o.id, o.op, f"'{o.op}' is not an IR op") for o in graph.ops if o.op not in OPS]

    def build(self, problem: Problem | list[Problem], bounds: Any = None) -> GradientModel:
        from netopt.formulations.admm import check_batch

        problems = check_batch(problem, self.name)
        net = problems[0].net
        self.require_support(net.graph, f" of {net.source.name}")
        return GradientModel(problems, self.method, meta={"network": net.source.name})


@register("gd")
class GD(Gradient):
    """Projected gradient descent with a fixed step."""

    name = "gd"
    method = "gd"


@register("adam")
class Adam(Gradient):
    """Projected Adam (Kingma & Ba 2015)."""

    name = "adam"
    method = "adam"


@register("pgd")
class PGD(Gradient):
    """Projected gradient with l2-normalized steps."""

    name = "pgd"
    method = "pgd"


@register("sign_pgd")
class SignPGD(Gradient):
    """Projected sign-gradient steps (l_inf steepest descent, iterated FGSM)."""

    name = "sign_pgd"
    method = "sign_pgd"
