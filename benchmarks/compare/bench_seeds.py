"""Instances of the shared MILP benchmark that nobody tuned for: the same nets with other seeds.

    python benchmarks/compare/bench_seeds.py --out DIR [--seeds 1 2] [--nets SUBSTR]
    python benchmarks/compare/bench_bab.py --dir DIR --methods auto --verify

``../shared/nets/bench`` holds three PyTorch MLPs of seed 0 with three targets each. This script
writes the same architectures for other seeds, by the recipe the shared files follow (checked
here: seed 0 reproduces their weights and their ``realizable`` and ``beyond_ia`` targets to
float precision, else the script stops):

* the net: ``torch.manual_seed(seed)``, then ``nn.Sequential`` of ``nn.Linear`` layers with
  ``nn.ReLU`` between them (PyTorch's default initialization), float32;
* ``realizable``: ``f(x*)`` for ``x* = default_rng(seed).uniform(-1, 1, n)``;
* ``beyond_ia``: ``realizable`` with its first coordinate moved to ``u + (u - l) / 10`` for the
  interval bounds ``[l, u]`` of the first output over the box;
* ``outside_box_image``: the shared files do not say how theirs were made. Here: ``f(x_out)``
  for ``x_out = x* + 0.5 d / |d|_inf`` with ``d`` normal (``default_rng(seed + 1000)``), a point
  just outside the box whose image lies near the edge of the box's image (as the shared
  targets do: at distances 1e-3 to 1e-1 from it).

The directory gets the ONNX files and a ``targets.json`` in the shared layout, which
``bench_bab.py --dir`` reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BENCH = HERE.parents[1].parent / "shared" / "nets" / "bench"
ARCHS = {
    "10-32-32-2": (10, 32, 32, 2),
    "5-50-50-50-5": (5, 50, 50, 50, 5),
    "10-256-256-2": (10, 256, 256, 2),
}


def torch_mlp(widths: tuple[int, ...], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weights and biases PyTorch's default initialization gives under ``manual_seed(seed)``."""
    import torch

    torch.manual_seed(seed)
    # (each Linear draws its weights, then its bias, when built: the layers in order)
    lin = [torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
    return [m.weight.detach().numpy() for m in lin], [m.bias.detach().numpy() for m in lin]


def instance(widths: tuple[int, ...], seed: int) -> tuple[bytes, dict]:
    """One net's ONNX bytes and its ``targets.json`` entry (see the module docstring)."""
    import netopt
    from netopt.bounds import compute_bounds
    from netopt.instances._onnx import mlp_onnx

    Ws, bs = torch_mlp(widths, seed)
    acts = ["relu"] * (len(Ws) - 1) + [None]
    model = mlp_onnx(Ws, bs, acts, name=f"mlp_{'-'.join(map(str, widths))}_seed{seed}")
    data = model.SerializeToString()
    net = netopt.load(data)
    n = widths[0]
    lo, hi = -np.ones(n), np.ones(n)
    x_star = np.random.default_rng(seed).uniform(-1, 1, n)
    f = lambda x: net.forward(np.asarray(x, float)[None]).reshape(-1)  # noqa: E731
    real = f(x_star)
    g = net.graph
    l_ia, u_ia = (
        np.asarray(v).reshape(-1) for v in compute_bounds(g, lo, hi, "interval")[g.outputs[0]]
    )
    beyond = real.copy()
    beyond[0] = u_ia[0] + (u_ia[0] - l_ia[0]) / 10
    d = np.random.default_rng(seed + 1000).normal(size=n)
    x_out = x_star + 0.5 * d / np.abs(d).max()
    entry = {
        "box": [-1.0, 1.0],
        "targets": {
            "realizable": real.tolist(),
            "outside_box_image": f(x_out).tolist(),
            "beyond_ia": beyond.tolist(),
        },
        "x_star_for_realizable": x_star.tolist(),
        "beyond_ia_certified_min_loss": float(beyond[0] - u_ia[0]),
    }
    return data, entry


def check_recipe() -> None:
    """Seed 0 must give the shared files' weights and targets (else the recipe is not theirs)."""
    import onnx
    from onnx import numpy_helper

    shared = json.loads((BENCH / "targets.json").read_text())
    for arch, widths in ARCHS.items():
        name = f"mlp_{arch}_seed0.onnx"
        ref = [numpy_helper.to_array(t) for t in onnx.load(BENCH / name).graph.initializer]
        Ws, bs = torch_mlp(widths, 0)
        mine = [a for pair in zip(Ws, bs, strict=True) for a in pair]
        if len(ref) != len(mine) or any(
            not np.array_equal(a, b) for a, b in zip(ref, mine, strict=True)
        ):
            raise SystemExit(f"seed 0 does not reproduce {name}'s weights: the recipe changed")
        _, entry = instance(widths, 0)
        for t in ("realizable", "beyond_ia"):
            err = np.abs(np.subtract(entry["targets"][t], shared[name]["targets"][t])).max()
            if err > 1e-6:
                raise SystemExit(
                    f"seed 0's {t} target is {err:.2e} off {name}'s: the recipe changed"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", type=Path, required=True, help="directory for the nets and targets.json"
    )
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--nets", default="", help="only architectures whose name contains this")
    a = ap.parse_args()
    check_recipe()
    a.out.mkdir(parents=True, exist_ok=True)
    targets = {}
    for seed in a.seeds:
        for arch, widths in ARCHS.items():
            if a.nets not in arch:
                continue
            name = f"mlp_{arch}_seed{seed}.onnx"
            data, entry = instance(widths, seed)
            (a.out / name).write_bytes(data)
            targets[name] = entry
    (a.out / "targets.json").write_text(json.dumps(targets, indent=1))
    print(f"{len(targets)} nets in {a.out}; run: python {HERE / 'bench_bab.py'} --dir {a.out}")


if __name__ == "__main__":
    main()
