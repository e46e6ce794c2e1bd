"""The shared MILP benchmark (../shared/nets/bench): netopt + HiGHS against OMLT + HiGHS, same run.

    python benchmarks/compare/milp_vs_omlt.py [--time-limit 60] [--only netopt|omlt] [--out FILE.json]

Problem: minimize sum_j |f(x)_j - y_j| over x in [-1, 1]^n for the three targets of each net.
OMLT builds its ReLU big-M formulation (``ReluBigMFormulation``, interval bounds) in Pyomo and
solves it with HiGHS through Pyomo (appsi_highs); netopt builds its own model (CROWN + LP-tightened
big-M, a local-search incumbent) and solves it with highspy. One thread each, gaps 1e-6. Prints
build time, solve time, status, objective, bound and the ratio of total times where both finish.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "nets" / "bench"


def run_netopt(path: Path, target, box, tl: float, solver: str = "highs") -> dict:
    import netopt
    from netopt.problems import Inversion

    t0 = time.perf_counter()
    net = netopt.load(path)
    try:
        res = Inversion(net, target, norm=1, box=box).solve(
            "milp", solver=solver, time_limit=tl, threads=1
        )
    except netopt.NetoptError as e:  # e.g. over the size-limited Gurobi licence
        return {
            "status": f"refused: {str(e).splitlines()[0][:60]}",
            "objective": None,
            "bound": None,
            "build": 0.0,
            "solve": 0.0,
            "total": 0.0,
        }
    total = time.perf_counter() - t0
    return {
        "status": str(res.status),
        "objective": res.objective,
        "bound": res.bound,
        "gap": res.gap,
        "build": sum(res.timings.get(k, 0.0) for k in ("start", "bounds", "build")),
        "solve": res.timings.get("solve", 0.0),
        "total": total,
        "binaries": res.model_size.get("integers", 0),
    }


def run_omlt(path: Path, target, box, tl: float) -> dict:
    import onnx
    import pyomo.environ as pyo
    from omlt import OmltBlock
    from omlt.io.onnx import load_onnx_neural_network
    from omlt.neuralnet import ReluBigMFormulation

    t0 = time.perf_counter()
    model = onnx.load(path)
    n_in = model.graph.input[0].type.tensor_type.shape.dim[-1].dim_value
    # OMLT keeps the file's fixed batch axis of size 1 in its indices
    bounds = {(0, i): (float(box[0]), float(box[1])) for i in range(n_in)}
    net = load_onnx_neural_network(model, input_bounds=bounds)
    m = pyo.ConcreteModel()
    m.nn = OmltBlock()
    m.nn.build_formulation(ReluBigMFormulation(net))
    outs = list(m.nn.outputs.keys())
    m.t = pyo.Var(range(len(outs)), within=pyo.NonNegativeReals)
    m.c1 = pyo.Constraint(
        range(len(outs)), rule=lambda m, j: m.t[j] >= m.nn.outputs[outs[j]] - target[j]
    )
    m.c2 = pyo.Constraint(
        range(len(outs)), rule=lambda m, j: m.t[j] >= target[j] - m.nn.outputs[outs[j]]
    )
    m.obj = pyo.Objective(expr=sum(m.t[j] for j in range(len(outs))))
    build = time.perf_counter() - t0
    from pyomo.contrib.appsi.solvers import Highs

    solver = Highs()
    solver.config.time_limit = tl
    solver.config.mip_gap = 1e-6
    solver.config.load_solution = False
    solver.highs_options = {"threads": 1, "mip_abs_gap": 1e-6}
    t1 = time.perf_counter()
    r = solver.solve(m)
    solve = time.perf_counter() - t1
    term = str(r.termination_condition)
    obj = r.best_feasible_objective
    bnd = r.best_objective_bound
    status = (
        "optimal"
        if "optimal" in term.lower()
        else ("time_limit" if "max" in term.lower() or "limit" in term.lower() else term)
    )
    return {
        "status": status,
        "objective": None if obj is None or not np.isfinite(obj) else float(obj),
        "bound": None if bnd is None or not np.isfinite(bnd) else float(bnd),
        "build": build,
        "solve": solve,
        "total": time.perf_counter() - t0,
    }


def _fmt(r: dict) -> str:
    if r is None:
        return "-"
    obj = "–" if r["objective"] is None else f"{r['objective']:.6g}"
    bnd = "?" if r["bound"] is None else f"{r['bound']:.6g}"
    if r["status"].startswith("refused"):
        return r["status"]
    if r["status"] == "optimal":
        return f"{obj} in {r['total']:.2f} s (build {r['build']:.2f} s)"
    return f"TL {obj} [{bnd}] (build {r['build']:.2f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--only", choices=["netopt", "omlt", "gurobi"], help="run one column only")
    ap.add_argument("--gurobi", action="store_true", help="also run netopt + Gurobi (if licensed)")
    ap.add_argument("--nets", nargs="*", help="file names (default: all three)")
    ap.add_argument("--out", help="write all figures as JSON")
    args = ap.parse_args()
    targets = json.loads((BENCH / "targets.json").read_text())
    print(
        f"machine: {platform.machine()} {platform.processor()}, Python {platform.python_version()}"
    )
    rows = []
    for name, spec in targets.items():
        if args.nets and name not in args.nets:
            continue
        for kind, t in spec["targets"].items():
            row = {"net": name, "target": kind}
            if args.only in (None, "netopt"):
                row["netopt"] = run_netopt(
                    BENCH / name, np.asarray(t), spec["box"], args.time_limit
                )
            if args.only in (None, "omlt"):
                row["omlt"] = run_omlt(
                    BENCH / name, list(map(float, t)), spec["box"], args.time_limit
                )
            if args.gurobi or args.only == "gurobi":
                row["netopt_gurobi"] = run_netopt(
                    BENCH / name, np.asarray(t), spec["box"], args.time_limit, "gurobi"
                )
            a, b = row.get("netopt"), row.get("omlt")
            ratio = ""
            if a and b and a["status"] == "optimal" and b["status"] == "optimal":
                ratio = f"{b['total'] / a['total']:.1f}x"
            gu = f" netopt+gurobi: {_fmt(row['netopt_gurobi'])}" if "netopt_gurobi" in row else ""
            print(
                f"{name:28s} {kind:18s} netopt: {_fmt(a):45s} omlt: {_fmt(b):45s} {ratio}{gu}",
                flush=True,
            )
            rows.append(row)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
