"""The dense and elementwise linear ops: ``affine``, ``scale``, ``add``, ``concat``, ``identity``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from netopt.ir.ops.affine import linear_interval
from netopt.ir.ops.spec import (
    check_arity,
    identity_map,
    linear_relax,
    linear_vjp,
    register_op,
    size,
)

# scipy is imported where a map is built, so that `import netopt` does not load it
if TYPE_CHECKING:
    pass

__all__ = ["Affine", "Scale", "Add", "Concat", "Identity"]


class LinearRules:
    """The rules every linear op shares: its reverse pass, interval bounds and CROWN rule
    follow from its ``linear_map``."""

    vjp = staticmethod(linear_vjp)
    interval = staticmethod(linear_interval)
    relax = staticmethod(linear_relax)


@register_op("affine", "linear", attrs=("weight", "bias"))
class Affine(LinearRules):
    r"""Dense affine map on the last axis: :math:`y = x W^\top + b`.

    ``weight`` has shape ``(out, in)``, ``bias`` ``(out,)``. The input's last axis
    has length ``in``; leading sample axes (if any) are carried along, as in
    ``torch.nn.Linear``. Gemm, MatMul(+Add) and folded constant Mul/Add become this.
    """

    @staticmethod
    def infer(shapes, a):
        check_arity("affine", shapes, 1, 1)
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

    @staticmethod
    def linear_map(shapes, a, out):
        w = a["weight"]
        lead = size(shapes[0][:-1])
        if lead == 1:
            # the weight itself (a copy: callers may scale it in place)
            return [np.array(w, dtype=np.float64)], np.array(a["bias"], dtype=np.float64)
        import scipy.sparse as sp

        mat = sp.kron(sp.identity(lead, format="csr"), sp.csr_matrix(w), format="csr")
        return [mat], np.tile(a["bias"], lead)


@register_op("scale", "linear", attrs=("mul", "add"))
class Scale(LinearRules):
    r"""Elementwise affine map with broadcasting: :math:`y = x \odot a + c`.

    ``mul`` (``a``) and ``add`` (``c``) broadcast against the per-sample shape
    (numpy rules); the output shape is the broadcast shape. Sub/Add/Mul/Div by
    constants and BatchNormalization become this before the folding passes.
    """

    @staticmethod
    def infer(shapes, a):
        check_arity("scale", shapes, 1, 1)
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

    @staticmethod
    def linear_map(shapes, a, out):
        import scipy.sparse as sp

        n_in, n_out = size(shapes[0]), size(out)
        src = np.broadcast_to(np.arange(n_in).reshape(shapes[0]), out).reshape(-1)
        mul = np.broadcast_to(a["mul"], out).reshape(-1)
        mat = sp.csr_matrix((mul, (np.arange(n_out), src)), shape=(n_out, n_in))
        return [mat], np.broadcast_to(a["add"], out).reshape(-1).astype(np.float64)


@register_op("identity", "linear")
class Identity(LinearRules):
    """The identity (Identity, Dropout and float Casts; removed by a pass)."""

    @staticmethod
    def infer(shapes, a):
        check_arity("identity", shapes, 1, 1)
        return tuple(shapes[0])

    @staticmethod
    def forward(xs, a):
        return xs[0]

    @staticmethod
    def linear_map(shapes, a, out):
        n_out = size(out)
        return [identity_map(n_out)], np.zeros(n_out)


@register_op("add", "linear", arity=(2, 2))
class Add(LinearRules):
    """Sum of two variable tensors of the same shape (residual connections)."""

    @staticmethod
    def infer(shapes, a):
        check_arity("add", shapes, 2, 2)
        if tuple(shapes[0]) != tuple(shapes[1]):
            raise ValueError(f"add needs equal shapes, got {shapes[0]} and {shapes[1]}")
        return tuple(shapes[0])

    @staticmethod
    def forward(xs, a):
        return xs[0] + xs[1]

    @staticmethod
    def linear_map(shapes, a, out):
        import scipy.sparse as sp

        n_out = size(out)
        eye = sp.identity(n_out, format="csr")
        return [eye, sp.identity(n_out, format="csr")], np.zeros(n_out)


@register_op("concat", "linear", arity=(1, -1), attrs=("axis",))
class Concat(LinearRules):
    """Concatenation of variable tensors along a sample axis."""

    @staticmethod
    def infer(shapes, a):
        check_arity("concat", shapes, 1, -1)
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

    @staticmethod
    def linear_map(shapes, a, out):
        import scipy.sparse as sp

        n_out = size(out)
        ax = int(a["axis"])
        pos = np.arange(n_out).reshape(out)
        mats, start = [], 0
        for s in shapes:
            n = size(s)
            sl = [slice(None)] * len(out)
            sl[ax] = slice(start, start + s[ax])
            rows = pos[tuple(sl)].reshape(-1)
            mats.append(sp.csr_matrix((np.ones(n), (rows, np.arange(n))), shape=(n_out, n)))
            start += s[ax]
        return mats, np.zeros(n_out)
