"""`netopt check` on a residual network: ReLU splitting on its chain form, against the same check
without it (the MILP, as before), in the same script.

    python benchmarks/compare/residual_check.py [--timeout 30] [--images 4] [--width 48]
                                                [--eps 0.06 0.07 0.08] [--seed 0]

Network: a residual MLP trained here on scikit-learn's 8x8 digits (pixels in [0, 1], seeded,
a few seconds on a CPU), written to ONNX with ``Add`` skip connections:
``h0 = relu(W0 x)``, two blocks ``h' = relu(B relu(A h) + h)``, logits ``W h``; ``--width``
units per layer (five ReLU layers: 240 ReLUs at 48). Properties: the l_inf ball of radius eps around each of ``--images`` test
images the network classifies correctly (clipped to [0, 1]), the counterexample region "some
other logit >= the label's" (one disjunct per other class). Each instance is decided twice,
each time in a ``netopt check`` process of its own (start-up included):

* ``chain form``: the check as shipped; the network's skips are carried through its layers
  (:mod:`netopt.ir.chain_form`), so ReLU splitting, its batched bounds and proofs take it;
* ``no chain form``: the same check with the chain form turned off
  (``netopt.ir.chain_form.MAX_WEIGHTS = -1``): the general CROWN, then the big-M MILP.

No verdicts are known: a "sat" is a counterexample confirmed in onnxruntime, and each "unsat"
certificate is re-checked by ``Certificate.verify``. Prints each verdict and time, the counts
decided, and the ratio of times where both decide.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# the check as a module call, with the chain form on or off
RUN = (
    "import sys, netopt.ir.chain_form as c; c.MAX_WEIGHTS = {weights}; "
    "from netopt.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def train(seed: int, width: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """The residual MLP's weights (float32 numpy), and the held-out images and labels."""
    import torch
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:1400], perm[1400:]
    L = torch.nn.Linear
    layers = torch.nn.ModuleDict(
        {"W0": L(64, width), "A1": L(width, width), "B1": L(width, width)}
        | {"A2": L(width, width), "B2": L(width, width), "W": L(width, 10)}
    )

    def f(t):
        h = torch.relu(layers["W0"](t))
        for k in ("1", "2"):
            h = torch.relu(layers["B" + k](torch.relu(layers["A" + k](h))) + h)
        return layers["W"](h)

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(layers.parameters(), lr=5e-3)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(f(xt[tr]), yt[tr]).backward()
        opt.step()
    with torch.no_grad():
        acc = (f(xt[te]).argmax(1) == yt[te]).float().mean().item()
    print(f"residual MLP 64-{width}x5-10 ({5 * width} ReLUs), held-out accuracy {acc:.3f}")
    w = {k: (m.weight.detach().numpy(), m.bias.detach().numpy()) for k, m in layers.items()}
    return w, x[te], y[te]


def onnx_model(w: dict, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def gemm(src: str, k: str, out: str) -> None:
        W, b = w[k]
        inits.extend([numpy_helper.from_array(W, f"{k}_w"), numpy_helper.from_array(b, f"{k}_b")])
        nodes.append(helper.make_node("Gemm", [src, f"{k}_w", f"{k}_b"], [out], transB=1))

    gemm("x", "W0", "z0")
    nodes.append(helper.make_node("Relu", ["z0"], ["h0"]))
    h = "h0"
    for k in ("1", "2"):
        gemm(h, "A" + k, f"za{k}")
        nodes.append(helper.make_node("Relu", [f"za{k}"], [f"ha{k}"]))
        gemm(f"ha{k}", "B" + k, f"zb{k}")
        nodes.append(helper.make_node("Add", [f"zb{k}", h], [f"s{k}"]))
        nodes.append(helper.make_node("Relu", [f"s{k}"], [f"h{k}"]))
        h = f"h{k}"
    gemm(h, "W", "y")
    g = helper.make_graph(
        nodes,
        "resmlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def properties(net_path: Path, work: Path, images, labels, n: int, eps: list[float]) -> list:
    import netopt

    net = netopt.load(net_path)
    out = []
    for i in range(len(images)):
        if len(out) >= n * len(eps):
            break
        x0, label = images[i].astype(np.float64), int(labels[i])
        if int(np.argmax(net.forward(x0[None]))) != label:
            continue
        for e in eps:
            lines = [f"; test image {i}, eps {e}, label {label}"]
            lines += [f"(declare-const X_{j} Real)" for j in range(64)]
            lines += [f"(declare-const Y_{j} Real)" for j in range(10)]
            for j, v in enumerate(x0):
                lo, hi = max(v - e, 0.0), min(v + e, 1.0)
                lines += [f"(assert (>= X_{j} {lo:.9f}))", f"(assert (<= X_{j} {hi:.9f}))"]
            other = [f"(and (>= Y_{j} Y_{label}))" for j in range(10) if j != label]
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


def check(vc, net: Path, prop: Path, weights: int, timeout: float, cert: Path) -> dict:
    cmd = [sys.executable, "-c", RUN.format(weights=weights), "check", str(net), str(prop)]
    cmd += ["--time-limit", str(timeout), "--certificate", str(cert), "--json"]
    r = vc.check_process(cmd, timeout)
    r["proof"] = vc.certificate_status(cert, net, prop) if r["result"] == "unsat" else ""
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.06, 0.07, 0.08])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"timeout {a.timeout:g} s"
    )
    modes = (("chain form", 10**12), ("no chain form", -1))
    vc = _vnncomp_check()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        w, images, labels = train(a.seed, a.width)
        net = work / "resmlp.onnx"
        onnx_model(w, net)
        for prop in properties(net, work, images, labels, a.images, a.eps):
            row = {"instance": prop.stem}
            for name, weights in modes:
                cert = work / f"{prop.stem}_{weights}.json"
                row[name] = check(vc, net, prop, weights, a.timeout, cert)
            rows.append(row)
            print(vc.mode_row(prop.stem, row, modes), flush=True)
    vc.mode_summary(rows, modes)


if __name__ == "__main__":
    main()
