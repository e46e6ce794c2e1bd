"""Cost of one ADMM iteration relative to one forward + backward pass of the same network.

Wong & Kolter (2017) report ADMM "about 2-3 times slower per iteration" than backprop; the goal
here is <= 2x. For each network and batch size this times, in the same process:

* ``fb``: one forward pass of the network (netopt's torch module) plus the backward pass of a
  cross-entropy loss to the input (what one gradient / Adam step costs);
* ``admm``: one ADMM sweep (backward ordering: every z-update, pair projection and dual update)
  without residual or objective bookkeeping (``admm``), and with the runner's default
  bookkeeping (``admm+res``: residuals every ``residual_every`` = 10 iterations, exact
  :math:`W z` products every ``refresh_every`` = 50), amortized.

``--threads`` sets torch's intra-op threads (default: torch's choice).

Usage::

    python benchmarks/perf/admm_cost.py [--device cpu|cuda] [--iters 30] [--batches 1 256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import netopt
from netopt.formulations.admm import ADMM
from netopt.formulations.admm.iterations import ADMMOptions, ADMMRunner
from netopt.problems import CrossEntropy
from netopt.torch_utils import torch_objective

NETS = Path(__file__).resolve().parents[3] / "shared" / "nets"
DEFAULT = [NETS / "mnistfc" / "mnist-net_256x2.onnx", NETS / "conv" / "cifar_base_kw.onnx"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_pair(fa, fb, iters: int, device: torch.device, repeats: int = 5) -> tuple[float, float]:
    """Per-call seconds of ``fa`` and ``fb``: blocks of ``iters`` calls, interleaved, the
    minimum block of each (robust to other jobs sharing the machine)."""
    fa(), fb()  # warm-up
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for k, fn in enumerate((fa, fb)):
            _sync(device)
            t = time.perf_counter()
            for _ in range(iters):
                fn()
            _sync(device)
            best[k] = min(best[k], (time.perf_counter() - t) / iters)
    return best[0], best[1]


def measure(path: Path, batch: int, iters: int, device: torch.device, cg_iters: int) -> dict:
    net = netopt.load(path)
    dtype = torch.float32
    prob = CrossEntropy(net, label=0, box=(0.0, 1.0))
    model = ADMM().build(prob)
    rows = np.zeros(batch, dtype=np.int64)
    obj = torch_objective([prob], rows, dtype, device)
    gm = net.torch_module(dtype=dtype, device=device)
    shape = tuple(net.input_shape)
    x = torch.rand(batch, *shape, dtype=dtype, device=device)
    label = torch.zeros(batch, dtype=torch.long, device=device)

    def fb() -> None:
        xr = x.clone().requires_grad_(True)
        out = gm(xr).reshape(batch, -1)
        loss = torch.nn.functional.cross_entropy(out, label, reduction="sum")
        loss.backward()

    res = {"net": path.name, "batch": batch}
    t_fb = float("inf")
    for name, track in (("admm", False), ("admm+res", True)):
        opts = ADMMOptions(cg_iters=cg_iters, cg_tol=1e-6)
        runner = ADMMRunner(model, obj, opts, dtype, device)
        with torch.no_grad():
            runner.init(x.reshape(batch, -1))
        it = [0]

        @torch.no_grad()
        def step(runner=runner, it=it, track=track, opts=opts) -> None:
            it[0] += 1
            res = track and it[0] % opts.residual_every == 0
            if res:
                runner._dz2 = torch.zeros(batch, dtype=dtype, device=device)
            runner.sweep(it[0], res)
            if res:
                runner.residuals()
            if track and it[0] % opts.refresh_every == 0:
                runner.refresh()

        t_f, t_a = _time_pair(fb, step, iters, device)
        t_fb = min(t_fb, t_f)
        res[f"{name}_ms"] = 1e3 * t_a
    res["fb_ms"] = 1e3 * t_fb
    for name in ("admm", "admm+res"):
        res[f"{name}_ratio"] = res[f"{name}_ms"] / res["fb_ms"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    ap.add_argument("--cg-iters", type=int, default=10, help="CG steps per conv z-update")
    ap.add_argument("--nets", nargs="*", default=[str(p) for p in DEFAULT])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print(
        f"{'network':28s} {'batch':>5s} {'fwd+bwd ms':>10s} {'admm ms':>9s} {'ratio':>6s} "
        f"{'admm+res ms':>11s} {'ratio':>6s}"
    )
    for p in a.nets:
        for b in a.batches:
            r = measure(Path(p), b, a.iters, device, a.cg_iters)
            print(
                f"{r['net']:28s} {b:5d} {r['fb_ms']:10.3f} {r['admm_ms']:9.3f} "
                f"{r['admm_ratio']:6.2f} {r['admm+res_ms']:11.3f} {r['admm+res_ratio']:6.2f}"
            )


if __name__ == "__main__":
    main()
