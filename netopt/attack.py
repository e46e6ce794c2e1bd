r"""A falsifier: batched projected gradient descent on the margin of an output property.

Given a box :math:`[l, u]` and output constraints :math:`C f(x) \le d` (one disjunct of a VNN-LIB
property: the region a counterexample must reach), find :math:`x \in [l, u]` with

.. math:: m(x) = \max_i \, (C f(x) - d)_i \le 0 .

This is the attack stage of the field's verifiers (alpha,beta-CROWN runs PGD before any bound;
Madry et al. 2018; Croce & Hein 2020 for the step schedule): ``restarts`` starting points (the box
centre, box vertices and uniform samples) descend together as one batch on :math:`m` — the max over
rows, whose subgradient moves the row that is furthest from holding — with signed-gradient steps
:math:`x \leftarrow \Pi_{[l,u]}(x - \eta_t\, (u - l) \odot \mathrm{sign}\, \nabla m(x))`, the step
:math:`\eta_t` decaying on a cosine schedule from ``step0``. Every few steps the best points are
re-evaluated in float64 by the reference interpreter: only a point whose float64 margin is
:math:`\le 0` is returned as a candidate (callers confirm it in onnxruntime, as every
counterexample is), so float32 round-off on a GPU never makes a claim.

The network runs as a :class:`netopt.ir.torch_module.GraphModule` (any op with a torch rule) on
the device :func:`netopt.torch_utils.resolve_device` picks: CUDA when present, else CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import InputError

__all__ = ["AttackResult", "falsify"]


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


def _margin64(net: Any, X: np.ndarray, C: np.ndarray, d: np.ndarray) -> np.ndarray:
    Y = net.forward(X).reshape(len(X), -1)
    return np.max(Y @ C.T - d, axis=1) if len(d) else np.full(len(X), -np.inf)


def falsify(
    net: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    *,
    restarts: int | None = None,
    steps: int = 60,
    rounds: int = 3,
    step0: float = 0.25,
    seed: int = 0,
    time_limit: float | None = None,
    device: Any = None,
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
        Points descending together (one batch); default ``clip(2**16 / n, 64, 1024)`` for ``n``
        inputs: a low-dimensional box (ACAS Xu has 5 inputs) is cheap to cover densely.
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
        A torch device; default CUDA when available, else CPU.

    Returns
    -------
    AttackResult
    """
    import torch

    from netopt.torch_utils import resolve_device

    t0 = time.perf_counter()
    shape = tuple(net.input_shape)
    lo64 = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi64 = np.asarray(hi, dtype=np.float64).reshape(-1)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    n_in, n_out = int(np.prod(shape)), int(np.prod(net.output_shape))
    if lo64.size != n_in or hi64.size != n_in or not np.all(lo64 <= hi64):
        raise InputError(
            f"falsify: the box must be two arrays of the input's {n_in} values with lo <= hi "
            f"(got {lo64.size} and {hi64.size} values)"
        )
    if C.shape[1] != n_out or len(d) != C.shape[0]:
        raise InputError(
            f"falsify: C must be (k, {n_out}) for the {n_out} outputs and d of length k (got C "
            f"{C.shape}, d {d.shape})"
        )
    rng = np.random.default_rng(seed)
    dev = resolve_device(device)
    # one module per network and device: a check attacks every disjunct of a property
    cache = net.__dict__.setdefault("_attack_modules", {})
    mod = cache.get(str(dev))
    if mod is None:
        mod = cache[str(dev)] = net.torch_module(dtype=torch.float32, device=dev)
    tl = torch.tensor(lo64, dtype=torch.float32, device=dev)
    th = torch.tensor(hi64, dtype=torch.float32, device=dev)
    width = th - tl
    tC = torch.tensor(C, dtype=torch.float32, device=dev)
    td = torch.tensor(d, dtype=torch.float32, device=dev)
    n = lo64.size
    if restarts is None:
        restarts = int(np.clip(2**16 // max(n, 1), 64, 1024))
    best_x, best_m, evals = None, math.inf, 0

    def out_of_time() -> bool:
        return interrupted() or (time_limit is not None and time.perf_counter() - t0 > time_limit)

    def check64(X: np.ndarray) -> bool:
        """Re-evaluate candidates in float64; keep the best; True once one holds."""
        nonlocal best_x, best_m, evals
        X = np.clip(X, lo64, hi64)
        m = _margin64(net, X.reshape(len(X), *shape), C, d)
        evals += len(X)
        k = int(np.argmin(m))
        if m[k] < best_m:
            best_m, best_x = float(m[k]), X[k].copy()
        return best_m <= 0.0

    for r in range(max(1, rounds)):
        # the best point so far, then (first round) the centre and random vertices, then
        # uniform samples up to the batch size
        starts = [] if best_x is None else [best_x[None]]
        if r == 0:
            starts.append(((lo64 + hi64) / 2)[None])
            corners = rng.integers(0, 2, size=(max(1, restarts // 4), n)).astype(bool)
            starts.append(np.where(corners, hi64, lo64))
        taken = sum(len(s) for s in starts)
        starts.append(rng.uniform(lo64, hi64, size=(max(restarts - taken, 1), n)))
        X0 = np.concatenate(starts)
        if check64(X0):
            break
        x = torch.as_tensor(X0, dtype=torch.float32, device=dev).requires_grad_(True)
        for t in range(steps):
            if out_of_time():
                break
            y = mod(x.reshape(len(x), *shape)).reshape(len(x), -1)
            m = (y @ tC.T - td).max(dim=1).values
            (g,) = torch.autograd.grad(m.sum(), x)
            eta = step0 * 0.5 * (1 + math.cos(math.pi * t / steps))
            with torch.no_grad():
                x = torch.clamp(x - eta * width * torch.sign(g), tl, th)
            x.requires_grad_(True)
            evals += len(x)
            if (t + 1) % 10 == 0 or t == steps - 1:
                with torch.no_grad():
                    cand = x.detach()[torch.argsort(m.detach())[:4]]
                if check64(cand.double().cpu().numpy()):
                    break
        if best_m <= 0.0 or out_of_time():
            break
        # the whole final batch in float64: the cheapest way not to miss a point float32 hides
        if check64(x.detach().double().cpu().numpy()):
            break
    found = best_x is not None and best_m <= 0.0
    return AttackResult(
        best_x.reshape(shape) if found else None,
        best_m,
        evals,
        time.perf_counter() - t0,
        None if best_x is None else best_x.reshape(shape),
    )
