r"""A falsifier: batched projected gradient descent on the margin of an output property.

Given a box :math:`[l, u]` and output constraints :math:`C f(x) \le d` (one disjunct of a VNN-LIB
property: the region a counterexample must reach), find :math:`x \in [l, u]` with

.. math:: m(x) = \max_i \, (C f(x) - d)_i \le 0 .

This is the attack stage of the field's verifiers (alpha,beta-CROWN runs PGD before any bound;
Madry et al. 2018; Croce & Hein 2020 for the step schedule). Several problems — the disjuncts of
a property, or the open sub-boxes of a branch and bound — are searched as **one batch**: each gets
``restarts`` starting points (the box centre, box vertices, uniform samples, and from the second
round on the best point found so far), and every point descends on its own problem's margin
:math:`m` — the max over that problem's rows, whose subgradient moves the row furthest from
holding — with signed-gradient steps

.. math:: x \leftarrow \Pi_{[l,u]}\big(x - \eta_t\, (u - l) \odot \mathrm{sign}\, \tilde\nabla m(x)\big),

the step :math:`\eta_t` decaying on a cosine schedule from ``step0`` within each round.

**Gradients through inactive ReLUs.** On a sparsely active ReLU network (MNIST 256x2 at
:math:`\epsilon = 0.05` has two active first-layer units at the image) the exact gradient of
:math:`m` is often zero after one step: every unit that could raise the target logit is inactive,
so plain PGD stops on a plateau far from any counterexample. :math:`\tilde\nabla` is therefore
the gradient of the same network with each ReLU's derivative :math:`\mathbb 1[z > 0]` replaced by
:math:`\mathbb 1[z > 0] + \lambda\, \mathbb 1[z \le 0]` (a leaky backward pass; the forward values,
hence every margin, stay exact). Each start gets one leak :math:`\lambda` from ``leaks`` (0, the
exact subgradient, among them), so the batch mixes exact descent with descent that sees which
inactive units would help.

Every few steps (and at once when a float32 margin reaches 0) the best points are re-evaluated in
float64 by the reference interpreter: only a point whose float64 margin is :math:`\le 0` is
returned as a candidate (callers confirm it in onnxruntime, as every counterexample is), so
float32 round-off on a GPU never makes a claim.

**Engines.** A chain of flattening reshapes, affine maps and ReLUs (an MLP: ACAS Xu, MNIST FC)
runs in float32 numpy by default, forward and leaky backward by hand: no torch import (about a
second of start-up) and no per-op dispatch, so the MNIST counterexamples take a tenth of a second.
Any other graph, or an explicit ``device``, runs as a
:class:`netopt.ir.torch_module.GraphModule` (any op with a torch rule) on the device
:func:`netopt.torch_utils.resolve_device` picks: CUDA when present, else CPU. A small batch on the
CPU runs on one thread (:data:`netopt.attack.engines._ONE_THREAD_ENTRIES`).

**Region walk.** Where descent ends short of a counterexample on a chain network,
:func:`falsify` goes on from the best points by LPs over their linear regions
(:mod:`~netopt.attack.regions`): a sliver of a counterexample region that sign steps zig-zag
around is reached in a few LPs.

**Modules.** :mod:`~netopt.attack.engines` holds the two engines (the numpy chain, the torch
module with its leaky ReLU backward) that give the float32 margins and their gradients,
:mod:`~netopt.attack.search` the batched search loop over the problems,
:mod:`~netopt.attack.regions` the region walk, and this package the public entry points and
their results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# the engines, importable from here as before (the tests compare them with each other)
from netopt.attack.engines import _NumpyChain as _NumpyChain
from netopt.attack.engines import _TorchEngine as _TorchEngine
from netopt.attack.search import _search
from netopt.errors import InputError

__all__ = ["AttackResult", "BoxAttackResult", "falsify", "falsify_disjuncts", "falsify_boxes"]

#: Leaks of the ReLU backward pass, one per start in turn (see the module doc): 0 is plain PGD;
#: small leaks let the sign step feel inactive units without drowning the active ones.
LEAKS = (0.0, 0.001, 0.003, 0.01)

#: Problems (disjuncts) whose best points :func:`falsify` hands to the region walk
#: (:mod:`netopt.attack.regions`) when gradient descent found no counterexample, and the
#: seconds the walk may run past the attack's time limit (its LPs take milliseconds each).
WALK_PROBLEMS = 4
WALK_GRACE = 0.05
#: ... and its share of a time limit (descent gets the rest).
WALK_SHARE = 0.25


@dataclass
class AttackResult:
    """What :func:`falsify` found.

    Attributes
    ----------
    x : ndarray or None
        A point of the box (input shape) whose float64 margin is ``<= 0``; None if none found.
    margin : float
        The best float64 margin seen (``<= 0`` exactly when ``x`` is set).
    best : ndarray or None
        The point of that margin (a start for an exact method when no counterexample is found).
    evaluations : int
        Forward passes (points) spent.
    seconds : float
    """

    x: np.ndarray | None
    margin: float
    evaluations: int
    seconds: float
    best: np.ndarray | None = None


@dataclass
class BoxAttackResult:
    """What :func:`falsify_boxes` found, one entry per box.

    Attributes
    ----------
    x : ndarray
        ``(B, *input_shape)``: the point of each box with the smallest float64 margin seen.
    margin : ndarray
        ``(B,)``: that margin, computed by the float64 reference interpreter; ``<= 0`` marks a
        counterexample in that box.
    evaluations : int
    seconds : float
    """

    x: np.ndarray
    margin: np.ndarray
    evaluations: int
    seconds: float

    @property
    def found(self) -> int | None:
        """Index of a box whose point is a counterexample (the smallest margin), or None."""
        k = int(np.argmin(self.margin)) if len(self.margin) else -1
        return k if k >= 0 and self.margin[k] <= 0.0 else None


def falsify(
    net: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    *,
    restarts: int | None = None,
    steps: int = 100,
    rounds: int = 4,
    step0: float = 0.2,
    seed: int = 0,
    time_limit: float | None = None,
    device: Any = None,
    leaks: Sequence[float] = LEAKS,
) -> AttackResult:
    """Search ``[lo, hi]`` for ``x`` with ``C f(x) <= d`` (row-wise); see the module doc.

    Parameters
    ----------
    net : netopt.Network
    lo, hi : ndarray
        The box (input shape or flat).
    C, d : ndarray
        ``(k, n_out)`` and ``(k,)``: the constraints a counterexample satisfies.
    restarts : int, optional
        Points descending together (one batch); default ``clip(2**16 / n, 16, 1024)`` for ``n``
        inputs.
    steps : int
        Signed-gradient steps per round.
    rounds : int
        Rounds; each starts from fresh samples plus the best point so far.
    step0 : float
        First step as a fraction of the box's width per coordinate.
    seed : int
    time_limit : float, optional
        Wall seconds; the search stops at the next step past it (or on Ctrl-C).
    device : optional
        A torch device; default: the numpy engine for a chain of affine maps and ReLUs, else
        torch on CUDA when available, else CPU (module doc).
    leaks : sequence of float
        Leaks of the ReLU backward pass, one per start in turn (module doc); ``(0.0,)`` is plain
        PGD on the exact subgradient.

    Returns
    -------
    AttackResult
    """
    return falsify_disjuncts(
        net,
        [(lo, hi, C, d)],
        restarts=restarts,
        steps=steps,
        rounds=rounds,
        step0=step0,
        seed=seed,
        time_limit=time_limit,
        device=device,
        leaks=leaks,
    )[0]


def falsify_disjuncts(
    net: Any,
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    *,
    restarts: int | None = None,
    steps: int = 100,
    rounds: int = 4,
    step0: float = 0.2,
    seed: int = 0,
    time_limit: float | None = None,
    device: Any = None,
    leaks: Sequence[float] = LEAKS,
) -> list[AttackResult]:
    """:func:`falsify` on several ``(lo, hi, C, d)`` problems at once, until one has a
    counterexample.

    The disjuncts of a VNN-LIB property (MNIST's "some class j scores at least the label": one
    disjunct, one row per target class) are attacked in one batch, each start on its own
    disjunct's margin: a targeted attack per class, cheaper together than one after another, and
    a counterexample of the last disjunct is found as fast as one of the first.

    Parameters
    ----------
    problems : sequence of (lo, hi, C, d)
        As :func:`falsify`'s arguments, one tuple per disjunct.
    restarts : int, optional
        Starts per problem; default ``clip(2**16 / (n P), 16, 1024)`` for ``P`` problems of
        ``n`` inputs.
    steps, rounds, step0, seed, time_limit, device, leaks
        As :func:`falsify` (the time limit is for all problems together).

    Returns
    -------
    list of AttackResult
        One per problem, in order; the search stops once any has ``x`` set (the others report
        their best margin so far).
    """
    from netopt.attack.regions import chain_layers

    walk = chain_layers(net) is not None
    X, M, evals, secs = _search(
        net,
        problems,
        "falsify",
        restarts=restarts,
        steps=steps,
        rounds=rounds,
        step0=step0,
        seed=seed,
        # the region walk's share of the time comes last
        time_limit=time_limit if time_limit is None or not walk else time_limit * (1 - WALK_SHARE),
        device=device,
        leaks=leaks,
        stop_at_first=True,
    )
    X, M = list(X), [float(m) for m in M]
    if walk and not any(m <= 0.0 for m in M):
        secs += _walk(net, problems, X, M, time_limit, secs)
    out = []
    for x, m in zip(X, M, strict=True):
        seen = bool(m < math.inf)  # some point of this problem was evaluated
        out.append(
            AttackResult(x if m <= 0.0 else None, float(m), evals, secs, x if seen else None)
        )
    return out


def _walk(
    net: Any, problems: Sequence, X: list, M: list, time_limit: float | None, spent: float
) -> float:
    """The region walk (:func:`netopt.attack.regions.region_walk`) from the best points of the
    :data:`WALK_PROBLEMS` problems of the smallest margins, in that order, until one reaches a
    counterexample; ``X``, ``M`` are updated in place. Returns the seconds spent (the LP
    solver's import included)."""
    import time

    from netopt.attack.regions import region_walk
    from netopt.control import interrupted

    t_in = time.perf_counter()
    if not np.isfinite(M).any() or interrupted():
        return 0.0
    if time_limit is not None and time_limit - spent <= 0:
        return 0.0  # nothing left of the attack's own time
    # the LPs' solver is loaded before the walk's clock starts: in a fresh process the import
    # (scipy.optimize's, before: 0.15-0.4 s, once per process) took all of the walk's share of
    # a short attack, and ACAS Xu 1_9 prop 7's counterexample, two to four LPs away, was left
    # to input splitting; highspy's first object (and the banner it swallows) costs less, but
    # still counts against no walk
    from netopt.model.highs_lp import quiet_banner

    quiet_banner()

    t0 = time.perf_counter()
    for i in np.argsort(M)[:WALK_PROBLEMS]:
        if not np.isfinite(M[i]) or interrupted():
            break
        left = None if time_limit is None else time_limit + WALK_GRACE - spent
        left = None if left is None else left - (time.perf_counter() - t0)
        if left is not None and left <= WALK_GRACE:
            break  # nothing left of the attack's own time
        lo, hi, C, d = problems[i]
        x, m, best = region_walk(net, lo, hi, C, d, X[i], time_limit=left)
        if m < M[i]:
            X[i], M[i] = best.reshape(np.shape(X[i])), m
        if x is not None:
            break
    return time.perf_counter() - t_in


def falsify_boxes(
    net: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    *,
    restarts: int = 8,
    steps: int = 20,
    rounds: int = 1,
    step0: float = 0.2,
    seed: int = 0,
    time_limit: float | None = None,
    device: Any = None,
    leaks: Sequence[float] = LEAKS,
) -> BoxAttackResult:
    """A short attack on each of ``B`` sub-boxes of one problem, all in one batch.

    For a branch and bound between rounds: its most promising open boxes (the smallest lower
    bounds of the margin) are where a counterexample most likely is, and a few steps in each box
    either find one (ending the search "sat") or rank the boxes by the best margin seen.

    Parameters
    ----------
    net : netopt.Network
    lo, hi : ndarray
        ``(B, n)`` (or ``(B, *input_shape)``): the boxes.
    C, d : ndarray
        ``(k, n_out)`` and ``(k,)``: the constraints a counterexample satisfies, as
        :func:`falsify`.
    restarts : int
        Starts per box (the centre, vertices, uniform samples).
    steps, rounds, step0, seed, time_limit, device, leaks
        As :func:`falsify`; few steps by default: each box is small and many are attacked.

    Returns
    -------
    BoxAttackResult
        Every box's best point and its float64 margin; the search runs all its steps unless
        the time runs out or every box has a counterexample.
    """
    n_in = int(np.prod(net.input_shape))
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if lo.ndim < 1 or len(lo) == 0 or lo.shape != hi.shape:
        raise InputError(
            f"falsify_boxes: lo and hi must be (B, {n_in}) arrays of one shape with B >= 1 "
            f"(got {lo.shape} and {hi.shape})"
        )
    lo, hi = lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)
    X, M, evals, secs = _search(
        net,
        [(a, b, C, d) for a, b in zip(lo, hi, strict=True)],
        "falsify_boxes",
        restarts=restarts,
        steps=steps,
        rounds=rounds,
        step0=step0,
        seed=seed,
        time_limit=time_limit,
        device=device,
        leaks=leaks,
        stop_at_first=False,
    )
    return BoxAttackResult(X, M, evals, secs)
