"""Wall time of ``netopt invert`` and ``netopt check`` against the ``--time-limit`` asked for.

    python benchmarks/perf/time_budget.py [--limit 30] [--check-limit 30] [--netopt CMD] [NETS_DIR]

A user's ``--time-limit`` is the wall time of the whole command. Each case runs the command as a
user would (a fresh process: start-up, load, every phase, the re-check, the output) and prints
its wall time, the limit and their ratio; the allowed overrun is start-up plus about a second.
``--netopt`` runs another installation (e.g. ``"env PYTHONPATH=/old/checkout python -m
netopt"``), so the same script measures the previous version as the baseline.

The invert cases are the hard targets of ``bench/targets.json`` (the optimum is not reached in
the limit, so the budget is what stops them) and an unreachable target for mnist-net_256x2 and
Convnet_maxpool (the network's output at the box centre, moved by 5 in every coordinate); the
check cases are ACAS Xu property 2, which netopt does not decide in the limit.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "nets"


def _target_far(net_path: Path, lo: float, hi: float) -> list[float]:
    import numpy as np

    import netopt

    net = netopt.load(net_path)
    x = np.full(net.input_shape, (lo + hi) / 2)
    return (net.forward(x).reshape(-1) + 5.0).tolist()


def _run(cmd: list[str], limit: float) -> tuple[float, int, str]:
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit * 4 + 120)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t, -9, "killed: still running at 4 x limit + 120 s"
    wall = time.perf_counter() - t
    status = ""
    try:
        doc = json.loads(p.stdout)
        status = doc.get("status") or doc.get("result", {}).get("status", "")
    except (json.JSONDecodeError, AttributeError):
        last = [ln for ln in p.stdout.splitlines() if ln.strip()]
        status = last[-1][:40] if last else p.stderr.strip()[-60:]
    return wall, p.returncode, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="?", default=str(DEFAULT))
    ap.add_argument("--limit", type=float, default=30.0, help="--time-limit of the invert cases")
    ap.add_argument("--check-limit", type=float, default=30.0, help="--time-limit of the checks")
    ap.add_argument("--netopt", default=f"{sys.executable} -m netopt", help="the command")
    ap.add_argument("--only", choices=("invert", "check"), default=None)
    a = ap.parse_args()
    nets = Path(a.nets)
    base = shlex.split(a.netopt)
    tmp = Path(tempfile.mkdtemp(prefix="netopt-budget-"))
    targets = json.loads((nets / "bench" / "targets.json").read_text())
    cases: list[tuple[str, list[str], float]] = []
    if a.only in (None, "invert"):
        for name in ("mlp_10-32-32-2_seed0.onnx", "mlp_5-50-50-50-5_seed0.onnx"):
            spec = targets[name]
            lo, hi = spec["box"]
            for tname in ("outside_box_image", "beyond_ia"):
                if tname not in spec["targets"]:
                    continue
                tf = tmp / f"{name}.{tname}.json"
                tf.write_text(json.dumps(spec["targets"][tname]))
                cmd = [
                    *base, "invert", str(nets / "bench" / name), "--target", str(tf),
                    "--box", str(lo), str(hi), "--time-limit", str(a.limit), "--json",
                ]  # fmt: skip
                cases.append((f"invert bench/{name} {tname}", cmd, a.limit))
        for rel, lo, hi in (("mnistfc/mnist-net_256x2.onnx", 0.0, 1.0),
                            ("conv/Convnet_maxpool.onnx", 0.0, 1.0)):  # fmt: skip
            tf = tmp / (Path(rel).stem + ".json")
            tf.write_text(json.dumps(_target_far(nets / rel, lo, hi)))
            cmd = [
                *base, "invert", str(nets / rel), "--target", str(tf), "--box", str(lo), str(hi),
                "--time-limit", str(a.limit), "--json",
            ]  # fmt: skip
            cases.append((f"invert {rel} far target", cmd, a.limit))
    if a.only in (None, "check"):
        for n in ("1_9", "3_3"):
            onnx = nets / "acasxu" / f"ACASXU_run2a_{n}_batch_2000.onnx"
            cmd = [
                *base, "check", str(onnx), str(nets / "acasxu" / "prop_2.vnnlib"),
                "--time-limit", str(a.check_limit),
            ]  # fmt: skip
            cases.append((f"check acasxu {n} prop_2", cmd, a.check_limit))
    print(f"# {platform.processor() or platform.machine()}, {platform.python_version()}")
    print(f"# command: {a.netopt}")
    print(f"{'case':58s} {'limit':>6s} {'wall':>7s} {'wall/limit':>10s}  rc  status")
    for label, cmd, limit in cases:
        wall, rc, status = _run(cmd, limit)
        print(f"{label:58s} {limit:6.0f} {wall:7.1f} {wall / limit:10.2f} {rc:3d}  {status}")


if __name__ == "__main__":
    main()
