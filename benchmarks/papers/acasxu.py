"""ACAS Xu network 1_1 with properties 1-4: verdict and time per property.

    python benchmarks/papers/acasxu.py [--time-limit 120] [--no-bab]

Each property is decided by ``netopt.check`` (sampling, CROWN, input-split branch and bound,
then the exact MILP with HiGHS); with ``--no-bab`` the MILP alone decides after sampling and
CROWN, which is the baseline this script compares against in the same run.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import netopt
from netopt.vnnlib.check import check

ACAS = Path(__file__).resolve().parents[2].parent / "shared" / "nets" / "acasxu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--props", nargs="*", type=int, default=[1, 2, 3, 4])
    ap.add_argument(
        "--baseline", action="store_true", help="also run the MILP alone for comparison"
    )
    args = ap.parse_args()
    net = netopt.load(ACAS / "ACASXU_run2a_1_1_batch_2000.onnx")
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}; time limit {args.time_limit} s"
    )
    for k in args.props:
        prop = ACAS / f"prop_{k}.vnnlib"
        t0 = time.perf_counter()
        r = check(net, prop, time_limit=args.time_limit, threads=1)
        dt = time.perf_counter() - t0
        how = ", ".join(
            f"{d['method']}" + (f" ({d['pieces']} pieces)" if "pieces" in d else "")
            for d in r.details
        )
        line = f"prop_{k}: {r.verdict:8s} {dt:7.2f} s  by {how}"
        if args.baseline:
            t1 = time.perf_counter()
            rb = check(net, prop, time_limit=args.time_limit, bab_time=0, threads=1)
            db = time.perf_counter() - t1
            line += f"   | MILP alone: {rb.verdict} {db:.2f} s  ratio {db / dt:.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
