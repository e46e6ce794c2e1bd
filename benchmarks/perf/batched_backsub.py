"""The batched engine's back-substitution against the form it replaced, same boxes, same run.

``ChainBounds._substitute`` (every CROWN, alpha-CROWN and intermediate-bound pass of the torch
engine goes through it) now takes a ReLU layer in two passes over the coefficients,
``lo_s * Lam + (up_s - lo_s) * min(Lam, 0)``, and the next layer's bias as the last column of
its weight product; the form before split ``Lam`` into its positive and negative parts and
multiplied each (four passes) and made a second product for the bias. This times
:meth:`ChainBounds.pre_bounds` (the intermediate bounds of every layer: input splitting's main
cost on ACAS Xu) and :meth:`ChainBounds.crown_rows` on random sub-boxes of an ACAS Xu network's
property box, with the engine as it is and with the former ``_substitute`` put back, in
alternation; it prints the median times, their ratio, and the largest difference of the bounds
(float32 rounding only).

    python benchmarks/perf/batched_backsub.py [--boxes 768] [--reps 15] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import netopt
from netopt.bounds.batched import ChainBounds, _dot

NET = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "nets"
    / "acasxu"
    / "ACASXU_run2a_1_1_batch_2000.onnx"
)


def former_substitute(self, Lam, const, top, lo, hi, lines, shift=None, keep=False):
    """``ChainBounds._substitute`` as it was (positive and negative parts, two products)."""
    lams = [None] * top
    for j in range(top - 1, -1, -1):
        if keep:
            lams[j] = Lam
        lo_s, lo_b, up_s, up_b = lines[j]
        pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
        const = const + _dot(neg, up_b)
        if lo_b is not None:
            const = const + _dot(pos, lo_b)
        Lam = pos * lo_s[:, None, :] + neg * up_s[:, None, :]
        if shift is not None and shift[j] is not None:
            Lam = Lam - shift[j]
        const = const + torch.einsum("bkn,n->bk", Lam, self.b[j])
        Lam = torch.einsum("bkn,nm->bkm", Lam, self.W[j])
    pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
    bound = const + _dot(pos, lo) + _dot(neg, hi)
    return (bound, lams, Lam) if keep else bound


def _boxes(n: int, depth: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sub-boxes of ACAS Xu prop 2's input box, each halved ``depth`` times at random."""
    lo0 = np.array([0.6, -0.5, -0.5, 0.45, -0.5])
    hi0 = np.array([0.679857769, 0.5, 0.5, 0.5, -0.45])
    lo, hi = np.repeat(lo0[None], n, 0), np.repeat(hi0[None], n, 0)
    ar = np.arange(n)
    for _ in range(depth):
        j = rng.integers(0, 5, n)
        mid = (lo[ar, j] + hi[ar, j]) / 2
        up = rng.random(n) < 0.5
        lo[ar, j] = np.where(up, mid, lo[ar, j])
        hi[ar, j] = np.where(up, hi[ar, j], mid)
    return lo, hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=768)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), device {a.device}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    cb = ChainBounds(netopt.load(NET).graph, device=a.device)
    now = ChainBounds._substitute
    C = np.zeros((4, 5))
    C[np.arange(4), np.arange(1, 5)] = 1.0
    C[:, 0] = -1.0  # prop 2's rows y_j - y_0 (a counterexample has y_0 the largest)
    d = np.zeros(4)
    rng = np.random.default_rng(0)
    print(f"{'depth':>5} {'what':12s} {'former ms':>10} {'now ms':>8} {'ratio':>6} {'max diff':>9}")
    for depth in (4, 8, 12):
        lo, hi = _boxes(a.boxes, depth, rng)
        lo_t, hi_t = cb._t(lo), cb._t(hi)
        jobs = {
            "pre_bounds": lambda lo_t=lo_t, hi_t=hi_t: cb.pre_bounds(lo_t, hi_t)[0][-1][0],
            "crown_rows": lambda lo=lo, hi=hi: torch.as_tensor(cb.crown_rows(lo, hi, C, d)[0]),
        }
        for what, job in jobs.items():
            times: dict[str, list[float]] = {"former": [], "now": []}
            out = {}
            for _ in range(a.reps):
                for name, impl in (("former", former_substitute), ("now", now)):
                    ChainBounds._substitute = impl
                    t = time.perf_counter()
                    out[name] = job()
                    if a.device == "cuda":
                        torch.cuda.synchronize()
                    times[name].append(time.perf_counter() - t)
            ChainBounds._substitute = now
            f, n = statistics.median(times["former"]), statistics.median(times["now"])
            diff = float((out["former"] - out["now"]).abs().max())
            print(f"{depth:>5} {what:12s} {1e3 * f:10.1f} {1e3 * n:8.1f} {f / n:6.2f} {diff:9.2e}")


if __name__ == "__main__":
    main()
