"""The driver of a VNN-LIB check: each disjunct decided in turn, cheapest phase first.

:func:`_check` runs the phases described in :mod:`netopt.vnnlib.check` (an attack on every
disjunct at once, then per disjunct: sampling, CROWN, the attack, branch and bound, the MILP)
within one :class:`~netopt.control.Deadline`, and :func:`_crown_rows` gives the CROWN phase its
bounds and one-leaf proof. The constants below set how the time is shared between the phases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from netopt.bounds import compute_bounds, linear_bounds
from netopt.control import Deadline, emit, interrupted
from netopt.errors import FormulationError, UnsupportedOpError
from netopt.network import Network
from netopt.problems import Domain, Feasibility
from netopt.result import Status
from netopt.vnnlib.check.attacks import _attack, _attack_all, _attackable, _vertices
from netopt.vnnlib.check.evidence import ORT_TOL, CheckResult, _evidence, _sat
from netopt.vnnlib.check.progress import _bab_progress, _bab_stats, _milp_progress
from netopt.vnnlib.property import VnnlibProperty

#: Input dimension up to which the falsifier is left to branch and bound (which tries points in
#: every piece it keeps).
BAB_FULL_DIM = 8
#: Seconds of the attack on all disjuncts at once for inputs of at most ``BAB_FULL_DIM``
#: coordinates (before their branch and bound; more would cost every "unsat" that much). ACAS Xu's
#: counterexamples in slivers (1_9 prop 7, 2_9 prop 8) were found with 5 seeds of 5 in 0.1 s
#: (4 and 5 of 5 in 0.05 s); 0.2 s cost its unsat instances 0.06 s each (benchmarks/RESULTS.md).
LOW_DIM_ATTACK = 0.1
#: Seconds the MILP needs at least on a network of more than ``BAB_FULL_DIM`` inputs (its bounds
#: and model build are not interruptible); with less left the check stops before it.
MILP_MIN_SECONDS = 5.0
#: A bound closes a box for a proof only this far (relative) past its limit: the proof checker
#: bounds the one row again, and a last-bit difference must not turn the proof down.
PROOF_MARGIN = 1e-9
#: The CROWN pass before the attack (:func:`_crown_closed`) bounds disjuncts over boxes of
#: their own together only up to this many (its memory grows with the boxes).
CROWN_PASS_BOXES = 64
#: The share of the time left that branch and bound takes for a disjunct (the MILP gets the rest).
BAB_SHARE = 0.8


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
    device: Any = None,
) -> CheckResult:
    """The disjuncts in turn, cheapest phase first, within ``deadline`` (see :func:`check`;
    ``device``: the attack's and branch and bound's torch device)."""
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
    # disjunct (step 4). One batched CROWN pass first (:func:`_crown_closed`): the disjuncts it
    # closes have nothing to find and are not attacked; where it closes every one, step 2
    # decides them all.
    attacked_all = False
    closed: np.ndarray | None = None  # the disjuncts the CROWN pass closes (where it ran)
    if (
        n_dj > 1
        and attack_time > 0
        and n_in > BAB_FULL_DIM
        and _attackable(prop)
        and not ((closed := _crown_closed(net, prop)) is not None and closed.all())
    ):
        tk = time.perf_counter()
        emit(progress, "attack", deadline, disjuncts=n_dj)
        # only the disjuncts the pass left open: a closed one has no counterexample
        hit = _attack_all(
            net, prop, deadline.share(0.2, attack_time), seed, skip=closed, device=device
        )
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
    searched: set[int] = set()  # searched with another disjunct, to no end: no branch and bound
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
            x_adv = _attack(net, dj, deadline.share(0.2, attack_time), seed, device)
            ev = None if x_adv is None else _evidence(net, x_adv, dj)
            if ev is not None and ev[2]:  # a claim only once onnxruntime confirms the point
                res = _sat(net, res, x_adv, dj, k, ev)
                info.update(verdict="sat", method="attack", seconds=time.perf_counter() - tk)
                res.details.append(info)
                break
        # 4. branch and bound (networks of linear ops and (leaky) ReLUs): input splitting on
        # few inputs, ReLU splitting with alpha/beta-CROWN on more; an "unsat" carries its tree,
        # every leaf closed by the rigorous float64 bounds (netopt.bounds.branch)
        if dom.bounded and dom.A is None and bab_time > 0 and k not in searched:
            from netopt.bounds.branch import INPUT_SPLIT_MAX_DIM, branch_and_bound

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
                hit = _attack_all(net, prop, budget, seed, restarts=4096, device=device)
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
            # the disjuncts still waiting over this one's box, searched at once: one
            # input-splitting tree for all (a box's bounds cost the same for every row; ACAS Xu
            # prop 6 is two boxes of four), or ReLU-splitting trees in lockstep
            if closed is None and n_in > INPUT_SPLIT_MAX_DIM and len(queue):
                closed = _crown_closed(net, prop)
            members = _same_box(prop, k, queue, retried, n_in, closed, searched)
            budget = deadline.share(BAB_SHARE, bab_time * len(members))
            first = [j for j in queue if j not in retried]  # still to have their first turn
            share = not retry and first and deadline.time_limit is not None
            if share:
                budget = min(budget, deadline.remaining() * len(members) / (len(first) + 1))
            emit(progress, "branch and bound", deadline, **where)
            rows = [prop.disjuncts[m] for m in members]
            br = branch_and_bound(
                net,
                dom.lo,
                dom.hi,
                np.concatenate([r.C for r in rows]),
                np.concatenate([r.d for r in rows]),
                time_limit=budget,
                device=device,
                progress=None if progress is None else _bab_progress(progress, deadline, where),
                groups=(
                    np.concatenate([[i] * len(r.d) for i, r in enumerate(rows)])
                    if len(rows) > 1
                    else None
                ),
            )
            if br is not None and len(members) > 1:
                if br.verdict == "sat":
                    kg = members[br.group]
                    info.update(
                        disjunct=kg,
                        verdict="sat",
                        method=f"BaB ({br.stats['mode']} splits)",
                        pieces=br.stats["nodes"],
                        seconds=time.perf_counter() - tk,
                        bab=_bab_stats(br.stats),
                    )
                    res.details.append(info)
                    res = _sat(net, res, br.x, prop.disjuncts[kg], kg)
                    break
                # every member the search closed is decided, with its own proof; the others
                # are left to their turn as if searched alone (this one: below)
                secs = time.perf_counter() - tk
                relu = br.stats["mode"] == "relu"
                for m, part in zip(members, br.parts, strict=True):
                    if part.verdict != "unsat":
                        if relu and part.stopped not in ("time limit", "interrupted"):
                            # its own search ended for good (e.g. "unpromising"): no second
                            # one, the MILP next
                            searched.add(m)
                        continue
                    if m != k:
                        queue.remove(m)
                    res.details.append(
                        {
                            "disjunct": m,
                            "verdict": "unsat",
                            "method": f"BaB ({br.stats['mode']} splits, "
                            f"{len(members)} disjuncts at once)",
                            "pieces": part.stats["nodes"],
                            "seconds": secs,
                            "bab": _bab_stats(part.stats),
                            "proof": part.proof,
                        }
                    )
                if br.parts[0].verdict == "unsat":
                    continue
                if share and br.parts[0].stopped == "time limit" and not stop_reason():
                    # the open ones wait, with this one, for a second turn (together again)
                    for m, part in zip(members[1:], br.parts[1:], strict=True):
                        if part.verdict != "unsat" and part.stopped == "time limit":
                            queue.remove(m)
                            retried.add(m)
                            queue.append(m)
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
                own = br.parts[0] if br.parts else br  # (this disjunct's part of a group)
                info["bab"] = _bab_stats(own.stats)
                if share and own.stopped == "time limit" and not stop_reason():
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


def _same_box(
    prop: VnnlibProperty,
    k: int,
    queue: list[int],
    retried: set[int],
    n_in: int,
    closed: np.ndarray | None = None,
    searched: set[int] = frozenset(),
) -> list[int]:
    """Disjunct ``k`` and those waiting in ``queue`` for the same turn (a first one, or a
    retry) over exactly its box, with no input constraints: searched at once by branch and
    bound (:func:`~netopt.bounds.branch.branch_and_bound`'s ``groups``: one tree where
    splitting goes to the inputs, trees in lockstep where it goes to ReLUs). For ReLU
    splitting only those that the CROWN pass does not close (``closed``; none without it):
    the others' own turn closes them at once, with a one-leaf proof. Measured on MNIST 256x2
    (a shifted image's eight disjuncts that ReLU splitting decides, 2-core CPU): 14.4 s one
    after the other, 8.4 s in lockstep. Never one whose own ReLU-splitting search ended for
    good (``searched``)."""
    from netopt.bounds.branch import INPUT_SPLIT_MAX_DIM

    dj = prop.disjuncts[k]
    if len(dj.A_in):
        return [k]
    relu = n_in > INPUT_SPLIT_MAX_DIM
    if relu and closed is None:
        return [k]
    return [k] + [
        j
        for j in queue
        if (j in retried) == (k in retried)
        and not len(prop.disjuncts[j].A_in)
        and np.array_equal(prop.disjuncts[j].lo, dj.lo)
        and np.array_equal(prop.disjuncts[j].hi, dj.hi)
        and not (relu and closed[j])
        and j not in searched
    ]


def _crown_closes_all(net: Network, prop: VnnlibProperty) -> bool:
    """Whether the rigorous float64 CROWN of step 2 closes every disjunct's box
    (:func:`_crown_closed`).

    Then the attack on every disjunct at once (step 0) has nothing to find, and is skipped: on
    MNIST 256x2 it cost such a property about 1.3 s of a fresh process's 2 s (the attack's
    share of the time), against 0.02-0.1 s for this pass.
    """
    closed = _crown_closed(net, prop)
    return closed is not None and bool(closed.all())


def _crown_closed(net: Network, prop: VnnlibProperty) -> np.ndarray | None:
    """Which disjuncts' boxes the rigorous float64 CROWN of step 2 closes, in one batched pass
    (the disjuncts' boxes, each with its own rows); None where no pass is made.

    Disjuncts over one box (a classifier's robustness property) are one pass over that box;
    over boxes of their own, at most :data:`CROWN_PASS_BOXES` of them are bounded together
    (else no pass: the attack takes them all). The attack (step 0) skips the closed ones.
    """
    from netopt.bounds.bab import batch_crown_of

    bc = batch_crown_of(net)
    djs = prop.disjuncts
    if not bc.ok or not all(len(dj.A_in) == 0 for dj in djs):
        return None
    k = max(dj.C.shape[0] for dj in djs)
    if k == 0:
        return None
    lo = np.stack([dj.lo.reshape(-1) for dj in djs])
    hi = np.stack([dj.hi.reshape(-1) for dj in djs])
    one_box = bool(np.all(lo == lo[0]) and np.all(hi == hi[0]))
    if not one_box and len(djs) > CROWN_PASS_BOXES:
        return None
    C = np.zeros((len(djs), k, djs[0].C.shape[1]))
    d = np.full((len(djs), k), np.inf)  # a padding row never closes
    for i, dj in enumerate(djs):
        C[i, : dj.C.shape[0]] = dj.C
        d[i, : dj.C.shape[0]] = dj.d
    if one_box:
        # one box (a classifier's robustness property): every row in one pass over it
        low, _, _ = bc.bound(lo[:1], hi[:1], C.reshape(1, -1, C.shape[2]))
        low = low.reshape(len(djs), k)
    else:
        low, _, _ = bc.bound(lo, hi, C)
    # as step 2 closes a box for its proof: a row past its limit by the relative margin (a
    # padding row's gap is -inf, its threshold +inf)
    return np.any(low - d > PROOF_MARGIN * (1.0 + np.abs(d)), axis=1)


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
