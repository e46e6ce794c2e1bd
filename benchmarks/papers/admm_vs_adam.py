"""ADMM against Adam: equal wall time on a LeNet-sized CNN, optimum rate on small MLPs, throughput.

1. Trains a small LeNet-style CNN (conv-relu-maxpool x2, two dense layers) on scikit-learn's
   8x8 digits in torch (CPU, seeded, a few seconds), imports it with ``netopt.from_torch``, and
   compares ADMM and Adam after the same wall time on Wong & Kolter's two settings: softmax
   cross-entropy to a target class plus an L2 term, and cross-entropy within the box [0, 1].
2. On small MLPs (``mlp_instance((10, 32, 32, 2), seed)``, 1-norm inversion), the fraction of runs
   in which ADMM and Adam reach the MILP optimum (within 1e-3, relative to max(1, optimum)).
3. Throughput: inversions per second at batch 256 (fixed iteration budget) on the CNN.

Usage::

    python benchmarks/papers/admm_vs_adam.py [--seconds 5] [--seeds 6] [--device cpu] [--threads 1]
        [--parts 123]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import netopt
from netopt.instances import mlp_instance
from netopt.problems import CrossEntropy
from netopt.solve import solve_many


def train_lenet(seed: int = 0, epochs: int = 40):
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    d = load_digits()
    X = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 64):
            b = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[b]), y[b]).backward()
            opt.step()
    acc = float((model(X).argmax(1) == y).float().mean())
    return model.eval(), X.numpy(), d.target, acc


def equal_time(net, X, labels, seconds: float, device: str, n: int = 16) -> None:
    rng = np.random.default_rng(0)
    idx = rng.choice(len(X), n, replace=False)
    for setting in ("l2", "box"):
        probs = []
        for i in idx:
            c = int((labels[i] + 1) % 10)  # reach another class
            if setting == "l2":
                probs.append(CrossEntropy(net, c, l2=0.1, x_ref=X[i]))
            else:
                probs.append(CrossEntropy(net, c, box=(0.0, 1.0)))
        # the default start: the L2 center (the image) without a box, the box center with one
        starts = [X[i] if setting == "l2" else np.full(X[i].shape, 0.5) for i in idx]
        row = {}
        for m, kw in (("adam", {"lr": 0.01}), ("admm", {"rho": 1.0, "cg_iters": 3})):
            rs = solve_many(probs, m, time_limit=seconds, max_iter=10**6, device=device, **kw)
            row[m] = (np.array([r.objective for r in rs]), rs[0].extra["iterations"])
        (a, ia), (b, ib) = row["adam"], row["admm"]
        start = np.mean([p.objective_of_input(s) for p, s in zip(probs, starts, strict=True)])
        print(
            f"  {setting:3s}: start {start:.4f} | adam {a.mean():.4f} ({ia} it) | admm "
            f"{b.mean():.4f} ({ib} it) | admm better on {int((b < a - 1e-9).sum())}/{n} "
            f"| {seconds:.1f} s each, batch {n}"
        )


def optimum_rate(seeds: int, device: str) -> None:
    hits = {"adam": 0, "admm": 0}
    total = 0
    for seed in range(seeds):
        for kind in ("realizable", "outside"):
            inst = mlp_instance((10, 32, 32, 2), seed, target=kind)
            prob = netopt.Inversion(inst.net, inst.target, norm=1, box=(inst.lo, inst.hi))
            ex = prob.solve("milp", time_limit=60)
            if ex.status != netopt.Status.OPTIMAL:
                continue
            total += 1
            for m, kw in (("adam", {}), ("admm", {"rho": 1.0})):
                r = prob.solve(m, restarts=8, max_iter=500, device=device, **kw)
                hits[m] += r.objective - ex.objective <= 1e-3 * max(1.0, abs(ex.objective))
    print(
        f"  MILP-certified instances: {total}; reached the optimum: adam {hits['adam']}/"
        f"{total}, admm {hits['admm']}/{total}"
    )


def throughput(net, X, labels, device: str, iters: int = 100) -> None:
    probs = [CrossEntropy(net, int((labels[i] + 1) % 10), box=(0.0, 1.0)) for i in range(256)]
    for m, kw in (("adam", {}), ("admm", {"cg_iters": 3, "eval_every": 25, "history_every": 25})):
        t = time.perf_counter()
        solve_many(probs, m, max_iter=iters, device=device, start=None, **kw)
        dt = time.perf_counter() - t
        print(f"  {m}: {256 / dt:.1f} inversions/s ({iters} iterations each, batch 256)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="wall time per method and setting")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument(
        "--parts", default="123", help="which parts to run (1 equal time, 2 optimum, 3 throughput)"
    )
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    t = time.perf_counter()
    model, X, labels, acc = train_lenet()
    print(f"LeNet on digits: train accuracy {acc:.3f}, {time.perf_counter() - t:.1f} s")
    net = netopt.from_torch(model, torch.zeros(1, 1, 8, 8))
    X = X.reshape(len(X), *net.input_shape).astype(np.float64)
    if "1" in a.parts:
        print("1. equal wall time (mean objective over 16 images):")
        equal_time(net, X, labels, a.seconds, a.device)
    if "2" in a.parts:
        print("2. MILP optimum reached (1-norm inversion, (10, 32, 32, 2) MLPs):")
        optimum_rate(a.seeds, a.device)
    if "3" in a.parts:
        print("3. throughput:")
        throughput(net, X, labels, a.device)


if __name__ == "__main__":
    main()
