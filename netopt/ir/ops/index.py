"""The index remaps: ``reshape``, ``transpose``, ``select`` and constant ``pad``.

Each output entry copies one input entry (or, for ``pad``, is a constant), so their
matrices are 0/1 selections and interval bounds pass through them exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from netopt.ir.ops.linear import LinearRules
from netopt.ir.ops.spec import check_arity, identity_map, register_op, size

# scipy is imported where a map is built, so that `import netopt` does not load it
if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["Reshape", "Transpose", "Select", "Pad"]


def _selection(src: np.ndarray, n_in: int) -> sp.csr_matrix:
    """The 0/1 matrix whose row ``k`` picks input entry ``src[k]``."""
    import scipy.sparse as sp

    n_out = len(src)
    return sp.csr_matrix((np.ones(n_out), (np.arange(n_out), src)), shape=(n_out, n_in))


@register_op("reshape", "linear", attrs=("shape",))
class Reshape(LinearRules):
    """Row-major reshape of the sample to ``shape`` (fully resolved, no -1/0)."""

    @staticmethod
    def infer(shapes, a):
        check_arity("reshape", shapes, 1, 1)
        t = tuple(int(d) for d in a["shape"])
        if any(d < 0 for d in t) or int(np.prod(t)) != int(np.prod(shapes[0])):
            raise ValueError(f"cannot reshape {shapes[0]} to {t}")
        return t

    @staticmethod
    def forward(xs, a):
        return xs[0].reshape((xs[0].shape[0], *a["shape"]))

    @staticmethod
    def linear_map(shapes, a, out):
        n_out = size(out)
        return [identity_map(n_out)], np.zeros(n_out)


@register_op("transpose", "linear", attrs=("perm",))
class Transpose(LinearRules):
    """Permutation of the sample axes: output axis ``i`` is input axis ``perm[i]``."""

    @staticmethod
    def infer(shapes, a):
        check_arity("transpose", shapes, 1, 1)
        p = tuple(int(t) for t in a["perm"])
        if sorted(p) != list(range(len(shapes[0]))):
            raise ValueError(f"perm {p} is not a permutation of the axes of {shapes[0]}")
        return tuple(shapes[0][i] for i in p)

    @staticmethod
    def forward(xs, a):
        return xs[0].transpose((0, *(1 + int(i) for i in a["perm"])))

    @staticmethod
    def linear_map(shapes, a, out):
        n_in = size(shapes[0])
        src = np.arange(n_in).reshape(shapes[0]).transpose(a["perm"]).reshape(-1)
        return [_selection(src, n_in)], np.zeros(size(out))


@register_op("select", "linear", attrs=("index",))
class Select(LinearRules):
    """General index remap: ``y.flat[k] = x.flat[index.flat[k]]``; ``index`` has the output's shape.

    Slice and Gather with constant indices lower to it (repetition is allowed).
    """

    @staticmethod
    def infer(shapes, a):
        check_arity("select", shapes, 1, 1)
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

    @staticmethod
    def linear_map(shapes, a, out):
        src = np.asarray(a["index"]).reshape(-1)
        return [_selection(src, size(shapes[0]))], np.zeros(size(out))


@register_op("pad", "linear", attrs=("pads", "value"))
class Pad(LinearRules):
    """Constant padding; ``pads`` is ONNX-ordered (all begins, then all ends), non-negative."""

    @staticmethod
    def infer(shapes, a):
        check_arity("pad", shapes, 1, 1)
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

    @staticmethod
    def linear_map(shapes, a, out):
        import scipy.sparse as sp

        n_in, n_out = size(shapes[0]), size(out)
        r = len(shapes[0])
        p = [int(t) for t in a["pads"]]
        pos = np.arange(n_out).reshape(out)
        sl = tuple(slice(p[i], p[i] + shapes[0][i]) for i in range(r))
        rows = pos[sl].reshape(-1)
        mat = sp.csr_matrix((np.ones(n_in), (rows, np.arange(n_in))), shape=(n_out, n_in))
        bias = np.full(n_out, float(a["value"]))
        bias[rows] = 0.0
        return [mat], bias
