"""`netopt check` on a network with max pooling: branch and bound on its ReLU form, against the
same check without it (the MILP, as before the rewrite), in the same script.

    python benchmarks/compare/maxpool_check.py [--timeout 60] [--images 3]
                                               [--eps 0.05 0.1 0.15 0.2 0.3] [--seed 0]

Network: ``../shared/nets/marabou/conv_mp1.onnx`` (Marabou's test network: Conv, ReLU,
MaxPool 2x2, Gemm, ReLU, Gemm; input 3x8x8, five outputs). Properties: ``--images`` seeded
uniform images in [0, 1], the box of radius eps around each, the counterexample region "some
other output >= the predicted one" (one disjunct per other output): the robustness property
of VNN-COMP's image benchmarks. Each instance is decided twice, each time in a ``netopt check``
process of its own (start-up included):

* ``relu form``: the check as shipped; its max pool is rewritten exactly as ReLUs
  (:mod:`netopt.ir.relu_form`), so the batched bounds, the proof-carrying CROWN pass and
  branch and bound take the network;
* ``max pool kept``: the same check with the rewrite turned off
  (``netopt.ir.relu_form.MAX_UNITS = -1``): the general CROWN (no proof) and the big-M MILP,
  which models the max pool itself.

No verdicts are known: a "sat" is a counterexample confirmed in onnxruntime, and each "unsat"
certificate is re-checked by ``Certificate.verify`` (the proof in float64, without a solver;
"solver-attested" where the MILP decided a disjunct). Prints each verdict and time, the counts
decided, and the ratio of times where both decide.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NET = HERE.parents[1].parent / "shared" / "nets" / "marabou" / "conv_mp1.onnx"

# the check as a module call, with the rewrite on or off
RUN = (
    "import sys, netopt.ir.relu_form as r; r.MAX_UNITS = {units}; "
    "from netopt.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def properties(work: Path, images: int, eps: list[float], seed: int) -> list[Path]:
    """One robustness property per image and radius (the image's predicted output)."""
    import netopt

    net = netopt.load(NET)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(images):
        x0 = rng.uniform(0, 1, net.input_shape).reshape(-1)
        y = np.asarray(net.forward(x0.reshape(1, *net.input_shape))).reshape(-1)
        label = int(y.argmax())
        for e in eps:
            lines = [f"; image {i} (seed {seed}), eps {e}, label {label}"]
            lines += [f"(declare-const X_{j} Real)" for j in range(x0.size)]
            lines += [f"(declare-const Y_{j} Real)" for j in range(y.size)]
            for j, v in enumerate(x0):
                lines += [f"(assert (>= X_{j} {v - e:.9f}))", f"(assert (<= X_{j} {v + e:.9f}))"]
            other = [f"(and (>= Y_{j} Y_{label}))" for j in range(y.size) if j != label]
            lines.append(f"(assert (or {' '.join(other)}))")
            path = work / f"img{i}_eps{e}.vnnlib"
            path.write_text("\n".join(lines) + "\n")
            out.append(path)
    return out


def _vnncomp_check():
    """``vnncomp_check.py`` beside this file (its one-process check and certificate check)."""
    spec = importlib.util.spec_from_file_location("vnncomp_check", HERE / "vnncomp_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check(vc, prop: Path, units: int, timeout: float, cert: Path) -> dict:
    """One ``netopt check`` process (the rewrite's limit ``units``): ``result``, ``seconds``,
    ``method``, and ``proof``, what the certificate of an unsat says."""
    cmd = [sys.executable, "-c", RUN.format(units=units), "check", str(NET), str(prop)]
    cmd += ["--time-limit", str(timeout), "--certificate", str(cert), "--json"]
    r = vc.check_process(cmd, timeout)
    r["proof"] = vc.certificate_status(cert, NET, prop) if r["result"] == "unsat" else ""
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.3])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import os

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{NET.name}, timeout {a.timeout:g} s"
    )
    modes = (("relu form", 10**9), ("max pool kept", -1))
    vc = _vnncomp_check()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for prop in properties(work, a.images, a.eps, a.seed):
            row = {"instance": prop.stem}
            for name, units in modes:
                row[name] = check(vc, prop, units, a.timeout, work / f"{prop.stem}_{units}.json")
            rows.append(row)
            print(vc.mode_row(prop.stem, row, modes), flush=True)
    vc.mode_summary(rows, modes)


if __name__ == "__main__":
    main()
