"""Time ``netopt.load`` on real networks against onnxruntime opening the same file.

    python benchmarks/perf/load_time.py [--repeat 5] [NETS_DIR]

The baseline is ``onnxruntime.InferenceSession`` on the same bytes (the reference runtime's own
load + graph optimization), measured in the same process; the ratio is netopt / onnxruntime.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "nets"
FILES = [
    "mnistfc/mnist-net_256x2.onnx",
    "conv/cifar_base_kw.onnx",
    "acasxu/ACASXU_run2a_1_1_batch_2000.onnx",
]


def _median(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    import onnxruntime as ort

    import netopt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}")
    print(f"{'network':45s} {'netopt.load':>12s} {'ort session':>12s} {'ratio':>7s}")
    netopt.load(Path(args.nets) / FILES[0])  # warm the imports
    for f in FILES:
        p = Path(args.nets) / f
        data = p.read_bytes()
        ours = _median(lambda p=p: netopt.load(p), args.repeat)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        base = _median(
            lambda d=data, so=so: ort.InferenceSession(d, so, providers=["CPUExecutionProvider"]),
            args.repeat,
        )
        print(f"{f:45s} {ours * 1e3:10.1f}ms {base * 1e3:10.1f}ms {ours / base:7.2f}")


if __name__ == "__main__":
    main()
