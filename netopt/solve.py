"""The pipeline: a problem and a method's name in, a re-checked :class:`~netopt.result.Result` out.

Every method is one registered class with one protocol (:mod:`netopt.formulations._base`): the
pipeline asks whether it accepts the problem and supports the network (all refusals at once,
before any work), runs it, and re-checks its :class:`~netopt.result.Outcome` with
:func:`~netopt.result.assemble`.
"""

from __future__ import annotations

import logging
from typing import Any

from netopt.control import sigint_guard
from netopt.errors import FormulationError, InputError
from netopt.problems import Problem
from netopt.result import WITNESS_TOL, Result, assemble, bound_tolerance

log = logging.getLogger("netopt")

__all__ = ["solve", "solve_many", "WITNESS_TOL", "bound_tolerance"]


def _method(formulation: str, problem: Problem, options: dict[str, Any]):
    """The method registered as ``formulation``, after its refusals (raised all at once)."""
    from netopt import formulations
    from netopt.formulations._model import EXACT_OPTIONS

    F = formulations.get(formulation)
    names = F.option_names()
    if names is not None:
        given = [k for k in options if k in EXACT_OPTIONS and k not in names]
        if given:
            raise InputError(
                f"option(s) {given} belong to the exact formulations; formulation "
                f"'{formulation}' does not take them"
            )
    schema = F.options()
    if schema is not None:
        schema.parse(options)  # one OptionError naming the option and the valid names
    m = F()
    refusals = m.accepts(problem)
    if refusals:
        raise FormulationError("; ".join(refusals))
    F.require_support(problem.net.graph, f" of {problem.net.source.name}")  # before any work
    return m


def solve(
    problem: Problem, formulation: str = "auto", solver: str | None = None, **options: Any
) -> Result:
    """Solve ``problem`` with a registered method and return a re-checked :class:`Result`.

    Parameters
    ----------
    problem : Problem
    formulation : str
        A registered method (``netopt.formulations.available()``): ``"auto"`` (the default,
        exact: branch and bound on problems of few inputs over a box, where it certifies more
        than the MILP, then the MILP with the time left; the MILP alone elsewhere — see
        :mod:`netopt.formulations.auto`), ``"milp"`` (the exact big-M MILP), the
        first-order ``"admm"``, ``"adam"``, ``"gd"``, ``"pgd"``, ``"sign_pgd"``, ``"gradient"``,
        and ``"layerwise_lp"``, ``"lifted_bregman"``, ``"adr_gd"``, ``"surfing"``, ``"bab"``
        (branch and bound with proofs over a box: Feasibility, Inversion, OutputObjective).
    solver : str, optional
        A registered backend (``netopt.solvers.available()``) for a method that takes one;
        default the method's natural one (``"highs"`` for ``"milp"``). The first-order methods
        run their own torch iterations and take none (``device=`` chooses CPU or CUDA).
    **options
        The method's options (``netopt.formulations.get(name).option_names()``). The exact
        MILP's: ``bounds`` ({"interval", "crown"}: how the big-M constants are computed first),
        ``tighten`` ({"lp", None}: then tightened by LPs over the relaxation, carrying the best
        known objective or the output constraints back through the network), ``tighten_time``
        (default a third of ``time_limit``, at most 60 s), ``relax`` (solve the continuous
        relaxation: its optimum is a sound bound), ``heuristic`` and ``heuristic_time`` (a local
        search from the best start first: projected descent and LPs over linear regions; default
        a sixth of ``time_limit``, at most 10 s), ``start`` (starting point(s); a first-order
        result's point works as is: ``prob.solve("milp", start=prob.solve("adam").x)``),
        ``n_samples``, ``seed``, and the backend's ``time_limit``, ``gap``, ``abs_gap``,
        ``threads``, ``verbose``, ``progress``, ``options={...}``. ``time_limit`` is the wall
        time of the whole solve, every phase included (see :class:`netopt.control.Deadline`).

    A first Ctrl-C during the solve stops it where it is and returns the best point and the
    bound proven so far with status ``interrupted``; a second one raises ``KeyboardInterrupt``.
    """
    m = _method(formulation, problem, options)
    if options.get("start") is not None:
        # one point or a batch of points of the input's size (a wrong length is named here)
        options["start"] = problem.check_start(options["start"])
    with sigint_guard():
        return assemble(problem, m.run(problem, solver, **options))


def solve_many(
    problems: list[Problem], formulation: str = "adam", solver: str | None = None, **options: Any
) -> list[Result]:
    """Solve several problems: batched in one run where the method batches (its ``run_batch``:
    ``"admm"`` and the gradient methods, for problems on one network), else in turn."""
    from netopt import formulations

    if formulations.get(formulation).batched and problems:
        m = _method(formulation, problems[0], options)
        outs = m.run_batch(problems, solver, **options)
        return [assemble(p, o) for p, o in zip(problems, outs, strict=True)]
    return [solve(p, formulation, solver, **options) for p in problems]
