"""ACAS Xu instances with parts of input splitting switched off, each in its own process.

    python benchmarks/compare/input_split_ablation.py [--instances 3_3:prop_2,1_9:prop_7]
                                                      [--variants all,no-relu-split,...]

Each instance (``../shared/nets/acasxu``) is decided by ``netopt check`` (60 s) in a fresh
process per variant, start-up included, with a module setting changed:

* ``all``: the defaults;
* ``no-relu-split``: boxes alpha-CROWN leaves open are split on inputs only
  (``branch_input.RELU_SPLIT = False``);
* ``no-walk``: the falsifier without its region walk (``attack.WALK_PROBLEMS = 0``);
* ``lookahead-2``: two look-ahead candidates per input split (``branch_input.LOOKAHEAD = 2``);
* ``alpha-every-round``: alpha-CROWN on any number of boxes a round
  (``branch_input.ALPHA_MIN_BOXES = 1``);
* ``before``: all four at once (the search before these changes);
* ``no-dead-rows``: every unit's bounds back-substituted, also those the parent box bounds as
  inactive (``branch_input.DEAD_ROWS = False``);
* ``alpha-from-start``: alpha-CROWN from the first box, not after 5000
  (``branch_input.ALPHA_AFTER_NODES = 0``);
* ``torch-rows``: the boxes bounded by the torch engine (as on a GPU) rather than numpy's, torch
  imported at the search's start;
* ``float64-first``: the rigorous float64 bounds alone for the search's first second
  (``branch_input.FAST_AFTER = 1.0``);
* ``previous``: ``no-dead-rows``, ``alpha-from-start`` and ``torch-rows`` at once (the search
  before the numpy engine, except that it searched its first second in float64 and imported
  torch then, where this imports it at the start);
* ``no-row-mix``: a box closed only by a single row of its disjunct, never by a combination of
  two (``branch_input.ROW_MIX = False``).

``NET`` is a shared network's tag (``1_1``) or the path of an ONNX file of the same inputs and
outputs (a perturbed copy that ``unseen_instances.py --keep DIR`` writes).

Prints each instance's verdict and wall time per variant, and the ratio of each variant's
total to the defaults'.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

NETS = Path(__file__).resolve().parents[2].parent / "shared" / "nets" / "acasxu"

TORCH_ROWS = "branch_input._on_gpu = lambda e: True; branch_input._torch_loaded = lambda: True"

VARIANTS = {
    "all": "",
    "no-relu-split": "branch_input.RELU_SPLIT = False",
    "no-walk": "attack.WALK_PROBLEMS = 0",
    "lookahead-2": "branch_input.LOOKAHEAD = 2",
    "alpha-every-round": "branch_input.ALPHA_MIN_BOXES = 1",
    "before": "branch_input.RELU_SPLIT = False; attack.WALK_PROBLEMS = 0; "
    "branch_input.LOOKAHEAD = 2; branch_input.ALPHA_MIN_BOXES = 1",
    "no-dead-rows": "branch_input.DEAD_ROWS = False",
    "alpha-from-start": "branch_input.ALPHA_AFTER_NODES = 0",
    "torch-rows": TORCH_ROWS,
    "float64-first": "branch_input.FAST_AFTER = 1.0",
    "previous": "branch_input.DEAD_ROWS = False; branch_input.ALPHA_AFTER_NODES = 0; " + TORCH_ROWS,
    "no-row-mix": "branch_input.ROW_MIX = False",
}

DEFAULT = "3_3:prop_2,1_9:prop_7,1_1:prop_6,1_1:prop_3,3_3:prop_9,1_9:prop_2,1_1:prop_5"

CODE = """
import sys, time
t = time.perf_counter()
import netopt.attack as attack
import netopt.bounds.branch_input as branch_input
{setting}
from netopt.cli import main
code = main(sys.argv[1:])
print("SECONDS", time.perf_counter() - t)
"""


def run(net: str, prop: str, setting: str) -> tuple[str, float]:
    onnx = Path(net) if net.endswith(".onnx") else NETS / f"ACASXU_run2a_{net}_batch_2000.onnx"
    args = ["check", str(onnx), str(NETS / f"{prop}.vnnlib"), "--time-limit", "60"]
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", CODE.format(setting=setting.replace("; ", "\n")), *args],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    verdict = r.stdout.split()[0] if r.stdout.strip() else "error"
    return verdict, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", default=DEFAULT, help="NET:PROP,... (e.g. 3_3:prop_2)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()
    inst = [tuple(x.split(":")) for x in a.instances.split(",") if x]
    names = [v for v in a.variants.split(",") if v]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise SystemExit(f"unknown variants {bad}; choose from {list(VARIANTS)}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"{'instance':<14}" + "".join(f"{v:>22}" for v in names))
    total = dict.fromkeys(names, 0.0)
    for path, prop in inst:
        net = Path(path).stem if path.endswith(".onnx") else path
        cells = []
        for v in names:
            verdict, s = run(path, prop, VARIANTS[v])
            total[v] += s
            cells.append(f"{verdict} {s:6.2f}")
        print(f"{net + ' ' + prop:<14}" + "".join(f"{c:>22}" for c in cells), flush=True)
    base = total[names[0]]
    print(f"{'total s':<14}" + "".join(f"{total[v]:>22.2f}" for v in names))
    print(f"{'ratio':<14}" + "".join(f"{total[v] / base:>22.2f}" for v in names))


if __name__ == "__main__":
    main()
