"""Deciding VNN-LIB properties: "sat" with a counterexample that onnxruntime confirms, or "unsat".

Each disjunct of the property's counterexample region is decided in turn, cheapest first:
sampled inputs (a counterexample found by a forward pass), then symbolic (CROWN) bounds on the
output constraints ``C y`` (an "unsat" proof when a row's lower bound exceeds its limit), then
branch and bound over the input box (:mod:`netopt.bounds.bab`), then the exact MILP (a witness, or
infeasibility attested by the solver).
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
        reached: a counterexample in an earlier disjunct already decided the property
        (``verdict == "sat"``, ``disjunct`` before it) or the check stopped (``stopped``).
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
            "details": self.details,
            "disjunct_status": self.disjunct_status,
            "stopped": self.stopped,
        }
        return json.dumps(d, indent=2)


#: Input dimension up to which input-splitting BaB gets its whole budget before the MILP.
BAB_FULL_DIM = 8
#: Seconds of input splitting for wider inputs.
BAB_SHORT_TRY = 3.0


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
        Seconds per disjunct for input-splitting branch and bound before the MILP (at most half
        of the time left; at most ``BAB_SHORT_TRY`` when the input has more than
        ``BAB_FULL_DIM`` coordinates); 0 skips it.
    attack_time : float
        Seconds per disjunct for the falsifier (:func:`netopt.attack.falsify`, at most a fifth
        of the time left) after the bounds fail to decide it, on inputs of more than
        ``BAB_FULL_DIM`` coordinates (fewer go to input splitting); 0 skips it. Needs torch.
    progress : callable, optional
        Receives one event (a dict, see :func:`netopt.control.emit`) as each phase of each
        disjunct starts: ``phase`` (``"sampling"``, ``"crown"``, ``"attack"``, ``"input-split BaB"``,
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

    for k, dj in enumerate(prop.disjuncts):
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
        if dom.bounded and n_samples:
            emit(progress, "sampling", deadline, **where)
            X = np.concatenate(
                [
                    dom.sample(n_samples, rng),
                    ((dom.lo + dom.hi) / 2)[None],
                    _vertices(dom, n_samples, rng),
                ]
            )
            Y = net.forward(X)
            viol = Y.reshape(len(X), -1) @ dj.C.T - dj.d
            ok = np.nonzero(viol.max(axis=1) <= 0)[0] if viol.shape[1] else np.arange(len(X))
            if len(ok):
                res = _sat(net, res, X[ok[0]], dj, k)
                info.update(verdict="sat", method="sampling", seconds=time.perf_counter() - tk)
                res.details.append(info)
                break
        # 2. symbolic bounds on C y
        if dom.bounded:
            if stopped_inside(info, "crown", tk):
                break
            emit(progress, "crown", deadline, **where)
            b = compute_bounds(net.graph, dom.lo, dom.hi, "crown")
            lo_c, _ = linear_bounds(net.graph, b, net.graph.outputs[0], dj.C)
            if np.any(lo_c > dj.d):
                i = int(np.argmax(lo_c - dj.d))
                info.update(
                    verdict="unsat",
                    method="crown",
                    seconds=time.perf_counter() - tk,
                    evidence=f"lower bound {lo_c[i]:.6g} of constraint row {i} exceeds {dj.d[i]:.6g}",
                )
                res.details.append(info)
                continue
        # 3. a falsifier: batched PGD on the disjunct's margin (netopt.attack), kept short: it
        # finds the counterexamples that sampling misses in a high-dimensional box in about a
        # second, and a point is a claim only once float64 and onnxruntime confirm it. A box of
        # few inputs goes to input splitting instead, which tries points in every piece it
        # keeps: there the attack's seconds are better spent splitting
        if dom.bounded and dom.A is None and attack_time > 0 and n_in > BAB_FULL_DIM:
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
        # 4. input splitting with batched CROWN (networks of linear ops and (leaky) ReLUs)
        if dom.bounded and dom.A is None and bab_time > 0:
            from netopt.bounds.bab import bab_feasibility

            if stopped_inside(info, "input-split BaB", tk):
                break
            budget = deadline.share(0.5, bab_time)
            if n_in > BAB_FULL_DIM:
                # input splitting halves one coordinate per level: past a few input dimensions
                # it rarely closes before the MILP would, so it only gets a short try
                budget = min(budget, BAB_SHORT_TRY)
            emit(progress, "input-split BaB", deadline, **where)
            br = bab_feasibility(net, dom.lo, dom.hi, dj.C, dj.d, time_limit=budget)
            if br is not None and br.verdict != "unknown":
                info.update(
                    verdict=br.verdict,
                    method="input-split BaB",
                    pieces=br.boxes,
                    seconds=time.perf_counter() - tk,
                )
                res.details.append(info)
                if br.verdict == "sat":
                    res = _sat(net, res, br.x, dj, k)
                    break
                continue
        # 5. exact MILP: at most what remains of the whole check
        if stopped_inside(info, "milp", tk):
            break
        left = None if deadline.time_limit is None else deadline.remaining()
        opts = dict(solve_options)
        if progress is not None:
            opts["progress"] = _milp_progress(progress, deadline, where)
        try:
            r = Feasibility(net, C=dj.C, d=dj.d, domain=dom).solve(
                time_limit=left, seed=seed, **opts
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
                    time_limit=left, seed=seed, **opts
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


def _evidence(net: Network, x: np.ndarray, dj: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """``f(x)`` in float64 and in onnxruntime, and whether onnxruntime's output satisfies the
    disjunct (within :data:`ORT_TOL`) at a point of its box."""
    y = net.forward(x)
    y_ort = net.run_onnxruntime(x)
    ok = _violation(dj.C, dj.d, y_ort) <= ORT_TOL and bool(
        np.all(x.reshape(-1) >= dj.lo - 1e-12) and np.all(x.reshape(-1) <= dj.hi + 1e-12)
    )
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
