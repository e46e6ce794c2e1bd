"""How far exact certification reaches on Lei et al.'s noisy k-250-600 inversions.

    python benchmarks/compare/lei_certify.py [--ks 10,20,30,40] [--nets 2] [--noise 1e-9,1e-3]
                                             [--time-limit 60] [--methods auto,milp]

The nets and observations of ``benchmarks/papers/lei_fig2.py`` (``G(z) = relu(W2 relu(W1 z))``,
k-250-600, ``W_i ~ N(0, 1)/sqrt(n_out)``, no biases, ``z* ~ N(0, I)``), the observation
``x = G(z*) + U(-a, a)`` for each noise level ``a``; the problem is the l1 inversion
``min_z ||G(z) - x||_1`` over the box ``[-5, 5]^k``. ``auto`` is ``prob.solve()`` (the default
method), ``milp`` the big-M MILP alone on HiGHS (the baseline), both one thread, relative gap
1e-6 and HiGHS's absolute gap 1e-6. A run counts as certified when its status is "optimal"
(the solver's own status, its point re-evaluated in float64). Prints one line per run and, per
k and noise, the certified count and the median time of each method, and the ratio of their
times where both certify. Where the noise is so small that the optimum is below the absolute
gap (``a = 1e-9``: 600 outputs, optimum about 1e-7), "optimal" means a point within 1e-6 of 0
was found and any valid bound closes the gap; the larger noise needs a real lower bound.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "papers"))


def observation(k: int, i: int, noise: float, seed: int = 0):
    """Net i of latent size k (lei_fig2's, the same weights and latent) and its observation with
    uniform noise of half-width ``noise`` (its own stream, so each level is reproducible)."""
    from lei_fig2 import instance

    W1, W2, z, _ = instance(k, i, seed)
    clean = np.maximum(W2 @ np.maximum(W1 @ z, 0), 0)
    rng = np.random.default_rng([seed, k, i, int(round(-np.log10(noise) * 10))])
    return W1, W2, z, clean + rng.uniform(-noise, noise, clean.shape)


def run(net, x: np.ndarray, method: str, tl: float) -> dict:
    from netopt.problems import Inversion

    prob = Inversion(net, x, norm=1, box=(-5.0, 5.0))
    t0 = time.perf_counter()
    if method == "milp":
        res = prob.solve("milp", time_limit=tl, threads=1)
    else:
        res = prob.solve(time_limit=tl, threads=1)
    return {
        "status": str(res.status),
        "objective": res.objective,
        "bound": res.bound,
        "seconds": time.perf_counter() - t0,
        "plan": res.extra.get("auto"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="10,20,30,40")
    ap.add_argument("--nets", type=int, default=2)
    ap.add_argument("--noise", default="1e-9,1e-3")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--methods", default="auto,milp", help="comma-separated: auto, milp")
    a = ap.parse_args()
    from lei_fig2 import load_net

    ks = [int(k) for k in a.ks.split(",")]
    levels = [float(s) for s in a.noise.split(",")]
    methods = [m for m in a.methods.split(",") if m]
    bad = [m for m in methods if m not in ("auto", "milp")]
    if bad:
        ap.error(f"--methods: unknown {bad}; choose among auto, milp")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"time limit {a.time_limit:g} s, one thread",
        flush=True,
    )
    summary = []
    for noise in levels:
        for k in ks:
            rows: dict[str, list] = {m: [] for m in methods}
            for i in range(a.nets):
                W1, W2, _, x = observation(k, i, noise)
                net = load_net(W1, W2)
                for m in methods:
                    r = run(net, x, m, a.time_limit)
                    rows[m].append(r)
                    b = "-" if r["bound"] is None else f"{r['bound']:.4g}"
                    o = "-" if r["objective"] is None else f"{r['objective']:.4g}"
                    plan = f"  plan {r['plan']}" if r["plan"] else ""
                    print(
                        f"noise {noise:g} k {k:3d} net {i} {m:<4} {r['status']:<10} obj {o:<11} "
                        f"bound {b:<11} {r['seconds']:6.1f} s{plan}",
                        flush=True,
                    )
            line = f"noise {noise:g} k {k}: "
            for m in methods:
                ok = [r["seconds"] for r in rows[m] if r["status"] == "optimal"]
                med = f", median {np.median(ok):.1f} s" if ok else ""
                line += f"{m} {len(ok)}/{a.nets} certified{med}; "
            if len(methods) == 2:
                both = [
                    rows[methods[1]][i]["seconds"] / rows[methods[0]][i]["seconds"]
                    for i in range(a.nets)
                    if all(rows[m][i]["status"] == "optimal" for m in methods)
                ]
                if both:
                    line += f"{methods[1]} / {methods[0]} time {np.median(both):.2f}x"
            summary.append(line)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
