r"""Proven bounds of an optimization problem by ReLU-split decisions: "is :math:`g \le t`
anywhere?".

Where the minimized objective :math:`g = \sigma \cdot \mathrm{obj}` of the output is the maximum
of finitely many valid minorant rows (:mod:`netopt.bounds.objective_rows`),

.. math::

    g(x) = \max_i \big( V_i f(x) + e(V_i) \big),

its sublevel set :math:`\{g \le t\}` is the polyhedron :math:`V f(x) \le t - e(V)` in output
space, and "no input reaches it" is a decision that ReLU splitting
(:func:`netopt.bounds.branch.branch_and_bound`, ``mode="relu"``) settles with a proof. The rows
are

* :math:`\ell_1`: :math:`V = \{ s \odot w : s \in \{\pm 1\}^{m'} \}` over the :math:`m'`
  outputs of nonzero weight (:math:`2^{m'}` rows; at most :data:`MAX_L1_OUTPUTS` outputs);
* :math:`\ell_\infty`: :math:`\pm w_j e_j` (:math:`2m'` rows);
* a linear objective: :math:`\sigma c` (one row).

(The :math:`\ell_2` ball is not a polyhedron: not covered.) The right-hand sides come from
:func:`~netopt.bounds.objective_rows.proof_rhs`, so that :math:`d_i + e(V_i) \ge t` holds
exactly; an "unsat" then proves :math:`g > t` on the whole box, and its proof is a bound proof
in the sense of :func:`netopt.certificate.unsat.check_bound_proof`: at every point some row
(or, on a leaf with ``"lam"``, a nonnegative combination of them) exceeds its ``d``, so some
row :math:`i` has :math:`g \ge V_i f + e(V_i) > d_i + e(V_i) \ge t`.

Why: input splitting bounds a box only as well as the box is small, and in ten or more
dimensions boxes stay large; ReLU splitting keeps the whole box and fixes the signs that make
the relaxation loose. Measured on the shared benchmark's 10-32-32-2 ``beyond_ia`` (optimum
3.5342): input splitting's bound after 45 s is 3.41, the decision :math:`g \le 3.50` is "unsat"
in 12 s (``benchmarks/RESULTS.md``).

:func:`raise_bound` first asks at the incumbent less half the gap tolerance (an "unsat" there
closes the gap in one decision; :data:`AIM_SHARE`), then bisects between the proven bound and
the incumbent: an "unsat" at :math:`t` raises the bound to :math:`t` (its proof replaces the
last), a "sat" gives a better incumbent (the next try aims at it, while no try was left
undecided), an undecided :math:`t` caps the thresholds after it (each the midpoint of the bound
and the lowest of the incumbent and the undecided thresholds) and still proves the lower
threshold its open domains close for (:mod:`netopt.bounds.relu_floor`), where that is higher
than the bound.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.control import Deadline, emit, interrupted

__all__ = [
    "decision_rows",
    "decide_at",
    "raise_bound",
    "binding_rows",
    "root_unstable",
    "row_maxima",
    "RaisedBound",
    "AIM_SHARE",
    "DECISION_CANDIDATES",
    "DECISION_RATES",
    "MAX_L1_OUTPUTS",
    "MAX_UNSTABLE",
]

#: the l1 norm's sublevel set has 2^m' rows: at most this many outputs of nonzero weight
MAX_L1_OUTPUTS = 6
#: decisions are worth their time where the box leaves at most this many ReLUs unstable.
#: Measured on the shared benchmark (10 inputs, box [-1, 1]^10, 60 s): 10-32-32-2 (64 unstable)
#: proves 3.496 where input splitting alone reaches 3.41; 10-256-256-2 (about 500) proves no
#: threshold, every decision giving up ("unpromising", then after 3 s), and input splitting's bound
#: is lower for the time they took (27.43 against 27.69).
MAX_UNSTABLE = 128
#: a decision's share of the time left (the rest for the easier thresholds after it)
TRY_SHARE = 0.5
#: The first decision (and the first after a better point, while none was left undecided) is at
#: the incumbent less half the gap tolerance, with this share of the time left: its "unsat"
#: closes the gap at once, and near the optimum the trees grow slowly. Measured on the shared
#: benchmark's 10-32-32-2 beyond_ia (optimum 3.534209): "g <= t" unsat in 12 / 16 / 22 / 25 s
#: at t = 3.50 / 3.52 / 3.53 / 3.534208, where bisecting from input splitting's bound (about
#: 3.40) to a gap of 1e-6 takes 17 decisions. Where it is undecided, its tree still proves a
#: lower threshold (:mod:`netopt.bounds.relu_floor`), and bisection below it follows with the
#: time left (at 30 s in all that instance ends at 3.41-3.50, against 3.4521 by bisection
#: alone).
AIM_SHARE = 0.9
#: Adam's learning rates of a decision's rounds (slopes, split multipliers, rows' weights:
#: :func:`~netopt.bounds.branch.branch_and_bound`'s ``rates``), below ReLU splitting's default
#: (0.25, 0.05, 0.1): a domain starts from its parent's values, and 20 smaller steps get closer
#: (the root's round, from CROWN's slopes, runs at them too, as measured).
#: Measured on the decisions at the optimum of the shared benchmark's 10-32-32-2 ``beyond_ia``
#: and of its seeds 1 and 2 (``benchmarks/RESULTS.md``): 73717 / 238927 / 151297 domains with
#: the default, 54247 / 156105 / 123345 with these; a larger multipliers' rate grew the tree
#: (0.1: 125393; 0.2: open after 362139). Not the default of VNN-LIB's one-row disjuncts: on
#: the hardest MNIST 256x2 property ReLU splitting decides, lower rates grew the tree (6805 ->
#: 7609-12319 domains).
DECISION_RATES = (0.1, 0.02, 0.05)
#: Filtered smart branching's candidates per domain in a decision (ReLU splitting's default
#: :data:`~netopt.bounds.branch_relu.FSB_CANDIDATES`, 20). Measured (decisions at the optimum,
#: these rates, ``benchmarks/RESULTS.md``): 10-32-32-2 ``beyond_ia`` seeds 0 / 1 / 2 / 3 took
#: 54247 / 156105 / 123345 / 256041 domains with 20, 52909 / 102729 / 97225 / 139985 with 32
#: (seed 3: 48 and 64 139519, slower; 10 and 5 open after 120 s). On the hardest MNIST 256x2
#: property ReLU splitting decides, 32 grew the tree (6805 -> 7313): not VNN-LIB's default.
DECISION_CANDIDATES = 32
#: a decision gets at least this many seconds (or what is left); without a time limit, this many
TRY_MIN, TRY_CAP = 2.0, 60.0


def decision_rows(mn: Any) -> np.ndarray | None:
    r"""The rows :math:`V` with :math:`g = \max_i (V_i f + e(V_i))` (see the module docstring), or
    None where the objective has no such few rows (:math:`\ell_2`, too many :math:`\ell_1`
    outputs)."""
    if mn.kind == "linear":
        return (mn.sign * mn.c)[None].astype(np.float64)
    keep = np.nonzero(mn.w > 0)[0]
    if not len(keep):
        return None  # every weight 0: the objective is constant
    if mn.kind == "linf":
        E = np.zeros((2 * len(keep), mn.m))
        E[np.arange(len(keep)), keep] = mn.w[keep]
        E[len(keep) + np.arange(len(keep)), keep] = -mn.w[keep]
        return E
    if mn.kind != "l1" or not 0 < len(keep) <= MAX_L1_OUTPUTS:
        return None
    S = np.array(list(itertools.product([-1.0, 1.0], repeat=len(keep))))
    V = np.zeros((len(S), mn.m))
    V[:, keep] = S * mn.w[keep]
    return V


def row_maxima(net: Any, lo: np.ndarray, hi: np.ndarray, V: np.ndarray) -> np.ndarray:
    r"""Upper bounds of each row :math:`V_i f(x)` over the box: rigorous float64 CROWN of
    :math:`-V_i f` (outward rounding); :math:`+\infty` where the network has ops that CROWN
    does not bound."""
    from netopt.bounds.bab import batch_crown_of

    bc = batch_crown_of(net)
    if not bc.ok:
        return np.full(len(V), np.inf)
    low, _, _ = bc.bound(lo.reshape(1, -1), hi.reshape(1, -1), -V)
    return -np.asarray(low, dtype=np.float64).reshape(-1)


def binding_rows(up: np.ndarray, d: np.ndarray) -> np.ndarray:
    r"""The rows a decision "is :math:`V f(x) \le d` anywhere?" keeps: those whose maximum
    over the box, ``up`` (:func:`row_maxima`), exceeds :math:`d_i` (or is NaN); all rows where
    none does.

    A row that holds on the whole box excludes no point, so without it the question and its
    answer are the same; and a proof of the kept rows alone is a bound proof of its own (each
    is a valid minorant row, :func:`~netopt.bounds.objective_rows.rows_imply_bound`). Where
    the target lies beyond the box's image in one output (the benchmark's ``beyond_ia``), half
    of the :math:`\ell_1` rows are such: measured on the shared benchmark's 10-32-32-2 nets'
    decisions at the optimum (seeds 0 and 2, 2-core CPU), the bound's time falls by a
    quarter to a third and the decision's by 10-20 % (``benchmarks/RESULTS.md``).
    """
    keep = ~(up <= d)  # (a NaN maximum keeps its row)
    return keep if keep.any() else np.ones_like(keep)


def root_unstable(net: Any, lo: np.ndarray, hi: np.ndarray) -> int:
    """How many ReLUs the box's float64 CROWN bounds leave unstable."""
    from netopt.bounds.bab import batch_crown_of

    m = int(np.prod(net.output_shape))
    _, _, pre = batch_crown_of(net).bound(lo.reshape(1, -1), hi.reshape(1, -1), np.eye(1, m))
    return int(sum(((a < 0) & (b > 0)).sum() for a, b in pre.values()))


@dataclass
class RaisedBound:
    """What :func:`raise_bound` proved and found (the minimized sense).

    Attributes
    ----------
    bound : float
        The best proven bound (the one given, or a threshold proved "unsat").
    proof : BabProof or None
        The proof of ``bound`` when a decision raised it: the rows of ``V`` that decision kept
        (:func:`binding_rows`), ``d`` their right-hand sides.
    x : ndarray or None
        A point better than the incumbent given, if a decision found one (flat).
    value : float
        Its :math:`g` in float64 (``inf`` without one).
    tries : list of dict
        Each decision: threshold ``t``, ``verdict``, ``stopped``, ``seconds``, ``nodes``,
        ``device`` (its search's).
    """

    bound: float
    proof: Any = None
    x: np.ndarray | None = None
    value: float = np.inf
    tries: list[dict] = field(default_factory=list)


def raise_bound(
    problem: Any,
    mn: Any,
    bound: float,
    incumbent: float,
    deadline: Deadline,
    *,
    rel_gap: float = 0.0,
    device: Any = None,
    progress: Any = None,
) -> RaisedBound | None:
    r"""Raise a proven lower ``bound`` of the minimized objective toward the ``incumbent`` by
    ReLU-split decisions at thresholds between them, until the gap closes or the deadline.

    Parameters
    ----------
    problem : Inversion or OutputObjective
        Over its domain box.
    mn : Minorant
        Its rows (:func:`~netopt.bounds.objective_rows.minorant_of`).
    bound, incumbent : float
        A proven bound and the best value found (the minimized sense).
    deadline : Deadline
    rel_gap : float
        Stop when :math:`\text{incumbent} - \text{bound} \le \text{rel\_gap} \cdot \max(1,
        |\text{incumbent}|)` (:func:`netopt.control.relative_gap`, the incumbent as it improves).
    device : optional
        Of the search (default CUDA when present).
    progress : callable, optional
        Called after each decision with the phase "ReLU-split decisions", the ``threshold``
        and the ``decision`` ("unsat": proved), and the incumbent and bound in the problem's
        sense.

    Returns
    -------
    RaisedBound, or None when the objective has no rows here or the network is not a chain
    that ReLU splitting bounds.
    """
    V = decision_rows(mn)
    if V is None or not np.isfinite(incumbent):
        return None
    lo = problem.domain.lo.reshape(-1)
    hi = problem.domain.hi.reshape(-1)
    up = row_maxima(problem.net, lo, hi, V)
    out = RaisedBound(bound=bound)
    best = incumbent
    hard = np.inf  # the lowest threshold left undecided: the next ones stay below it

    def tol() -> float:
        return rel_gap * max(1.0, abs(best))

    aim = True  # the next try is at the incumbent (see AIM_SHARE)
    while best - out.bound > tol() and not deadline.expired() and not interrupted():
        top = min(best, hard)
        share = TRY_SHARE
        t = out.bound + 0.5 * (top - out.bound)
        if aim and tol() > 0 and out.bound < best - 0.5 * tol() < top:
            t, share = best - 0.5 * tol(), AIM_SHARE
        if not out.bound < t < top:
            break
        left = deadline.remaining()
        budget = min(left, max(TRY_MIN, share * left)) if np.isfinite(left) else TRY_CAP
        t0 = time.perf_counter()
        r, keep = decide_at(problem, mn, V, up, t, Deadline(budget), device)
        if r is None:
            return None
        out.tries.append(
            {
                "t": float(t),
                "verdict": r.verdict,
                "stopped": r.stopped,
                "seconds": time.perf_counter() - t0,
                "nodes": int(r.stats.get("nodes", 0)),
                "device": str(r.stats.get("device", "")),
            }
        )
        if r.verdict == "unsat":
            out.bound, out.proof = float(t), r.proof
        elif r.verdict == "sat":
            val = _value(problem, mn, r.x)
            if not val < best:
                break  # (no better point: float64's g above t by rounding; do not loop)
            best, out.x, out.value = val, r.x.reshape(-1), val
            # aim at the new incumbent, unless a try was left undecided: one near the
            # optimum is as hard again
            aim = not np.isfinite(hard)
        else:
            hard = min(hard, t)  # too hard at t: the next tries lie below it
            aim = False
            floor = _floor(problem, mn, V[keep], t, r)
            if floor is not None and floor > out.bound:
                # its open domains close for a lower threshold: that one is proved
                out.bound, out.proof = floor, r.proof
                out.tries[-1]["floor"] = floor
        emit(
            progress,
            "ReLU-split decisions",
            deadline,
            threshold=mn.sign * float(t),
            decision=r.verdict,
            incumbent=mn.sign * best,
            bound=mn.sign * out.bound,
        )
        if r.verdict == "unknown" and (r.stopped == "interrupted" or hard - out.bound <= tol()):
            break
    return out


def decide_at(
    problem: Any,
    mn: Any,
    V: np.ndarray,
    up: np.ndarray,
    t: float,
    deadline: Deadline,
    device: Any = None,
) -> tuple[Any, np.ndarray]:
    r"""One decision "is :math:`g \le t` anywhere?" as :func:`raise_bound` asks it: ReLU
    splitting of the rows ``V`` (:func:`decision_rows`) that bind at ``t`` (:func:`binding_rows`
    with their maxima ``up``, :func:`row_maxima`), at :data:`DECISION_RATES` and
    :data:`DECISION_CANDIDATES`, proving a lower threshold where its time runs out.

    Returns
    -------
    (BranchResult or None, keep)
        :func:`~netopt.bounds.branch.branch_and_bound`'s answer (None where the network is not
        a chain it bounds) and the rows kept (its proof's rows are ``V[keep]``).
    """
    from netopt.bounds.branch import branch_and_bound
    from netopt.bounds.objective_rows import proof_rhs

    d = proof_rhs(mn, V, t)
    # (rows that hold on the whole box decide nothing: left out, see binding_rows)
    keep = binding_rows(up, d)
    r = branch_and_bound(
        problem.net,
        problem.domain.lo.reshape(-1),
        problem.domain.hi.reshape(-1),
        V[keep],
        d[keep],
        mode="relu",
        device=device,
        deadline=deadline,
        # the second search's turns cost these long decisions about a quarter of their
        # time: measured on the bench's 10-32-32-2 beyond_ia, solve("bab") ends at 3.4402
        # with them against 3.4857 without (optimum 3.534209)
        split_update=False,
        floor_on_stop=True,
        rates=DECISION_RATES,
        candidates=DECISION_CANDIDATES,
    )
    return r, keep


def _floor(problem: Any, mn: Any, V: np.ndarray, t: float, r: Any) -> float | None:
    r"""The threshold an undecided decision at ``t`` proves all the same: its proof's rows are
    lowered by :math:`s \le 0` (:func:`netopt.bounds.relu_floor.floor_open`), so it proves
    :math:`g > t + s` (less a hair for rounding, checked exactly), or None."""
    from netopt.bounds.objective_rows import rows_imply_bound

    s = r.stats.get("floor_shift")
    if r.proof is None or s is None:
        return None
    # (d + s rounds at the scale of d, which can exceed t's: the larger hair then)
    for hair in (1e-12 * max(1.0, abs(t)), 1e-9 * max(1.0, abs(t), float(np.abs(r.proof.d).max()))):
        floor = t + s - hair
        if rows_imply_bound(problem, V, r.proof.d, mn.sign * floor) is None:
            return floor
    return None


def _value(problem: Any, mn: Any, x: np.ndarray) -> float:
    """:math:`g(x)` in float64 (the reference interpreter)."""
    y = problem.net.forward(x.reshape(1, *problem.net.input_shape))
    return float(mn.sign * np.asarray(problem.evaluate(y)).reshape(-1)[0])
