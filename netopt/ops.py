"""The IR op vocabulary: arity, attributes, shape inference and float64 numpy forward.

Every IR op maps per-sample tensors to one per-sample tensor. The numpy forward
functions take arrays with one extra leading batch axis ``B`` and are the
reference semantics of the op: the interpreter, the torch module and every
formulation must agree with them.

The vocabulary is kept small on purpose so that every formulation can cover it.
Each op is classified as

* ``linear`` — affine in its inputs (``affine``, ``scale``, ``conv2d``,
  ``avgpool2d``, ``add``, ``concat``, ``pad``, and the index remaps
  ``reshape``/``transpose``/``identity``);
* ``piecewise_linear`` — ``relu``, ``leaky_relu``, ``maxpool2d``: exact in a MILP;
* ``smooth`` — ``sigmoid``, ``tanh``, ``softmax``, ``log_softmax``: first-order
  methods only, unless a formulation has a rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["OpSpec", "OPS", "register_op", "pool_output_size", "KINDS"]

Shape = tuple[int, ...]
KINDS = ("linear", "piecewise_linear", "smooth")


@dataclass(frozen=True)
class OpSpec:
    """Specification of one IR op.

    Attributes
    ----------
    name : str
        The IR op name.
    kind : str
        One of :data:`KINDS`.
    arity : tuple of int
        Minimum and maximum number of inputs (``-1``: unbounded).
    attrs : tuple of str
        Attribute names the op requires.
    infer : callable
        ``infer(input_shapes, attrs) -> output_shape``; raises ``ValueError`` on a
        mismatch.
    forward : callable
        ``forward(input_arrays, attrs) -> array``, batched float64 reference.
    """

    name: str
    kind: str
    arity: tuple[int, int]
    attrs: tuple[str, ...]
    infer: Callable[[Sequence[Shape], Mapping[str, Any]], Shape]
    forward: Callable[[Sequence[np.ndarray], Mapping[str, Any]], np.ndarray]
    doc: str = ""


OPS: dict[str, OpSpec] = {}


def register_op(
    name: str, kind: str, arity: tuple[int, int] = (1, 1), attrs: tuple[str, ...] = ()
) -> Callable[[type], type]:
    """Class decorator registering an op: the class provides ``infer`` and ``forward``."""

    def deco(cls: type) -> type:
        if name in OPS:
            raise RuntimeError(f"IR op '{name}' is registered twice")
        if kind not in KINDS:
            raise RuntimeError(f"IR op '{name}': unknown kind {kind!r}")
        OPS[name] = OpSpec(
            name, kind, arity, attrs, cls.infer, cls.forward, (cls.__doc__ or "").strip()
        )
        return cls

    return deco


def _check_arity(name: str, shapes: Sequence[Shape], lo: int, hi: int) -> None:
    if len(shapes) < lo or (hi >= 0 and len(shapes) > hi):
        raise ValueError(f"{name} takes {lo}..{hi} inputs, got {len(shapes)}")


# ----------------------------------------------------------------------- linear
@register_op("affine", "linear", attrs=("weight", "bias"))
class Affine:
    r"""Dense affine map on the last axis: :math:`y = x W^\top + b`.

    ``weight`` has shape ``(out, in)``, ``bias`` ``(out,)``. The input's last axis
    has length ``in``; leading sample axes (if any) are carried along, as in
    ``torch.nn.Linear``. Gemm, MatMul(+Add) and folded constant Mul/Add become this.
    """

    @staticmethod
    def infer(shapes, a):
        _check_arity("affine", shapes, 1, 1)
        (s,) = shapes
        w, b = a["weight"], a["bias"]
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ValueError(f"affine weight {w.shape} / bias {b.shape} are not (out,in)/(out,)")
        if len(s) == 0 or s[-1] != w.shape[1]:
            raise ValueError(f"affine expects last axis {w.shape[1]}, input shape is {s}")
        return (*s[:-1], w.shape[0])

    @staticmethod
    def forward(xs, a):
        return xs[0] @ a["weight"].T + a["bias"]


@register_op("scale", "linear", attrs=("mul", "add"))
class Scale:
    r"""Elementwise affine map with broadcasting: :math:`y = x \odot a + c`.

    ``mul`` (``a``) and ``add`` (``c``) broadcast against the per-sample shape
    (numpy rules); the output shape is the broadcast shape. Sub/Add/Mul/Div by
    constants and BatchNormalization become this before the folding passes.
    """

    @staticmethod
    def infer(shapes, a):
        _check_arity("scale", shapes, 1, 1)
        return tuple(np.broadcast_shapes(shapes[0], a["mul"].shape, a["add"].shape))

    @staticmethod
    def forward(xs, a):
        x, m, c = xs[0], a["mul"], a["add"]
        r = max(x.ndim - 1, m.ndim, c.ndim)
        # align the constants with the sample axes, never with the batch axis: a constant of
        # higher rank than the sample widens it (numpy would broadcast it against the batch)
        x = x.reshape(x.shape[:1] + (1,) * (r - (x.ndim - 1)) + x.shape[1:])
        return x * m.reshape((1,) * (1 + r - m.ndim) + m.shape) + c.reshape(
            (1,) * (1 + r - c.ndim) + c.shape
        )


def _pair(v: Sequence[int]) -> tuple[int, int]:
    v = tuple(int(t) for t in v)
    if len(v) != 2:
        raise ValueError(f"expected 2 values, got {v}")
    return v  # type: ignore[return-value]


def pool_output_size(
    n: int, k: int, s: int, p0: int, p1: int, d: int = 1, ceil: bool = False
) -> int:
    """Output length of a sliding window (ONNX/torch rule, incl. ``ceil_mode``).

    With ``ceil_mode`` a last window that would start inside the end padding
    only is dropped (the rule of torch and onnxruntime).
    """
    ext = (k - 1) * d + 1
    span = n + p0 + p1 - ext
    if span < 0:
        raise ValueError(f"window of extent {ext} does not fit in length {n} with pads {p0},{p1}")
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p0:
        out -= 1
    return out


def _window_geometry(shape: Shape, a: Mapping[str, Any]) -> tuple[int, int]:
    if len(shape) != 3:
        raise ValueError(f"expects a (C, H, W) input, got shape {shape}")
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["strides"])
    dh, dw = _pair(a.get("dilations", (1, 1)))
    pt, pl, pb, pr = (int(t) for t in a["pads"])
    ceil = bool(a.get("ceil_mode", False))
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr) < 0:
        raise ValueError(f"invalid window kernel/strides/dilations/pads {dict(a)}")
    oh = pool_output_size(shape[1], kh, sh, pt, pb, dh, ceil)
    ow = pool_output_size(shape[2], kw, sw, pl, pr, dw, ceil)
    return oh, ow


def _check_pool_windows(shape: Shape, a: Mapping[str, Any], out: tuple[int, int]) -> None:
    r"""Refuse a pooling window that holds padding cells only.

    Only a dilation can skip over the whole input (pads are smaller than the kernel, and
    ``ceil_mode`` drops the windows that start in the end padding). Such a window has no
    defined value: onnxruntime returns 0 (average) or the lowest float32 (max), torch
    :math:`-\infty`. A window that covers no input cell is a constant, so no sensible
    model has one.
    """
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["strides"])
    dh, dw = _pair(a.get("dilations", (1, 1)))
    pt, pl = int(a["pads"][0]), int(a["pads"][1])
    for n, k, s, d, p0, o in (
        (shape[1], kh, sh, dh, pt, out[0]),
        (shape[2], kw, sw, dw, pl, out[1]),
    ):
        cells = (np.arange(o) * s - p0)[:, None] + np.arange(k)[None, :] * d
        hit = ((cells >= 0) & (cells < n)).any(axis=1)
        if not hit.all():
            raise ValueError(
                f"pooling window {int(np.argmin(hit))} (kernel {k}, stride {s}, dilation {d}, "
                f"pad {p0}) covers padding only on an axis of length {n}"
            )


def _windows(
    x: np.ndarray, a: Mapping[str, Any], fill: float, overhang_fill: float | None = None
) -> np.ndarray:
    """Windows of a batched (B, C, H, W) array: (B, C, OH, OW, kh, kw).

    The explicit pads hold ``fill``; the cells a ``ceil_mode`` window reaches
    beyond them hold ``overhang_fill`` (default: ``fill``).
    """
    kh, kw = _pair(a["kernel"])
    sh, sw = _pair(a["strides"])
    dh, dw = _pair(a.get("dilations", (1, 1)))
    pt, pl, pb, pr = (int(t) for t in a["pads"])
    oh, ow = _window_geometry(x.shape[1:], a)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    need_h = max(0, (oh - 1) * sh + eh - xp.shape[2])
    need_w = max(0, (ow - 1) * sw + ew - xp.shape[3])
    if need_h or need_w:
        xp = np.pad(
            xp,
            ((0, 0), (0, 0), (0, need_h), (0, need_w)),
            constant_values=fill if overhang_fill is None else overhang_fill,
        )
    v = sliding_window_view(xp, (eh, ew), axis=(2, 3))
    return v[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]


@register_op("conv2d", "linear", attrs=("weight", "bias", "strides", "pads", "dilations", "group"))
class Conv2d:
    r"""2-D cross-correlation, ONNX ``Conv`` semantics.

    .. math:: y_{m,i,j} = b_m + \sum_{c \in G(m)} \sum_{p,q}
              W_{m,c,p,q}\, x_{c,\, i s_h + p d_h - p_t,\, j s_w + q d_w - p_l}

    with zero padding; ``weight`` is ``(M, C/group, kh, kw)``, ``pads`` is
    ``(top, left, bottom, right)``.
    """

    @staticmethod
    def infer(shapes, a):
        _check_arity("conv2d", shapes, 1, 1)
        (s,) = shapes
        w, g = a["weight"], int(a["group"])
        if w.ndim != 4 or a["bias"].shape != (w.shape[0],):
            raise ValueError(f"conv2d weight {w.shape}/bias {a['bias'].shape} malformed")
        if len(s) != 3 or g < 1 or s[0] != w.shape[1] * g or w.shape[0] % g:
            raise ValueError(f"conv2d weight {w.shape} with group={g} does not fit input shape {s}")
        oh, ow = _window_geometry(s, {**a, "kernel": w.shape[2:]})
        return (w.shape[0], oh, ow)

    @staticmethod
    def forward(xs, a):
        w, g = a["weight"], int(a["group"])
        win = _windows(xs[0], {**a, "kernel": w.shape[2:]}, 0.0)  # B,C,OH,OW,kh,kw
        b, c, oh, ow, kh, kw = win.shape
        win = win.reshape(b, g, c // g, oh, ow, kh, kw)
        wg = w.reshape(g, w.shape[0] // g, c // g, kh, kw)
        y = np.einsum("bgcxyij,gmcij->bgmxy", win, wg, optimize=True)
        return y.reshape(b, w.shape[0], oh, ow) + a["bias"][None, :, None, None]


@register_op(
    "avgpool2d", "linear", attrs=("kernel", "strides", "pads", "ceil_mode", "count_include_pad")
)
class AvgPool2d:
    r"""2-D average pooling, ONNX ``AveragePool`` semantics.

    :math:`y = \frac{1}{|N|}\sum_{(p,q)\in N} x_{p,q}` over the window; the divisor
    :math:`|N|` counts the window's cells inside the input, plus the explicit
    padding when ``count_include_pad`` (never the extra cells of ``ceil_mode``).
    """

    @staticmethod
    def infer(shapes, a):
        _check_arity("avgpool2d", shapes, 1, 1)
        oh, ow = _window_geometry(shapes[0], a)
        _check_pool_windows(shapes[0], a, (oh, ow))
        return (shapes[0][0], oh, ow)

    @staticmethod
    def forward(xs, a):
        x = xs[0]
        total = _windows(x, a, 0.0).sum(axis=(-2, -1))
        # the divisor: ones inside the input, padding counted iff count_include_pad,
        # ceil_mode overhang never counted
        ones = np.ones((1, 1, *x.shape[2:]))
        pad_fill = 1.0 if a["count_include_pad"] else 0.0
        cnt = _windows(ones, a, pad_fill, 0.0).sum(axis=(-2, -1))
        return total / cnt


# -------------------------------------------------------------- index remaps
@register_op("reshape", "linear", attrs=("shape",))
class Reshape:
    """Row-major reshape of the sample to ``shape`` (fully resolved, no -1/0)."""

    @staticmethod
    def infer(shapes, a):
        _check_arity("reshape", shapes, 1, 1)
        t = tuple(int(d) for d in a["shape"])
        if any(d < 0 for d in t) or int(np.prod(t)) != int(np.prod(shapes[0])):
            raise ValueError(f"cannot reshape {shapes[0]} to {t}")
        return t

    @staticmethod
    def forward(xs, a):
        return xs[0].reshape((xs[0].shape[0], *a["shape"]))


@register_op("transpose", "linear", attrs=("perm",))
class Transpose:
    """Permutation of the sample axes: output axis ``i`` is input axis ``perm[i]``."""

    @staticmethod
    def infer(shapes, a):
        _check_arity("transpose", shapes, 1, 1)
        p = tuple(int(t) for t in a["perm"])
        if sorted(p) != list(range(len(shapes[0]))):
            raise ValueError(f"perm {p} is not a permutation of the axes of {shapes[0]}")
        return tuple(shapes[0][i] for i in p)

    @staticmethod
    def forward(xs, a):
        return xs[0].transpose((0, *(1 + int(i) for i in a["perm"])))


@register_op("select", "linear", attrs=("index",))
class Select:
    """General index remap: ``y.flat[k] = x.flat[index.flat[k]]``; ``index`` has the output's shape.

    Slice and Gather with constant indices lower to it (repetition is allowed).
    """

    @staticmethod
    def infer(shapes, a):
        _check_arity("select", shapes, 1, 1)
        idx = np.asarray(a["index"])
        n = int(np.prod(shapes[0], dtype=np.int64))
        if idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= n)):
            raise ValueError(f"select index must hold integers in [0, {n})")
        return tuple(idx.shape)

    @staticmethod
    def forward(xs, a):
        x = xs[0]
        idx = np.asarray(a["index"])
        return x.reshape(x.shape[0], -1)[:, idx.reshape(-1)].reshape((x.shape[0], *idx.shape))


@register_op("identity", "linear")
class Identity:
    """The identity (Identity, Dropout and float Casts; removed by a pass)."""

    @staticmethod
    def infer(shapes, a):
        _check_arity("identity", shapes, 1, 1)
        return tuple(shapes[0])

    @staticmethod
    def forward(xs, a):
        return xs[0]


@register_op("pad", "linear", attrs=("pads", "value"))
class Pad:
    """Constant padding; ``pads`` is ONNX-ordered (all begins, then all ends), non-negative."""

    @staticmethod
    def infer(shapes, a):
        _check_arity("pad", shapes, 1, 1)
        s, p = shapes[0], tuple(int(t) for t in a["pads"])
        r = len(s)
        if len(p) != 2 * r or min(p, default=0) < 0:
            raise ValueError(f"pads {p} do not fit rank {r} (need {2 * r} non-negative values)")
        return tuple(s[i] + p[i] + p[i + r] for i in range(r))

    @staticmethod
    def forward(xs, a):
        p = [int(t) for t in a["pads"]]
        r = len(p) // 2
        return np.pad(
            xs[0], [(0, 0)] + [(p[i], p[i + r]) for i in range(r)], constant_values=a["value"]
        )


@register_op("add", "linear", arity=(2, 2))
class Add:
    """Sum of two variable tensors of the same shape (residual connections)."""

    @staticmethod
    def infer(shapes, a):
        _check_arity("add", shapes, 2, 2)
        if tuple(shapes[0]) != tuple(shapes[1]):
            raise ValueError(f"add needs equal shapes, got {shapes[0]} and {shapes[1]}")
        return tuple(shapes[0])

    @staticmethod
    def forward(xs, a):
        return xs[0] + xs[1]


@register_op("concat", "linear", arity=(1, -1), attrs=("axis",))
class Concat:
    """Concatenation of variable tensors along a sample axis."""

    @staticmethod
    def infer(shapes, a):
        _check_arity("concat", shapes, 1, -1)
        ax = int(a["axis"])
        r = len(shapes[0])
        if not 0 <= ax < r:
            raise ValueError(f"concat axis {ax} out of range for rank {r}")
        for s in shapes[1:]:
            if len(s) != r or any(s[i] != shapes[0][i] for i in range(r) if i != ax):
                raise ValueError(f"concat along axis {ax}: shapes {list(shapes)} do not match")
        out = list(shapes[0])
        out[ax] = sum(s[ax] for s in shapes)
        return tuple(out)

    @staticmethod
    def forward(xs, a):
        return np.concatenate(xs, axis=1 + int(a["axis"]))


# ---------------------------------------------------------- piecewise linear
def _same(name: str):
    def infer(shapes, a):
        _check_arity(name, shapes, 1, 1)
        return tuple(shapes[0])

    return infer


@register_op("relu", "piecewise_linear")
class Relu:
    r""":math:`y = \max(x, 0)` elementwise."""

    infer = staticmethod(_same("relu"))

    @staticmethod
    def forward(xs, a):
        return np.maximum(xs[0], 0.0)


@register_op("leaky_relu", "piecewise_linear", attrs=("alpha",))
class LeakyRelu:
    r""":math:`y = x` for :math:`x \ge 0`, :math:`\alpha x` otherwise."""

    infer = staticmethod(_same("leaky_relu"))

    @staticmethod
    def forward(xs, a):
        x = xs[0]
        return np.where(x >= 0, x, float(a["alpha"]) * x)


@register_op("maxpool2d", "piecewise_linear", attrs=("kernel", "strides", "pads", "ceil_mode"))
class MaxPool2d:
    r"""2-D max pooling, ONNX ``MaxPool`` semantics: :math:`y = \max_{(p,q)\in N} x_{p,q}`.

    Padding cells never win (they are :math:`-\infty`).
    """

    @staticmethod
    def infer(shapes, a):
        _check_arity("maxpool2d", shapes, 1, 1)
        oh, ow = _window_geometry(shapes[0], a)
        _check_pool_windows(shapes[0], a, (oh, ow))
        return (shapes[0][0], oh, ow)

    @staticmethod
    def forward(xs, a):
        return _windows(xs[0], a, -np.inf).max(axis=(-2, -1))


# --------------------------------------------------------------------- smooth
@register_op("sigmoid", "smooth")
class Sigmoid:
    r""":math:`y = 1 / (1 + e^{-x})` elementwise."""

    infer = staticmethod(_same("sigmoid"))

    @staticmethod
    def forward(xs, a):
        x = xs[0]
        # the two-branch form avoids overflow of exp for large |x|
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@register_op("tanh", "smooth")
class Tanh:
    r""":math:`y = \tanh(x)` elementwise."""

    infer = staticmethod(_same("tanh"))

    @staticmethod
    def forward(xs, a):
        return np.tanh(xs[0])


def _check_axes(name: str, shapes: Sequence[Shape], a: Mapping[str, Any]) -> Shape:
    _check_arity(name, shapes, 1, 1)
    r = len(shapes[0])
    axes = tuple(int(t) for t in a["axes"])
    if any(not 0 <= t < r for t in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"{name} axes {axes} invalid for rank {r}")
    return tuple(shapes[0])


@register_op("softmax", "smooth", attrs=("axes",))
class Softmax:
    r""":math:`y = e^{x} / \sum_{A} e^{x}`, normalized jointly over the sample axes ``axes``."""

    @staticmethod
    def infer(shapes, a):
        return _check_axes("softmax", shapes, a)

    @staticmethod
    def forward(xs, a):
        ax = tuple(1 + int(t) for t in a["axes"])
        z = xs[0] - xs[0].max(axis=ax, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=ax, keepdims=True)


@register_op("log_softmax", "smooth", attrs=("axes",))
class LogSoftmax:
    r""":math:`y = x - \log \sum_{A} e^{x}` over the sample axes ``axes``."""

    @staticmethod
    def infer(shapes, a):
        return _check_axes("log_softmax", shapes, a)

    @staticmethod
    def forward(xs, a):
        ax = tuple(1 + int(t) for t in a["axes"])
        m = xs[0].max(axis=ax, keepdims=True)
        return xs[0] - m - np.log(np.exp(xs[0] - m).sum(axis=ax, keepdims=True))
