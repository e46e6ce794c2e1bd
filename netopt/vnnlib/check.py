"""Deciding VNN-LIB properties: "sat" with a counterexample that onnxruntime confirms, or "unsat".

Each disjunct of the property's counterexample region is decided in turn, cheapest first:
sampled inputs (a counterexample found by a forward pass), then symbolic (CROWN) bounds on the
output constraints ``C y`` (an "unsat" proof when a row's lower bound exceeds its limit), then
branch and bound (:mod:`netopt.bounds.branch`: input or ReLU splits, every "unsat" with a proof
``netopt verify`` re-checks), then the exact MILP (a witness, or infeasibility attested by the
solver). A property of several disjuncts over a wide input (MNIST's
one disjunct per class) is first attacked as a whole (:func:`netopt.attack.falsify_disjuncts`), so
that a counterexample of its last disjunct is not found only after the MILP of the first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netopt.bounds import compute_bounds, linear_bounds
from netopt.control import Deadline, emit, interrupted, sigint_guard
from netopt.errors import FormulationError, SolverUnavailableError, UnsupportedOpError
from netopt.network import Network
from netopt.problems import Domain, Feasibility
from netopt.result import Status
from netopt.vnnlib.property import VnnlibProperty
from netopt.vnnlib.reader import load_vnnlib

__all__ = ["check", "CheckResult"]

#: onnxruntime (float32) may see a counterexample on the boundary violate by this much
ORT_TOL = 1e-5


@dataclass
class CheckResult:
    """The verdict on a property and its evidence.

    Attributes
    ----------
    verdict : str
        "sat" (a counterexample exists), "unsat" (none exists), or "unknown" (time limit).
    x, y : ndarray or None
        The counterexample and its float64 output.
    y_onnxruntime : ndarray or None
        The counterexample's output from onnxruntime.
    confirmed : bool or None
        Whether onnxruntime's output satisfies the disjunct's constraints (within ORT_TOL).
    disjunct : int or None
        Index of the disjunct the counterexample satisfies.
    details : list of dict
        Per disjunct tried: verdict, how it was decided, seconds.
    disjunct_status : list of str
        One entry per disjunct of the property, in its order: ``"sat"``, ``"unsat"`` or
        ``"unknown"`` for a disjunct that was tried; ``"not tried"`` for one the check never
        reached: a counterexample in another disjunct already decided the property
        (``verdict == "sat"``; found by the attack on every disjunct at once, that disjunct may
        come after it) or the check stopped (``stopped``).
    stopped : str or None
        Why the check stopped before deciding every disjunct: ``"time limit"`` (the budget ran
        out), ``"interrupted"`` (Ctrl-C); None when it ran to its end.
    """

    verdict: str
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    y_onnxruntime: np.ndarray | None = None
    confirmed: bool | None = None
    disjunct: int | None = None
    seconds: float = 0.0
    details: list[dict[str, Any]] = field(default_factory=list)
    disjunct_status: list[str] = field(default_factory=list)
    stopped: str | None = None

    def to_json(self) -> str:
        d = {
            "verdict": self.verdict,
            "disjunct": self.disjunct,
            "confirmed_by_onnxruntime": self.confirmed,
            "seconds": self.seconds,
            "x": None if self.x is None else self.x.reshape(-1).tolist(),
            "y": None if self.y is None else self.y.reshape(-1).tolist(),
            "y_onnxruntime": None
            if self.y_onnxruntime is None
            else self.y_onnxruntime.reshape(-1).tolist(),
            # a disjunct's proof (a BabProof) goes into a certificate, not into this summary
            "details": [{k: v for k, v in i.items() if k != "proof"} for i in self.details],
            "disjunct_status": self.disjunct_status,
            "stopped": self.stopped,
        }
        return json.dumps(d, indent=2)


#: Input dimension up to which the falsifier is left to branch and bound (which tries points in
#: every piece it keeps).
BAB_FULL_DIM = 8
#: Seconds of the attack on all disjuncts at once for inputs of at most ``BAB_FULL_DIM``
#: coordinates (before their branch and bound; more would cost every "unsat" that much).
LOW_DIM_ATTACK = 0.2
#: Seconds the MILP needs at least on a network of more than ``BAB_FULL_DIM`` inputs (its bounds
#: and model build are not interruptible); with less left the check stops before it.
MILP_MIN_SECONDS = 5.0
#: A bound closes a box for a proof only this far (relative) past its limit: the proof checker
#: bounds the one row again, and a last-bit difference must not turn the proof down.
PROOF_MARGIN = 1e-9
#: The share of the time left that branch and bound takes for a disjunct (the MILP gets the rest).
BAB_SHARE = 0.8


def _violation(C: np.ndarray, d: np.ndarray, y: np.ndarray) -> float:
    r = C @ np.asarray(y, dtype=np.float64).reshape(-1) - d
    return float(r.max()) if len(r) else 0.0


def check(
    net: Network,
    prop: VnnlibProperty | str | os.PathLike,
    *,
    time_limit: float | None = None,
    n_samples: int = 512,
    seed: int = 0,
    bab_time: float = 60.0,
    attack_time: float = 5.0,
    progress: Callable[[dict], Any] | None = None,
    **solve_options: Any,
) -> CheckResult:
    """Decide a VNN-LIB property on ``net``.

    Parameters
    ----------
    net : Network
    prop : VnnlibProperty or path
    time_limit : float, optional
        Seconds for the whole property: one :class:`~netopt.control.Deadline` for every
        disjunct. Each phase of a disjunct takes its budget from what remains, the MILP of a
        disjunct gets at most all of it; a disjunct not reached when it runs out is
        ``"not tried"`` (``stopped == "time limit"``).
    n_samples : int
        Random inputs tried per disjunct before any solver.
    bab_time : float
        Seconds per disjunct for branch and bound (:func:`netopt.bounds.branch.branch_and_bound`:
        input splitting up to ``INPUT_SPLIT_MAX_DIM`` inputs, ReLU splitting beyond) before
        the MILP, at most ``BAB_SHARE`` of the time left; 0 skips it.
    attack_time : float
        Seconds for the falsifier (at most a fifth of the time left) on inputs of more than
        ``BAB_FULL_DIM`` coordinates (fewer go to input splitting); 0 skips it. A property of
        several box disjuncts gets one run on all of them at once, before any bound
        (:func:`netopt.attack.falsify_disjuncts`); otherwise each disjunct gets one after its
        bounds fail to decide it (:func:`netopt.attack.falsify`). Needs torch unless the network
        is a chain of affine maps and ReLUs.
    progress : callable, optional
        Receives one event (a dict, see :func:`netopt.control.emit`) as each phase of each
        disjunct starts: ``phase`` (``"sampling"``, ``"crown"``, ``"attack"``, ``"branch and bound"``,
        ``"milp: <its phase>"``), ``elapsed`` since the check started, ``disjunct`` (1-based)
        and ``disjuncts``; the MILP's events carry its ``incumbent``/``bound``/``gap``.
    **solve_options
        Passed to :meth:`Feasibility.solve` (solver, bounds, tighten, gap, threads, ...).

    A first Ctrl-C (or :func:`netopt.control.request_interrupt`) stops the check between or
    inside disjuncts: the disjunct being decided is ``"unknown"``, the rest ``"not tried"``,
    ``stopped == "interrupted"``; a counterexample already found is kept.
    """
    from netopt.solvers._base import validate_common_options

    # a negative or NaN limit would mean no limit at all further down: refuse it here
    validate_common_options(
        "check",
        {
            "time_limit": time_limit,
            **{
                k: v for k, v in solve_options.items() if k in ("gap", "abs_gap", "threads", "seed")
            },
        },
    )
    if not (isinstance(bab_time, int | float) and np.isfinite(bab_time) and bab_time >= 0):
        from netopt.errors import OptionError

        raise OptionError(f"check: bab_time must be a finite number >= 0, got {bab_time!r}")
    if not (isinstance(attack_time, int | float) and np.isfinite(attack_time) and attack_time >= 0):
        raise OptionError(f"check: attack_time must be a finite number >= 0, got {attack_time!r}")
    deadline = Deadline(time_limit)
    n_in, n_out = int(np.prod(net.input_shape)), int(np.prod(net.output_shape))
    if not isinstance(prop, VnnlibProperty):
        prop = load_vnnlib(prop, n_inputs=n_in, n_outputs=n_out)
    elif (prop.n_inputs, prop.n_outputs) != (n_in, n_out):
        from netopt.errors import InputError

        raise InputError(
            f"the property has {prop.n_inputs} inputs and {prop.n_outputs} outputs; the network "
            f"{net.source.name} has {n_in} and {n_out}"
        )
    with sigint_guard():
        # the guard forgets the request when it ends: what it stopped is recorded in `stopped`
        res = _check(
            net, prop, deadline, n_samples, seed, bab_time, attack_time, progress, solve_options
        )
    res.seconds = deadline.elapsed()
    tried = {info["disjunct"]: info["verdict"] for info in res.details}
    res.disjunct_status = [tried.get(k, "not tried") for k in range(len(prop.disjuncts))]
    return res


def _check(
    net: Network,
    prop: VnnlibProperty,
    deadline: Deadline,
    n_samples: int,
    seed: int,
    bab_time: float,
    attack_time: float,
    progress: Callable[[dict], Any] | None,
    solve_options: dict[str, Any],
) -> CheckResult:
    """The disjuncts in turn, cheapest phase first, within ``deadline`` (see :func:`check`)."""
    n_in = int(np.prod(net.input_shape))
    rng = np.random.default_rng(seed)
    res = CheckResult("unsat")
    shape = tuple(net.input_shape)
    n_dj = len(prop.disjuncts)

    def stop_reason() -> str | None:
        if interrupted():
            return "interrupted"
        return "time limit" if deadline.remaining() <= 0.0 else None

    def stopped_inside(info: dict[str, Any], phase: str, tk: float) -> bool:
        """Whether the check must stop before ``phase``; the disjunct is then left unknown."""
        why = stop_reason()
        if why is None:
            return False
        # `method` names the phase that did not run, `stopped` why
        info.update(verdict="unknown", method=phase, seconds=time.perf_counter() - tk, stopped=why)
        res.details.append(info)
        res.verdict, res.stopped = "unknown", why
        return True

    # 0. one falsifier run on every disjunct at once (netopt.attack.falsify_disjuncts): a
    # property "some class j scores at least the label" has one disjunct per class, and deciding
    # them in turn would spend the bounds and the MILP of the first classes before the attack
    # ever saw the class whose counterexample exists. Step 3 then skips the disjuncts it
    # covered. A box of few inputs goes to branch and bound, which starts with a burst on every
    # disjunct (step 4).
    attacked_all = False
    if n_dj > 1 and attack_time > 0 and n_in > BAB_FULL_DIM and _attackable(prop):
        tk = time.perf_counter()
        emit(progress, "attack", deadline, disjuncts=n_dj)
        hit = _attack_all(net, prop, deadline.share(0.2, attack_time), seed)
        attacked_all = hit is not None
        if hit is not None and hit[1] is not None:
            k, x_adv = hit
            ev = _evidence(net, x_adv, prop.disjuncts[k])
            if ev[2]:  # a claim only once onnxruntime confirms the point
                res = _sat(net, res, x_adv, prop.disjuncts[k], k, ev)
                secs = time.perf_counter() - tk
                res.details.append(
                    {"disjunct": k, "verdict": "sat", "method": "attack", "seconds": secs}
                )
                return res

    # the disjuncts in turn; one that branch and bound leaves open while others are still to be
    # tried goes to the back of the queue (with its share of the time spent) and is retried,
    # with the MILP, once every disjunct has had its turn: a counterexample in a later disjunct
    # (ACAS Xu 1_9 prop 7) is then not hidden behind an earlier one that is hard to prove
    queue = list(range(n_dj))
    retried: set[int] = set()
    burst = False
    while queue:
        k = queue.pop(0)
        dj = prop.disjuncts[k]
        retry = k in retried
        why = stop_reason()
        if why is not None:
            # the remaining disjuncts are not tried; without a counterexample no verdict
            res.verdict, res.stopped = "unknown", why
            break
        tk = time.perf_counter()
        where = {"disjunct": k + 1, "disjuncts": n_dj}
        dom = Domain.make(
            shape,
            (dj.lo.reshape(shape), dj.hi.reshape(shape)),
            A=dj.A_in if len(dj.A_in) else None,
            b=dj.b_in if len(dj.A_in) else None,
        )
        info: dict[str, Any] = {"disjunct": k}
        # 1. sampling: a counterexample by forward passes alone
        if dom.bounded and n_samples and not retry:
            emit(progress, "sampling", deadline, **where)
            X = np.concatenate(
                [
                    dom.sample(n_samples, rng),
                    ((dom.lo + dom.hi) / 2)[None],
                    _vertices(dom, n_samples, rng),
                ]
            )
            if dom.A is not None:
                # the centre (and anything else) only where the input constraints hold too
                X = X[np.all(X.reshape(len(X), -1) @ dom.A.T <= dom.b, axis=1)]
            Y = net.forward(X)
            viol = Y.reshape(len(X), -1) @ dj.C.T - dj.d
            ok = np.nonzero(viol.max(axis=1) <= 0)[0] if viol.shape[1] else np.arange(len(X))
            if len(ok):
                res = _sat(net, res, X[ok[0]], dj, k)
                info.update(verdict="sat", method="sampling", seconds=time.perf_counter() - tk)
                res.details.append(info)
                break
        # 2. symbolic bounds on C y
        if dom.bounded and not retry:
            if stopped_inside(info, "crown", tk):
                break
            emit(progress, "crown", deadline, **where)
            lo_c, proof = _crown_rows(net, dom, dj)
            if np.any(lo_c > dj.d):
                i = int(np.argmax(lo_c - dj.d))
                info.update(
                    verdict="unsat",
                    method="crown",
                    seconds=time.perf_counter() - tk,
                    evidence=f"lower bound {lo_c[i]:.6g} of constraint row {i} exceeds {dj.d[i]:.6g}",
                )
                if proof is not None:
                    info["proof"] = proof
                res.details.append(info)
                continue
        # 3. a falsifier: batched PGD on the disjunct's margin (netopt.attack), kept short: it
        # finds the counterexamples that sampling misses in a high-dimensional box in about a
        # second, and a point is a claim only once float64 and onnxruntime confirm it. A box of
        # few inputs goes to input splitting instead, which tries points in every piece it
        # keeps: there the attack's seconds are better spent splitting
        if (
            dom.bounded
            and dom.A is None
            and attack_time > 0
            and n_in > BAB_FULL_DIM
            and not attacked_all
            and not retry
        ):
            if stopped_inside(info, "attack", tk):
                break
            emit(progress, "attack", deadline, **where)
            x_adv = _attack(net, dj, deadline.share(0.2, attack_time), seed)
            ev = None if x_adv is None else _evidence(net, x_adv, dj)
            if ev is not None and ev[2]:  # a claim only once onnxruntime confirms the point
                res = _sat(net, res, x_adv, dj, k, ev)
                info.update(verdict="sat", method="attack", seconds=time.perf_counter() - tk)
                res.details.append(info)
                break
        # 4. branch and bound (networks of linear ops and (leaky) ReLUs): input splitting on
        # few inputs, ReLU splitting with alpha/beta-CROWN on more; an "unsat" carries its tree,
        # every leaf closed by the rigorous float64 bounds (netopt.bounds.branch)
        if dom.bounded and dom.A is None and bab_time > 0:
            from netopt.bounds.branch import branch_and_bound

            if stopped_inside(info, "branch and bound", tk):
                break
            if n_in <= BAB_FULL_DIM and not burst and attack_time > 0 and _attackable(prop):
                # once, before the first branch and bound: many starts on every disjunct for a
                # moment. A counterexample in a sliver of the box (ACAS Xu 2_9 prop 8) is found
                # by 4096 starts in a twentieth of a second, and by splitting only after
                # thousands of pieces, possibly of another disjunct first
                burst = True
                emit(progress, "attack", deadline, **where)
                budget = min(deadline.share(0.2, attack_time), LOW_DIM_ATTACK)
                hit = _attack_all(net, prop, budget, seed, restarts=4096)
                if hit is not None and hit[1] is not None:
                    kh, x_adv = hit
                    ev = _evidence(net, x_adv, prop.disjuncts[kh])
                    if ev[2]:
                        res = _sat(net, res, x_adv, prop.disjuncts[kh], kh, ev)
                        secs = time.perf_counter() - tk
                        res.details.append(
                            {"disjunct": kh, "verdict": "sat", "method": "attack", "seconds": secs}
                        )
                        break
            budget = deadline.share(BAB_SHARE, bab_time)
            first = [j for j in queue if j not in retried]  # still to have their first turn
            share = not retry and first and deadline.time_limit is not None
            if share:
                budget = min(budget, deadline.remaining() / (len(first) + 1))
            emit(progress, "branch and bound", deadline, **where)
            br = branch_and_bound(
                net,
                dom.lo,
                dom.hi,
                dj.C,
                dj.d,
                time_limit=budget,
                progress=None if progress is None else _bab_progress(progress, deadline, where),
            )
            if br is not None and br.verdict != "unknown":
                info.update(
                    verdict=br.verdict,
                    method=f"BaB ({br.stats['mode']} splits)",
                    pieces=br.stats["nodes"],
                    seconds=time.perf_counter() - tk,
                    bab=_bab_stats(br.stats),
                )
                if br.proof is not None:
                    info["proof"] = br.proof
                res.details.append(info)
                if br.verdict == "sat":
                    res = _sat(net, res, br.x, dj, k)
                    break
                continue
            if br is not None:
                info["bab"] = _bab_stats(br.stats)
                if share and br.stopped == "time limit" and not stop_reason():
                    info.update(verdict="unknown", method="branch and bound (to retry)")
                    info["seconds"] = time.perf_counter() - tk
                    res.details.append(info)
                    retried.add(k)
                    queue.append(k)
                    continue
        # 5. exact MILP: at most what remains of the whole check
        if stopped_inside(info, "milp", tk):
            break
        left = None if deadline.time_limit is None else deadline.remaining()
        if left is not None and left < MILP_MIN_SECONDS and n_in > BAB_FULL_DIM:
            # the model's bounds and build alone take seconds on a wide network, and are
            # not interruptible: with less left, starting them only overruns the limit
            info.update(
                verdict="unknown",
                method="milp",
                seconds=time.perf_counter() - tk,
                stopped="time limit",
                evidence=f"{left:.2f} s left: too little to build the MILP",
            )
            res.details.append(info)
            res.verdict, res.stopped = "unknown", "time limit"
            break
        opts = dict(solve_options)
        if progress is not None:
            opts["progress"] = _milp_progress(progress, deadline, where)
        try:
            r = Feasibility(net, C=dj.C, d=dj.d, domain=dom).solve(
                "milp", time_limit=left, seed=seed, **opts
            )
        except (FormulationError, UnsupportedOpError) as e:
            # no exact model of this network (a smooth op): the disjunct stays open
            info.update(
                verdict="unknown",
                method="milp",
                seconds=time.perf_counter() - tk,
                evidence=f"no exact model: {e}",
            )
            res.details.append(info)
            res.verdict = "unknown"
            continue
        info.update(
            status=str(r.status), method="milp", seconds=time.perf_counter() - tk, solver=r.solver
        )
        if r.verdict == "sat":
            res = _sat(net, res, r.x, dj, k)
            if not res.confirmed and not deadline.expired():
                # a witness on the boundary may fail in float32: ask for one inside a margin,
                # within what remains of the budget
                margin = ORT_TOL * max(1.0, float(np.max(np.abs(dj.d), initial=0.0)))
                left = None if deadline.time_limit is None else deadline.remaining()
                r2 = Feasibility(net, C=dj.C, d=dj.d - margin, domain=dom).solve(
                    "milp", time_limit=left, seed=seed, **opts
                )
                if r2.verdict == "sat":
                    res = _sat(net, res, r2.x, dj, k)
            info["verdict"] = "sat"
            res.details.append(info)
            break
        if r.status == Status.INFEASIBLE:
            info["verdict"] = "unsat"
            res.details.append(info)
            continue
        info["verdict"] = "unknown"
        res.details.append(info)
        res.verdict = "unknown"
        if r.status == Status.INTERRUPTED or interrupted():
            res.stopped = "interrupted"
            break
    return res


def _crown_rows(net: Network, dom: Domain, dj: Any) -> tuple[np.ndarray, Any]:
    """Sound lower bounds of the rows of ``C f(x)`` over the disjunct's box, and the one-leaf
    proof of the box when a row's bound exceeds its limit (None otherwise).

    Chains of linear ops and (leaky) ReLUs take the batched float64 CROWN that
    :func:`netopt.bounds.proof.check_proof` re-checks (:class:`netopt.bounds.bab.BatchCrown`),
    closing the box only with a margin (:data:`PROOF_MARGIN`, relative) so that the checker's
    own pass of the one row agrees; other networks (smooth ops) get the general CROWN of
    :func:`netopt.bounds.compute_bounds`, and no proof: a certificate leaves them attested.
    """
    from netopt.bounds.bab import batch_crown_of
    from netopt.bounds.proof_format import BabProof

    bc = batch_crown_of(net)
    lo, hi = dom.lo.reshape(1, -1), dom.hi.reshape(1, -1)
    if bc.ok:
        low, _, _ = bc.bound(lo, hi, dj.C)
        low = low[0]
        gap = low - dj.d
        i = int(np.argmax(gap))
        if gap[i] > PROOF_MARGIN * (1.0 + abs(dj.d[i])):
            return low, BabProof.single_leaf(dom.lo, dom.hi, dj.C, dj.d, i)
    b = compute_bounds(net.graph, dom.lo, dom.hi, "crown")
    low, _ = linear_bounds(net.graph, b, net.graph.outputs[0], dj.C)
    return low, None


def _bab_stats(st: dict[str, Any]) -> dict[str, Any]:
    """The branch-and-bound statistics kept in a disjunct's details (rounded for reading)."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in st.items()}


def _bab_progress(
    progress: Callable[[dict], Any], deadline: Deadline, where: dict[str, int]
) -> Callable[[dict], None]:
    """Branch and bound's events (domains, open, leaves) as the check's."""

    def on_event(ev: dict) -> None:
        progress({**ev, "elapsed": deadline.elapsed(), **where})

    return on_event


def _milp_progress(
    progress: Callable[[dict], Any], deadline: Deadline, where: dict[str, int]
) -> Callable[[dict], None]:
    """The MILP's events as the check's: its phase prefixed, elapsed since the check started."""

    def on_event(ev: dict) -> None:
        progress({**ev, "phase": f"milp: {ev['phase']}", "elapsed": deadline.elapsed(), **where})

    return on_event


def _vertices(dom: Domain, n: int, rng: np.random.Generator) -> np.ndarray:
    """Vertices of the input box: all of them up to 2**10, else ``n`` random ones.

    Where the output saturates (a softmax of large logits) a property often holds only in a thin
    sliver along a face of the box, which uniform samples miss and vertices hit. Rows violating
    ``A x <= b`` are dropped.
    """
    lo, hi = dom.lo.reshape(-1), dom.hi.reshape(-1)
    m = lo.size
    if m <= 10:
        bits = (np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1
    else:
        bits = rng.integers(0, 2, (n, m))
    V = np.where(bits == 1, hi, lo).reshape(-1, *dom.shape)
    if dom.A is not None:
        V = V[np.all(V.reshape(len(V), -1) @ dom.A.T <= dom.b, axis=1)]
    return V


def _attack(net: Network, dj: Any, budget: float, seed: int) -> np.ndarray | None:
    """A counterexample of one disjunct by :func:`netopt.attack.falsify`, or None.

    None also where the attack cannot run: torch is not installed, or an op has no torch rule
    (the later phases decide those networks).
    """
    if budget <= 0:
        return None
    try:
        from netopt.attack import falsify

        r = falsify(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=budget, seed=seed)
    except (ImportError, UnsupportedOpError, SolverUnavailableError):
        return None
    return r.x


def _attackable(prop: VnnlibProperty) -> bool:
    """Whether every disjunct is a finite box without input constraints (what PGD projects on)."""
    return all(
        len(dj.A_in) == 0 and bool(np.all(np.isfinite(dj.lo)) and np.all(np.isfinite(dj.hi)))
        for dj in prop.disjuncts
    )


def _attack_all(
    net: Network, prop: VnnlibProperty, budget: float, seed: int, restarts: int | None = None
) -> tuple[int, np.ndarray | None] | None:
    """Every disjunct attacked in one batch (:func:`netopt.attack.falsify_disjuncts`).

    ``(k, x)`` for a counterexample ``x`` of disjunct ``k``; ``(-1, None)`` when the attack ran
    and found none; None where it could not run (no time, no torch, an op without a torch rule,
    or Ctrl-C), so that each disjunct gets its own attack later.
    """
    if budget <= 0:
        return None
    try:
        from netopt.attack import falsify_disjuncts

        rs = falsify_disjuncts(
            net,
            [(dj.lo, dj.hi, dj.C, dj.d) for dj in prop.disjuncts],
            time_limit=budget,
            seed=seed,
            restarts=restarts,
            # two rounds: the MNIST counterexamples fall in the first; where the bounds prove
            # every disjunct, more rounds would only delay the proof
            rounds=2,
        )
    except (ImportError, UnsupportedOpError, SolverUnavailableError):
        return None
    for k, r in enumerate(rs):
        if r.x is not None:
            return k, r.x
    return None if interrupted() else (-1, None)


def _evidence(net: Network, x: np.ndarray, dj: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """``f(x)`` in float64 and in onnxruntime, and whether onnxruntime's output satisfies the
    disjunct (within :data:`ORT_TOL`) at a point of its box that satisfies its input
    constraints ``A x <= b`` (within 1e-12 relative)."""
    y = net.forward(x)
    y_ort = net.run_onnxruntime(x)
    xf = x.reshape(-1)
    ok = _violation(dj.C, dj.d, y_ort) <= ORT_TOL and bool(
        np.all(xf >= dj.lo - 1e-12) and np.all(xf <= dj.hi + 1e-12)
    )
    if ok and len(dj.A_in):
        slack = dj.A_in @ xf - dj.b_in
        ok = bool(np.all(slack <= 1e-12 * (1.0 + np.abs(dj.b_in))))
    return y, y_ort, ok


def _sat(
    net: Network,
    res: CheckResult,
    x: np.ndarray,
    dj: Any,
    k: int,
    evidence: tuple[np.ndarray, np.ndarray, bool] | None = None,
) -> CheckResult:
    """``res`` as "sat" at ``x`` for disjunct ``k``, with its evidence (computed if not given)."""
    y, y_ort, ok = _evidence(net, x, dj) if evidence is None else evidence
    res.verdict, res.x, res.y, res.y_onnxruntime, res.disjunct = "sat", x, y, y_ort, k
    res.confirmed = ok
    return res
