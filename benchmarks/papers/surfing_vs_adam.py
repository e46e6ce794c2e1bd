r"""Surfing vs regular Adam on a small trained generator (Song, Fan & Lafferty 2019, Table 1 setting).

A ReLU decoder :math:`G: \mathbb{R}^k \to \mathbb{R}^{64}` is trained on scikit-learn's 8x8 digits
(:func:`netopt.instances.digits_generator.train_generator_with_checkpoints`, seeded), saving 40
checkpoints :math:`\theta_0` (random init) ... :math:`\theta_{39}` (trained, log-spaced in training
steps) to a temporary folder. For each trial, :math:`z^* \sim N(0, I)`,
:math:`y = G_{\theta_T}(z^*)`, and :math:`z_0 \sim N(0, I)`; both methods start from the same
:math:`z_0` and get the same total number of Adam steps (lr 0.01, default betas):

* surfing: ``K`` steps on each of the 40 networks, warm-started stage to stage (40 K in all);
* regular Adam: 40 K steps on :math:`G_{\theta_T}` only.

Success is :math:`\|\hat z - z^*\|_2 < 0.01` (the paper's criterion); the table also gives the
share with :math:`\|G_{\theta_T}(\hat z) - y\|_2 < 0.01`, recomputed in float64 by netopt's
reference interpreter. Prints a table and writes ``benchmarks/figures/surfing_vs_adam.png``.

Run: ``python benchmarks/papers/surfing_vs_adam.py`` (about 1.5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import netopt
from netopt.formulations.surfing import surf_batch
from netopt.instances.digits_generator import train_generator_with_checkpoints
from netopt.network import check_same_architecture

torch.set_num_threads(1)  # small batches: threads only contend

HERE = Path(__file__).resolve().parent
TRIALS = 300  # as in the paper's Table 1
N_CKPT = 40
LATENTS = (5, 10)
K_PER_STAGE = (25, 100, 250)  # total budgets 1000, 4000 and 10000 Adam steps
LR = 0.01


def run_setting(paths: list[Path], k: int, rng: np.random.Generator) -> list[dict]:
    nets = [netopt.load(p) for p in paths]
    check_same_architecture(nets)
    mods = [n.torch_module(dtype=torch.float32, device="cpu") for n in nets]
    last = nets[-1]
    z_star = rng.standard_normal((TRIALS, k))
    z0 = rng.standard_normal((TRIALS, k))
    y = last.forward(z_star)
    yt, z0t = torch.tensor(y, dtype=torch.float32), torch.tensor(z0, dtype=torch.float32)
    rows = []
    for K in K_PER_STAGE:
        total = K * len(mods)
        for method, ms, steps in (
            ("surfing", mods, [K] * len(mods)),
            ("regular Adam", mods[-1:], [total]),
        ):
            t = time.perf_counter()
            z, _ = surf_batch(ms, yt, z0t, steps, lr=LR, record=False)
            secs = time.perf_counter() - t
            zh = z.numpy().astype(np.float64)
            dz = np.linalg.norm(zh - z_star, axis=1)
            dy = np.linalg.norm(last.forward(zh) - y, axis=1)  # float64 re-check
            rows.append(
                dict(
                    k=k,
                    budget=total,
                    method=method,
                    succ_z=100 * np.mean(dz < 0.01),
                    succ_y=100 * np.mean(dy < 0.01),
                    median_dz=float(np.median(dz)),
                    secs=secs,
                    dz=dz,
                )
            )
    return rows


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in LATENTS:
            t = time.perf_counter()
            paths = train_generator_with_checkpoints(
                Path(tmp) / f"k{k}", latent=k, hidden=128, epochs=60, seed=0, n_checkpoints=N_CKPT
            )
            print(
                f"k={k}: trained the decoder, {len(paths)} checkpoints, {time.perf_counter() - t:.1f} s"
            )
            rows += run_setting(paths, k, rng)

    print(
        f"\n{TRIALS} trials per row; z*, z0 ~ N(0, I); Adam lr {LR}; surfing = budget/{N_CKPT} "
        "steps on each checkpoint\n"
    )
    head = f"{'k':>3} {'budget':>7} {'method':<13} {'||z-z*||<0.01':>14} {'||G(z)-y||<0.01':>16} {'median ||z-z*||':>16} {'time s':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['k']:>3} {r['budget']:>7} {r['method']:<13} {r['succ_z']:>13.0f}% "
            f"{r['succ_y']:>15.0f}% {r['median_dz']:>16.2e} {r['secs']:>7.1f}"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LATENTS), figsize=(5 * len(LATENTS), 3.6), squeeze=False)
    bins = np.linspace(-8, 1, 37)
    big = max(r["budget"] for r in rows)
    for ax, k in zip(axes[0], LATENTS, strict=True):
        for r, c in zip(
            [r for r in rows if r["k"] == k and r["budget"] == big], ("C3", "C0"), strict=True
        ):
            ax.hist(
                np.log10(np.maximum(r["dz"], 1e-8)),
                bins=bins,
                alpha=0.6,
                color=c,
                label=f"{r['method']} ({r['succ_z']:.0f}% < 0.01)",
            )
        ax.axvline(-2, color="k", ls="--", lw=1)
        ax.set_xlabel(r"$\log_{10}\|\hat z - z^*\|$")
        ax.set_ylabel("trials")
        ax.set_title(f"digits decoder, k = {k}, {big} Adam steps")
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = HERE.parent / "figures" / "surfing_vs_adam.png"
    fig.savefig(out, dpi=120)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
