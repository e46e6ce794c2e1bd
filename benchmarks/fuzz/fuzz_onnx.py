"""A seeded ONNX mutation fuzzer for netopt's importer.

    python benchmarks/fuzz/fuzz_onnx.py [--n 1500] [--seed 0] [--timeout 20] [NETS_DIR]

It starts from small real networks (``../shared/nets``) and small hand-built models, applies
one random mutation to each copy (dropped nodes, swapped inputs, changed attributes, changed
dtypes of inputs and initializers, flipped bytes, removed outputs, symbolic dimensions,
non-finite or huge weights, inserted ops, cycles, changed opsets) and classifies what
``netopt.load`` does with it:

* ``refused``: a :class:`netopt.NetoptError` at load (fine);
* ``ok``: it loads, onnxruntime accepts and runs it, ``net.forward`` matches onnxruntime
  (relative 1e-4) on random inputs, and interval bounds contain the sampled outputs (fine);
* anything else is *bad*: ``raw_exception`` (a non-netopt exception anywhere), ``ort_refuses``
  (netopt loads what onnxruntime rejects), ``mismatch``, ``bounds`` (a sampled output outside
  the interval bounds) or ``hang`` (over ``--timeout`` seconds).

It prints a table of counts per mutation kind x outcome and the number of bad outcomes, and
exits 1 if there is any. :func:`fuzz` is the library entry point (tests run a slice).
"""

from __future__ import annotations

import argparse
import collections
import copy
import platform
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DEFAULT_NETS = Path(__file__).resolve().parents[2].parent / "shared" / "nets"
#: small real networks (fast to load and run)
SEED_FILES = [
    "test/test_nano.onnx",
    "test/test_tiny.onnx",
    "test/test_small.onnx",
    "marabou/fc_2-2-3.onnx",
    "marabou/fc1.onnx",
    "omlt/gemm.onnx",
    "omlt/keras_linear_131_sigmoid.onnx",
    "omlt/convx1_gemmx1.onnx",
    "bench/mlp_10-32-32-2_seed0.onnx",
]
MUTATIONS = [
    "drop_node",
    "swap_inputs",
    "change_attr",
    "input_dtype",
    "init_dtype",
    "flip_bytes",
    "remove_outputs",
    "symbolic_dims",
    "nonfinite_weight",
    "insert_op",
    "cycle",
    "opset",
]
BAD = ("raw_exception", "ort_refuses", "mismatch", "bounds", "hang")
OUTCOMES = ("refused", "ok", *BAD)
RTOL = 1e-4


class _Timeout(Exception):
    pass


# ------------------------------------------------------------------ seed models
def _mlp(rng: np.random.Generator) -> onnx.ModelProto:
    """Gemm -> Relu -> Gemm on a symbolic batch, float32, opset 13."""
    w1 = rng.normal(size=(4, 3)).astype(np.float32)
    w2 = rng.normal(size=(2, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1, name="fc2"),
    ]
    g = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(np.zeros(4, np.float32) + 0.1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(np.zeros(2, np.float32), "b2"),
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _conv(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv -> Relu -> Flatten -> MatMul -> Add, float32, opset 13."""
    w = rng.normal(size=(2, 1, 3, 3)).astype(np.float32)
    m2 = rng.normal(size=(2 * 3 * 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="flat"),
        helper.make_node("MatMul", ["f", "m"], ["p"], name="mm"),
        helper.make_node("Add", ["p", "c2"], ["y"], name="add"),
    ]
    g = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.zeros(2, np.float32), "b"),
            numpy_helper.from_array(m2, "m"),
            numpy_helper.from_array(np.ones(3, np.float32), "c2"),
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def seed_models(nets: Path | None = DEFAULT_NETS) -> list[tuple[str, onnx.ModelProto]]:
    """The models the mutants start from: small real nets (when present) and hand-built ones."""
    rng = np.random.default_rng(1234)
    out = [("hand/mlp", _mlp(rng)), ("hand/conv", _conv(rng))]
    if nets is not None and Path(nets).is_dir():
        for f in SEED_FILES:
            p = Path(nets) / f
            if p.exists():
                out.append((f, onnx.load(p)))
    return out


# -------------------------------------------------------------------- mutations
_DTYPES = [
    TensorProto.DOUBLE,
    TensorProto.FLOAT16,
    TensorProto.INT64,
    TensorProto.INT32,
    TensorProto.BOOL,
    TensorProto.STRING,
]


def _float_inits(g: onnx.GraphProto) -> list[onnx.TensorProto]:
    return [t for t in g.initializer if t.data_type == TensorProto.FLOAT]


def _inserted(rng: np.random.Generator, src: str, dst: str, k: int) -> list[onnx.NodeProto]:
    """One or two nodes computing ``dst`` from ``src``."""
    kind = rng.choice(
        ["cast16", "cast64", "softmax", "sigmoid", "relu", "abs", "neg", "identity", "tanh"]
    )
    mk = helper.make_node
    if kind == "cast16":
        return [
            mk("Cast", [src], [f"fz{k}_h"], to=TensorProto.FLOAT16, name=f"fz{k}_a"),
            mk("Cast", [f"fz{k}_h"], [dst], to=TensorProto.FLOAT, name=f"fz{k}_b"),
        ]
    if kind == "cast64":
        return [
            mk("Cast", [src], [f"fz{k}_h"], to=TensorProto.DOUBLE, name=f"fz{k}_a"),
            mk("Cast", [f"fz{k}_h"], [dst], to=TensorProto.FLOAT, name=f"fz{k}_b"),
        ]
    op = {
        "softmax": "Softmax",
        "sigmoid": "Sigmoid",
        "relu": "Relu",
        "abs": "Abs",
        "neg": "Neg",
        "identity": "Identity",
        "tanh": "Tanh",
    }[str(kind)]
    return [mk(op, [src], [dst], name=f"fz{k}_a")]


def mutate(model: onnx.ModelProto, kind: str, rng: np.random.Generator) -> onnx.ModelProto | bytes:
    """One mutation of a copy of ``model`` (``flip_bytes`` returns serialized bytes)."""
    m = copy.deepcopy(model)
    g = m.graph
    nodes = list(g.node)
    if kind == "drop_node" and nodes:
        del g.node[int(rng.integers(len(nodes)))]
    elif kind == "swap_inputs":
        cand = [n for n in g.node if len(n.input) >= 2]
        if cand:
            n = cand[int(rng.integers(len(cand)))]
            i, j = rng.choice(len(n.input), 2, replace=False)
            n.input[int(i)], n.input[int(j)] = n.input[int(j)], n.input[int(i)]
    elif kind == "change_attr":
        cand = [(n, a) for n in g.node for a in n.attribute]
        if cand:
            n, a = cand[int(rng.integers(len(cand)))]
            if a.type == onnx.AttributeProto.INT:
                a.i = int(rng.integers(-3, 4))
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = float(rng.choice([0.0, -1.0, 2.5, 1e-3]))
            elif a.type == onnx.AttributeProto.INTS and len(a.ints):
                a.ints[int(rng.integers(len(a.ints)))] = int(rng.integers(-2, 5))
        else:
            # an attribute a node did not have: an axis or a transposition
            if nodes:
                n = g.node[int(rng.integers(len(nodes)))]
                n.attribute.append(helper.make_attribute("axis", int(rng.integers(-3, 3))))
    elif kind == "input_dtype":
        g.input[0].type.tensor_type.elem_type = int(rng.choice(_DTYPES))
    elif kind == "init_dtype" and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        arr = numpy_helper.to_array(t)
        dt = rng.choice(["float64", "float16", "int64", "int32", "bool"])
        t.CopyFrom(numpy_helper.from_array(arr.astype(str(dt)), t.name))
    elif kind == "flip_bytes":
        data = bytearray(m.SerializeToString())
        for _ in range(int(rng.integers(1, 6))):
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
        return bytes(data)
    elif kind == "remove_outputs":
        del g.output[:]
    elif kind == "symbolic_dims":
        vis = list(g.input) + list(g.output)
        vi = vis[int(rng.integers(len(vis)))]
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            d = dims[int(rng.integers(len(dims)))]
            d.dim_param = str(rng.choice(["N", "M", "unk"]))
    elif kind == "nonfinite_weight":
        cand = _float_inits(g)
        if cand:
            t = cand[int(rng.integers(len(cand)))]
            arr = numpy_helper.to_array(t).copy()
            if arr.size:
                arr.flat[int(rng.integers(arr.size))] = rng.choice(
                    [np.nan, np.inf, -np.inf, 3e38, -3e38, 1e30]
                )
                t.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t.name))
    elif kind == "insert_op" and nodes:
        k = int(rng.integers(len(nodes)))
        n = g.node[k]
        if n.output:
            old = n.output[0]
            new = f"fz_pre_{k}"
            n.output[0] = new
            for j, nn in enumerate(_inserted(rng, new, old, k)):
                g.node.insert(k + 1 + j, nn)
    elif kind == "cycle" and len(nodes) >= 2:
        a, b = sorted(rng.choice(len(nodes), 2, replace=False))
        # the earlier node reads the later one's output: a cycle (or a use before definition)
        if g.node[int(b)].output and g.node[int(a)].input:
            g.node[int(a)].input[0] = g.node[int(b)].output[0]
    elif kind == "opset":
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = int(rng.choice([6, 9, 10, 11, 99]))
    return m


# --------------------------------------------------------------------- checking
def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b), initial=0.0) / max(1.0, float(np.max(np.abs(b), initial=0))))


def check(mutant: onnx.ModelProto | bytes, rng: np.random.Generator) -> tuple[str, str]:
    """Classify one mutant: ``(outcome, detail)``, outcome one of :data:`OUTCOMES`."""
    import netopt
    from netopt.bounds import compute_bounds

    try:
        net = netopt.load(mutant)
    except netopt.NetoptError as e:
        return "refused", f"{type(e).__name__}: {str(e)[:200]}"
    except _Timeout:
        raise
    except Exception:
        return "raw_exception", "load: " + traceback.format_exc(limit=-3)
    try:
        if len(net.graph.inputs) != 1:
            return "ok", "several inputs: not compared"
        x = rng.uniform(-1, 1, (4, *net.input_shape))
        try:
            ref = net.run_onnxruntime(x)
        except netopt.NetoptError as e:
            return "ort_refuses", str(e)[:300]
        with np.errstate(all="ignore"):
            y = net.forward(x)
        if y.shape != ref.shape:
            return "mismatch", f"shape {y.shape} vs onnxruntime's {ref.shape}"
        fin = np.isfinite(ref)
        if not np.array_equal(fin, np.isfinite(y)):
            return "mismatch", "non-finite values differ"
        if _rel_err(y[fin], ref[fin]) > RTOL:
            return "mismatch", f"relative difference {_rel_err(y[fin], ref[fin]):.3g}"
        lo = -np.ones(net.input_shape)
        hi = np.ones(net.input_shape)
        with np.errstate(all="ignore"):
            b = compute_bounds(net.graph, lo, hi, "interval")
        blo, bhi = b[net.graph.outputs[0]]
        flat = y.reshape(len(y), -1)
        tol = 1e-9 * np.maximum(1.0, np.abs(flat))
        if np.any(flat < blo - tol) or np.any(flat > bhi + tol):
            return "bounds", "a sampled output lies outside the interval bounds"
        return "ok", ""
    except _Timeout:
        raise
    except Exception:
        return "raw_exception", "after load: " + traceback.format_exc(limit=-3)


def _with_timeout(fn: Callable[[], tuple[str, str]], seconds: float) -> tuple[str, str]:
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        return fn()

    def on_alarm(*_):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    except _Timeout:
        return "hang", f"over {seconds} s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def fuzz(
    n: int,
    seed: int = 0,
    nets: Path | None = DEFAULT_NETS,
    timeout: float = 20.0,
    kinds: list[str] | None = None,
) -> tuple[dict[str, collections.Counter], list[tuple[str, str, str, str, bytes]]]:
    """Run ``n`` mutants; returns the counts per kind and the bad cases.

    Returns
    -------
    counts : dict of kind -> Counter of outcome
    bad : list of (seed model, kind, outcome, detail, serialized mutant)
    """
    import logging

    # warnings would flood the table; the level is restored for the caller (a test session)
    logger = logging.getLogger("netopt")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _fuzz(n, seed, nets, timeout, kinds)
    finally:
        logger.setLevel(level)


def _fuzz(
    n: int,
    seed: int,
    nets: Path | None,
    timeout: float,
    kinds: list[str] | None,
) -> tuple[dict[str, collections.Counter], list[tuple[str, str, str, str, bytes]]]:
    rng = np.random.default_rng(seed)
    seeds = seed_models(nets)
    kinds = kinds or MUTATIONS
    counts: dict[str, collections.Counter] = {k: collections.Counter() for k in kinds}
    bad: list[tuple[str, str, str, str, bytes]] = []
    for _ in range(n):
        sname, model = seeds[int(rng.integers(len(seeds)))]
        kind = kinds[int(rng.integers(len(kinds)))]
        sub = np.random.default_rng(int(rng.integers(2**63)))
        try:
            mutant = mutate(model, kind, sub)
        except Exception:  # a mutation that does not apply to this model: skip, not a finding
            continue
        outcome, detail = _with_timeout(lambda m=mutant, r=sub: check(m, r), timeout)
        counts[kind][outcome] += 1
        if outcome in BAD:
            data = mutant if isinstance(mutant, bytes) else mutant.SerializeToString()
            bad.append((sname, kind, outcome, detail, data))
    return counts, bad


def table(counts: dict[str, collections.Counter]) -> str:
    """A Markdown table of counts per mutation kind x outcome."""
    head = "| kind | " + " | ".join(OUTCOMES) + " |"
    rows = [head, "|" + "---|" * (len(OUTCOMES) + 1)]
    total: collections.Counter = collections.Counter()
    for k, c in counts.items():
        total.update(c)
        rows.append(f"| {k} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    rows.append("| **all** | " + " | ".join(str(total[o]) for o in OUTCOMES) + " |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="?", default=str(DEFAULT_NETS))
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--show", type=int, default=20, help="bad cases to print")
    args = ap.parse_args()
    import time

    t = time.perf_counter()
    counts, bad = fuzz(args.n, args.seed, Path(args.nets), args.timeout)
    secs = time.perf_counter() - t
    print(f"machine: {platform.machine()}, python {platform.python_version()}; {secs:.0f} s")
    print(f"mutants: {args.n}, seed {args.seed}")
    print(table(counts))
    print(f"bad outcomes: {len(bad)}")
    byclass = collections.Counter((k, o, d.splitlines()[-1][:100]) for _, k, o, d, _ in bad)
    for (k, o, d), c in byclass.most_common(args.show):
        print(f"  {c:4d} x {k} / {o}: {d}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
