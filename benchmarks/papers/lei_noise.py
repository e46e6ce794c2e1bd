"""Lei et al. (NeurIPS 2019), Fig. 1a/b: recovery error vs noise; and warm vs fresh LP re-solves.

    python benchmarks/papers/lei_noise.py [--nets 20] [--levels 1e-6,...,1e-1] [--quick] [--seed 0]
                                   [--warm-nets 5]

Part 1 (Fig. 1a/b). 2-layer nets 20-100-500, W_i ~ N(0, 1)/sqrt(n_out), no biases, ReLU after
both layers, z* ~ N(0, I); x = G(z*) + e with e ~ U(-a, a) (uniform) or N(0, a^2) (Gaussian), a
in ``--levels``; a new net and latent for every run. Methods: the l_inf LP (Algorithm 1) and the
l_1 LP (Algorithm 2), both started at eps0 = a (the authors' code passes the noise level), alpha
1.2; Adam on 0.5 ||G(z) - x||^2, lr 0.01, z0 ~ N(0, I), read after 1000 and 6000 steps (torch,
CPU, float64, one thread). Reported: the median over the nets of ||z - z*|| / ||z*||.

Part 2. The same l_inf and relaxation-(8) inversions with one persistent HiGHS model per layer,
re-solved from its basis as eps grows (``warm=True``), against a fresh HiGHS model per LP
(``warm=False``), from eps0 = 1e-6 so that eps grows over many LPs; the results must be
identical. Reported: total LP solve seconds of each and the ratio fresh / warm.

Prints markdown tables and writes ``benchmarks/figures/lei_noise.png`` and ``lei_noise.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

FIG = Path(__file__).resolve().parents[1] / "figures"
SIZES = (20, 100, 500)


def instance(kind: str, a: float, i: int, seed: int):
    rng = np.random.default_rng([seed, 0 if kind == "uniform" else 1, int(round(-np.log10(a))), i])
    W1 = rng.normal(size=(SIZES[1], SIZES[0])) / np.sqrt(SIZES[1])
    W2 = rng.normal(size=(SIZES[2], SIZES[1])) / np.sqrt(SIZES[2])
    z = rng.normal(size=SIZES[0])
    y = np.maximum(W2 @ np.maximum(W1 @ z, 0), 0)
    e = rng.uniform(-a, a, y.shape) if kind == "uniform" else rng.normal(0, a, y.shape)
    return W1, W2, z, y + e, float(np.linalg.norm(e) / np.linalg.norm(y))


def load_net(W1, W2):
    import netopt
    from netopt.instances._onnx import mlp_onnx

    return netopt.load(mlp_onnx([W1, W2], [None, None], ["relu", "relu"], dtype=np.float64))


def adam(insts, budgets, lr, seed) -> dict[int, np.ndarray]:
    """Adam on all instances at once (Adam is per coordinate: batching changes nothing)."""
    import torch

    torch.set_num_threads(1)
    dt = torch.float64
    W1 = torch.tensor(np.stack([t[0] for t in insts]), dtype=dt)
    W2 = torch.tensor(np.stack([t[1] for t in insts]), dtype=dt)
    zs = np.stack([t[2] for t in insts])
    X = torch.tensor(np.stack([t[3] for t in insts]), dtype=dt)
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(len(insts), SIZES[0], generator=g, dtype=dt).requires_grad_(True)
    opt = torch.optim.Adam([Z], lr=lr)
    out = {}
    for step in range(1, max(budgets) + 1):
        opt.zero_grad()
        y = torch.relu(
            torch.einsum("nij,nj->ni", W2, torch.relu(torch.einsum("nij,nj->ni", W1, Z)))
        )
        (0.5 * ((y - X) ** 2).sum()).backward()
        opt.step()
        if step in budgets:
            zz = Z.detach().numpy()
            out[step] = np.linalg.norm(zz - zs, axis=1) / np.linalg.norm(zs, axis=1)
    return out


def part1(levels, nets, seed, budgets, lr):
    from netopt.formulations.layerwise_lp import invert_layerwise

    keys = [(kind, a) for kind in ("uniform", "gaussian") for a in levels]
    errs: dict[str, dict] = {m: {} for m in ("linf", "l1")}
    rel_noise: dict = {}
    all_insts = []
    t0 = time.perf_counter()
    for kind, a in keys:
        insts = [instance(kind, a, i, seed) for i in range(nets)]
        all_insts += insts
        rel_noise[(kind, a)] = float(np.median([t[4] for t in insts]))
        for m in errs:
            e = []
            for W1, W2, z, x, _ in insts:
                res = invert_layerwise(load_net(W1, W2), x, method=m, eps0=a, alpha=1.2)
                e.append(
                    np.linalg.norm(res.x - z) / np.linalg.norm(z) if res.x is not None else np.inf
                )
            errs[m][(kind, a)] = np.array(e)
        print(
            f"{kind} {a:g}: "
            + ", ".join(f"{m} {np.median(errs[m][(kind, a)]):.2e}" for m in errs)
            + f" ({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    t_adam = time.perf_counter()
    ad = adam(all_insts, budgets, lr, seed)
    print(f"adam: {time.perf_counter() - t_adam:.0f} s", file=sys.stderr, flush=True)
    for b, e in ad.items():
        errs[f"adam{b}"] = {key: e[j * nets : (j + 1) * nets] for j, key in enumerate(keys)}
    return keys, errs, rel_noise


def part2(n_nets, seed, levels=(1e-3, 1e-2, 1e-1)):
    from netopt.formulations.layerwise_lp import invert_layerwise

    rows = []
    for m in ("linf", "relax"):
        tot = {True: 0.0, False: 0.0}
        lps = 0
        same = True
        for a in levels:
            for i in range(n_nets):
                W1, W2, z, x, _ = instance("uniform", a, 1000 + i, seed)
                net = load_net(W1, W2)
                r = {}
                for warm in (True, False):
                    res = invert_layerwise(net, x, method=m, eps0=1e-6, warm=warm)
                    tot[warm] += res.timings["solve"]
                    r[warm] = res
                lps += r[True].extra["layerwise"]["lps"]
                same &= r[True].extra["layerwise"]["lps"] == r[False].extra["layerwise"]["lps"]
                same &= bool(np.allclose(r[True].x, r[False].x, atol=1e-6))
        rows.append(
            {
                "method": m,
                "runs": n_nets * len(levels),
                "lps": lps,
                "warm_s": tot[True],
                "fresh_s": tot[False],
                "ratio": tot[False] / tot[True],
                "identical": bool(same),
            }
        )
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=20)
    ap.add_argument("--levels", default="1e-6,1e-5,1e-4,1e-3,1e-2,1e-1")
    ap.add_argument("--adam-steps", default="1000,6000")
    ap.add_argument("--adam-lr", type=float, default=0.01)
    ap.add_argument("--warm-nets", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="3 nets, levels 1e-5,1e-3,1e-1")
    ap.add_argument("--tag", default="lei_noise")
    a = ap.parse_args(argv)
    levels = [float(s) for s in a.levels.split(",")]
    nets, wn = a.nets, a.warm_nets
    if a.quick:
        levels, nets, wn = [1e-5, 1e-3, 1e-1], 3, 1
    budgets = sorted(int(s) for s in a.adam_steps.split(","))
    t0 = time.perf_counter()
    keys, errs, rel_noise = part1(levels, nets, a.seed, budgets, a.adam_lr)
    t1 = time.perf_counter()
    warm = part2(wn, a.seed) if wn > 0 else []
    t2 = time.perf_counter()
    label = {"linf": "l_inf LP", "l1": "l_1 LP"}
    label.update({f"adam{b}": f"Adam {b}" for b in budgets})
    print(
        f"Median relative recovery error ||z - z*|| / ||z*||, 20-100-500 ReLU nets, {nets} nets "
        f"per level, {platform.machine()}, Python {platform.python_version()}; part 1 "
        f"{t1 - t0:.0f} s.\n"
    )
    for kind in ("uniform", "gaussian"):
        print(f"**{kind} noise**\n")
        print("| a | median ||e||/||x|| | " + " | ".join(label[m] for m in errs) + " |")
        print("| --- " * (len(errs) + 2) + "|")
        for a_ in levels:
            print(
                f"| {a_:g} | {rel_noise[(kind, a_)]:.1e} | "
                + " | ".join(f"{np.median(errs[m][(kind, a_)]):.2e}" for m in errs)
                + " |"
            )
        print()
    if warm:
        print(f"**Persistent warm HiGHS model vs a fresh build per LP** ({t2 - t1:.0f} s)\n")
        print(
            "| method | runs | LPs | warm solve s | fresh solve s | fresh / warm | same results |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in warm:
            print(
                f"| {r['method']} | {r['runs']} | {r['lps']} | {r['warm_s']:.2f} | "
                f"{r['fresh_s']:.2f} | {r['ratio']:.2f} | {r['identical']} |"
            )
    FIG.mkdir(parents=True, exist_ok=True)
    (FIG / f"{a.tag}.json").write_text(
        json.dumps(
            {
                "args": vars(a),
                "errors": {
                    m: {f"{k}:{lv:g}": v.tolist() for (k, lv), v in errs[m].items()} for m in errs
                },
                "relative_noise": {f"{k}:{lv:g}": v for (k, lv), v in rel_noise.items()},
                "warm": warm,
            },
            indent=1,
        )
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: no figure (pip install matplotlib)", file=sys.stderr)
        return
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, kind in zip(axs, ("uniform", "gaussian"), strict=True):
        for j, m in enumerate(errs):
            med = [np.median(errs[m][(kind, lv)]) for lv in levels]
            for lv in levels:  # every run as a dot, like the paper
                e = errs[m][(kind, lv)]
                ax.scatter(
                    np.full(len(e), lv) * (1 + 0.08 * (j - 1.5)),
                    np.maximum(e, 1e-12),
                    s=4,
                    alpha=0.3,
                    color=f"C{j}",
                )
            ax.plot(levels, med, "o-", color=f"C{j}", label=label[m], ms=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"noise level a ({'U(-a, a)' if kind == 'uniform' else 'N(0, a^2)'})")
        ax.set_title(f"({'a' if kind == 'uniform' else 'b'}) {kind} noise, 20-100-500", fontsize=9)
    axs[0].set_ylabel("relative recovery error")
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIG / f"{a.tag}.png", dpi=120)
    print(f"\nwrote {FIG / (a.tag + '.png')} and {a.tag}.json", file=sys.stderr)


if __name__ == "__main__":
    main()
