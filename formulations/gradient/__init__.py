r"""Gradient methods: the network and the objective as one differentiable function.

The model is :math:`x \mapsto \phi(f(x)) + r(x)` in torch (the network through
:class:`netopt.ir.torch_module.GraphModule`), minimized over a box by one of the first-order
iterations of :mod:`.loop` (imported when a solve runs, so importing this package does not
import torch). The method is part of the registered name so that it reads as
``prob.solve("adam")``:

========== ===========================================================================
key        iteration (:math:`\Pi` is the projection onto the box, identity without one)
========== ===========================================================================
``gd``     :math:`x \leftarrow \Pi(x - \eta \nabla)`
``adam``   :math:`x \leftarrow \Pi(x - \eta \hat m / (\sqrt{\hat v} + \epsilon))` (Adam moments)
``pgd``    :math:`x \leftarrow \Pi(x - \eta \nabla / \|\nabla\|_2)` (normalized, l2 steepest)
``sign_pgd`` :math:`x \leftarrow \Pi(x - \eta \operatorname{sign} \nabla)` (l_inf steepest)
========== ===========================================================================

``"gradient"`` is the family itself (``method=`` chooses; default Adam); ``"gd"``, ``"adam"``,
``"pgd"`` and ``"sign_pgd"`` are the same class with the option ``method`` fixed. Every op with a
torch rule is supported, smooth activations included.

Options (besides the batched methods' own, :mod:`netopt.formulations._batch`): ``method``
(``"gradient"`` only), ``lr`` (default 1% of the mean box width, 0.01 without a box), ``decay``,
``betas``, ``tol``, ``patience``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from netopt.errors import InputError
from netopt.formulations import register
from netopt.formulations._batch import BatchedFormulation, check_batch
from netopt.ir import Graph
from netopt.ir.ops import OPS
from netopt.options import Check, choice, integer, number
from netopt.problems import Problem

__all__ = ["Gradient", "GradientModel", "METHODS"]

#: the gradient methods (the values of the option ``method``)
METHODS = ("gd", "adam", "pgd", "sign_pgd")


def _betas(v: Any) -> str | None:
    """Adam's two decay rates, each in [0, 1)."""
    ok = isinstance(v, list | tuple) and len(v) == 2
    ok = ok and all(number(low=0, high=1, none=False)(b) is None and float(b) < 1 for b in v)
    return None if ok else "must be a pair (beta1, beta2) of numbers in [0, 1)"


@dataclass
class GradientModel:
    """The problems (one network) and the method; the torch function is built when it runs."""

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
    engine_options: ClassVar[tuple[str, ...]] = (
        "method",
        "lr",
        "decay",
        "betas",
        "tol",
        "patience",
    )
    engine_checks: ClassVar[dict[str, Check]] = {
        "method": choice(*METHODS),
        "lr": number(low=0, strict=True),
        "decay": number(low=0, none=False),
        "betas": _betas,
        "tol": number(low=0),
        "patience": integer(low=1, none=False),
    }

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        # every IR op has a torch rule (a meta-test of torch_module says so); a graph op outside
        # the vocabulary is the only thing a gradient method cannot run
        return [(o.id, o.op, f"'{o.op}' is not an IR op") for o in graph.ops if o.op not in OPS]

    def build(self, problem: Problem | list[Problem], bounds: Any = None) -> GradientModel:
        problems = check_batch(problem, self.name)
        net = problems[0].net
        self.require_support(net.graph, f" of {net.source.name}")
        return GradientModel(problems, self.method, meta={"network": net.source.name})

    def iterate(
        self,
        model: GradientModel,
        obj: Any,
        x0: Any,
        f: Any,
        common: dict[str, Any],
        options: dict[str, Any],
        dtype: Any,
        device: Any,
    ) -> tuple[dict[str, Any], str]:
        import torch

        from netopt.formulations.gradient.loop import GradientOptions, run_gradient

        method = options.get("method", model.method)
        if method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {method!r}")
        lr = options.get("lr")
        if lr is None:
            w = (obj.hi - obj.lo)[torch.isfinite(obj.hi - obj.lo)]
            lr = 0.01 * float(w.mean()) if w.numel() else 0.01
        gopts = GradientOptions(
            method=method,
            lr=float(lr),
            **common,
            **{k: options[k] for k in ("decay", "betas", "tol", "patience") if k in options},
        )
        tl = options.get("time_limit")
        deadline = None if tl is None else time.perf_counter() + float(tl)
        out = run_gradient(f, obj, x0, gopts, deadline)
        return out, method


# the four methods under their own names: the same class with the option ``method`` fixed


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
