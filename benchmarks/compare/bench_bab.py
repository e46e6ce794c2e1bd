"""The shared MILP benchmark (../shared/nets/bench): branch and bound against the big-M MILP, same run.

    python benchmarks/compare/bench_bab.py [--time-limit 60] [--methods bab,milp,auto,gurobi]
                                           [--nets SUBSTR] [--verify] [--gurobi-pip]
                                           [--out FILE.json] [--dir DIR]

Problem: minimize sum_j |f(x)_j - y_j| over x in [-1, 1]^n for the three targets of each net.
``bab``: ``prob.solve("bab")`` (input splitting on float64 CROWN, alpha-CROWN rows, exact LP rows
on affine boxes and pieces, a local-search incumbent); ``milp``: ``prob.solve("milp")`` (CROWN +
LP tightened big-M on HiGHS); ``auto``: ``prob.solve()``, the default (branch and bound with 3/4
of the time, then the MILP with the rest; 2/5, then the MILP on Gurobi, with a Gurobi licence of
no size limit, or with ``--gurobi-pip`` under the pip wheel's where it takes the model); ``gurobi``: the same MILP on Gurobi (a licence's size
limit refuses the larger nets: an error row). One thread each, relative gap 1e-6. Prints status, objective, bound,
gap and wall time (load included), and the ratio of times where both certify. With
``--verify``, each bab certificate is re-checked by ``Certificate.verify`` (its proof in float64)
and the check's time printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "nets" / "bench"


def run(path: Path, target, box, tl: float, method: str, verify: bool) -> dict:
    import netopt
    from netopt.problems import Inversion

    t0 = time.perf_counter()
    net = netopt.load(path)
    prob = Inversion(net, target, norm=1, box=box)
    if method == "bab":
        res = prob.solve("bab", time_limit=tl)
    elif method == "milp":
        res = prob.solve("milp", time_limit=tl, threads=1)
    elif method == "gurobi":
        from netopt.errors import NetoptError

        try:
            res = prob.solve("milp", solver="gurobi", time_limit=tl, threads=1)
        except NetoptError as e:  # e.g. over the size limit of gurobipy's pip licence
            print(f"  gurobi: {str(e).splitlines()[0]}")
            t = time.perf_counter() - t0
            return {"status": "error", "objective": None, "bound": None, "gap": None, "total": t}
    else:
        res = prob.solve(time_limit=tl, threads=1)
    total = time.perf_counter() - t0
    out = {
        "status": str(res.status),
        "objective": res.objective,
        "bound": res.bound,
        "gap": res.gap,
        "total": total,
        "stats": {k: v for k, v in res.extra.get("bab", {}).items() if not isinstance(v, dict)},
    }
    if "auto" in res.extra:
        out["auto"] = res.extra["auto"]
    if verify and res.formulation == "bab":
        t = time.perf_counter()
        rep = res.certificate.verify(net)
        out["verify"] = {"ok": bool(rep["ok"]), "seconds": time.perf_counter() - t}
        out["proof_leaves"] = out["stats"].get("proof_leaves")
    return out


def _fmt(r: dict) -> str:
    b = "-" if r["bound"] is None else f"{r['bound']:.7g}"
    o = "-" if r["objective"] is None else f"{r['objective']:.7g}"
    s = f"{r['status']:<10} obj {o:<12} bound {b:<12} {r['total']:6.1f} s"
    if "verify" in r:
        s += f"  verify {'ok' if r['verify']['ok'] else 'FAILED'} {r['verify']['seconds']:.1f} s"
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument(
        "--methods", default="bab,milp", help="comma-separated: bab, milp, auto, gurobi"
    )
    ap.add_argument("--nets", default="", help="run only nets whose name contains this")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument(
        "--gurobi-pip",
        action="store_true",
        help="let auto's MILP phase run on Gurobi under the pip wheel's size-limited licence",
    )
    ap.add_argument("--out")
    ap.add_argument(
        "--dir",
        type=Path,
        default=BENCH,
        help="nets and targets.json (default ../shared/nets/bench; bench_seeds.py writes others)",
    )
    a = ap.parse_args()
    if a.gurobi_pip:
        import netopt.formulations.auto as auto

        auto.USE_SIZE_LIMITED_GUROBI = True
    if not (a.dir / "targets.json").is_file():
        ap.error(f"--dir {a.dir}: no targets.json there (bench_seeds.py --out DIR writes one)")
    targets = json.loads((a.dir / "targets.json").read_text())
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("bab", "milp", "auto", "gurobi")]
    if bad:
        ap.error(f"--methods: unknown {bad}; choose among bab, milp, auto, gurobi")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"python {platform.python_version()}, time limit {a.time_limit:g} s"
    )
    rows = []
    for name, spec in targets.items():
        if a.nets not in name:
            continue
        for tname, target in spec["targets"].items():
            row = {"net": name, "target": tname}
            for m in methods:
                row[m] = run(a.dir / name, target, tuple(spec["box"]), a.time_limit, m, a.verify)
                print(f"{name:<28} {tname:<18} {m:<5} {_fmt(row[m])}", flush=True)
                if "auto" in row[m]:
                    print(f"{'':<47} plan {row[m]['auto']}", flush=True)
            if "bab" in methods and "milp" in methods:
                both = all(row[m]["status"] == "optimal" for m in ("bab", "milp"))
                if both:
                    print(
                        f"{'':<47} milp / bab time: {row['milp']['total'] / row['bab']['total']:.2f}x"
                    )
            rows.append(row)
    for m in methods:
        n = sum(r[m]["status"] == "optimal" for r in rows)
        print(f"{m}: {n} of {len(rows)} certified within {a.time_limit:g} s")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
