"""onnxruntime as the oracle of the ONNX frontend's tests: netopt's forward pass must compute what
onnxruntime computes, before and after the passes; a mutant is either refused with a
:class:`netopt.NetoptError` or agrees with onnxruntime where onnxruntime runs it too.
"""

from __future__ import annotations

import traceback

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import event, note

import netopt

TOL = 1e-5


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max(1, max |b|)``: relative for large outputs, absolute near 0."""
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def ort_session(data: bytes, optimize: bool = True):
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def random_inputs(net: netopt.Network, k: int, seed_: int) -> np.ndarray:
    """``k`` random samples, float32-representable so both sides see the same numbers."""
    rng = np.random.default_rng(seed_)
    x = rng.uniform(-2.0, 2.0, (k, *net.input_shape)).astype(np.float32)
    return x.astype(np.float64)


def ort_outputs(
    data: bytes, net: netopt.Network, x: np.ndarray, optimize: bool, per_sample: bool = False
) -> list[np.ndarray]:
    """Every graph output by onnxruntime, as ``(B, *netopt's shape)`` float64 arrays.

    Like :meth:`netopt.Network.run_onnxruntime`, but for all outputs, optionally without
    onnxruntime's graph optimizations, and optionally one sample at a time even where the
    batch is symbolic (netopt's semantics is the network's on a batch of one).
    """
    sess = ort_session(data, optimize)
    m = onnx.load_from_string(data)
    inits = {i.name for i in m.graph.initializer}
    vi = next(i for i in m.graph.input if i.name not in inits)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
    shapes = [net.graph.value(o).shape for o in net.graph.outputs]
    if len(dims) == len(net.input_shape) + 1 and not dims[0] and not per_sample:
        res = sess.run(None, {vi.name: x.astype(np.float32)})
        return [
            np.asarray(r, np.float64).reshape(len(x), *s) for r, s in zip(res, shapes, strict=True)
        ]
    lead = (1,) if len(dims) == len(net.input_shape) + 1 else ()
    runs = [sess.run(None, {vi.name: xi.reshape(lead + xi.shape).astype(np.float32)}) for xi in x]
    return [
        np.stack([np.asarray(r[k], np.float64).reshape(s) for r in runs])
        for k, s in enumerate(shapes)
    ]


def check_against_onnxruntime(
    model: onnx.ModelProto | bytes, net: netopt.Network, seed_: int = 0
) -> None:
    """``net`` (after and before the passes) matches onnxruntime on a few random inputs.

    The reference is :meth:`netopt.Network.run_onnxruntime` (and the same session for the
    other outputs). onnxruntime's graph optimizer has bugs of its own (e.g. its transpose
    optimizer fails on a Pad-18 with ``axes`` between Transposes): where the optimized session
    fails or disagrees, the unoptimized graph, the ONNX semantics, is the reference.
    """
    data = model if isinstance(model, bytes) else model.SerializeToString()
    x = random_inputs(net, 3, seed_)
    res = net.forward(x, all_outputs=True)
    ys = [res[o] for o in net.graph.outputs]

    def agree(refs: list[np.ndarray]) -> bool:
        return all(
            y.shape == r.shape and rel_err(y, r) <= TOL for y, r in zip(ys, refs, strict=True)
        )

    try:
        refs = [net.run_onnxruntime(x), *ort_outputs(data, net, x, True)[1:]]
    except Exception as e:  # onnxruntime's own failure
        note(f"optimized onnxruntime fails: {e}")
        event("onnxruntime fails with its graph optimizations only")
        refs = None
    if refs is None or not agree(refs):
        plain = ort_outputs(data, net, x, False)
        if refs is not None and agree(plain):
            note("onnxruntime's graph optimizer changes the result; the unoptimized graph agrees")
            event("onnxruntime's graph optimizations change the result")
        refs = plain
    for k, (y, r) in enumerate(zip(ys, refs, strict=True)):
        assert y.shape == r.shape == (3, *net.graph.value(net.graph.outputs[k]).shape)
        err = rel_err(y, r)
        assert err <= TOL, f"output {k}: netopt and onnxruntime differ by {err:.3g}"
    raw = netopt.load(model, passes=())
    raw_res = raw.forward(x, all_outputs=True)
    for k, o in enumerate(raw.graph.outputs):
        err_raw = rel_err(raw_res[o], ys[k])
        assert err_raw <= 1e-9, f"output {k}: the passes change the function by {err_raw:.3g}"
    # one sample without a batch axis gives the same as the batch
    assert rel_err(net.forward(x[0]), ys[0][0]) <= 1e-12


def ort_accepts(data: bytes) -> bool:
    try:
        ort_session(data)
    except Exception:
        return False
    return True


def float32_scale(net: netopt.Network, x: np.ndarray) -> float:
    """The largest magnitude float32 arithmetic meets in the forward pass (its rounding and
    overflow scale with it): any value, and any weight times the largest value (a product
    can overflow inside a sum that does not)."""
    from netopt.ir.interpret import as_batch, interpret

    feeds, _ = as_batch(net.graph, x)
    vals = interpret(net.graph, feeds, keep=True).values()
    v = max([1.0, *(float(np.max(np.abs(t))) for t in vals if t.size)])
    w = max(
        [
            0.0,
            *(
                float(np.max(np.abs(a)))
                for o in net.graph.ops
                for a in o.attrs.values()
                if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size
            ),
        ]
    )
    return max(v, w * v)


def check_mutant(mutant: onnx.ModelProto | bytes) -> None:
    """Load a mutant: a NetoptError is fine; a network must agree with onnxruntime if it runs it."""
    try:
        net = netopt.load(mutant)
    except netopt.NetoptError as e:
        note(f"refused: {type(e).__name__}: {str(e)[:300]}")
        event(f"netopt refuses: {type(e).__name__}")
        return
    except Exception:
        pytest.fail(f"netopt.load raised a non-netopt exception:\n{traceback.format_exc()}")
    data = mutant if isinstance(mutant, bytes) else mutant.SerializeToString()
    if len(net.graph.inputs) > 1 or any(v.size > 100_000 for v in net.graph.values.values()):
        return  # onnxruntime runs are for one input; huge tensors only cost time
    x = random_inputs(net, 2, 3)
    try:
        # a mutant may mix the samples of a batch (a Softmax over axis 0, ...): compare
        # on batches of one, where netopt's per-sample semantics is the model's
        refs = ort_outputs(data, net, x, False, per_sample=True)
    except Exception:
        event("netopt loads, onnxruntime refuses")
        return
    event("netopt loads, onnxruntime runs")
    try:
        # corrupt weights may overflow: the comparison below skips non-finite references
        with np.errstate(all="ignore"):
            res = net.forward(x, all_outputs=True)
            ys = [res[o] for o in net.graph.outputs]
            scale = float32_scale(net, x)
            raw = netopt.load(mutant, passes=())
            raw_res = raw.forward(x, all_outputs=True)
    except Exception:
        pytest.fail(f"netopt loaded the mutant but cannot run it:\n{traceback.format_exc()}")
    for k, (y, r) in enumerate(zip(ys, refs, strict=True)):
        assert y.shape == r.shape, f"output {k}: shape {y.shape} vs onnxruntime's {r.shape}"
        if not np.all(np.isfinite(r)):
            # float32 overflows where netopt's float64 values are huge; else both must agree
            assert scale > 1e30 or np.array_equal(np.isfinite(y), np.isfinite(r)), (
                f"output {k}: onnxruntime gives non-finite values where netopt does not"
            )
            continue
        err = float(np.max(np.abs(y - r), initial=0.0)) / scale
        assert err <= TOL, (
            f"output {k}: netopt and onnxruntime differ by {err:.3g} (scale {scale:.3g})"
        )
        assert rel_err(raw_res[raw.graph.outputs[k]], y) <= 1e-9
