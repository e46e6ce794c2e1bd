r"""Branch and bound with proofs: the method ``"bab"`` for Feasibility and optimization problems.

Decides whether some :math:`x` in a box :math:`[l, u]` has :math:`C f(x) \le d`, for networks of
linear ops and ReLU / leaky ReLU activations (slope :math:`0 \le \alpha \le 1`). The box is cut
into *domains* — sub-boxes (input splitting, on few inputs) or the box with some ReLUs' signs
fixed (ReLU splitting) — and each domain is bounded by (alpha/beta-)CROWN: a domain is closed
when some row has

.. math::

    \min_{x \in \text{domain}} (C f(x) - d)_i \;\ge\; \underline{b}_i > 0,

with :math:`\underline{b}_i` the rigorous float64 bound (outward rounding) of
:mod:`netopt.bounds.proof`; a domain's candidate points are tried in float64, and one with
:math:`C f(x) \le d` ends the search. An "unsat" is the tree of splits with every leaf closed:
:func:`netopt.bounds.proof.check_proof` re-checks it in float64 without torch or a solver, and
the Result's certificate carries it, so the claim is not solver-attested.

For an :class:`~netopt.problems.Inversion` (norm 1, 2 or inf) or an
:class:`~netopt.problems.OutputObjective` over a box it optimizes instead
(:func:`netopt.bounds.optimize.minimize`: best-first input splitting on linear minorants of
the objective; on more than :data:`~netopt.bounds.branch.INPUT_SPLIT_MAX_DIM` inputs, half the
time limit, then ReLU-split decisions "is the objective <= t anywhere?" that raise the bound,
:mod:`netopt.bounds.opt_decide`); the proven bound's tree goes to ``Result.extra["proof"]`` the
same way.

* :mod:`~netopt.formulations.bab.outcome`: one run of
  :func:`netopt.bounds.branch.branch_and_bound` as an :class:`~netopt.result.Outcome`;
* :mod:`~netopt.formulations.bab.optimum`: one run of :func:`~netopt.bounds.optimize.minimize`.

``prob.solve("bab")`` runs it; ``Problem.solve()`` without a method name runs it first where it
is measured the stronger — optimization over at most 16 inputs, decisions over at most
:data:`~netopt.bounds.branch.INPUT_SPLIT_MAX_DIM` — and the MILP after it
(:mod:`netopt.formulations.auto`): on the README's digits example (a Feasibility problem with 20
output rows, 64 inputs) ReLU splitting stops at its domain limit after minutes where the MILP
proves "unsat" in under a second, and optimization splits inputs only, which suits ten or so
of them (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any

from netopt.errors import FormulationError
from netopt.formulations import register
from netopt.formulations._base import Formulation, keyword_options, no_backend, torch_device
from netopt.formulations.bab.outcome import STATS, bab_outcome
from netopt.ir import Graph
from netopt.ir.ops import OPS
from netopt.ir.relu_form import MAX_UNITS
from netopt.options import Schema, choice, integer, number
from netopt.problems import Feasibility, Problem
from netopt.result import Outcome

__all__ = ["Bab", "bab_outcome", "STATS"]


def _callable(v: Any) -> str | None:
    return None if v is None or callable(v) else "must be a callable"


@register("bab")
class Bab(Formulation):
    """Branch and bound on CROWN bounds, for Feasibility and optimization problems over a box.

    Its rule table is that of :class:`netopt.bounds.bab.BatchCrown`: every linear IR op, ReLU,
    and leaky ReLU with :math:`0 \\le \\alpha \\le 1` (above 1 the function is concave, and
    CROWN's lines are those of a convex piece). A max pool is taken in its exact ReLU form
    (:func:`netopt.ir.relu_form.relu_form`, where that adds at most
    :data:`~netopt.ir.relu_form.MAX_UNITS` units), which is what :meth:`check_support` reads.
    """

    name = "bab"
    model_type = "none"
    support_verb = "bound"
    support_hint = (
        "Branch and bound takes linear ops, (leaky) ReLUs and max pooling of at most "
        f"{MAX_UNITS} ReLUs in its ReLU form; use the exact MILP (prob.solve('milp')) for "
        "larger max-pooling, a first-order method for smooth activations."
    )

    # ------------------------------------------------------------------ what it takes
    def accepts(self, problem: Problem) -> list[str]:
        from netopt.bounds.objective_rows import minorant_of

        if not isinstance(problem, Feasibility) and minorant_of(problem) is None:
            return [
                f"method 'bab' decides Feasibility problems and optimizes Inversion (norm 1, 2 "
                f"or inf) and OutputObjective problems, not a {type(problem).__name__}; use a "
                "first-order method"
            ]
        dom = problem.domain
        why = []
        if dom.A is not None or dom.integer is not None:
            why.append(
                "method 'bab' splits a box; this domain has linear constraints A x <= b or "
                "integer coordinates: use the exact MILP (prob.solve('milp'))"
            )
        if not dom.bounded:
            why.append(
                "method 'bab' needs a bounded box (finite lo and hi on every input); use the "
                "exact MILP (prob.solve('milp'))"
            )
        return why

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        """``(op id, IR op, reason)`` for every op branch and bound cannot bound."""
        from netopt.ir.relu_form import relu_form

        graph = relu_form(graph)  # a max pool as ReLUs, as the engines and the checker take it
        bad = []
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            bad.append(
                (
                    "<graph>",
                    "-",
                    f"{len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                    "branch and bound takes one of each",
                )
            )
        for o in graph.ops:
            rule = cls.rules.get(o.op)
            why = f"no {cls.name} rule for '{o.op}'" if rule is None else rule(o)
            if why is not None:
                origin = f" (from ONNX {o.origin})" if o.origin else ""
                bad.append((o.id, o.op, why + origin))
        return bad

    # ------------------------------------------------------------------ options and run
    @classmethod
    def options(cls) -> Schema:
        return keyword_options(
            cls.name,
            bab_outcome,
            checks={
                "time_limit": number(low=0, strict=True),
                "mode": choice("auto", "input", "relu"),
                "device": torch_device,
                "batch": integer(low=1),
                "gap": number(low=0),
                "progress": _callable,
            },
        )

    def run(self, problem: Problem, solver: str | None = None, **options: Any) -> Outcome:
        # input splitting runs numpy (and torch), ReLU splitting torch: no backend either way
        no_backend(self.name, solver)
        if not isinstance(problem, Feasibility):
            from netopt.formulations.bab.optimum import optimum_outcome

            if options.get("mode", "auto") not in ("auto", "input"):
                raise FormulationError(
                    "method 'bab' optimizes by splitting inputs only; mode='relu' decides "
                    "Feasibility problems. Leave mode out, or use the exact MILP "
                    "(prob.solve('milp'))"
                )
            # (input splitting optimizes; ReLU-split decisions raise its bound on ``device``)
            options.pop("mode", None)
            return optimum_outcome(problem, **options)
        options.pop("gap", None)
        return bab_outcome(problem, **options)


def _linear(op: Any) -> str | None:
    return None


def _relu(op: Any) -> str | None:
    return None


def _leaky_relu(op: Any) -> str | None:
    a = float(op.attrs.get("alpha", 0.0))
    if 0.0 <= a <= 1.0:
        return None
    # CROWN's lines for a leaky ReLU are those of a convex piece: slope in [0, 1]
    return f"leaky_relu with alpha={a:g}; branch and bound takes 0 <= alpha <= 1"


Bab.rule(*sorted(n for n, spec in OPS.items() if spec.kind == "linear"))(_linear)
Bab.rule("relu")(_relu)
Bab.rule("leaky_relu")(_leaky_relu)
