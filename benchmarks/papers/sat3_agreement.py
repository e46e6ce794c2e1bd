"""3SAT reduction: does the exact MILP decide satisfiability exactly as a SAT solver does?

For ``--formulas`` random 3-CNF formulas (n from ``--n-min`` to ``--n-max``, m = round(4.26 n),
alternately conditioned on satisfiable / unsatisfiable by python-sat, so the set is balanced),
build the reduction's instance (cycling through the variants box / free / lei4; every fourth
one disguised by rescaling, permutation and an identity layer) and solve the inversion problem
``min |f(x) - y|_1`` with netopt's MILP (HiGHS). Each formula is checked against:

* python-sat (CaDiCaL), and brute force over all assignments for n <= 16;
* SAT: the MILP's point decodes (x_i >= 1/2) to an assignment satisfying every clause, and
  onnxruntime's output at it is within 1e-5 of the target;
* UNSAT: the MILP's optimum (recomputed in float64) is >= 1 - 1e-6, and its certified bound
  (solver-attested) is >= 1 - 1e-6 less the solver's relative gap tolerance (1e-6).

Results go to a JSON-lines file, one line per formula; rerunning resumes where it stopped.

    python benchmarks/papers/sat3_agreement.py --formulas 500            # the full run
    python benchmarks/papers/sat3_agreement.py --formulas 30 --out /tmp/s.jsonl   # a quick one
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
from netopt.instances.cnf import brute_force_sat, clauses_for_ratio, random_formula
from netopt.instances.sat3 import VARIANTS, decode, sat3_instance

TOL = 1e-6
GAP = 1e-6  # netopt's default relative MIP gap


def run_one(i: int, args: argparse.Namespace) -> dict:
    span = args.n_max - args.n_min + 1
    pair = i // 2  # a SAT and an UNSAT formula per pair
    n = args.n_min + pair % span
    want_sat = i % 2 == 0
    variant = VARIANTS[(pair // span) % len(VARIANTS)] if args.variants == "all" else args.variants
    disguise = pair % 4 == 3
    seed = args.seed + i
    m = clauses_for_ratio(n, args.ratio)
    f, a = random_formula(n, m, want_sat, seed)
    rec: dict = {"i": i, "n": n, "m": m, "seed": seed, "variant": variant, "disguised": disguise}
    rec["pysat"] = "sat" if a is not None else "unsat"
    if n <= 16:
        rec["brute_force"] = "sat" if brute_force_sat(f) is not None else "unsat"
    inst = sat3_instance(
        f,
        variant,
        rescale=disguise,
        permute=disguise,
        identity_layers=int(disguise),
        seed=seed,
        ground_truth=False,
    )
    t = time.perf_counter()
    r = inst.problem.solve("milp", time_limit=args.time_limit, threads=1)
    rec["seconds"] = time.perf_counter() - t
    rec["status"] = str(r.status)
    rec["objective"] = r.objective
    rec["bound"] = r.bound
    if r.status == netopt.Status.OPTIMAL:
        rec["milp"] = "sat" if r.objective <= 0.5 else "unsat"
    else:
        rec["milp"] = "unknown"
    checks = {
        "agree": rec["milp"] == rec["pysat"]
        and rec.get("brute_force", rec["pysat"]) == rec["pysat"]
    }
    if rec["milp"] == "sat":
        asg = decode(r.x)
        y_ort = inst.net.run_onnxruntime(np.asarray(r.x).reshape(1, -1)).reshape(-1)
        checks["decodes"] = f.satisfied_by(asg)
        checks["ort_reaches_target"] = bool(np.max(np.abs(y_ort - inst.target)) <= 1e-5)
        rec["ort_residual"] = float(np.max(np.abs(y_ort - inst.target)))
    rec["checks"] = checks
    return derive(rec)


def derive(rec: dict) -> dict:
    """The UNSAT checks and the overall flag, from the stored numbers (so a summary re-derives
    them): the optimum is >= 1 - 1e-6, and the solver's bound is within its relative gap
    tolerance (GAP) of that."""
    checks = rec["checks"]
    if rec["milp"] == "unsat":
        obj, bound = rec["objective"], rec["bound"]
        checks["optimum_ge_1"] = obj >= 1 - TOL
        checks["bound_ge_1"] = bound is not None and bound >= 1 - TOL - GAP * max(1.0, abs(obj))
    rec["ok"] = all(checks.values())
    return rec


def summarize(recs: list[dict]) -> str:
    lines = [
        "| n | formulas | SAT / UNSAT | agree | all checks | median s (SAT) | max s (SAT) | median s (UNSAT) | max s (UNSAT) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in sorted({r["n"] for r in recs}):
        rs = [r for r in recs if r["n"] == n]
        s = [r["seconds"] for r in rs if r["pysat"] == "sat"]
        u = [r["seconds"] for r in rs if r["pysat"] == "unsat"]
        lines.append(
            f"| {n} | {len(rs)} | {len(s)} / {len(u)} | {sum(r['checks']['agree'] for r in rs)} | "
            f"{sum(r['ok'] for r in rs)} | {statistics.median(s) if s else 0:.2f} | "
            f"{max(s, default=0):.2f} | {statistics.median(u) if u else 0:.2f} | {max(u, default=0):.2f} |"
        )
    ok = sum(r["ok"] for r in recs)
    sat = sum(r["pysat"] == "sat" for r in recs)
    unsat_opt = [r["objective"] for r in recs if r["milp"] == "unsat"]
    lines.append("")
    lines.append(
        f"{len(recs)} formulas ({sat} SAT, {len(recs) - sat} UNSAT): verdict agrees on "
        f"{sum(r['checks']['agree'] for r in recs)}, every check passes on {ok}; "
        f"UNSAT optima: min {min(unsat_opt, default=float('nan')):.9f}, "
        f"max {max(unsat_opt, default=float('nan')):.9f}; "
        f"total MILP time {sum(r['seconds'] for r in recs):.0f} s"
    )
    by_v = {v: [r for r in recs if r["variant"] == v] for v in VARIANTS}
    lines.append(
        "per variant (formulas / all checks pass): "
        + ", ".join(f"{v} {len(rs)}/{sum(r['ok'] for r in rs)}" for v, rs in by_v.items() if rs)
        + f"; disguised {sum(r['disguised'] for r in recs)}/{sum(r['ok'] for r in recs if r['disguised'])}"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formulas", type=int, default=500)
    ap.add_argument("--n-min", type=int, default=6)
    ap.add_argument("--n-max", type=int, default=20)
    ap.add_argument("--ratio", type=float, default=4.26)
    ap.add_argument("--variants", default="all", choices=["all", *VARIANTS])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=300.0)
    ap.add_argument("--out", default="benchmarks/results/sat3_agreement.jsonl")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            if line.strip():
                r = derive(json.loads(line))
                done[r["i"]] = r
    print(
        f"machine: {platform.machine()}, {platform.processor() or platform.system()}; "
        f"netopt {netopt.__version__}; resuming with {len(done)} done",
        flush=True,
    )
    with out.open("a") as fh:
        for i in range(args.formulas):
            if i in done:
                continue
            rec = run_one(i, args)
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[i] = rec
            flag = "ok" if rec["ok"] else f"FAILED {rec['checks']}"
            print(
                f"[{i + 1}/{args.formulas}] n={rec['n']} {rec['variant']}{'*' if rec['disguised'] else ''} "
                f"pysat={rec['pysat']} milp={rec['milp']} obj={rec['objective']:.3g} "
                f"{rec['seconds']:.2f}s {flag}",
                flush=True,
            )
    recs = [done[i] for i in range(args.formulas) if i in done]
    print(summarize(recs))


if __name__ == "__main__":
    main()
