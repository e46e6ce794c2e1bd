"""What the user asks: an objective or constraint on the network's output over an input domain.

Problems are solver-independent. Each knows how to evaluate itself in float64 from a forward pass
(:meth:`Problem.evaluate`), which is how every result is re-checked, and describes its objective to
formulations through :meth:`Problem.spec`. The kinds are registered by name (:data:`KINDS`), and
each writes and reads its own JSON (:meth:`Problem.to_json`, :meth:`Problem.from_json`).

* :mod:`netopt.problems.domain`: :class:`Domain`, :func:`parse_norm`;
* :mod:`netopt.problems.base`: :class:`Problem`, the kind registry;
* :mod:`netopt.problems.objectives`: the kinds.
"""

from netopt.problems.base import KINDS, Problem, as_problem_list, register_kind
from netopt.problems.domain import Domain, parse_norm
from netopt.problems.objectives import CrossEntropy, Feasibility, Inversion, OutputObjective

__all__ = [
    "Domain",
    "Problem",
    "Inversion",
    "OutputObjective",
    "Feasibility",
    "CrossEntropy",
    "parse_norm",
    "KINDS",
    "register_kind",
    "as_problem_list",
]
