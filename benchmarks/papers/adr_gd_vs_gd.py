"""ADR-GD vs gradient descent on random ReLU nets (Yu & Gao, ICML 2024), the authors' setting.

Random nets with weights and biases of magnitude U[0, 1] and a random sign; maximize the scalar
output over x in [-1, 1]^n from x = 0, T = 3000 steps, the authors' hyper-parameters
(``netopt.formulations.adr_gd.DEFAULTS`` for the small 10-64-64-1 net, ``LARGE_NET`` for 128-500-500-500-1).
GD is their baseline: normalized, projected steps with the same T and step size; their notebooks
report its *final* iterate, ADR-GD its best iterate by the true network. We print both for GD.
On the small nets the exact MILP (``OutputObjective.solve``, warm-started by the better of the two
points) gives its incumbent and a proven upper bound; the incumbent is the certified optimum
only where the status says ``optimal``.

Our random nets are not the authors' (their seeds and initialization code are not reproduced),
so their numbers (small net: GD 19.96 vs ADR 24.84; large net: GD 31236.5 vs ADR 34681.1) sit
beside ours for scale, not for a row-by-row match.

Writes ``benchmarks/figures/adr_gd_vs_gd.png`` (best true objective vs iteration) and prints the
table. Usage: ``python benchmarks/papers/adr_gd_vs_gd.py [--seeds 5] [--no-large] [--milp-time 20]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import netopt
from netopt.instances._onnx import mlp_onnx

AUTHORS = {"small": (19.96, 24.84), "large": (31236.5, 34681.1)}
SIZES = {"small": [10, 64, 64, 1], "large": [128, 500, 500, 500, 1]}


def random_net(sizes: list[int], seed: int) -> netopt.Network:
    """|w|, |b| ~ U[0, 1] with a random sign (p = 0.5), written to ONNX in float64."""
    rng = np.random.default_rng(seed)
    Ws = [
        rng.uniform(0, 1, (o, i)) * rng.choice([-1, 1], (o, i))
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    bs = [rng.uniform(0, 1, o) * rng.choice([-1, 1], o) for o in sizes[1:]]
    acts = ["relu"] * (len(sizes) - 2) + [None]
    return netopt.load(mlp_onnx(Ws, bs, acts, dtype=np.float64, name=f"rand{seed}"))


def run(kind: str, seed: int, milp_time: float) -> dict:
    from netopt.formulations.adr_gd import LARGE_NET, solve_adr, solve_gd_baseline

    net = random_net(SIZES[kind], seed)
    p = netopt.OutputObjective(net, [1.0], sense="max", box=(-1.0, 1.0))
    cfg = LARGE_NET if kind == "large" else {}
    t = time.perf_counter()
    adr = solve_adr(p, steps=3000, seed=seed, **cfg)
    t_adr = time.perf_counter() - t
    t = time.perf_counter()
    gd = solve_gd_baseline(p, steps=3000)
    t_gd = time.perf_counter() - t
    row = {
        "kind": kind,
        "seed": seed,
        "gd_final": gd.extra["gd"]["final"][0],
        "gd_best": gd.objective,
        "adr": adr.objective,
        "t_adr": t_adr,
        "t_gd": t_gd,
        "adr_curve": adr.extra["adr"]["best"],
        "gd_curve": np.maximum.accumulate(gd.extra["gd"]["true"][:, 0]),
        "perturbations": adr.extra["adr"]["perturbations"],
        "milp": None,
        "milp_bound": None,
        "milp_status": "-",
    }
    if kind == "small" and milp_time > 0:
        # the exact optimum, warm-started by the better heuristic point
        start = adr.x if adr.objective >= gd.objective else gd.x
        ex = p.solve("milp", time_limit=milp_time, start=start)
        row.update(milp=ex.objective, milp_bound=ex.bound, milp_status=str(ex.status))
    return row


def main() -> None:
    import torch

    torch.set_num_threads(1)  # small nets: threads cost more than they give
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--no-large", action="store_true")
    ap.add_argument("--milp-time", type=float, default=20.0)
    a = ap.parse_args()
    rows = [run("small", s, a.milp_time) for s in range(a.seeds)]
    if not a.no_large:
        rows.append(run("large", 0, 0.0))

    head = (
        f"{'net':<22} {'seed':>4} {'GD final':>10} {'GD best':>10} {'ADR-GD':>10} "
        f"{'MILP inc':>10} {'MILP bnd':>10} {'status':>9} {'t ADR s':>7} {'t GD s':>6}"
    )
    print(head)
    print("-" * len(head))
    f = lambda v: f"{'-':>10}" if v is None else f"{v:10.2f}"  # noqa: E731
    for r in rows:
        name = "-".join(map(str, SIZES[r["kind"]]))
        print(
            f"{name:<22} {r['seed']:>4} {f(r['gd_final'])} {f(r['gd_best'])} {f(r['adr'])} "
            f"{f(r['milp'])} {f(r['milp_bound'])} {r['milp_status']:>9} "
            f"{r['t_adr']:7.1f} {r['t_gd']:6.1f}"
        )
    for kind, (g, d) in AUTHORS.items():
        print(f"{'authors ' + kind:<22} {'':>4} {g:10.2f} {'':>10} {d:10.2f}   (their notebook)")
    small = [r for r in rows if r["kind"] == "small"]
    wins = sum(r["adr"] > r["gd_final"] + 1e-9 for r in small)
    wins_b = sum(r["adr"] > r["gd_best"] + 1e-9 for r in small)
    print(
        f"\nsmall nets: ADR-GD > GD final on {wins}/{len(small)}, > GD best-iterate on "
        f"{wins_b}/{len(small)}; mean ADR/GD-final ratio "
        f"{np.mean([r['adr'] / r['gd_final'] for r in small]):.3f} "
        f"(authors: {AUTHORS['small'][1] / AUTHORS['small'][0]:.3f})"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["kind"] for r in rows}, key=["small", "large"].index)
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for i, r in enumerate(x for x in rows if x["kind"] == kind):
            c = f"C{i}"
            ax.plot(r["adr_curve"], color=c, label=f"ADR-GD seed {r['seed']}")
            ax.plot(r["gd_curve"], color=c, ls="--", label=f"GD seed {r['seed']}")
            if r["milp"] is not None:
                ax.axhline(r["milp"], color=c, ls=":", lw=0.8)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("iteration")
        ax.set_ylabel("best true objective so far (max f(x))")
        ax.set_title(f"{'-'.join(map(str, SIZES[kind]))} (dotted: MILP incumbent)")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "figures" / "adr_gd_vs_gd.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
