"""MILP build time: netopt's vectorized big-M model against OMLT's (ReluBigMFormulation), same run.

    python benchmarks/perf/build_time.py [--repeat 3]

For mnist-net_256x2 (784-256-256-10) and cifar_base_kw (two convolutions) over an l_inf ball of
radius 0.1 around a fixed image: the time to go from bounds to a solver-ready model (netopt: the
LinearModel's sparse arrays; OMLT: the Pyomo block, for the dense net only — OMLT's ONNX reader
does not take cifar_base_kw's Flatten layout). Bounds are computed once, outside the timing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

NETS = Path(__file__).resolve().parents[2].parent / "shared" / "nets"


def _median(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def netopt_build(path: Path, repeat: int) -> tuple[float, dict]:
    import netopt
    from netopt.bounds import compute_bounds
    from netopt.formulations.milp import MILP

    net = netopt.load(path)
    x0 = np.random.default_rng(0).uniform(0, 1, net.input_shape)
    prob = netopt.OutputObjective(
        net, np.eye(net.output_shape[0])[0], box=(0, 1), center=x0, eps=0.1
    )
    b = compute_bounds(net.graph, prob.domain.lo, prob.domain.hi, "interval")
    model = MILP().build(prob, b)
    return _median(lambda: MILP().build(prob, b), repeat), model.size()


def omlt_build(path: Path, repeat: int) -> float:
    import onnx
    import pyomo.environ as pyo
    from omlt import OmltBlock
    from omlt.io.onnx import load_onnx_neural_network
    from omlt.neuralnet import ReluBigMFormulation

    model = onnx.load(path)
    x0 = np.random.default_rng(0).uniform(0, 1, 784)
    bounds = {(0, i, 0): (max(0.0, x0[i] - 0.1), min(1.0, x0[i] + 0.1)) for i in range(784)}
    net = load_onnx_neural_network(model, input_bounds=bounds)

    def build() -> None:
        m = pyo.ConcreteModel()
        m.nn = OmltBlock()
        m.nn.build_formulation(ReluBigMFormulation(net))

    return _median(build, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    mnist = NETS / "mnistfc" / "mnist-net_256x2.onnx"
    t, size = netopt_build(mnist, args.repeat)
    try:
        to = omlt_build(mnist, args.repeat)
        extra = f"   OMLT {to:.3f} s   ratio {to / t:.0f}x"
    except Exception as e:  # OMLT not installed or refusing the file
        extra = f"   OMLT: {type(e).__name__}: {e}"
    print(
        f"mnist-net_256x2  netopt {t:.4f} s ({size['variables']} vars, {size['integers']} binaries, {size['nonzeros']} nonzeros){extra}"
    )
    t, size = netopt_build(NETS / "conv" / "cifar_base_kw.onnx", args.repeat)
    print(
        f"cifar_base_kw    netopt {t:.4f} s ({size['variables']} vars, {size['integers']} binaries, {size['nonzeros']} nonzeros)"
    )


if __name__ == "__main__":
    main()
