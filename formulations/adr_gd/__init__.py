r"""Activation-Descent Regularization (ADR-GD, Yu & Gao, ICML 2024): scope and math.

The network is a chain of dense layers closed by ReLU,
:math:`h^0 = x`, :math:`g^l = W_l h^{l-1} + b_l`, :math:`h^l = \max(g^l, 0)` for
:math:`l = 1..L-1`, and :math:`f(x) = W_L h^{L-1} + b_L`.

**Activation variables.** Each hidden unit gets a continuous :math:`\eta^l_j \in [0.3, 0.7]`
that chooses its state: on below 0.5, off above. The *offset-sigmoid gate*

.. math::
    s(\eta) = 1 - \operatorname{sigmoid}\big(\beta(\eta - 0.5 + 10^{-6})\big),
    \qquad \beta = 2000,

is :math:`\approx 1` for :math:`\eta < 0.5` and :math:`\approx 0` for :math:`\eta > 0.5`
(transition width :math:`\approx 1/\beta`). :math:`\eta` starts from the true pattern at
:math:`x`: :math:`\eta^l_j = 0.5 - 0.01\,\mathrm{sign}(g^l_j(x))`.

**Sigmoid-surrogate network** (the linear region chosen by :math:`\eta`, applied to :math:`x`):

.. math::
    \tilde h^0 = x, \quad \tilde h^l = \mathrm{diag}(s(\eta^l))(W_l \tilde h^{l-1} + b_l), \quad
    \tilde f(x, \eta) = W_L \tilde h^{L-1} + b_L .

With the gates held fixed, :math:`P^1 = W_1`, :math:`P^l = W_l D^{l-1} P^{l-1}`
(:math:`D^l = \mathrm{diag}(s(\eta^l))`): row :math:`j` of :math:`P^l` is the input-gradient of
unit :math:`j`'s pre-activation inside the chosen region. When :math:`\eta` matches the true
pattern at :math:`x` (and :math:`\beta \to \infty`), :math:`\tilde f(x, \eta) = f(x)`.

**Normalized constraint loss** ("(8)"). With :math:`\hat g^l_j = g^l_j(x) / \max(\|P^l_j\|,
\nu)` (true pre-activations, surrogate row norms; :math:`\nu = 0` for random nets, 1 in the
authors' attack code),

.. math::
    C(x, \eta) = \sum_{l=1}^{L-1} \Big[\max_j \mathrm{relu}\big(\hat g^l_j\,
    \mathrm{relu}(\eta^l_j - 0.5)\big) + \max_j \mathrm{relu}\big(-\hat g^l_j\,
    \mathrm{relu}(0.5 - \eta^l_j)\big)\Big]

penalizes the worst unit per layer and sign that :math:`\eta` marks off while it is on, or
marks on while it is off, weighted by how far :math:`\eta` is from 0.5.

**Objective** ("(9)"): :math:`\mathcal L(x, \eta, \lambda) = \phi(\tilde f(x,\eta)) /
\|\nabla_x \phi(\tilde f)\| + \lambda\, C(x, \eta)`, with :math:`\phi` the problem's objective
as a minimization (:math:`-c^\top f` when maximizing) and the normalizer held constant per
iteration.

**Algorithm 1** (:func:`solve_adr`): gradient steps on :math:`x` (normalized when
:math:`\|\nabla_x\| > 1`, projected on the box), dual ascent with decay on :math:`\lambda`
(:math:`\lambda \mathrel{+}= \mathrm{lr}_\lambda C` if :math:`C > 10^{-2}`, else
:math:`\lambda \mathrel{-}= r`, clipped to :math:`[0.2, 10]`), and steps on each layer's
:math:`\eta^l` perturbed by Gaussian noise when its gradient is tiny and no perturbation happened
in the last ``perturb_freq`` iterations. The answer is the best iterate judged by the true
network.

The package holds no model: ``Problem.solve("adr_gd", ...)`` runs Algorithm 1
(:mod:`~netopt.formulations.adr_gd.algorithm`, torch imported lazily) on the surrogate of
:mod:`~netopt.formulations.adr_gd.surrogate`.
"""

from __future__ import annotations

from typing import Any

from netopt.formulations import register
from netopt.formulations._base import (
    Formulation,
    array_like,
    keyword_options,
    no_backend,
    number_pair,
    torch_device,
    torch_dtype,
)
from netopt.formulations.adr_gd.algorithm import (
    DEFAULTS,
    LARGE_NET,
    adr_outcome,
    gd_baseline_outcome,
)
from netopt.formulations.adr_gd.surrogate import (
    ACTIVATION_OPS,
    LINEAR_OPS,
    DenseNet,
    constraint_loss,
    dense_layers,
    offset_sigmoid,
    support_refusals,
    surrogate_forward,
)
from netopt.ir import Graph
from netopt.options import Schema, choice, number
from netopt.problems import Problem
from netopt.result import Outcome, Result, assemble

__all__ = [
    "ADRGD",
    "LINEAR_OPS",
    "ACTIVATION_OPS",
    "solve_adr",
    "solve_gd_baseline",
    "adr_outcome",
    "gd_baseline_outcome",
    "DenseNet",
    "dense_layers",
    "offset_sigmoid",
    "constraint_loss",
    "surrogate_forward",
    "DEFAULTS",
    "LARGE_NET",
]


@register("adr_gd")
class ADRGD(Formulation):
    """ADR-GD (Yu & Gao 2024): its support check, run by :func:`adr_outcome`."""

    name = "adr_gd"
    model_type = "none"
    rules = {k: None for k in (*LINEAR_OPS, *ACTIVATION_OPS)}  # type: ignore[dict-item]

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        """``(op id, IR op, reason)`` for every op outside ADR-GD's scope, each with its ONNX
        node."""
        return support_refusals(graph)

    @classmethod
    def options(cls) -> Schema:
        return keyword_options(
            cls.name,
            adr_outcome,
            checks={
                "schedule": choice("dual", "fixed"),
                "lam_range": number_pair,
                "eta_range": number_pair,
                "start": array_like,
                "time_limit": number(low=0, strict=True),
                "device": torch_device,
                "dtype": torch_dtype,
            },
        )

    def run(self, problem: Problem, solver: str | None = None, **options: Any) -> Outcome:
        no_backend(self.name, solver)
        return adr_outcome(problem, **options)


def solve_adr(problem: Problem, **kw: Any) -> Result:
    """ADR-GD on ``problem``, its best point re-checked in float64 (see :func:`adr_outcome`).

    The same as ``problem.solve("adr_gd", **kw)``.
    """
    return problem.solve("adr_gd", **kw)


def solve_gd_baseline(problem: Problem, **kw: Any) -> Result:
    """The authors' gradient baseline, re-checked in float64 (see :func:`gd_baseline_outcome`)."""
    return assemble(problem, gd_baseline_outcome(problem, **kw))
