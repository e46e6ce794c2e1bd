"""Lei et al. (NeurIPS 2019), Fig. 2: success rate of inversion vs latent dimension k.

    python benchmarks/papers/lei_fig2.py [--nets 50] [--ks 10,20,...,150] [--adam-nets 50]
                                  [--adam-steps 1000,6000] [--milp-ks 10,20] [--milp-nets 3]
                                  [--milp-time 60] [--quick] [--seed 0]

Setting (the paper's §5.1 and the authors' ``choose_k``): 2-layer nets k-250-600, W_i ~ N(0, 1)/
sqrt(n_out), no biases, ReLU after both layers, latent z* ~ N(0, I), observation
x = G(z*) + U(-1e-9, 1e-9). A run succeeds when ||z - z*|| / ||z*|| <= 1e-3.

Methods, on the same nets and observations:

* ``linf`` LP: Algorithm 1 layer by layer (eps0 = 1e-9, alpha = 1.2, eps carried down), HiGHS;
* ``l1`` LP: Algorithm 2 layer by layer (same schedule);
* Adam on 0.5 ||G(z) - x||^2 (torch, CPU, float64, one thread), lr 0.01, z0 ~ N(0, I), for each
  iteration budget in ``--adam-steps`` (one trajectory, read at each budget);
* the exact big-M MILP (``Inversion(net, x, norm=1, box=(-5, 5)).solve("milp", time_limit=...)``) on
  ``--milp-nets`` nets of each k in ``--milp-ks``: ground truth where it proves optimality.

Prints a markdown table and writes ``benchmarks/figures/lei_fig2.png`` and ``lei_fig2.json``.
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
NOISE = 1e-9
THRESH = 1e-3


def instance(k: int, i: int, seed: int, hidden: int = 250, out: int = 600):
    """Net i of latent size k: weights, latent and observation (deterministic in (seed, k, i))."""
    rng = np.random.default_rng([seed, k, i])
    W1 = rng.normal(size=(hidden, k)) / np.sqrt(hidden)
    W2 = rng.normal(size=(out, hidden)) / np.sqrt(out)
    z = rng.normal(size=k)
    x = np.maximum(W2 @ np.maximum(W1 @ z, 0), 0) + rng.uniform(-NOISE, NOISE, out)
    return W1, W2, z, x


def load_net(W1: np.ndarray, W2: np.ndarray):
    import netopt
    from netopt.instances._onnx import mlp_onnx

    return netopt.load(mlp_onnx([W1, W2], [None, None], ["relu", "relu"], dtype=np.float64))


def run_lp(net, x: np.ndarray, z: np.ndarray, method: str) -> dict:
    from netopt.formulations.layerwise_lp import invert_layerwise

    t0 = time.perf_counter()
    res = invert_layerwise(net, x, method=method, eps0=NOISE, alpha=1.2)
    dt = time.perf_counter() - t0
    err = float(np.linalg.norm(res.x - z) / np.linalg.norm(z)) if res.x is not None else np.inf
    return {"err": err, "seconds": dt, "lps": res.extra["layerwise"]["lps"]}


def run_adam(insts: list, budgets: list[int], lr: float, seed: int, k: int) -> dict[int, list]:
    """Adam on every net of one k at once (Adam is per coordinate: batching changes nothing)."""
    import torch

    torch.set_num_threads(1)
    dt = torch.float64
    W1 = torch.tensor(np.stack([a[0] for a in insts]), dtype=dt)
    W2 = torch.tensor(np.stack([a[1] for a in insts]), dtype=dt)
    zs = np.stack([a[2] for a in insts])
    X = torch.tensor(np.stack([a[3] for a in insts]), dtype=dt)
    g = torch.Generator().manual_seed(seed * 1000 + k)
    Z = torch.randn(len(insts), W1.shape[2], generator=g, dtype=dt).requires_grad_(True)
    opt = torch.optim.Adam([Z], lr=lr)
    out: dict[int, list] = {}
    t0 = time.perf_counter()
    for step in range(1, max(budgets) + 1):
        opt.zero_grad()
        h = torch.relu(torch.einsum("nij,nj->ni", W1, Z))
        y = torch.relu(torch.einsum("nij,nj->ni", W2, h))
        loss = 0.5 * ((y - X) ** 2).sum()
        loss.backward()
        opt.step()
        if step in budgets:
            zz = Z.detach().numpy()
            err = np.linalg.norm(zz - zs, axis=1) / np.linalg.norm(zs, axis=1)
            out[step] = [
                {"err": float(e), "seconds": (time.perf_counter() - t0) / len(insts)} for e in err
            ]
    return out


def run_milp(net, x: np.ndarray, z: np.ndarray, time_limit: float) -> dict:
    import netopt

    t0 = time.perf_counter()
    res = netopt.Inversion(net, x, norm=1, box=(-5.0, 5.0)).solve(
        "milp", time_limit=time_limit, threads=1
    )
    err = float(np.linalg.norm(res.x - z) / np.linalg.norm(z)) if res.x is not None else np.inf
    return {
        "err": err,
        "seconds": time.perf_counter() - t0,
        "status": str(res.status),
        "objective": res.objective,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=50, help="nets per k for the LPs")
    ap.add_argument("--ks", default=",".join(str(k) for k in range(10, 151, 10)))
    ap.add_argument("--adam-nets", type=int, default=None, help="nets per k for Adam (= --nets)")
    ap.add_argument("--adam-steps", default="1000,6000")
    ap.add_argument("--adam-lr", type=float, default=0.01)
    ap.add_argument("--milp-ks", default="10,20")
    ap.add_argument("--milp-nets", type=int, default=3)
    ap.add_argument("--milp-time", type=float, default=60.0)
    ap.add_argument("--methods", default="linf,l1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="5 nets, k in 10,60,110,150, no MILP")
    ap.add_argument("--tag", default="lei_fig2", help="file stem of the figure and JSON")
    ap.add_argument(
        "--merge", default="", help="JSON files of earlier runs (comma-separated): report them"
    )
    a = ap.parse_args(argv)
    if a.merge:
        merge([Path(p) for p in a.merge.split(",")], a)
        return
    ks = [int(k) for k in a.ks.split(",")]
    nets = a.nets
    milp_ks = [int(k) for k in a.milp_ks.split(",")] if a.milp_ks and a.milp_nets > 0 else []
    if a.quick:
        ks, nets, milp_ks = [10, 60, 110, 150], 5, []
    adam_nets = nets if a.adam_nets is None else a.adam_nets
    budgets = sorted(int(s) for s in a.adam_steps.split(",") if s)
    methods = [m for m in a.methods.split(",") if m]
    rows: dict[str, dict[int, list]] = {m: {} for m in methods}
    rows.update({f"adam{b}": {} for b in budgets})
    rows["milp"] = {}
    t_start = time.perf_counter()
    for k in ks:
        insts = [instance(k, i, a.seed) for i in range(max(nets, adam_nets))]
        t_k = time.perf_counter()
        for m in methods:
            rows[m][k] = []
        for i in range(nets):
            W1, W2, z, x = insts[i]
            net = load_net(W1, W2)
            for m in methods:
                rows[m][k].append(run_lp(net, x, z, m))
            if k in milp_ks and i < a.milp_nets:
                rows["milp"].setdefault(k, []).append(run_milp(net, x, z, a.milp_time))
        if adam_nets and budgets:
            for b, r in run_adam(insts[:adam_nets], budgets, a.adam_lr, a.seed, k).items():
                rows[f"adam{b}"][k] = r
        print(
            f"k={k}: "
            + ", ".join(
                f"{m} {np.mean([r['err'] <= THRESH for r in rows[m][k]]):.2f}"
                for m in rows
                if k in rows[m]
            )
            + f" ({time.perf_counter() - t_k:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        save(rows, a, nets, adam_nets, time.perf_counter() - t_start)  # a killed run keeps its ks
    wall = time.perf_counter() - t_start
    report(rows, ks, a, nets, adam_nets, budgets, wall)


def merge(paths: list[Path], a: argparse.Namespace) -> None:
    """One table and figure from runs made separately (e.g. the LPs and Adam in two processes)."""
    rows: dict[str, dict[int, list]] = {}
    nets = adam_nets = 0
    wall = 0.0
    budgets: list[int] = []
    for p in paths:
        d = json.loads(p.read_text())
        for m, per_k in d["rows"].items():
            for k, v in per_k.items():
                rows.setdefault(m, {})[int(k)] = v
        nets, adam_nets = max(nets, d["nets"]), max(adam_nets, d["adam_nets"])
        wall += d["wall_seconds"]
        if d["adam_nets"]:
            a.adam_lr = d["args"]["adam_lr"]
            budgets = sorted(int(s) for s in d["args"]["adam_steps"].split(","))
        if d["args"]["milp_nets"] and any(d["rows"].get("milp", {}).values()):
            a.milp_nets, a.milp_ks = d["args"]["milp_nets"], d["args"]["milp_ks"]
            a.milp_time = d["args"]["milp_time"]
    rows.setdefault("milp", {})
    ks = sorted({k for m in rows for k in rows[m]})
    report(rows, ks, a, nets, adam_nets, budgets, wall)


def save(rows, a, nets: int, adam_nets: int, wall: float) -> None:
    FIG.mkdir(parents=True, exist_ok=True)
    d = {
        "args": vars(a),
        "nets": nets,
        "adam_nets": adam_nets,
        "wall_seconds": wall,
        "rows": {m: {str(k): v for k, v in rows[m].items()} for m in rows},
    }
    (FIG / f"{a.tag}.json").write_text(json.dumps(d, indent=1))


def report(rows, ks, a, nets, adam_nets, budgets, wall) -> None:
    FIG.mkdir(parents=True, exist_ok=True)
    label = {"linf": "l_inf LP", "l1": "l_1 LP", "milp": "MILP (exact)"}
    label.update({f"adam{b}": f"Adam {b} steps" for b in budgets})
    cols = [m for m in rows if rows[m]]
    print(
        f"Success rate (||z - z*|| / ||z*|| <= {THRESH:g}), k-250-600 ReLU nets, noise "
        f"U(-{NOISE:g}, {NOISE:g}); LPs: {nets} nets per k, Adam: {adam_nets} nets per k "
        f"(lr {a.adam_lr}), MILP: {a.milp_nets} nets per k in {a.milp_ks} "
        f"({a.milp_time:g} s limit). Wall time {wall:.0f} s, {platform.machine()}, "
        f"Python {platform.python_version()}.\n"
    )
    print("| k | " + " | ".join(label.get(m, m) for m in cols) + " |")
    print("| --- " * (len(cols) + 1) + "|")
    for k in ks:
        cells = []
        for m in cols:
            r = rows[m].get(k)
            if not r:
                cells.append("–")
                continue
            s = np.mean([x["err"] <= THRESH for x in r])
            cells.append(f"{s:.2f} ({len(r)})")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print(
        "\nMean seconds per net: "
        + ", ".join(
            f"{label.get(m, m)} {np.mean([x['seconds'] for k in rows[m] for x in rows[m][k]]):.2f}"
            for m in cols
        )
    )
    if rows["milp"]:
        st = [x["status"] for k in rows["milp"] for x in rows["milp"][k]]
        print("MILP statuses: " + ", ".join(f"{s} x{st.count(s)}" for s in sorted(set(st))))
    if not a.merge:
        save(rows, a, nets, adam_nets, wall)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: no figure (pip install matplotlib)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    style = {"linf": "o-", "l1": "s-", "milp": "k*"}
    for m in cols:
        kk = sorted(rows[m])
        ss = [np.mean([x["err"] <= THRESH for x in rows[m][k]]) for k in kk]
        ax.plot(kk, ss, style.get(m, "^--"), label=label.get(m, m), ms=5 if m != "milp" else 10)
    ax.axvline(109, color="gray", lw=0.8, ls=":", label="paper: LP to k = 109")
    ax.axvline(60, color="gray", lw=0.8, ls="--", label="paper: GD fails from k = 60")
    ax.set_xlabel("latent dimension k (k-250-600 ReLU net)")
    ax.set_ylabel(f"success rate (rel. error <= {THRESH:g})")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("Layer-wise LP vs Adam, noiseless inversion (Lei et al. Fig. 2)", fontsize=9)
    fig.tight_layout()
    fig.savefig(FIG / f"{a.tag}.png", dpi=120)
    print(f"\nwrote {FIG / (a.tag + '.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
