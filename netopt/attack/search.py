"""The falsifier's search: batched PGD over several problems at once.

:func:`_search` validates the problems ``(lo, hi, C, d)``, lays out every problem's starts as one
batch (rows padded to a common count), and runs the rounds of signed-gradient steps described in
:mod:`netopt.attack`, re-checking the best points in float64 with the reference interpreter. The
engine that computes the float32 margins and gradients comes from :mod:`netopt.attack.engines`;
the public entry points that shape the problems and the results live in :mod:`netopt.attack`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from netopt.attack.engines import _ONE_THREAD_ENTRIES, _few_threads, _NumpyChain, _TorchEngine
from netopt.control import interrupted
from netopt.errors import InputError

#: Padding for problems with fewer rows than the batch's widest: ``0 y - PAD`` never wins the max.
_PAD = 1e30


def _as_problem(
    lo: np.ndarray, hi: np.ndarray, C: np.ndarray, d: np.ndarray, n_in: int, n_out: int, who: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 ``(lo, hi, C, d)`` of one problem (flat box)."""
    lo64 = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi64 = np.asarray(hi, dtype=np.float64).reshape(-1)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    if lo64.size != n_in or hi64.size != n_in or not np.all(lo64 <= hi64):
        raise InputError(
            f"{who}: the box must be two arrays of the input's {n_in} values with lo <= hi "
            f"(got {lo64.size} and {hi64.size} values)"
        )
    if C.shape[1] != n_out or len(d) != C.shape[0]:
        raise InputError(
            f"{who}: C must be (k, {n_out}) for the {n_out} outputs and d of length k (got C "
            f"{C.shape}, d {d.shape})"
        )
    return lo64, hi64, C, d


def _search(
    net: Any,
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    who: str,
    *,
    restarts: int | None,
    steps: int,
    rounds: int,
    step0: float,
    seed: int,
    time_limit: float | None,
    device: Any,
    leaks: Sequence[float],
    stop_at_first: bool,
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Batched PGD on ``P`` problems ``(lo, hi, C, d)`` at once (:mod:`netopt.attack`).

    The problems are validated first (``who`` names the caller in error messages); the time
    limit counts from the call. ``restarts`` None takes ``clip(2**16 / (n P), 16, 1024)``
    starts per problem for ``n`` inputs.

    Returns
    -------
    X : (P, *input_shape) ndarray
        Each problem's best point (its box centre where none was evaluated).
    margin : (P,) ndarray
        Their float64 margins (``inf`` where no point was evaluated).
    evaluations : int
        Forward passes (points) spent.
    seconds : float
    """
    t0 = time.perf_counter()
    shape = tuple(net.input_shape)
    n_in, n_out = int(np.prod(shape)), int(np.prod(net.output_shape))
    if not problems:
        raise InputError(f"{who}: no problem to attack")
    problems = [_as_problem(*p, n_in, n_out, who) for p in problems]
    if restarts is None:
        # the batch of one falsify shared out, down to 16 starts each: 1024 starts per disjunct
        # of a 5-input box (sparse counterexamples want dense sampling), 16 per MNIST class
        restarts = int(np.clip(2**16 // (max(n_in, 1) * len(problems)), 16, 1024))
    P, n = len(problems), n_in
    LO = np.stack([p[0] for p in problems])
    HI = np.stack([p[1] for p in problems])
    k_max = max(len(p[3]) for p in problems)
    # rows padded to a common count: a padding row 0 y - PAD never attains the max
    CP = np.zeros((P, max(k_max, 1), n_out))
    DP = np.full((P, max(k_max, 1)), _PAD)
    for j, (_, _, C, d) in enumerate(problems):
        CP[j, : len(d)], DP[j, : len(d)] = C, d
    best_x, best_m, evals = (LO + HI) / 2, np.full(P, math.inf), 0

    def result() -> tuple[np.ndarray, np.ndarray, int, float]:
        return best_x.reshape(P, *shape), best_m, evals, time.perf_counter() - t0

    if k_max == 0:
        # no constraint at all: every point of a box is a counterexample
        best_m[:] = -math.inf
        return result()

    rng = np.random.default_rng(seed)
    R = max(1, int(restarts))
    owner = np.repeat(np.arange(P), R)  # the problem of each start
    B = len(owner)
    lo32, hi32 = LO[owner].astype(np.float32), HI[owner].astype(np.float32)
    width = hi32 - lo32
    C32 = CP[owner].astype(np.float32)
    D32 = np.minimum(DP[owner], 3e38).astype(np.float32)
    leak = np.asarray(leaks, dtype=np.float32)[np.arange(B) % R % len(leaks)]
    engine: Any = _NumpyChain.build(net) if device is None else None
    if engine is None:
        from netopt.torch_utils import resolve_device

        dev = resolve_device(device)
        engine = _TorchEngine(net, dev, C32, D32, leak)
        on_cpu = dev.type == "cpu"
    else:
        on_cpu = True

    def out_of_time() -> bool:
        return interrupted() or (time_limit is not None and time.perf_counter() - t0 > time_limit)

    def check64(X: np.ndarray, who: np.ndarray) -> bool:
        """Float64 margins of points ``X`` of problems ``who``; keep each problem's best; True
        once a counterexample holds (for ``stop_at_first``: any; else: every problem's)."""
        nonlocal evals
        X = np.clip(X.astype(np.float64), LO[who], HI[who])
        Y = net.forward(X.reshape(len(X), *shape)).reshape(len(X), -1)
        m = np.max(np.einsum("bko,bo->bk", CP[who], Y) - DP[who], axis=1)
        evals += len(X)
        for i in np.argsort(m):
            j = who[i]
            if m[i] < best_m[j]:
                best_m[j], best_x[j] = float(m[i]), X[i].copy()
        return bool(np.any(best_m <= 0.0)) if stop_at_first else bool(np.all(best_m <= 0.0))

    def per_problem_best(mv: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each problem's start of the smallest float32 margin ``mv`` (points, owners)."""
        order = np.lexsort((mv, owner))
        first = order[np.r_[0, np.nonzero(np.diff(owner[order]))[0] + 1]]
        return X[first], owner[first]

    def run() -> None:
        """The rounds; returns at a counterexample, the time limit or the last round."""
        nonlocal evals
        slot = np.arange(B) % R
        for r in range(max(1, rounds)):
            # per problem: its best point so far, then (first round) the centre and random
            # vertices, then uniform samples up to `restarts`
            X0 = LO[owner] + rng.uniform(size=(B, n)) * (HI - LO)[owner]
            if r == 0:
                X0[slot == 0] = (LO + HI) / 2
                vert = (slot >= 1) & (slot <= R // 4)
                bits = rng.integers(0, 2, size=(int(vert.sum()), n)).astype(bool)
                X0[vert] = np.where(bits, HI[owner[vert]], LO[owner[vert]])
            else:
                again = (slot == 0) & np.isfinite(best_m)[owner]
                X0[again] = best_x[owner[again]]
            if check64(X0, owner):
                return
            x = X0.astype(np.float32)
            for t in range(steps):
                if out_of_time():
                    return
                m, g = engine(x, C32, D32, leak)
                evals += B
                hit = np.nonzero(m <= 0.0)[0]
                # float32 says a counterexample: the float64 interpreter decides at once
                hit = hit[np.argsort(m[hit])[:16]]
                if len(hit) and check64(x[hit], owner[hit]):
                    return
                if (t + 1) % 10 == 0 and check64(*per_problem_best(m, x)):
                    return
                eta = step0 * 0.5 * (1 + math.cos(math.pi * t / steps))
                x = np.clip(x - (eta * width) * np.sign(g), lo32, hi32)
            if out_of_time():
                return
            # every problem's final best in float64 before the next round restarts from it
            m, _ = engine(x, C32, D32, leak, grad=False)
            evals += B
            if check64(*per_problem_best(m, x)):
                return

    with _few_threads(isinstance(engine, _TorchEngine), on_cpu and B * n <= _ONE_THREAD_ENTRIES):
        run()
    return result()
