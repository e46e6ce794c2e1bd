"""ReLU splitting on each device at hand, side by side: the CPU and, where torch sees one, CUDA.

    python benchmarks/perf/device_check.py [--nets DIR] [--time-limit 120] [--devices cpu cuda]

Two searches, each run on each device in this process (the CPU first, then CUDA; a short
search on each device beforehand pays the imports and first calls), every "unsat" proof
re-checked in float64 by ``check_proof`` (numpy, no torch) and every "sat" point in the float64
interpreter:

* ``decision``: the ReLU-split decision "``g <= t``" at the optimum of the shared MILP
  benchmark's 10-32-32-2 ``beyond_ia`` (64 unstable ReLUs), as optimization's decisions run it
  (:func:`netopt.bounds.opt_decide.raise_bound`'s settings: the rows that hold on the box left
  out, ``DECISION_RATES``, ``DECISION_CANDIDATES``); about 53 thousand domains on this
  project's CPU;
* ``mnist``: MNIST 256x2 ``prop_1_0.03``'s disjuncts that the CROWN pass of ``netopt check``
  leaves open, in lockstep (``branch_and_bound(groups=...)``), as the check runs them.

It prints, per search and device, the verdict, seconds, domains, domains per second, the
seconds in bounds, branching and the float64 check, and the batch; then each search's CPU / CUDA
time ratio. The batch is each device's default (sized to its memory).

On the device machine (no package registry there; its ``python3`` has torch, numpy, scipy,
onnx, onnxruntime and networkx, not highspy, which the domains with every sign fixed use), in
the repository's root here, once::

    echo /.whl/ >> .git/info/exclude; echo /.nets/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 -d .whl highspy==1.16.0
    mkdir -p .nets/bench .nets/mnistfc
    cp ../shared/nets/bench/mlp_10-32-32-2_seed0.onnx ../shared/nets/bench/targets.json .nets/bench/
    cp ../shared/nets/mnistfc/mnist-net_256x2.onnx ../shared/nets/mnistfc/prop_1_0.03.vnnlib \\
        .nets/mnistfc/

then one device run carrying ``.whl`` and ``.nets`` (about 3 minutes on this CPU for the CPU
half)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 benchmarks/perf/device_check.py \\
        --nets .nets | tee $OUT/device_check.txt
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

NETS = Path(__file__).resolve().parents[2].parent / "shared" / "nets"


def decision(nets: Path, device: str, tl: float) -> dict:
    """The decision at the optimum of 10-32-32-2 ``beyond_ia``, as ``raise_bound`` asks it
    (:func:`netopt.bounds.opt_decide.decide_at`)."""
    import netopt
    from netopt.bounds.objective_rows import minorant_of
    from netopt.bounds.opt_decide import decide_at, decision_rows, row_maxima
    from netopt.control import Deadline
    from netopt.problems import Inversion

    name = "mlp_10-32-32-2_seed0.onnx"
    tj = json.loads((nets / "bench" / "targets.json").read_text())[name]
    net = netopt.load(nets / "bench" / name)
    prob = Inversion(net, np.array(tj["targets"]["beyond_ia"]), norm=1, box=tuple(tj["box"]))
    mn = minorant_of(prob)
    V = decision_rows(mn)
    opt = 3.534209  # (its optimum, to 1e-6: certified by the MILP and by these decisions)
    lo, hi = prob.domain.lo.reshape(-1), prob.domain.hi.reshape(-1)
    t = time.perf_counter()
    r, _ = decide_at(
        prob, mn, V, row_maxima(net, lo, hi, V), opt - 0.5e-6 * opt, Deadline(tl), device
    )
    return _row(net, r, time.perf_counter() - t)


def mnist(nets: Path, device: str, tl: float) -> dict:
    """MNIST 256x2 ``prop_1_0.03``'s open disjuncts in lockstep (as ``netopt check`` runs
    them)."""
    import netopt
    from netopt.bounds.branch import branch_and_bound
    from netopt.vnnlib.check.decide import _crown_closed

    net = netopt.load(nets / "mnistfc" / "mnist-net_256x2.onnx")
    prop = netopt.load_vnnlib(nets / "mnistfc" / "prop_1_0.03.vnnlib", 784, 10)
    closed = _crown_closed(net, prop)
    djs = [dj for k, dj in enumerate(prop.disjuncts) if closed is None or not closed[k]]
    C = np.concatenate([dj.C for dj in djs])
    d = np.concatenate([dj.d for dj in djs])
    groups = np.concatenate([[i] * len(dj.d) for i, dj in enumerate(djs)])
    t = time.perf_counter()
    r = branch_and_bound(
        net,
        djs[0].lo,
        djs[0].hi,
        C,
        d,
        mode="relu",
        device=device,
        time_limit=tl,
        groups=groups if len(djs) > 1 else None,
    )
    return _row(net, r, time.perf_counter() - t)


def _row(net, r, secs: float) -> dict:
    """A search's figures, its claim re-checked (proofs in float64 numpy, points in the
    float64 interpreter)."""
    from netopt.bounds.proof import check_proof

    proofs = [p.proof for p in (r.parts or [r])] if r.verdict == "unsat" else []
    ok = all(check_proof(net.graph, p).ok for p in proofs)
    if r.verdict == "sat":
        ok = r.x is not None  # (branch_and_bound returns a point only once float64 holds it)
    st = r.stats
    return {
        "verdict": r.verdict if ok else f"{r.verdict} (REJECTED)",
        "seconds": secs,
        "domains": int(st.get("nodes", 0)),
        "per_s": st.get("nodes", 0) / max(secs, 1e-9),
        "t_bound": st.get("t_bound", 0.0),
        "t_branch": st.get("t_branch", 0.0),
        "t_check": st.get("t_check", 0.0),
        "batch": st.get("batch"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", type=Path, default=NETS)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--devices", nargs="*", default=None, help="default: cpu, and cuda if seen")
    args = ap.parse_args()
    import torch

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, GPU {gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
    )
    cases = {"decision": decision, "mnist": mnist}
    got: dict = {}
    for dev in devices:
        # (a short search first: imports, first calls, the device's start)
        decision(args.nets, dev, 2.0)
        for name, fn in cases.items():
            got[name, dev] = row = fn(args.nets, dev, args.time_limit)
            print(
                f"{name:9s} {dev:5s} {row['verdict']:18s} {row['seconds']:8.2f} s "
                f"{row['domains']:8d} domains {row['per_s']:9.0f}/s  bounds {row['t_bound']:6.2f} "
                f"branching {row['t_branch']:6.2f} check {row['t_check']:6.2f} s  "
                f"batch {row['batch']}",
                flush=True,
            )
    if "cpu" in devices and "cuda" in devices:
        for name in cases:
            a, b = got[name, "cpu"], got[name, "cuda"]
            print(f"{name}: cpu / cuda time {a['seconds'] / b['seconds']:.2f}")


if __name__ == "__main__":
    main()
