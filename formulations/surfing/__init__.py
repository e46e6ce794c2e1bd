r"""Surfing: input optimization over a sequence of incrementally trained networks.

Song, Fan & Lafferty (NeurIPS 2019), "Surfing: iterative optimization over incrementally trained
deep networks". To invert a trained generator :math:`G_{\theta_T}`, i.e. to solve

.. math::

    \min_z \; f_{\theta_T}(z) = \tfrac12 \| G_{\theta_T}(z) - y \|_2^2,

follow the minimizer along the training path :math:`\theta_0, \theta_1, \dots, \theta_T`. The first
network :math:`G_{\theta_0}` is the random initialization, whose landscape is benign for expansive
ReLU networks, and successive objectives :math:`f_{\theta_t}` change slowly, so a local method
warm-started from the previous stage's point tracks the global minimizer (Algorithm 1, the
practical algorithm of the paper's experiments):

.. math::

    z \leftarrow z_{\text{init}}; \qquad
    \text{for } t = 0, \dots, T: \quad z \leftarrow \text{run } K_t \text{ steps of Adam (or GD)
    on } f_{\theta_t} \text{ from } z .

The projected-gradient variant analysed in the paper (Algorithm 2, with its careful initialization
and per-stage search step) is not implemented: its pseudo-code is not recoverable and the paper's
experiments do not use it.

As a registered method,
``Inversion(net_T, y, box=...).solve("surfing", path=[theta_0, ..., theta_{T-1}])`` inverts
``y`` through a sequence of networks of the same architecture ending in the problem's own network
(the trained one): the first stage starts from random points, each later stage from the previous
one's answer (:func:`~netopt.formulations.surfing.algorithm.surf_outcome`). The point is judged
on the problem's network.

:func:`surf` is the same method called on the sequence itself (one target, ``restarts`` random
starts, a re-checked :class:`~netopt.Result`); :func:`surf_batch` runs many independent (target,
start) pairs at once on torch modules and is what the experiments use. The networks are turned
into :class:`~netopt.Network` and checked by :func:`netopt.torch_export.as_networks` and
:func:`netopt.network.check_same_architecture`;
:func:`netopt.instances.digits_generator.train_generator_with_checkpoints` trains a small ReLU
decoder on scikit-learn's 8x8 digits and saves :math:`\theta_0, \dots, \theta_T` as ONNX files,
so the method can be run end to end on CPU.

torch is imported inside the functions: importing this package does not import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from netopt.formulations import register
from netopt.formulations._base import (
    Formulation,
    array_like,
    keyword_options,
    no_backend,
    torch_device,
)
from netopt.formulations.surfing.algorithm import stage_budgets, surf_batch, surf_outcome
from netopt.ir import Graph
from netopt.ir.ops import OPS
from netopt.options import Option, Schema, choice
from netopt.problems import Inversion, Problem
from netopt.result import Outcome, Result, assemble
from netopt.torch_export import NetworkLike

__all__ = ["Surfing", "surf", "surf_outcome", "surf_batch", "stage_budgets"]


def _init(v: Any) -> str | None:
    """None, ``"normal"``, ``"uniform"``, or starting point(s) as an array."""
    if v in ("normal", "uniform") or (not isinstance(v, str) and array_like(v) is None):
        return None
    return "must be 'normal', 'uniform' or an array of starting points"


def _path(v: Any) -> str | None:
    """A list or tuple of networks (ONNX paths, models, Networks, torch modules)."""
    return None if isinstance(v, list | tuple) else "must be a list of networks"


@register("surfing")
class Surfing(Formulation):
    """Inversion over a path of networks (``path=``), warm-starting each stage from the last."""

    name = "surfing"
    model_type = "none"

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        # the stages run the torch module of each network: every IR op has a torch rule
        return [(o.id, o.op, f"'{o.op}' is not an IR op") for o in graph.ops if o.op not in OPS]

    def accepts(self, problem: Problem) -> list[str]:
        if not isinstance(problem, Inversion):
            return [f"surfing inverts a target (an Inversion), not a {type(problem).__name__}"]
        dom = problem.domain
        why = []
        if dom.A is not None or dom.integer is not None:
            why.append(
                "surfing projects onto a box only; this domain has linear constraints or integer "
                "coordinates"
            )
        finite = np.isfinite(dom.lo).any() or np.isfinite(dom.hi).any()
        if finite and (np.ptp(dom.lo) > 0 or np.ptp(dom.hi) > 0):
            why.append(
                "surfing projects onto a box [lo, hi] with one lo and one hi for every coordinate"
            )
        return why

    @classmethod
    def options(cls) -> Schema:
        # the problem carries the norm and the box; path: the networks before the problem's own
        path = Option("path", _path, (), "the networks theta_0 .. theta_{T-1} before the problem's")
        s = keyword_options(
            cls.name,
            surf_outcome,
            drop=("box", "norm"),
            checks={
                "optimizer": choice("adam", "gd"),
                "init": _init,
                "device": torch_device,
                "dtype": choice("float32", "float64"),
                "example_input": array_like,
                # the exporters of netopt.torch_export.EXPORTERS
                "exporter": choice("default", "dynamo", "torchscript"),
            },
        )
        return Schema(s.owner, [path, *s.options.values()])

    def run(
        self, problem: Problem, solver: str | None = None, *, path: Any = (), **options: Any
    ) -> Outcome:
        no_backend(self.name, solver)
        assert isinstance(problem, Inversion)  # accepts() said so
        dom = problem.domain
        box = None
        if np.isfinite(dom.lo).any() or np.isfinite(dom.hi).any():
            box = (float(dom.lo.reshape(-1)[0]), float(dom.hi.reshape(-1)[0]))
        nets = [*list(path), problem.net]
        return surf_outcome(nets, problem.target, norm=problem.norm, box=box, **options)[1]


def surf(networks: Sequence[NetworkLike], target: Any, **kw: Any) -> Result:
    """Surfing over ``networks`` to ``target``, the point re-checked on the last network.

    The parameters are :func:`surf_outcome`'s; ``prob.solve("surfing", path=[...])`` is the same
    method on a problem posed on the last network.
    """
    problem, out = surf_outcome(networks, target, **kw)
    return assemble(problem, out)
