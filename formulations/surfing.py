"""Surfing (Song, Fan & Lafferty 2019) as a registered method.

``Inversion(net_T, y, box=...).solve("surfing", path=[theta_0, ..., theta_{T-1}])`` inverts ``y``
through a sequence of networks of the same architecture ending in the problem's own network (the
trained one): the first stage starts from random points, each later stage from the previous one's
answer (:func:`netopt.surfing.surf_outcome`). The point is judged on the problem's network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netopt.formulations import register
from netopt.formulations._base import Formulation, keyword_options, no_backend
from netopt.ir import Graph
from netopt.options import Option, Schema
from netopt.problems import Inversion, Problem
from netopt.result import Outcome

__all__ = ["Surfing"]


@register("surfing")
class Surfing(Formulation):
    """Inversion over a path of networks (``path=``), warm-starting each stage from the last."""

    name = "surfing"
    model_type = "none"

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        from netopt.ops import OPS

        # the stages run the torch module of each network: every IR op has a torch rule
        return [(o.id, o.op, f"'{o.op}' is not an IR op") for o in graph.ops if o.op not in OPS]

    def accepts(self, problem: Problem) -> list[str]:
        if not isinstance(problem, Inversion):
            return [f"surfing inverts a target (an Inversion), not a {type(problem).__name__}"]
        dom = problem.domain
        why = []
        if dom.A is not None or dom.integer is not None:
            why.append(
                "surfing projects onto a box only; this domain has linear constraints or integer coordinates"
            )
        finite = np.isfinite(dom.lo).any() or np.isfinite(dom.hi).any()
        if finite and (np.ptp(dom.lo) > 0 or np.ptp(dom.hi) > 0):
            why.append(
                "surfing projects onto a box [lo, hi] with one lo and one hi for every coordinate"
            )
        return why

    @classmethod
    def options(cls) -> Schema:
        from netopt.surfing import surf_outcome

        # the problem carries the norm and the box; path: the networks before the problem's own
        path = Option("path", None, (), "the networks theta_0 .. theta_{T-1} before the problem's")
        s = keyword_options(cls.name, surf_outcome, drop=("box", "norm"))
        return Schema(s.owner, [path, *s.options.values()])

    def run(
        self, problem: Problem, solver: str | None = None, *, path: Any = (), **options: Any
    ) -> Outcome:
        from netopt.surfing import surf_outcome

        no_backend(self.name, solver, "torch")
        assert isinstance(problem, Inversion)  # accepts() said so
        dom = problem.domain
        box = None
        if np.isfinite(dom.lo).any() or np.isfinite(dom.hi).any():
            box = (float(dom.lo.reshape(-1)[0]), float(dom.hi.reshape(-1)[0]))
        nets = [*list(path), problem.net]
        return surf_outcome(nets, problem.target, norm=problem.norm, box=box, **options)[1]
