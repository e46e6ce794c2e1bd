"""Input splitting's float32 bounds: numpy's engine against torch's, with and without dead units.

:class:`netopt.bounds.chain_numpy.NumpyChainCrown` computes
:meth:`netopt.bounds.batched.ChainBounds.crown_rows` (CROWN with every activation's bounds by
back-substitution) in numpy, so that input splitting needs no torch on a CPU; both skip, when
given ``dead``, the units a superset of each box bounds as inactive (a box's parent, in the
search). This times ``crown_rows`` on random sub-boxes (a sixteenth of the width) of ACAS Xu
prop 6's first box on the 1_1 network, the parents twice as wide, for torch float32 (the
baseline), numpy float32, and both with the parents' dead units, in alternation; it prints the
median times, the boxes per second, the ratios to the baseline, and the largest difference of
the bounds from torch's (float32 rounding only).

    python benchmarks/perf/numpy_engine.py [--boxes 1536] [--reps 9]
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
from netopt.bounds.batched import ChainBounds
from netopt.bounds.chain_numpy import NumpyChainCrown

ACAS = Path(__file__).resolve().parents[3] / "shared" / "nets" / "acasxu"
# ACAS Xu prop 6's first input box, and its four rows y_i - y_0 >= 0 as C y - d <= 0 (to bound)
LO = np.array([-0.129289109, 0.11140846, -0.499999896, -0.5, -0.5])
HI = np.array([0.700434925, 0.499999896, -0.499204121, 0.5, 0.5])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=1536)
    ap.add_argument("--reps", type=int, default=9)
    a = ap.parse_args()
    net = netopt.load(ACAS / "ACASXU_run2a_1_1_batch_2000.onnx")
    rng = np.random.default_rng(0)
    w = (HI - LO) / 16
    c = rng.uniform(LO + 2 * w, HI - 2 * w, size=(a.boxes, 5))
    lo = c - w * rng.uniform(0.2, 1, (a.boxes, 5))
    hi = c + w * rng.uniform(0.2, 1, (a.boxes, 5))
    C = np.zeros((4, 5))
    C[np.arange(4), np.arange(1, 5)] = 1
    C[:, 0] = -1
    d = np.zeros(4)
    tb, nb = ChainBounds(net.graph, device="cpu"), NumpyChainCrown(net.graph)
    _, _, parent = tb.crown_rows(c - 2 * w, c + 2 * w, C, d, with_pre=True)
    dead = parent[:, 1] <= 0
    runs = {
        "torch": lambda: tb.crown_rows(lo, hi, C, d, with_pre=True),
        "numpy": lambda: nb.crown_rows(lo, hi, C, d, with_pre=True),
        "torch, dead skipped": lambda: tb.crown_rows(lo, hi, C, d, with_pre=True, dead=dead),
        "numpy, dead skipped": lambda: nb.crown_rows(lo, hi, C, d, with_pre=True, dead=dead),
    }
    ref = runs["torch"]()[0]
    times: dict[str, list[float]] = {k: [] for k in runs}
    diff = {k: float(np.abs(f()[0] - ref).max()) for k, f in runs.items()}
    for _ in range(a.reps):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads), numpy {np.__version__}, load {os.getloadavg()[0]:.1f}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"{a.boxes} boxes, {dead.mean():.0%} of the units dead on their parents")
    base = statistics.median(times["torch"])
    print(f"{'engine':<22}{'median ms':>10}{'boxes/s':>10}{'ratio':>8}{'max diff':>11}")
    for k, ts in times.items():
        m = statistics.median(ts)
        print(f"{k:<22}{m * 1e3:>10.1f}{a.boxes / m:>10.0f}{base / m:>8.2f}{diff[k]:>11.2e}")


if __name__ == "__main__":
    main()
