"""What the benchmark harness costs per task: ``netopt bench`` against the same solves in-process.

    python benchmarks/perf/bench_overhead.py [--tasks 24] [--workers 2] [--no-dask]

Every task of ``netopt bench`` runs in a fresh Python process (isolation: a crash, a hang or a
memory blow-up takes down one task, and no state leaks between tasks), and every state change is
one SQLite transaction. This script measures the price of that against a baseline in the same
script: the same (instance, method, seed) solves run one after another in this process, with
the imports and the instances already loaded. Tasks are small on purpose (Adam, 200 iterations on
a 6-24-24-3 MLP), so the per-task overhead dominates; a benchmark's real tasks last seconds to
minutes, which the overhead does not grow with.

Prints the wall times, tasks per second, the per-task overhead
``(wall * workers - in-process total) / tasks`` and the ratios to the in-process baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

SUITE = """\
name = "overhead"
seeds = {seeds}
time_limit = 60
ground_truth = "known"
[[family]]
kind = "mlp"
widths = [6, 24, 24, 3]
count = {count}
[[method]]
name = "adam"
options = {{ max_iter = 200 }}
"""


def in_process(db: Path) -> float:
    """The baseline: each task's solve, sequentially, in this process."""
    from netopt.bench.store import Store
    from netopt.instances import load_instance

    s = Store(db)
    try:
        rows = s.results()
        paths = {r["instance"]: s.instance(r["instance"])["path"] for r in rows}
    finally:
        s.close()
    probs = {k: load_instance(p).problem for k, p in paths.items()}
    probs[rows[0]["instance"]].solve("adam", max_iter=5)  # warm: torch imported, kernels built
    t0 = time.perf_counter()
    for r in rows:
        probs[r["instance"]].solve("adam", max_iter=200, seed=r["seed"], time_limit=60)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    a = ap.parse_args()
    from netopt.bench.runner import run_suite

    count = max(1, a.tasks // 4)
    text = SUITE.format(seeds=[0, 1, 2, 3], count=count)
    n = 4 * count
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {n} tasks, {a.workers} workers")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        walls = {}
        runs = {
            "local, forked from a preloaded server (default)": ("local", "forkserver"),
            "local, a new interpreter per task": ("local", "subprocess"),
        }
        if not a.no_dask:
            runs["dask LocalCluster (non-daemonic workers fork their tasks)"] = (
                "dask",
                "forkserver",
            )
        for name, (kind, start) in runs.items():
            db = Path(tmp) / f"{kind}-{start}.sqlite"
            t0 = time.perf_counter()
            run_suite(text, db, workers=a.workers, executor=kind, start=start)
            walls[name] = time.perf_counter() - t0
        base = in_process(Path(tmp) / "local-forkserver.sqlite")
        rows.append(("in-process, sequential (baseline)", base, 1))
        for name in runs:
            rows.append((f"netopt bench: {name}, {a.workers} workers", walls[name], a.workers))
    print()
    print("| run | wall s | tasks/s | overhead per task (s) | wall / baseline |")
    print("|---|---|---|---|---|")
    for name, wall, w in rows:
        over = (wall * w - base) / n
        print(f"| {name} | {wall:.1f} | {n / wall:.2f} | {over:.2f} | {wall / base:.1f}x |")


if __name__ == "__main__":
    main()
