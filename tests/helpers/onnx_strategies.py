"""Hypothesis strategies for the ONNX frontend's property tests: random valid models, and mutants.

:func:`models` builds small random ONNX models with ``onnx.helper`` from the ops the frontend
supports, respecting each op's schema at the drawn opset (7..21). A generator keeps track of
the current tensor's shape and picks a next op valid for it: an "image" part (Conv, pools,
BatchNorm, Pad, NHWC<->NCHW Transpose pairs, residuals, Concat) and a "vector" part (Gemm,
MatMul on either side, arithmetic with constants, activations, reshapes, residuals). The batch
axis is symbolic (``'N'``: every op then acts per sample), fixed at 1 (ops may then act on the
batch axis too, which exercises the frontend's unbatching), or absent (rank-1 inputs).

:func:`mutate` breaks or alters a valid model (dropped node, corrupt bytes, wrong attribute
types, dangling inputs, cycles, duplicate outputs, empty graph, ...).

The runs are derandomized (reproducible in CI). To explore other examples locally, set
``NETOPT_PROPERTY_SEED`` (an integer) and ``NETOPT_PROPERTY_SCALE`` (a factor on the number of
examples), e.g. ``NETOPT_PROPERTY_SEED=7 NETOPT_PROPERTY_SCALE=10 pytest tests/frontend``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import numpy as np
import onnx
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from helpers.onnx_builders import Builder, Case, T, min_ir

_SEED = os.environ.get("NETOPT_PROPERTY_SEED")
_SCALE = float(os.environ.get("NETOPT_PROPERTY_SCALE", "1"))


def property_settings(n: int) -> Callable:
    """Reproducible settings (fixed seed, no example database) with ``n`` examples."""
    s = settings(
        max_examples=max(1, int(n * _SCALE)),
        deadline=None,
        derandomize=_SEED is None,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )
    if _SEED is None:
        return s
    return lambda f: seed(int(_SEED))(s(f))


# each step: (name, applicable(b, x), build(b, x) -> T, weight)
STEPS: list[tuple[str, Callable[[Builder, T], bool], Callable[[Builder, T], T], int]] = []


def step(name: str, ok: Callable[[Builder, T], bool], weight: int = 1):
    """Register a generator step; ``weight`` is its relative frequency where it applies."""

    def deco(fn):
        STEPS.append((name, ok, fn, weight))
        return fn

    return deco


def _small(x: T, limit: int = 200) -> bool:
    return x.size <= limit


def _image(b: Builder, x: T) -> bool:
    # the 2-D window ops: (N, C, H, W) with N the batch (netopt's only case)
    return x.rank == 4 and x.shape[0] == 1


def _lo(b: Builder) -> int:
    """The first axis an op may touch."""
    return 1 if b.sym else 0


# ------------------------------------------------------------------ elementwise
def _const_shape(b: Builder, x: T) -> tuple[int, ...]:
    """A constant shape that broadcasts against ``x`` (without widening it, mostly)."""
    r = x.rank
    kind = b.pick(["scalar", "one", "trailing", "full", "wide"])
    if kind == "scalar" or r == 0:
        return ()
    if kind == "one":
        return (1,)
    if kind == "wide" and not b.sym and x.size <= 60:
        # the output gets a new, or a longer, leading axis: it is no batch any more
        if x.shape[0] == 1 and b.coin():
            return (b.randint(2, 3), *x.shape[1:])
        return (b.randint(2, 3), *x.shape)
    k = r if kind == "full" else b.randint(1, r)
    shape = list(x.shape[r - k :])
    for i in range(len(shape)):
        if b.coin(0.3):
            shape[i] = 1
    if b.sym and k == r:
        shape[0] = 1
    return tuple(shape)


@step("arith", lambda b, x: True)
def arith(b: Builder, x: T) -> T:
    op = b.pick(["Add", "Sub", "Mul", "Div"])
    cs = _const_shape(b, x)
    if op == "Div":
        c = b.rng.uniform(0.5, 2.0, cs) * b.rng.choice([-1.0, 1.0], cs)
    elif op == "Mul":
        c = b.rng.uniform(-1.5, 1.5, cs)
    else:
        c = b.rng.uniform(-1.0, 1.0, cs)
    cn = b.const(np.asarray(c, dtype=np.float32), "k")
    ins = [x.name, cn] if op == "Div" or b.coin() else [cn, x.name]
    return b.node(op, ins, np.broadcast_shapes(x.shape, cs))


@step("activation", lambda b, x: True)
def activation(b: Builder, x: T) -> T:
    op = b.pick(["Relu", "LeakyRelu", "Sigmoid", "Tanh"])
    attrs = {}
    if op == "LeakyRelu" and b.coin(0.7):
        attrs["alpha"] = float(b.pick([0.01, 0.1, 0.2, 0.5, 1.5]))
    return b.node(op, [x.name], x.shape, **attrs)


def _softmax_ok(b: Builder, x: T) -> bool:
    return x.rank >= (2 if b.sym else 1)


@step("softmax", _softmax_ok)
def softmax(b: Builder, x: T) -> T:
    op = b.pick(["Softmax", "LogSoftmax"])
    a = b.randint(_lo(b), x.rank - 1)
    attrs = {}
    default = 1 if b.opset < 13 else x.rank - 1
    if a != default or b.coin(0.3):
        attrs["axis"] = b.axis(a, x.rank)
    return b.node(op, [x.name], x.shape, **attrs)


@step("clip", lambda b, x: True)
def clip(b: Builder, x: T) -> T:
    # lo = 0 is the Relu6 style
    lo = 0.0 if b.coin(0.2) else float(np.float32(b.rng.uniform(-1.0, 0.5)))
    hi = float(np.float32(lo + b.rng.uniform(0.1, 2.0)))
    which = b.pick(["both", "min", "max"])
    if b.opset < 11:
        attrs = {}
        if which != "max":
            attrs["min"] = lo
        if which != "min":
            attrs["max"] = hi
        return b.node("Clip", [x.name], x.shape, **attrs)
    ins = [x.name]
    ins.append(b.const(np.array(lo, dtype=np.float32)) if which != "max" else "")
    if which != "min":
        ins.append(b.const(np.array(hi, dtype=np.float32)))
    return b.node("Clip", ins, x.shape)


@step("identity", lambda b, x: True)
def identity(b: Builder, x: T) -> T:
    op = b.pick(["Identity", "Dropout", "Cast"])
    if op == "Identity":
        return b.node("Identity", [x.name], x.shape)
    if op == "Cast":
        if b.coin(0.3):
            # a float -> double -> float round trip (exporters' dtype fix-ups)
            d = b.node("Cast", [x.name], x.shape, to=TensorProto.DOUBLE)
            return b.node("Cast", [d.name], x.shape, to=TensorProto.FLOAT)
        return b.node("Cast", [x.name], x.shape, to=TensorProto.FLOAT)
    n_out = 2 if b.coin(0.3) else 1  # a declared, unused mask output
    if b.opset < 12:
        attrs = {"ratio": float(b.pick([0.1, 0.5]))} if b.coin() else {}
        return b.node("Dropout", [x.name], x.shape, n_out=n_out, **attrs)
    ins = [x.name]
    if b.coin():
        ins.append(b.const(np.array(0.3, dtype=np.float32)))
        if b.coin():
            ins.append(b.const(np.array(False)))
    return b.node("Dropout", ins, x.shape, n_out=n_out)


# ----------------------------------------------------------------------- linear
@step("gemm", lambda b, x: x.rank == 2 and _small(x, 120), weight=4)
def gemm(b: Builder, x: T) -> T:
    m, n = x.shape
    k = b.randint(1, 6)
    attrs: dict = {}
    if b.coin(0.3):
        attrs["alpha"] = float(b.pick([0.5, 2.0, -1.0]))
    if b.coin(0.3):
        attrs["beta"] = float(b.pick([0.5, 2.0, 0.0]))
    if b.sym or b.coin(0.6):
        # Y = x' W' + C, the exporters' form
        ta = 0 if b.sym else int(b.coin(0.3))
        rows, inner = (n, m) if ta else (m, n)
        tb = int(b.coin())
        w = b.weight((k, inner) if tb else (inner, k), inner)
        ins = [x.name, b.const(w, "W")]
        out = (rows, k)
        attrs.update({"transA": ta} if ta or b.coin(0.2) else {})
        attrs.update({"transB": tb} if tb or b.coin(0.2) else {})
    else:
        # Y = W' x' + C: the variable is the right operand
        tb = int(b.coin(0.4))
        inner, cols = (n, m) if tb else (m, n)
        ta = int(b.coin())
        w = b.weight((inner, k) if ta else (k, inner), inner)
        ins = [b.const(w, "W"), x.name]
        out = (k, cols)
        attrs.update({"transA": ta} if ta else {})
        attrs.update({"transB": tb} if tb else {})
    cshape = b.pick(["none", "row", "row2", "scalar", "one", "col", "full"])
    if cshape == "none" and b.opset < 11:
        cshape = "row"  # C is required before opset 11
    if b.sym and cshape in ("col", "full"):
        cshape = "row2"
    shapes = {
        "row": (out[1],),
        "row2": (1, out[1]),
        "scalar": (),
        "one": (1,),
        "col": (out[0], 1),
        "full": out,
    }
    if cshape != "none":
        ins.append(b.const(b.weight(shapes[cshape]), "C"))
    return b.node("Gemm", ins, out, **attrs)


def _matmul_ok(b: Builder, x: T) -> bool:
    if not _small(x, 120) or x.rank == 0:
        return False
    return not b.sym or x.rank >= 2


@step("matmul", _matmul_ok, weight=2)
def matmul(b: Builder, x: T) -> T:
    # the weight on the left contracts axis -2, which must not be the symbolic batch
    left_ok = x.rank > 2 or (x.rank >= 1 and not b.sym)
    if left_ok and b.coin(0.35):
        k = b.randint(1, 5)
        inner = x.shape[0] if x.rank == 1 else x.shape[-2]
        if b.coin(0.2):
            w = b.weight((inner,), inner)  # a row vector: the contracted axis disappears
            out = () if x.rank == 1 else (*x.shape[:-2], x.shape[-1])
        else:
            w = b.weight((k, inner), inner)
            out = (k,) if x.rank == 1 else (*x.shape[:-2], k, x.shape[-1])
        return b.node("MatMul", [b.const(w, "W"), x.name], out)
    n = x.shape[-1]
    if b.coin(0.15) and (x.rank >= 2 or not b.sym):
        w = b.weight((n,), n)
        out = x.shape[:-1]
    else:
        k = b.randint(1, 6)
        w = b.weight((n, k), n)
        out = (*x.shape[:-1], k)
    return b.node("MatMul", [x.name, b.const(w, "W")], out)


@step("batchnorm", lambda b, x: x.rank >= 2 and x.rank <= 4)
def batchnorm(b: Builder, x: T) -> T:
    c = x.shape[1]
    ins = [x.name]
    ins.append(b.const(b.rng.uniform(0.5, 1.5, c).astype(np.float32), "gamma"))
    ins.append(b.const(b.rng.uniform(-0.5, 0.5, c).astype(np.float32), "beta"))
    ins.append(b.const(b.rng.uniform(-0.5, 0.5, c).astype(np.float32), "mean"))
    ins.append(b.const(b.rng.uniform(0.2, 2.0, c).astype(np.float32), "var"))
    attrs = {}
    if b.coin():
        attrs["epsilon"] = float(b.pick([1e-5, 1e-3, 0.1]))
    if b.coin(0.2):
        attrs["momentum"] = 0.9
    if b.opset < 9 and b.coin(0.3):
        attrs["spatial"] = 1
    if b.opset >= 14 and b.coin(0.2):
        attrs["training_mode"] = 0
    return b.node("BatchNormalization", ins, x.shape, **attrs)


# ----------------------------------------------------------------- index remaps
@step("flatten", lambda b, x: x.rank >= 2)
def flatten(b: Builder, x: T) -> T:
    # with a symbolic batch only axis 1 keeps the samples apart
    a = 1 if b.sym else b.randint(0, x.rank)
    out = (int(np.prod(x.shape[:a])), int(np.prod(x.shape[a:])))
    attrs = {"axis": b.axis(a, x.rank)} if a != 1 or b.coin(0.3) else {}
    return b.node("Flatten", [x.name], out, **attrs)


def _factor(b: Builder, n: int, parts: int) -> list[int]:
    """``n`` as a product of ``parts`` positive factors."""
    out = []
    for _ in range(parts - 1):
        divs = [d for d in range(1, n + 1) if n % d == 0]
        d = b.pick(divs)
        out.append(d)
        n //= d
    return [*out, n]


@step("reshape", lambda b, x: x.rank >= (1 if not b.sym else 1))
def reshape(b: Builder, x: T) -> T:
    if b.sym:
        dims = [1, *_factor(b, int(np.prod(x.shape[1:])), b.randint(0, 3))]
    else:
        dims = _factor(b, x.size, b.randint(1, 4))
    spec = list(dims)
    # 0 copies the input's dimension at that position (the batch axis: always fine)
    for i in range(len(spec)):
        if i < x.rank and x.shape[i] == dims[i] and b.coin(0.4):
            spec[i] = 0
    if b.sym and spec[0] != 0:
        spec[0] = 0 if b.coin(0.6) else -1
    if -1 not in spec and b.coin(0.5):
        cand = [i for i in range(len(spec)) if spec[i] != 0]
        if cand:
            spec[b.pick(cand)] = -1
    if b.sym and spec[0] == -1 and int(np.prod(dims[1:])) == 0:
        spec[0] = 0
    attrs = {}
    if b.opset >= 14 and b.coin(0.2):
        attrs["allowzero"] = 0
    return b.node("Reshape", [x.name, b.ints(spec)], dims, **attrs)


@step("shape_reshape", lambda b, x: x.rank >= 1 + b.sym)
def shape_reshape(b: Builder, x: T) -> T:
    """PyTorch's ``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    s = b.node("Shape", [x.name], (x.rank,))
    d0 = b.node("Gather", [s.name, b.ints(0)], (), axis=0)
    ins, attrs = [d0.name], {}
    _axes_input(b, ins, [0], attrs)
    u = b.node("Unsqueeze", ins, (1,), **attrs)
    target = b.node("Concat", [u.name, b.ints([-1])], (2,), axis=0)
    return b.node("Reshape", [x.name, target.name], (x.shape[0], x.size // x.shape[0]))


def _axes_input(b: Builder, ins: list[str], axes: list[int], attrs: dict) -> None:
    if b.opset >= 13:
        ins.append(b.ints(axes))
    else:
        attrs["axes"] = axes


@step("unsqueeze", lambda b, x: x.rank <= 4)
def unsqueeze(b: Builder, x: T) -> T:
    k = b.randint(1, 2)
    r = x.rank + k
    pos = sorted(b.draw(st.sets(st.integers(_lo(b), r - 1), min_size=k, max_size=k)))
    out, it = [], iter(x.shape)
    for i in range(r):
        out.append(1 if i in pos else next(it))
    axes = [b.axis(p, r) for p in pos]
    ins, attrs = [x.name], {}
    _axes_input(b, ins, axes, attrs)
    return b.node("Unsqueeze", ins, out, **attrs)


def _squeezable(b: Builder, x: T) -> list[int]:
    return [i for i in range(_lo(b), x.rank) if x.shape[i] == 1]


@step("squeeze", lambda b, x: bool(_squeezable(b, x)))
def squeeze(b: Builder, x: T) -> T:
    cand = _squeezable(b, x)
    ins, attrs = [x.name], {}
    empty = False
    if not b.sym and b.coin(0.25):
        axes = cand  # no axes: every size-1 axis goes
        empty = b.coin(0.3)  # an empty axes list means the same to onnxruntime
        if empty and b.opset >= 13:
            ins.append(b.ints(np.zeros(0, np.int64)))
    else:
        axes = sorted(b.draw(st.sets(st.sampled_from(cand), min_size=1)))
        _axes_input(b, ins, [b.axis(a, x.rank) for a in axes], attrs)
    out = [d for i, d in enumerate(x.shape) if i not in axes]
    y = b.node("Squeeze", ins, out, **attrs)
    if empty and b.opset < 13:
        b.nodes[-1].attribute.append(
            helper.make_attribute("axes", [], attr_type=onnx.AttributeProto.INTS)
        )
    return y


@step("transpose", lambda b, x: x.rank >= 2 + b.sym)
def transpose(b: Builder, x: T) -> T:
    lo = _lo(b)
    if x.rank == 4 and b.coin(0.4):
        perm = list(b.pick([(0, 2, 3, 1), (0, 3, 1, 2)]))
    else:
        perm = list(range(lo)) + list(b.draw(st.permutations(list(range(lo, x.rank)))))
    out = [x.shape[p] for p in perm]
    if not b.sym and perm == list(reversed(range(x.rank))) and b.coin():
        return b.node("Transpose", [x.name], out)  # no perm: the axes reversed
    return b.node("Transpose", [x.name], out, perm=perm)


@step("transpose_pair", lambda b, x: x.rank == 4)
def transpose_pair(b: Builder, x: T) -> T:
    """NCHW -> NHWC, something elementwise, NHWC -> NCHW (tf2onnx's pattern around convs)."""
    y = b.node("Transpose", [x.name], [x.shape[i] for i in (0, 2, 3, 1)], perm=[0, 2, 3, 1])
    if b.coin(0.7):
        if b.coin():
            # a per-channel constant in NHWC is a (C,) vector on the last axis
            c = b.const(b.rng.uniform(-1, 1, y.shape[3]).astype(np.float32), "k")
            y = b.node(b.pick(["Add", "Mul"]), [y.name, c], y.shape)
        else:
            y = activation(b, y)
    return b.node("Transpose", [y.name], x.shape, perm=[0, 3, 1, 2])


@step("pad", lambda b, x: x.rank >= 1 + b.sym and _small(x, 150))
def pad(b: Builder, x: T) -> T:
    r = x.rank
    pads = [
        0 if (b.sym and i % r == 0) or (_image(b, x) and i % r == 0) else b.randint(0, 2)
        for i in range(2 * r)
    ]
    if not any(pads):
        pads[r - 1] = 1
    out = [x.shape[i] + pads[i] + pads[i + r] for i in range(r)]
    value = float(b.pick([0.0, 0.0, 1.5, -0.5]))
    mode = {"mode": "constant"} if b.coin(0.3) else {}
    if b.opset < 11:
        attrs = {"pads": pads, **mode}
        if value or b.coin(0.3):
            attrs["value"] = value
        return b.node("Pad", [x.name], out, **attrs)
    ins = [x.name]
    if b.opset >= 18 and b.coin(0.3):
        # pads for some axes only
        axes = [i for i in range(r) if pads[i] or pads[i + r]]
        pin = [pads[i] for i in axes] + [pads[i + r] for i in axes]
        ins += [
            b.ints(pin),
            b.const(np.array(value, dtype=np.float32)),
            b.ints([b.axis(a, r, 18) for a in axes]),
        ]
        return b.node("Pad", ins, out, **mode)
    ins.append(b.ints(pads))
    if value or b.coin(0.3):
        ins.append(b.const(np.array(value, dtype=np.float32)))
    return b.node("Pad", ins, out, **mode)


# ------------------------------------------------------------------------ DAGs
def _last_axis_ok(b: Builder, x: T) -> bool:
    """Whether an op may act on the last axis (it must not be the symbolic batch)."""
    return x.rank >= 1 + b.sym


def _same_shape_branch(b: Builder, x: T) -> T:
    """A short branch off ``x`` that keeps its shape."""
    kinds = ["act", "arith"] + ["dense"] * _last_axis_ok(b, x) + ["conv"] * _image(b, x)
    kind = b.pick(kinds)
    if kind == "act":
        return activation(b, x)
    if kind == "arith":
        c = b.const(b.rng.uniform(-1, 1, x.shape[-1:] if x.rank else ()).astype(np.float32), "k")
        return b.node(b.pick(["Add", "Mul"]), [x.name, c], x.shape)
    if kind == "conv":
        c = x.shape[1]
        k = b.pick([1, 3])
        w = b.shared_weight((c, c, k, k), c * k * k)
        y = b.node("Conv", [x.name, w], x.shape, pads=[k // 2] * 4)
        return activation(b, y)
    n = x.shape[-1]
    y = b.node("MatMul", [x.name, b.shared_weight((n, n), n)], x.shape)
    return activation(b, y) if b.coin() else y


@step("residual", lambda b, x: x.rank >= 1 and _small(x, 150))
def residual(b: Builder, x: T) -> T:
    if _last_axis_ok(b, x) and b.coin(0.25):
        # a broadcasting residual: (.., n) + (.., 1)
        n = x.shape[-1]
        y = b.node("MatMul", [x.name, b.shared_weight((n, 1), n)], (*x.shape[:-1], 1))
    elif not b.sym and x.rank >= 2 and x.shape[0] == 1 and b.coin(0.2):
        # a residual across ranks: (1, *s) + (*s): one summand has lost the unit axis
        y = b.node("Reshape", [x.name, b.ints(x.shape[1:])], x.shape[1:])
        y = activation(b, y)
    else:
        y = _same_shape_branch(b, x)
    op = b.pick(["Add", "Add", "Sub"])
    ins = [x.name, y.name] if b.coin() else [y.name, x.name]
    return b.node(op, ins, np.broadcast_shapes(x.shape, y.shape))


def _concat_axes(b: Builder, x: T) -> list[int]:
    return list(range(_lo(b), x.rank))


@step("concat", lambda b, x: bool(_concat_axes(b, x)) and _small(x, 80))
def concat(b: Builder, x: T) -> T:
    a = b.pick(_concat_axes(b, x))
    if a == x.rank - 1 and b.coin():
        n = x.shape[-1]
        k = b.randint(1, 3)
        y = b.node("MatMul", [x.name, b.shared_weight((n, k), n)], (*x.shape[:-1], k))
    else:
        y = _same_shape_branch(b, x)
    parts = b.pick([[x, y], [y, x], [x, y, x]])
    out = list(x.shape)
    out[a] = sum(p.shape[a] for p in parts)
    return b.node("Concat", [p.name for p in parts], out, axis=b.axis(a, x.rank))


# ---------------------------------------------------------------- windows (2-D)
def window_size(
    b: Builder, n: int, k: int, s: int, d: int, p0: int, p1: int, ceil: bool
) -> int | None:
    ext = (k - 1) * d + 1
    span = n + p0 + p1 - ext
    if span < 0:
        return None
    out = (-(-span // s) if ceil else span // s) + 1
    # onnxruntime (and torch) drop a ceil_mode window that would start in the end padding;
    # onnx's shape inference does not, so the checker runs without full_check below
    if ceil and (out - 1) * s >= n + p0:
        out -= 1
    return out


def windows_hit_input(hw, ks, ss, ds, pads, out) -> bool:
    """Whether every pooling window holds an input cell (a dilation can skip them all)."""
    for i in range(2):
        starts = np.arange(out[i]) * ss[i] - pads[i]
        cells = starts[:, None] + np.arange(ks[i])[None, :] * ds[i]
        if not ((cells >= 0) & (cells < hw[i])).any(axis=1).all():
            return False
    return True


def _auto_pad(b: Builder, attrs: dict, hw, ks, ss, ds, pool: bool) -> tuple[int, int] | None:
    """Draw pads or auto_pad into ``attrs``; the output size, or None if the window does not fit."""
    mode = b.pick(["pads", "pads", "none", "SAME_UPPER", "SAME_LOWER", "VALID"])
    ceil = bool(attrs.get("ceil_mode", 0))
    if mode.startswith("SAME") and (
        ds != (1, 1)  # onnxruntime: "Dilation not supported for AutoPadType::SAME_UPPER"
        # onnxruntime refuses the negative pads SAME asks for when strides exceed the kernel
        or any((-(-n // s) - 1) * s + k < n for n, k, s in zip(hw, ks, ss, strict=True))
    ):
        mode = "pads"
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        attrs["auto_pad"] = mode
        return tuple(-(-n // s) for n, s in zip(hw, ss, strict=True))  # type: ignore[return-value]
    if mode == "VALID":
        attrs["auto_pad"] = mode
        pads = [0, 0, 0, 0]
    elif mode == "none":
        pads = [0, 0, 0, 0]
    else:
        # pools need pads smaller than the kernel
        pads = [b.randint(0, min(2, ks[i % 2] - 1) if pool else 2) for i in range(4)]
        attrs["pads"] = pads
    out = [window_size(b, hw[i], ks[i], ss[i], ds[i], pads[i], pads[i + 2], ceil) for i in range(2)]
    if None in out:
        return None
    return tuple(out)  # type: ignore[return-value]


@step("conv", lambda b, x: _image(b, x) and _small(x, 300), weight=3)
def conv(b: Builder, x: T) -> T:
    _, c, h, w = x.shape
    g = b.pick([d for d in range(1, c + 1) if c % d == 0])
    m = g * b.randint(1, 2 if g > 1 else 3)
    ks = (b.randint(1, 3), b.randint(1, 3))
    ss = (b.randint(1, 2), b.randint(1, 2)) if b.coin(0.4) else (1, 1)
    ds = (b.randint(1, 2), b.randint(1, 2)) if b.coin(0.3) else (1, 1)
    attrs: dict = {}
    out = _auto_pad(b, attrs, (h, w), ks, ss, ds, pool=False)
    if out is None:
        ks, ds, out = (1, 1), (1, 1), ((h - 1) // ss[0] + 1, (w - 1) // ss[1] + 1)
        attrs = {"pads": [0, 0, 0, 0]}
    if ss != (1, 1) or b.coin(0.2):
        attrs["strides"] = list(ss)
    if ds != (1, 1) or b.coin(0.2):
        attrs["dilations"] = list(ds)
    if g != 1 or b.coin(0.2):
        attrs["group"] = g
    if b.coin(0.6):
        attrs["kernel_shape"] = list(ks)
    ins = [x.name, b.shared_weight((m, c // g, *ks), c // g * ks[0] * ks[1])]
    if b.coin(0.7):
        ins.append(b.const(b.weight((m,)), "B"))
    return b.node("Conv", ins, (1, m, *out), **attrs)


@step("pool", lambda b, x: _image(b, x) and min(x.shape[2:]) >= 2, weight=3)
def pool(b: Builder, x: T) -> T:
    _, c, h, w = x.shape
    op = b.pick(["MaxPool", "AveragePool"])
    ks = (b.randint(1, min(3, h)), b.randint(1, min(3, w)))
    ss = (b.randint(1, 3), b.randint(1, 3)) if b.coin(0.7) else (1, 1)
    ds = (1, 1)
    attrs: dict = {"kernel_shape": list(ks)}
    dil_ok = b.opset >= (10 if op == "MaxPool" else 19)
    if dil_ok and b.coin(0.3):
        ds = (b.randint(1, 2), b.randint(1, 2))
        attrs["dilations"] = list(ds)
    if b.opset >= 10 and b.coin(0.4):
        attrs["ceil_mode"] = int(b.coin(0.8))
    if op == "AveragePool" and b.coin(0.6):
        attrs["count_include_pad"] = int(b.coin())
    out = _auto_pad(b, attrs, (h, w), ks, ss, ds, pool=True)
    if out is None or not windows_hit_input((h, w), ks, ss, ds, attrs.get("pads", [0] * 4), out):
        return b.node("GlobalAveragePool", [x.name], (1, c, 1, 1))
    if ss != (1, 1) or b.coin(0.3):
        attrs["strides"] = list(ss)
    n_out = 2 if op == "MaxPool" and b.opset >= 8 and b.coin(0.15) else 1  # unused Indices
    return b.node(op, [x.name], (1, c, *out), n_out=n_out, **attrs)


@step("global_pool", lambda b, x: _image(b, x))
def global_pool(b: Builder, x: T) -> T:
    return b.node("GlobalAveragePool", [x.name], (*x.shape[:2], 1, 1))


IMAGE_STEPS = {"conv", "pool", "global_pool", "transpose_pair"}


@st.composite
def models(draw, max_steps: int = 8) -> Case:
    """A random valid model of the supported ops, with its opset, batch kind and op log."""
    opset = draw(st.integers(7, 21))
    kind = draw(st.sampled_from(["vector", "vector", "rank1", "seq", "image", "image", "nhwc"]))
    if kind == "rank1":
        batch: str | int | None = None
    else:
        batch = draw(st.sampled_from(["N", 1]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = Builder(draw, opset, batch == "N", rng)
    if kind == "rank1":
        shape: tuple[int, ...] = (draw(st.integers(1, 6)),)
    elif kind == "vector":
        shape = (1, draw(st.integers(1, 6)))
    elif kind == "seq":
        shape = (1, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    else:
        shape = (1, draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    sym_name = draw(st.sampled_from(["N", "batch_size", "unk__7", None]))
    dims: list = list(shape)
    if batch == "N":
        dims[0] = sym_name  # None: a dimension with neither value nor name
    x0 = T(draw(st.sampled_from(["input", "input:0", "x.1", "0", "serving_default/x"])), shape)
    b.names.append(x0.name)
    x = x0
    if kind == "nhwc":
        # keras2onnx: the input is NHWC, a Transpose makes it NCHW
        dims = [dims[0], *shape[2:], shape[1]]
        x0 = T(x0.name, (1, *shape[2:], shape[1]))
        x = b.node("Transpose", [x0.name], shape, perm=[0, 3, 1, 2])
    n_steps = draw(st.integers(1, max_steps))
    extra_out: T | None = None
    for _ in range(n_steps):
        ok = [(nm, fn) for nm, pred, fn, w in STEPS if pred(b, x) for _ in range(w)]
        # favour the window ops while there is an image
        if _image(b, x) and draw(st.booleans()):
            ok = [p for p in ok if p[0] in IMAGE_STEPS] or ok
        _, fn = draw(st.sampled_from(ok))
        x = fn(b, x)
        if extra_out is None and draw(st.integers(0, 9)) == 0:
            extra_out = x
    # the declared outputs: symbolic batch, fixed shape, or no shape at all
    outs = [x] if extra_out is None or extra_out.name == x.name else [x, extra_out]
    ir = draw(st.integers(min_ir(opset), 10))
    out_infos = []
    for t in outs:
        how = draw(st.sampled_from(["shape", "shape", "unknown"]))
        if how == "unknown":
            # the checker wants a rank; the dimensions may all be unknown
            out_infos.append(
                helper.make_tensor_value_info(t.name, TensorProto.FLOAT, [None] * t.rank)
            )
        elif b.sym:
            out_infos.append(
                helper.make_tensor_value_info(t.name, TensorProto.FLOAT, [sym_name, *t.shape[1:]])
            )
        else:
            out_infos.append(
                helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.shape))
            )
    inputs = [helper.make_tensor_value_info(x0.name, TensorProto.FLOAT, dims)]
    if ir < 4 or draw(st.integers(0, 4)) == 0:
        # tf2onnx/MATLAB style: the weights are graph inputs too (required before IR 4)
        inputs += [
            helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in b.inits
        ]
    g = helper.make_graph(b.nodes, "g", inputs, out_infos, initializer=b.inits)
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", opset)], producer_name="hypothesis"
    )
    m.ir_version = ir
    return Case(m, opset, batch, b.log)


def describe(case: Case) -> str:
    return f"opset {case.opset}, batch {case.batch}:\n  " + "\n  ".join(case.ops)


# ------------------------------------------------------------------------ mutants
MUTATIONS = (
    "drop_node",
    "truncate",
    "flip_bytes",
    "attr_type",
    "attr_value",
    "dangling_input",
    "cycle",
    "duplicate_output",
    "empty_graph",
    "opset",
    "input_shape",
    "initializer_dtype",
    "int_constant",
    "swap_inputs",
    "op_type",
    "graph_inputs",
    "float_constant",
)

# op types that take the same inputs and mostly the same attributes
_SIMILAR_OPS = (
    ("Add", "Sub", "Mul", "Div"),
    ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Identity", "Dropout"),
    ("MaxPool", "AveragePool"),
    ("Softmax", "LogSoftmax"),
    ("Squeeze", "Unsqueeze"),
    ("GlobalAveragePool", "GlobalMaxPool"),
)

_WRONG_ATTRS = (
    "text",
    [1.5, 2.0],
    7,
    0.5,
    [1, 2],
    ["a", "b"],
    numpy_helper.from_array(np.ones((2, 2), np.float32)),
)


def _const_sources(m: onnx.ModelProto) -> set[str]:
    return {i.name for i in m.graph.initializer} | {
        o for n in m.graph.node if n.op_type == "Constant" for o in n.output
    }


def mutate(m: onnx.ModelProto, kind: str, draw) -> onnx.ModelProto | bytes:
    """A mutant of ``m`` of the given kind (a copy; ``m`` is left alone)."""
    m = copy.deepcopy(m)
    g = m.graph
    nodes = g.node

    def pick_node(pred=lambda n: True) -> onnx.NodeProto | None:
        cand = [n for n in nodes if pred(n)]
        return cand[draw(st.integers(0, len(cand) - 1))] if cand else None

    if kind == "drop_node" and nodes:
        del nodes[draw(st.integers(0, len(nodes) - 1))]
    elif kind == "truncate":
        data = m.SerializeToString()
        return data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flip_bytes":
        data = bytearray(m.SerializeToString())
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        return bytes(data)
    elif kind == "attr_type":
        n = pick_node(lambda n: len(n.attribute) > 0) or pick_node()
        if n is not None:
            if n.attribute:
                k = draw(st.integers(0, len(n.attribute) - 1))
                name, old = n.attribute[k].name, n.attribute[k].type
                new = [v for v in _WRONG_ATTRS if helper.make_attribute(name, v).type != old]
                del n.attribute[k]
                n.attribute.append(helper.make_attribute(name, draw(st.sampled_from(new))))
            else:
                n.attribute.append(
                    helper.make_attribute("axis", draw(st.sampled_from(_WRONG_ATTRS)))
                )
    elif kind == "attr_value":
        ints = (onnx.AttributeProto.INT, onnx.AttributeProto.INTS, onnx.AttributeProto.FLOAT)
        n = pick_node(lambda n: any(a.type in ints for a in n.attribute))
        if n is not None:
            a = draw(st.sampled_from([a for a in n.attribute if a.type in ints]))
            small = st.integers(-3, 6)
            if a.type == onnx.AttributeProto.INT:
                a.i = draw(small)
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = draw(st.sampled_from([-1.0, 0.0, 1e-3, 2.5, float("nan"), float("inf")]))
            else:
                vals = draw(st.lists(small, min_size=0, max_size=len(a.ints) + 1))
                del a.ints[:]
                a.ints.extend(vals)
    elif kind == "dangling_input":
        n = pick_node(lambda n: len(n.input) > 0)
        if n is not None:
            n.input[draw(st.integers(0, len(n.input) - 1))] = "undefined_tensor"
    elif kind == "cycle" and nodes:
        i = draw(st.integers(0, len(nodes) - 1))
        j = draw(st.integers(i, len(nodes) - 1))
        if nodes[i].input:
            nodes[i].input[draw(st.integers(0, len(nodes[i].input) - 1))] = nodes[j].output[0]
    elif kind == "duplicate_output":
        how = draw(st.sampled_from(["node", "graph_output", "input", "initializer"]))
        n = pick_node()
        if how == "graph_output" or n is None:
            g.output.append(copy.deepcopy(g.output[0]))
        elif how == "node":
            other = pick_node()
            n.output[0] = other.output[0]  # type: ignore[union-attr]
        elif how == "input":
            n.output[0] = g.input[0].name
        elif g.initializer:
            n.output[0] = g.initializer[0].name
    elif kind == "empty_graph":
        how = draw(st.sampled_from(["nodes", "nodes_and_outputs", "all", "no_graph"]))
        if how == "no_graph":
            m.ClearField("graph")
        elif how == "all":
            g.Clear()
        else:
            del nodes[:]
            if how == "nodes_and_outputs":
                del g.output[:]
    elif kind == "opset":
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = draw(st.integers(1, 25))
    elif kind == "input_shape":
        dims = g.input[0].type.tensor_type.shape.dim
        how = draw(st.sampled_from(["value", "drop_dim", "add_dim", "no_shape"]))
        if how == "no_shape":
            g.input[0].type.tensor_type.ClearField("shape")
        elif how == "add_dim":
            dims.add().dim_value = draw(st.integers(1, 3))
        elif dims and how == "drop_dim":
            del dims[draw(st.integers(0, len(dims) - 1))]
        elif dims:
            dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.integers(-1, 9))
    elif kind == "int_constant":
        # new values for an integer constant: shapes, axes, pads
        cand = [t for t in g.initializer if t.data_type == TensorProto.INT64]
        cand += [
            a.t
            for n in nodes
            if n.op_type == "Constant"
            for a in n.attribute
            if a.name == "value" and a.t.data_type == TensorProto.INT64
        ]
        if cand:
            t = draw(st.sampled_from(cand))
            old = numpy_helper.to_array(t)
            n_new = max(0, old.size + draw(st.integers(-1, 1))) if old.ndim == 1 else old.size
            vals = np.array(draw(st.lists(st.integers(-2, 6), min_size=n_new, max_size=n_new)))
            t.CopyFrom(
                numpy_helper.from_array(
                    vals.astype(np.int64).reshape(old.shape if old.ndim != 1 else -1), t.name
                )
            )
    elif kind == "swap_inputs":
        n = pick_node(lambda n: len(n.input) >= 2)
        if n is not None:
            i, j = draw(st.permutations(range(len(n.input))))[:2]
            n.input[i], n.input[j] = n.input[j], n.input[i]
    elif kind == "op_type":
        n = pick_node(lambda n: any(n.op_type in grp for grp in _SIMILAR_OPS))
        if n is not None:
            grp = next(grp for grp in _SIMILAR_OPS if n.op_type in grp)
            n.op_type = draw(st.sampled_from([o for o in grp if o != n.op_type]))
    elif kind == "float_constant":
        # special values in a float constant (weights, biases, Clip bounds, Pad values)
        cand = [t for t in g.initializer if t.data_type == TensorProto.FLOAT]
        cand += [
            a.t
            for n in nodes
            if n.op_type == "Constant"
            for a in n.attribute
            if a.name == "value" and a.t.data_type == TensorProto.FLOAT
        ]
        if cand:
            t = draw(st.sampled_from(cand))
            arr = numpy_helper.to_array(t).copy()
            f32 = np.finfo(np.float32)
            special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, f32.min, f32.max])
            for _ in range(draw(st.integers(1, 3))):
                if arr.size:
                    arr.flat[draw(st.integers(0, arr.size - 1))] = draw(special)
            t.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t.name))
    elif kind == "graph_inputs":
        how = draw(st.sampled_from(["output_is_input", "extra_input", "input_dtype", "no_input"]))
        if how == "output_is_input":
            g.output.append(copy.deepcopy(g.input[0]))
        elif how == "extra_input":
            g.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 2]))
        elif how == "input_dtype":
            g.input[0].type.tensor_type.elem_type = draw(
                st.sampled_from(
                    [TensorProto.DOUBLE, TensorProto.INT64, TensorProto.FLOAT16, TensorProto.BOOL]
                )
            )
        else:
            del g.input[0]
    elif kind == "initializer_dtype" and g.initializer:
        t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        t.data_type = draw(
            st.sampled_from(
                [
                    TensorProto.INT64,
                    TensorProto.DOUBLE,
                    TensorProto.FLOAT16,
                    TensorProto.STRING,
                    TensorProto.BOOL,
                    0,
                ]
            )
        )
    return m
