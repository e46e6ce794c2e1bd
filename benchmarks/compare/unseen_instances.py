"""`netopt check` on instances of the shared VNN-COMP benchmarks that nobody tuned for.

    python benchmarks/compare/unseen_instances.py [--sets acasxu mnistfc] [--timeout 60]
                                                  [--noise 0.05] [--copies 1] [--seed 0]

The competition's instances in ``../shared/nets`` are the ones the checker was measured on; a
checker tuned to them may do worse on the same benchmarks' other instances. This script makes
new instances of the same kind, seeded, and decides each in a ``netopt check`` process of its
own (start-up included, as ``vnncomp_check.py --per-process``):

* ``acasxu``: each of the seven networks with every weight and bias multiplied by
  :math:`1 + \\text{noise} \\cdot N(0, 1)` (``--copies`` networks per original), with the
  properties the competition pairs with the original (1-4 on every network; 5, 6 on 1_1, 7 on
  1_9, 8 on 2_9, 9 on 3_3, 10 on 4_5);
* ``mnistfc``: the five images of the shared properties (recovered from their boxes) shifted
  by one pixel up, down, left and right (zeros shifted in), at eps 0.03 and 0.05, each kept
  only where the network still classifies the shifted image as its label (the competition
  took correctly classified images only).

No verdicts are known for these, so none is compared: every "sat" is a counterexample that
``netopt check`` confirmed in onnxruntime, and every "unsat" certificate is re-checked here by
``Certificate.verify`` (float64 proofs, no solver). The figures to read are how many are
decided within the limit and the median and maximum time, next to the same figures on the
competition's own instances (``vnncomp_check.py --per-process``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NETS = HERE.parents[1].parent / "shared" / "nets"

# the competition's pairing of ACAS Xu properties 5-10 with networks
ACAS_OWN = {"1_1": [5, 6], "1_9": [7], "2_9": [8], "3_3": [9], "4_5": [10]}


def _vnncomp_check():
    """``vnncomp_check.py`` beside this file (one process per instance, the certificates)."""
    spec = importlib.util.spec_from_file_location("vnncomp_check", HERE / "vnncomp_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def acas_instances(work: Path, noise: float, copies: int, seed: int) -> list[dict]:
    """Perturbed copies of the seven ACAS Xu networks with their properties."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    src = NETS / "acasxu"
    rows = []
    for path in sorted(src.glob("ACASXU_run2a_*_batch_2000.onnx")):
        tag = path.stem.split("_")[2] + "_" + path.stem.split("_")[3]
        for c in range(copies):
            model = onnx.load(path)
            for init in model.graph.initializer:
                if init.name == "input_AvgImg":
                    continue  # the input's offset (zeros), not a weight
                w = numpy_helper.to_array(init)
                w = (w * (1 + noise * rng.standard_normal(w.shape))).astype(w.dtype)
                init.CopyFrom(numpy_helper.from_array(w, init.name))
            out = work / f"acas_{tag}_n{c}.onnx"
            onnx.save(model, out)
            for p in [1, 2, 3, 4, *ACAS_OWN.get(tag, [])]:
                rows.append({"onnx": str(out), "vnnlib": str(src / f"prop_{p}.vnnlib")})
    return rows


_BOUND = re.compile(r"\(assert \((<=|>=) X_(\d+) ([-0-9.eE+]+)\)\)")


def _image(text: str, eps: float) -> np.ndarray:
    """The image at the centre of a shared MNIST property's box (clipped to [0, 1])."""
    lo = np.zeros(784)
    hi = np.zeros(784)
    for op, i, v in _BOUND.findall(text):
        (hi if op == "<=" else lo)[int(i)] = float(v)
    x = (lo + hi) / 2
    x = np.where(lo <= 0, hi - eps, x)  # clipped below: x - eps < 0
    x = np.where(hi >= 1, lo + eps, x)  # clipped above
    return np.clip(x, 0, 1)


def _write_mnist(path: Path, x: np.ndarray, eps: float, label: int) -> None:
    lines = [f"; MNIST property with label: {label}, eps {eps} (a shifted image)", ""]
    lines += [f"(declare-const X_{i} Real)" for i in range(784)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(10)]
    lo = np.clip(x - eps, 0, 1).astype(np.float32)
    hi = np.clip(x + eps, 0, 1).astype(np.float32)
    for i in range(784):
        lines += [f"(assert (<= X_{i} {float(hi[i])!r}))", f"(assert (>= X_{i} {float(lo[i])!r}))"]
    alts = "\n".join(f"    (and (>= Y_{j} Y_{label}))" for j in range(10) if j != label)
    lines.append(f"(assert (or\n{alts}\n))")
    path.write_text("\n".join(lines) + "\n")


def mnist_instances(work: Path) -> list[dict]:
    """The shared images shifted by one pixel, at eps 0.03 and 0.05 (correctly classified)."""
    import onnxruntime as ort

    src = NETS / "mnistfc"
    onnx_path = src / "mnist-net_256x2.onnx"
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rows = []
    for k in range(5):
        text = (src / f"prop_{k}_0.03.vnnlib").read_text()
        label = int(re.search(r"label: (\d+)", text).group(1))
        img = _image(text, 0.03).reshape(28, 28)
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            sh = np.roll(img, (dy, dx), axis=(0, 1))
            if dy:
                sh[0 if dy > 0 else -1, :] = 0
            if dx:
                sh[:, 0 if dx > 0 else -1] = 0
            x = sh.reshape(-1)
            y = sess.run(None, {name: x.astype(np.float32).reshape(1, 784, 1)})[0].reshape(-1)
            if int(y.argmax()) != label:
                continue
            for eps in (0.03, 0.05):
                out = work / f"mnist_{k}_{dy:+d}{dx:+d}_{eps}.vnnlib"
                _write_mnist(out, x, eps, label)
                rows.append({"onnx": str(onnx_path), "vnnlib": str(out)})
    return rows


def report(name: str, rows: list[dict], ours: list[dict], certs: Path, vc) -> dict:
    """Per instance the verdict and time; the set's decided count, median, max."""
    times = []
    count = {"sat": 0, "unsat": 0}
    checked = failed = 0
    undecided = []
    print(f"\n{name}: {len(rows)} instances")
    for r, o in zip(rows, ours, strict=True):
        v, sec = o["result"], float(o["seconds"])
        times.append(sec)
        extra = ""
        if v in count:
            count[v] += 1
        else:
            undecided.append(f"{Path(r['onnx']).stem} {Path(r['vnnlib']).stem}")
        if v == "unsat":
            extra = vc._verify(certs, Path("/"), r)
            checked += extra == "proof re-checked"
            failed += extra == "CERTIFICATE FAILED"
        print(
            f"{Path(r['onnx']).stem[:24]:24s} {Path(r['vnnlib']).stem:28s} {v:8s} {sec:7.2f}  "
            f"{o['method']} {extra}"
        )
    dec = count["sat"] + count["unsat"]
    print(
        f"{name}: decided {dec}/{len(rows)} (sat {count['sat']}, unsat {count['unsat']}); "
        f"median {statistics.median(times):.2f} s, max {max(times):.2f} s; unsat proofs "
        f"re-checked {checked}/{count['unsat']}, FAILED {failed}"
    )
    if undecided:
        print("  undecided: " + ", ".join(undecided))
    return {"decided": dec, "median": statistics.median(times), "max": max(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="*", default=["acasxu", "mnistfc"])
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--noise", type=float, default=0.05, help="ACAS Xu weights' relative noise")
    ap.add_argument("--copies", type=int, default=1, help="perturbed copies per ACAS Xu network")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="write the instances here (kept) and only list them")
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load {load:.1f}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; timeout {args.timeout:g} s, "
        f"ACAS Xu noise {args.noise:g} x{args.copies}, seed {args.seed}"
    )
    vc = _vnncomp_check()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        for name in args.sets:
            if name == "acasxu":
                rows = acas_instances(work, args.noise, args.copies, args.seed)
            elif name == "mnistfc":
                rows = mnist_instances(work)
            else:
                raise SystemExit(f"unknown set {name!r}: acasxu or mnistfc")
            if args.keep is not None:
                with (work / f"{name}_instances.csv").open("w") as f:
                    f.writelines(f"{r['onnx']},{r['vnnlib']},{args.timeout:g}\n" for r in rows)
                print(f"{name}: {len(rows)} instances in {work / f'{name}_instances.csv'}")
                continue
            certs = work / f"{name}_certificates"
            ours = vc._each(Path("/"), rows, args.timeout, certs)
            report(name, rows, ours, certs, vc)


if __name__ == "__main__":
    main()
