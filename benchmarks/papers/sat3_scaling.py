"""3SAT reduction: time for the exact MILP to certify, vs the number of variables n.

For each n, ``--per`` random 3-CNF formulas at clause ratio 4.26 that python-sat finds
satisfiable, and as many that it finds unsatisfiable (box variant). Three exact runs each:

* ``decide``: netopt's MILP on the decision problem - is some x in [0,1]^n within 1/2 of the
  target? (``Feasibility``, tol 1/2; by the gap theorem that is satisfiability);
* ``optimum``: netopt's MILP on ``min |f(x)|`` to a certified optimum (0 or >= 1), default
  settings (CROWN + LP-tightened big-M);
* ``baseline``: the same optimum with interval big-M constants and no tightening - the method of
  the prototype the issue quotes (56 s at n = 50, UNSAT) - in this script, on the same formulas.

and, for the satisfiable formulas, gradient descent with random restarts (Adam, ``--restarts``
starts, ``--steps`` steps, projected onto the box; success = some restart's point has loss < 1,
which decodes to a satisfying assignment by the gap theorem, checked).

A method stops at the first n where its median passes 60 s. Results go to a JSON-lines file
(resumable) and a markdown table.

    python benchmarks/papers/sat3_scaling.py                  # n = 10, 20, ..., 70
    python benchmarks/papers/sat3_scaling.py --ns 10 20 --per 2 --out /tmp/x.jsonl   # quick
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import netopt
from netopt.instances.cnf import clauses_for_ratio, random_formula
from netopt.instances.sat3 import decode, sat3_instance

STOP_MEDIAN = 60.0


def gd_restarts(inst, f, restarts: int, steps: int, lr: float, seed: int) -> dict:
    import torch

    torch.manual_seed(seed)
    mod = inst.net.torch_module(dtype=torch.float32)
    n = inst.lo.size
    x = torch.rand(restarts, n, requires_grad=True)
    opt = torch.optim.Adam([x], lr=lr)
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = mod(x).abs().sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    X = x.detach().double().numpy()
    vals = np.abs(inst.net.forward(X).reshape(restarts, -1)).sum(axis=1)  # float64 re-check
    k = int(np.argmin(vals))
    ok = bool(vals[k] < 1.0 and f.satisfied_by(decode(X[k])))
    return {"gd_found": ok, "gd_best": float(vals[k]), "gd_seconds": time.perf_counter() - t}


def run_one(n: int, sat: bool, j: int, args: argparse.Namespace, skip: set[str]) -> dict:
    seed = args.seed + 1000 * n + 2 * j + int(sat)
    m = clauses_for_ratio(n, 4.26)
    f, _ = random_formula(n, m, sat, seed)
    inst = sat3_instance(f, "box", seed=seed, ground_truth=False)
    rec: dict = {"n": n, "m": m, "sat": sat, "j": j, "seed": seed}
    tl = args.time_limit
    box = (inst.lo, inst.hi)
    runs = {
        "decide": lambda: netopt.Feasibility(inst.net, inst.target, tol=0.5, box=box).solve(
            time_limit=tl, threads=1
        ),
        "optimum": lambda: inst.problem.solve("milp", time_limit=tl, threads=1),
        "baseline": lambda: inst.problem.solve(
            time_limit=tl, threads=1, bounds="interval", tighten=None
        ),
    }
    for name, fn in runs.items():
        if name in skip:
            continue
        t = time.perf_counter()
        r = fn()
        rec[name] = {
            "seconds": time.perf_counter() - t,
            "status": str(r.status),
            "objective": r.objective,
            "bound": r.bound,
        }
        # the verdict must match python-sat's
        if name == "decide":
            got = {"optimal": True, "feasible": True, "infeasible": False}.get(str(r.status))
        else:
            got = None if str(r.status) != "optimal" else r.objective < 0.5
        rec[name]["correct"] = got == sat if got is not None else None
    if sat and "gd" not in skip:
        rec.update(gd_restarts(inst, f, args.restarts, args.steps, args.lr, seed))
    return rec


def table(recs: list[dict]) -> str:
    def stat(rs: list[dict], key: str) -> str:
        v = [r[key]["seconds"] for r in rs if key in r]
        solved = [r for r in rs if key in r and r[key]["correct"]]
        if not v:
            return "- | -"
        return f"{statistics.median(v):.2f} | {max(v):.2f}" + (
            "" if len(solved) == len(v) else f" ({len(v) - len(solved)} unsolved)"
        )

    lines = [
        "| n | m | formulas | decide: median s | max s | optimum: median s | max s | "
        "baseline (interval): median s | max s | GD restarts found |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in sorted({r["n"] for r in recs}):
        for sat in (True, False):
            rs = [r for r in recs if r["n"] == n and r["sat"] == sat]
            if not rs:
                continue
            gd = [r["gd_found"] for r in rs if "gd_found" in r]
            lines.append(
                f"| {n} {'SAT' if sat else 'UNSAT'} | {rs[0]['m']} | {len(rs)} | {stat(rs, 'decide')} | "
                f"{stat(rs, 'optimum')} | {stat(rs, 'baseline')} | "
                + (f"{sum(gd)}/{len(gd)}" if gd else "-")
                + " |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ns", type=int, nargs="+", default=[10, 20, 30, 40, 50, 60, 70])
    ap.add_argument("--per", type=int, default=4, help="formulas per n and verdict")
    ap.add_argument("--time-limit", type=float, default=150.0)
    ap.add_argument("--restarts", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--methods",
        default="decide,optimum,baseline,gd",
        help="comma-separated subset of decide,optimum,baseline,gd",
    )
    ap.add_argument("--out", default="benchmarks/results/sat3_scaling.jsonl")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recs = (
        [json.loads(s) for s in out.read_text().splitlines() if s.strip()] if out.exists() else []
    )
    have = {(r["n"], r["sat"], r["j"]) for r in recs}
    print(
        f"machine: {platform.machine()}, netopt {netopt.__version__}, {len(recs)} done", flush=True
    )
    off = {"decide", "optimum", "baseline", "gd"} - set(args.methods.split(","))
    stopped: dict[bool, set[str]] = {True: set(off), False: set(off)}
    with out.open("a") as fh:
        for n in args.ns:
            for sat in (True, False):
                for j in range(args.per):
                    if (n, sat, j) in have:
                        continue
                    rec = run_one(n, sat, j, args, stopped[sat])
                    recs.append(rec)
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
                    print(
                        f"n={n} {'SAT' if sat else 'UNSAT'} #{j}: "
                        + ", ".join(
                            f"{k} {rec[k]['seconds']:.2f}s ({rec[k]['status']})"
                            for k in ("decide", "optimum", "baseline")
                            if k in rec
                        )
                        + (f", GD found={rec['gd_found']}" if "gd_found" in rec else ""),
                        flush=True,
                    )
                # a method whose median passed the limit at this n is not run for larger n
                for k in ("decide", "optimum", "baseline"):
                    v = [
                        r[k]["seconds"] for r in recs if r["n"] == n and r["sat"] == sat and k in r
                    ]
                    if v and statistics.median(v) > STOP_MEDIAN:
                        stopped[sat].add(k)
    print(table(recs))
    base = [
        (r["baseline"]["seconds"], r["optimum"]["seconds"])
        for r in recs
        if "baseline" in r and "optimum" in r
    ]
    if base:
        ratios = [b / o for b, o in base]
        print(
            f"\nbaseline (interval big-M) time / netopt time, per formula: median "
            f"{statistics.median(ratios):.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x"
        )


if __name__ == "__main__":
    main()
