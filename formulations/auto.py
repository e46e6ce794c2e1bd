r"""The default exact method ``"auto"``: branch and bound where it is the stronger, the MILP after.

``Problem.solve()`` without a method name runs this. It picks, per problem, by what
``benchmarks/RESULTS.md`` measured:

* **branch and bound first** (:mod:`netopt.formulations.bab`, input splitting with a proof of its
  bound that ``netopt verify`` re-checks) for an optimization problem (``Inversion``,
  ``OutputObjective``) over a box of at most :data:`BAB_MAX_INPUTS` inputs (and a network of
  at most :data:`BAB_MAX_OUTPUTS` outputs), and for a
  ``Feasibility`` problem of at most :data:`~netopt.bounds.branch.INPUT_SPLIT_MAX_DIM` inputs,
  on a network branch and bound supports, when no backend is named. On the shared
  MILP benchmark it certifies 6 of 9 in 60 s where the big-M MILP on HiGHS certifies 4, and
  where neither finishes its proven bound is the higher; on ACAS Xu it decides where the MILP
  stays undecided;
* **then the MILP** (:mod:`netopt.formulations.milp`) with what is left of the time limit,
  started from branch and bound's incumbent, when branch and bound stopped without closing the
  gap (or deciding) and was not interrupted. For optimization it runs on Gurobi where gurobipy
  and a licence without a size limit are present (:func:`milp_backend`; branch and bound then
  gets :data:`BAB_SHARE_GUROBI` of the time rather than :data:`BAB_SHARE`): Gurobi's is the
  stronger MILP (on the shared benchmark, under the pip wheel's licence, it certifies
  10-32-32-2 beyond_ia, which branch and bound does not, in 29 s); else on HiGHS (branch and
  bound then gets :data:`BAB_SHARE`, or :data:`BAB_SHARE_FEW_INPUTS` over a box of few inputs);
* **the MILP alone** everywhere else: wider inputs (input splitting halves one coordinate per
  level, which closes nothing in 64 dimensions: on the digits inversion the MILP proves its
  optimum in seconds), linear input constraints or integer coordinates, ops branch and bound has
  no rule for (max pooling), a relaxation (``relax=True``), or a backend named: ``solver=``
  asks for the MILP on it.

The Result is the phase whose claim is the stronger — an optimum or a decision, else the higher
proven bound (lower, when maximizing) — with every phase's points as candidates, so the float64
re-check keeps the best point found by either. Its ``formulation`` is that phase's (``"bab"`` or
``"milp"``: who proved the bound); ``extra["auto"]`` records the plan, why, the MILP phase's
backend, and each phase's claim, bound and seconds.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from netopt.errors import NetoptError, SolverUnavailableError
from netopt.formulations import register
from netopt.formulations._base import Formulation
from netopt.ir import Graph
from netopt.ir.ops import is_linear
from netopt.options import Schema
from netopt.problems import Feasibility, Inversion, OutputObjective, Problem
from netopt.result import Outcome

__all__ = [
    "Auto",
    "BAB_MAX_INPUTS",
    "BAB_MAX_OUTPUTS",
    "BAB_SHARE",
    "BAB_SHARE_FEW_INPUTS",
    "BAB_SHARE_GUROBI",
    "USE_SIZE_LIMITED_GUROBI",
    "milp_backend",
    "milp_size",
    "plan",
]

#: branch and bound goes first for optimization over at most this many inputs (measured on
#: 5, 8, 10 and 16 inputs: it certified every instance the MILP did, and three more)
BAB_MAX_INPUTS = 16
#: ... and at most this many outputs: its rows bound the objective through each output's sign,
#: which on Lei et al.'s k-250-600 nets (600 outputs, the MILP's optimum in 36 s at k = 10 and
#: 16) left its bound at 0 and its incumbent far off in 45 s; measured on 2 to 5 outputs
BAB_MAX_OUTPUTS = 16
#: branch and bound's share of a time limit; the MILP gets the rest (and what it left)
BAB_SHARE = 0.75
#: ... when the MILP phase runs on Gurobi (:func:`milp_backend`), which needs the longer share:
#: on the shared MILP benchmark (60 s, one thread) Gurobi alone certifies 10-32-32-2 beyond_ia
#: in 28.7 s, which branch and bound does not, and not the two 5-50-50-50-5 targets branch and
#: bound certifies in 10-16 s
BAB_SHARE_GUROBI = 0.4
#: ... when the MILP phase runs on HiGHS and the box has at most
#: :data:`~netopt.bounds.branch.INPUT_SPLIT_MAX_DIM` inputs, where input splitting is the strong
#: method: on the shared MILP benchmark and its nets for seeds 1 and 2
#: (``benchmarks/compare/bench_seeds.py``) the MILP phase on HiGHS never raised a bound, while
#: 5-50-50-50-5 seed 2's ``outside_box_image`` needs 38-46 s of branch and bound: with 3/4 of 60 s
#: it was certified in some runs and not in others
BAB_SHARE_FEW_INPUTS = 0.9


def _milp():
    from netopt import formulations

    return formulations.get("milp")


def _bab():
    from netopt import formulations

    return formulations.get("bab")


#: Whether ``"auto"`` also hands its MILP phase to Gurobi under a size-limited licence (the
#: gurobipy wheel's, "for non-production use only"): off, so that a default run never rests on
#: that licence; ``benchmarks/compare/bench_bab.py --gurobi-pip`` turns it on to measure.
USE_SIZE_LIMITED_GUROBI = False


def milp_size(problem: Problem) -> tuple[int, int]:
    """An upper bound on the big-M MILP's variables and rows, from the network alone: a
    variable and a row per linear op output, per activation unit a binary, its output and up to
    five rows (four for a ReLU, one more for a leaky one), the inputs, and two variables and
    three rows per output for the objective."""
    g = problem.net.graph
    lin = sum(g.value(o.outputs[0]).size for o in g.ops if is_linear(o))
    acts = [
        (g.value(o.outputs[0]).size, float(o.attrs.get("alpha", 0.0)))
        for o in g.ops
        if not is_linear(o)
    ]
    units = sum(u for u, _ in acts)
    rows_act = sum(u * (5 if a > 0 else 4) for u, a in acts)
    n_in = int(np.prod(problem.domain.shape))
    n_out = int(np.prod(problem.net.output_shape))
    return lin + n_in + 2 * units + 2 * n_out + 1, lin + rows_act + 3 * n_out


def milp_backend(problem: Problem, options: dict[str, Any]) -> str | None:
    """The backend of ``"auto"``'s MILP phase when none is named: ``"gurobi"`` where gurobipy
    imports and its licence starts with no size limit (or with one that takes the model, by
    :func:`milp_size`, when :data:`USE_SIZE_LIMITED_GUROBI`), and no HiGHS-specific
    ``options={...}`` or ``verbose`` asks for the documented default; else None (HiGHS)."""
    if options.get("options") or options.get("verbose"):
        return None
    from netopt import solvers

    try:
        gurobi = solvers.get("gurobi")
    except (KeyError, NetoptError):
        return None
    if not gurobi.available()[0]:
        return None
    caps = gurobi.size_limits()
    if caps is not None:
        if not USE_SIZE_LIMITED_GUROBI:
            return None
        n_var, n_row = milp_size(problem)
        if n_var > caps["variables"] or n_row > caps["constraints"]:
            return None
    return "gurobi"


def plan(problem: Problem, solver: str | None, options: dict[str, Any]) -> tuple[list[str], str]:
    """The phases ``"auto"`` runs on ``problem`` (``["bab", "milp"]``, ``["bab"]`` or
    ``["milp"]``) and why, in words."""
    if solver is not None:
        return ["milp"], f"backend '{solver}' named: the MILP on it"
    if options.get("relax"):
        return ["milp"], "relax=True: the MILP's continuous relaxation"
    Bab = _bab()
    why = Bab().accepts(problem)
    if why:
        return ["milp"], "branch and bound does not take this problem (" + why[0] + ")"
    if Bab.check_support(problem.net.graph):
        return ["milp"], "branch and bound has no rule for some op of the network"
    if any(o.op == "maxpool2d" for o in problem.net.graph.ops):
        # branch and bound takes a max pool as ReLUs, but the measured rule below is for
        # networks of ReLUs only, and the MILP models the max pool itself
        return ["milp"], "max pooling: the MILP, which models it as it is"
    n = int(np.prod(problem.domain.shape))
    if isinstance(problem, Feasibility):
        from netopt.bounds.branch import INPUT_SPLIT_MAX_DIM

        limit = INPUT_SPLIT_MAX_DIM
    else:
        limit = BAB_MAX_INPUTS
    if n > limit:
        return ["milp"], f"{n} inputs: more than branch and bound's {limit}"
    m = int(np.prod(problem.net.output_shape))
    if m > BAB_MAX_OUTPUTS:
        return ["milp"], f"{m} outputs: more than branch and bound's {BAB_MAX_OUTPUTS}"
    if isinstance(problem, Inversion) and problem.norm == 2:
        # the MILP of the 2-norm needs a mixed-integer QP backend; HiGHS is not one
        return ["bab"], f"{n} inputs, 2-norm on HiGHS: branch and bound only"
    return ["bab", "milp"], f"{n} inputs over a box: branch and bound, then the MILP"


@register("auto")
class Auto(Formulation):
    """Branch and bound where measured stronger, then the big-M MILP (see the module)."""

    name = "auto"
    model_type = "none"
    support_verb = "model"

    def accepts(self, problem: Problem) -> list[str]:
        # whatever the MILP takes: it is the phase that runs when branch and bound does not
        return _milp()().accepts(problem)

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        return _milp().check_support(graph)

    @classmethod
    def options(cls) -> Schema:
        # the MILP's: branch and bound takes the common ones among them (time_limit, gap,
        # progress); the exact pipeline's (bounds, tighten, ...) go to the MILP phase
        return Schema(f"method '{cls.name}'", _milp().options().options.values())

    def run(self, problem: Problem, solver: str | None = None, **options: Any) -> Outcome:
        phases, why = plan(problem, solver, options)
        record: dict[str, Any] = {"plan": phases, "why": why}
        if phases == ["milp"]:
            record["milp_backend"] = solver or "highs"
            out = _milp()().run(problem, solver, **options)
            out.extra["auto"] = record
            return out
        t0 = time.perf_counter()
        limit = options.get("time_limit")
        backend = solver
        if (
            backend is None
            and "milp" in phases
            and isinstance(problem, Inversion | OutputObjective)
        ):
            backend = milp_backend(problem, options)
        n_in = int(np.prod(problem.domain.shape))
        bab_opts = {k: options[k] for k in ("gap", "progress") if options.get(k) is not None}
        if limit is not None:
            from netopt.bounds.branch import INPUT_SPLIT_MAX_DIM

            share = BAB_SHARE
            if backend == "gurobi":
                share = BAB_SHARE_GUROBI
            elif n_in <= INPUT_SPLIT_MAX_DIM:
                share = BAB_SHARE_FEW_INPUTS
            bab_opts["time_limit"] = share * limit
        first = _bab()().run(problem, None, **bab_opts)
        record["bab"] = _summary(first, time.perf_counter() - t0)
        # an error is no claim: the MILP still runs (with the time that is left)
        if first.claim in ("optimal", "infeasible", "interrupted") or len(phases) == 1:
            first.extra["auto"] = record
            return first
        left = None if limit is None else limit - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            first.extra["auto"] = record
            return first
        t1 = time.perf_counter()
        milp_opts = dict(options)
        if left is not None:
            milp_opts["time_limit"] = left
        starts = [np.asarray(c, dtype=float).reshape(-1) for c in first.candidates]
        if options.get("start") is not None:
            starts += list(np.asarray(options["start"], dtype=float).reshape(-1, n_in))
        if starts:
            milp_opts["start"] = np.stack(starts)
        record["milp_backend"] = backend or "highs"
        try:
            try:
                second = _milp()().run(problem, backend, **milp_opts)
            except SolverUnavailableError as e:
                if solver is not None or backend is None:
                    raise
                # Gurobi chosen here refused the model after all (a licence's limits): HiGHS
                # takes the time that is left
                record["gurobi_refused"] = str(e)
                record["milp_backend"] = "highs"
                if limit is not None:
                    left = limit - (time.perf_counter() - t0)
                    if left <= 0:
                        first.extra["auto"] = record
                        return first
                    milp_opts["time_limit"] = left
                second = _milp()().run(problem, None, **milp_opts)
        except NetoptError as e:
            # branch and bound's point and proven bound stand; the MILP's failure is reported
            record["milp"] = {"error": str(e), "seconds": round(time.perf_counter() - t1, 3)}
            first.extra["auto"] = record
            return first
        record["milp"] = _summary(second, time.perf_counter() - t1)
        out = _stronger(problem, first, second)
        if second.claim == "interrupted" and out is first:
            out.claim = "interrupted"  # the user stopped the run: say so, with the better bound
        record["bound_from"] = out.formulation
        out.candidates = [*second.candidates, *first.candidates]
        out.extra["auto"] = record
        return out


def _summary(o: Outcome, seconds: float) -> dict[str, Any]:
    return {"claim": o.claim, "bound": o.bound, "seconds": round(seconds, 3)}


def _stronger(problem: Problem, a: Outcome, b: Outcome) -> Outcome:
    """Of two phases' Outcomes, the one whose claim says more: a decision or an optimum, else
    the tighter proven bound (``b`` on ties: the later phase)."""
    decided = ("optimal", "infeasible")
    if b.claim in decided:
        return b
    if a.claim in decided:
        return a
    if a.bound is None:
        return b
    if b.bound is None:
        return a
    tighter_a = a.bound > b.bound if problem.sense == "min" else a.bound < b.bound
    return a if tighter_a else b
