r"""One branch-and-bound run on a :class:`~netopt.problems.Feasibility` problem, as an Outcome.

The question is whether some :math:`x` in the box :math:`[l, u]` has :math:`C f(x) \le d`.
:func:`netopt.bounds.branch.branch_and_bound` answers it with

* "sat": a point whose float64 output satisfies every row. It becomes the Outcome's candidate
  with the claim "optimal" (for a Feasibility problem: the method believes it is a witness);
  :func:`netopt.result.assemble` re-checks it in float64 and decides.
* "unsat": a tree of splits whose every leaf has a row :math:`i` with a rigorous float64 lower
  bound :math:`\underline{(C f(x) - d)_i} > 0` over the leaf. The claim is "infeasible" and the
  tree (:class:`~netopt.bounds.proof.BabProof`) goes to ``Result.extra["proof"]``, where
  :meth:`netopt.certificate.Certificate.from_result` stores it and ``verify`` re-checks it
  without torch or a solver.
* "unknown": stopped by the time limit or Ctrl-C (no claim: status ``time_limit`` /
  ``interrupted``), or by the domain limit or float precision (no claim, status ``unknown``).

In ``mode="auto"``, an input-splitting run stopped by the domain limit or precision is followed,
within the time left, by a ReLU-splitting run (where torch and a chain network allow it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from netopt.control import Deadline
from netopt.errors import FormulationError
from netopt.problems import Feasibility
from netopt.result import Outcome

__all__ = ["bab_outcome", "STATS"]

#: the branch-and-bound statistics copied to ``Result.extra["bab"]``
STATS = (
    "mode",
    "nodes",
    "leaves",
    "depth",
    "open",
    "domains_per_s",
    "seconds",
    "t_bound",
    "t_check",
    "t_branch",
    "t_points",
    "device",
    "batch",
    "float64_reopened",
    "proof_leaves",
    "closed_share",
    "oom_halved",
)

#: why a run stopped -> the claim of its Outcome (the others make none)
_STOP_CLAIM = {"time limit": "time_limit", "interrupted": "interrupted"}


def bab_outcome(
    problem: Feasibility,
    *,
    time_limit: float | None = None,
    mode: str = "auto",
    device: Any = None,
    batch: int | None = None,
    gap: float = 1e-6,
    progress: Callable[[dict], Any] | None = None,
) -> Outcome:
    """Decide ``problem`` by branch and bound (:func:`~netopt.bounds.branch.branch_and_bound`).

    Parameters
    ----------
    problem : Feasibility
        On a bounded box without linear constraints or integer coordinates
        (:meth:`netopt.formulations.bab.Bab.accepts` says so before any work).
    time_limit : float, optional
        Seconds of wall time for the whole run (None: until decided or the domain limit).
    mode : {"auto", "input", "relu"}
        What to split: the inputs (numpy float64 CROWN on each sub-box) or the ReLUs
        (alpha/beta-CROWN in torch); "auto" splits inputs on networks of at most
        :data:`~netopt.bounds.branch.INPUT_SPLIT_MAX_DIM` inputs, ReLUs on wider ones.
    device : str, optional
        The torch device of ReLU splitting, and of an optimization problem's ReLU-split
        decisions (:mod:`.optimum`; default CUDA when present). Every claim is re-checked in
        float64 whatever it is.
    batch : int, optional
        Domains bounded per round (default: sized to the device's memory).
    gap : float
        The relative gap at which an optimization problem stops (:mod:`.optimum`); a
        Feasibility problem has none.
    progress : callable, optional
        Receives a ``"branch and bound"`` event (domains, open, leaves) every few rounds.

    Returns
    -------
    Outcome
        Its ``extra["bab"]`` holds the search statistics (:data:`STATS`, and ``stopped``);
        ``extra["proof"]`` the tree of an "unsat".

    Raises
    ------
    FormulationError
        ReLU splitting on a network that is not a chain of linear ops and (leaky) ReLUs, or
        without torch (input splitting takes any network the method supports).
    """
    from netopt.bounds.branch import branch_and_bound

    t0 = time.perf_counter()
    deadline = Deadline(time_limit, start=t0)
    dom = problem.domain

    def run(how: str) -> Any:
        return branch_and_bound(
            problem.net,
            dom.lo,
            dom.hi,
            problem.C,
            problem.d,
            deadline=deadline,
            mode=how,
            device=device,
            batch=batch,
            progress=progress,
        )

    br = run(mode)
    first = None
    if (
        mode == "auto"
        and br is not None
        and br.stats.get("mode") == "input"
        and br.stopped in ("domain limit", "precision")
        and not deadline.expired()
    ):
        # input splitting halves the inputs whose final linear coefficients matter most, which
        # can keep a box too wide for the hidden layers' relaxations to close it; ReLU splitting
        # removes those relaxations instead. Within what is left of the time limit.
        again = run("relu")
        if again is not None:
            first = {k: br.stats[k] for k in STATS if k in br.stats}
            first["stopped"] = br.stopped
            br = again
    if br is None:
        # the rule table admitted the ops, so only ReLU splitting can refuse: it needs torch and
        # a plain chain (no residual add, no concat of branches)
        raise FormulationError(
            "method 'bab' splits ReLUs on this network (more than a few inputs, or mode='relu'), "
            "which needs torch and a chain of linear ops and (leaky) ReLUs; use mode='input' "
            "(slow on wide inputs) or the exact MILP: prob.solve('milp')"
        )
    stats = {k: br.stats[k] for k in STATS if k in br.stats}
    stats["stopped"] = br.stopped
    if first is not None:
        stats["input_split"] = first  # the undecided input-splitting run before this one
    timings = {"branch_and_bound": time.perf_counter() - t0}
    how = f"branch and bound ({stats.get('mode', mode)} splits, {stats.get('nodes', 0)} domains)"
    common: dict[str, Any] = {
        "formulation": "bab",
        "solver": "netopt branch and bound",
        "solver_version": f"{stats.get('mode', mode)} splits on {stats.get('device', '?')}",
        "timings": timings,
        "nodes": stats.get("nodes"),
    }
    if br.verdict == "sat":
        return Outcome(
            [br.x],
            "optimal",
            message=f"{how}: a point satisfies every output constraint",
            extra={"bab": stats},
            **common,
        )
    if br.verdict == "unsat":
        return Outcome(
            [],
            "infeasible",
            message=f"{how}: every leaf closed by the float64 bounds",
            extra={"bab": stats, "proof": br.proof},
            **common,
        )
    return Outcome(
        [],
        _STOP_CLAIM.get(br.stopped or "", "none"),
        message=f"{how}: undecided, stopped ({br.stopped})",
        extra={"bab": stats},
        **common,
    )
