r"""The layer-wise LP inversion of Lei, Jalal, Dhillon and Dimakis (NeurIPS 2019).

A generator :math:`G(z) = \phi_d(M_d \cdots \phi_1(M_1 z + b_1) \cdots + b_d)` is inverted one
layer at a time, from the output back to the latent: each layer :math:`x = \phi(M z + b)` (+ noise)
is inverted by a linear program whose solution becomes the next layer's target.

* :mod:`~netopt.formulations.layerwise_lp.lp`: the graph's layers (:func:`layers_of`) and the
  parametric LP of one layer (:class:`LayerLP`), solver-neutral;
* :mod:`~netopt.formulations.layerwise_lp.exact`: the noiseless recovery of Theorem 2 (a linear
  system on the active rows);
* :mod:`~netopt.formulations.layerwise_lp.driver`: the tolerance schedule of each layer over a
  backend session (:meth:`netopt.solvers._base.Backend.open`: warm HiGHS, or cvxpy).

The method does not fit the one-model contract of the MILP (one :class:`~netopt.model.LinearModel`
for a whole network, handed to a backend once): the LPs are solved in sequence and each depends on
the previous one's solution. :class:`LayerwiseLP` is registered as ``"layerwise_lp"`` and runs the
driver; :func:`invert_layerwise` is the same method from a network and a target.
"""

from __future__ import annotations

from typing import Any

from netopt.formulations import register
from netopt.formulations._base import Formulation, keyword_options, mapping, solver_name, verbosity
from netopt.formulations.layerwise_lp.driver import (
    _OPTIONS,
    LayerSolution,
    as_problem,
    invert_layer,
    layerwise_outcome,
)
from netopt.formulations.layerwise_lp.exact import ExactSolution, exact_layer
from netopt.formulations.layerwise_lp.lp import (
    METHODS,
    RULES,
    Layer,
    LayerLP,
    activate,
    check_support,
    layers_of,
)
from netopt.ir import Graph
from netopt.network import Network
from netopt.options import Schema, choice, number
from netopt.problems import Inversion
from netopt.result import Outcome, Result

__all__ = [
    "METHODS",
    "Layer",
    "LayerLP",
    "LayerwiseLP",
    "LayerSolution",
    "ExactSolution",
    "layers_of",
    "activate",
    "exact_layer",
    "invert_layer",
    "invert_layerwise",
    "layerwise_outcome",
]


@register("layerwise_lp")
class LayerwiseLP(Formulation):
    """Rule table and support check of the layer-wise LP inversion.

    Not a one-model formulation: the method is a sequence of LPs, each built from the previous
    one's answer, so :meth:`run` hands the problem to :func:`layerwise_outcome`, which holds a
    backend session per layer.
    """

    name = "layerwise_lp"
    model_type = "LinearModel"
    rules = RULES

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        """``(op id, IR op, reason)`` for every op the layer-wise method cannot invert."""
        return check_support(graph)

    @classmethod
    def options(cls) -> Schema:
        # the problem carries the norm and the box
        return keyword_options(
            cls.name,
            layerwise_outcome,
            _OPTIONS,
            drop=("norm", "box"),
            checks={
                "method": choice(*METHODS),
                "eps_cap": number(low=0),
                "backend": choice("highs", "cvxpy"),
                "cvxpy_solver": solver_name,
                "options": mapping,
                "verbose": verbosity,
            },
        )

    def run(self, problem: Any, solver: str | None = None, **options: Any) -> Outcome:
        if solver is not None:
            options.setdefault("backend", solver)
        return layerwise_outcome(problem, **options)[1]


def invert_layerwise(
    net_or_problem: Network | Inversion,
    target: Any = None,
    *,
    norm: Any = None,
    box: Any = None,
    **options: Any,
) -> Result:
    """Invert a ReLU/LeakyReLU network backwards by LPs and re-check the estimate in float64.

    ``Inversion(net, target, norm=norm, box=box).solve("layerwise_lp", **options)``; the options
    and the defaults of ``norm`` are :func:`layerwise_outcome`'s.
    """
    problem = as_problem(net_or_problem, target, options.get("method", "linf"), norm, box)
    return problem.solve("layerwise_lp", **options)
