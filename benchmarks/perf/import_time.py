"""Time ``import netopt`` in fresh interpreters, against importing its core dependencies alone.

    python benchmarks/perf/import_time.py [--repeat 7]

Prints the median wall time of each and the ratio; the baseline is the floor netopt cannot go
under (numpy, scipy.sparse, networkx and onnx are imported by the IR and the frontend).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys


def _time(code: str, repeat: int) -> float:
    stmt = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", stmt], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(repeat)
    ]
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    base = _time("import numpy, networkx, onnx", args.repeat)
    ours = _time("import netopt", args.repeat)
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, netopt; print([m for m in ('torch','onnxruntime','cvxpy','pyomo','gurobipy','highspy') if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}")
    print(f"import numpy, networkx, onnx : {base * 1e3:7.1f} ms (median of {args.repeat})")
    print(f"import netopt                : {ours * 1e3:7.1f} ms")
    print(f"ratio netopt / dependencies  : {ours / base:7.2f}")
    print(f"heavy modules loaded         : {heavy}")


if __name__ == "__main__":
    main()
