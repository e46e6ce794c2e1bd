"""The op specification and the registry every op family registers into (:data:`OPS`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

    from netopt.ir.graph import Op

__all__ = [
    "OpSpec",
    "OPS",
    "register_op",
    "KINDS",
    "RULES",
    "linear_map",
    "identity_map",
    "DENSE_EYE",
    "is_linear",
    "check_arity",
    "same_shape",
    "size",
]

Shape = tuple[int, ...]
KINDS = ("linear", "piecewise_linear", "smooth")
#: The optional rules an op class may define, besides ``infer`` and ``forward``.
RULES = ("vjp", "linear_map", "interval", "relax")


@dataclass(frozen=True)
class OpSpec:
    """Specification of one IR op and its rules.

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
    vjp : callable or None
        ``vjp(op, shapes, out_shape, g, env) -> [dL/dx_i]``: the vector-Jacobian product
        for the flattened output gradient ``g`` ``(B, size_out)``, one flattened
        ``(B, size_i)`` array per input; ``env`` holds the forward pass's values.
    linear_map : callable or None
        Linear ops: ``linear_map(input_shapes, attrs, out_shape) -> (mats, bias)`` with
        ``y = sum_i mats[i] @ x_i + bias`` on flattened (row-major) samples, each a
        scipy.sparse matrix or, where that is its natural form, a dense float64 ndarray
        (:func:`linear_map` gives them all sparse unless asked otherwise).
    interval : callable or None
        ``interval(op, shapes, xls, xhs, maps) -> (lo, hi)``: interval bounds of the
        output from the inputs' flattened bounds, sound for the exact (real-arithmetic)
        op on the float64 weights (rounded outward). ``maps`` caches linear ops'
        prepared matrices by op id (or is None).
    relax : callable or None
        ``relax(op, input_shape, xl, xh)``: the op's linear relaxation for CROWN
        (:mod:`netopt.bounds.crown`) from its input's flattened bounds (possibly batched,
        ``(B, size)``). Linear ops return ``"linear"`` (exact: their ``linear_map``); an
        elementwise op ``("lines", lo_s, lo_b, up_s, up_b)`` with
        ``lo_s x + lo_b <= y <= up_s x + up_b``; max-pool ``("select", ...)``
        (:meth:`~netopt.ir.ops.conv.MaxPool2d.relax`); None where there is none (CROWN then
        takes the op's interval bounds as constants).
    """

    name: str
    kind: str
    arity: tuple[int, int]
    attrs: tuple[str, ...]
    infer: Callable[[Sequence[Shape], Mapping[str, Any]], Shape]
    forward: Callable[[Sequence[np.ndarray], Mapping[str, Any]], np.ndarray]
    doc: str = ""
    vjp: Callable | None = None
    linear_map: Callable | None = None
    interval: Callable | None = None
    relax: Callable | None = None

    def rules(self) -> tuple[str, ...]:
        """The names of the rules this op has (``infer``, ``forward`` and the optional ones)."""
        return ("infer", "forward", *(r for r in RULES if getattr(self, r) is not None))


OPS: dict[str, OpSpec] = {}


def register_op(
    name: str, kind: str, arity: tuple[int, int] = (1, 1), attrs: tuple[str, ...] = ()
) -> Callable[[type], type]:
    """Class decorator registering an op.

    The class provides ``infer`` and ``forward``, and optionally the rules of
    :data:`RULES` (see :class:`OpSpec`), all as static methods.
    """

    def deco(cls: type) -> type:
        if name in OPS:
            raise RuntimeError(f"IR op '{name}' is registered twice")
        if kind not in KINDS:
            raise RuntimeError(f"IR op '{name}': unknown kind {kind!r}")
        OPS[name] = OpSpec(
            name,
            kind,
            arity,
            attrs,
            cls.infer,
            cls.forward,
            (cls.__doc__ or "").strip(),
            **{r: getattr(cls, r, None) for r in RULES},
        )
        return cls

    return deco


def check_arity(name: str, shapes: Sequence[Shape], lo: int, hi: int) -> None:
    """Raise ``ValueError`` unless ``lo <= len(shapes) <= hi`` (``hi = -1``: unbounded)."""
    if len(shapes) < lo or (hi >= 0 and len(shapes) > hi):
        raise ValueError(f"{name} takes {lo}..{hi} inputs, got {len(shapes)}")


def same_shape(name: str):
    """The ``infer`` rule of an elementwise op of one input."""

    def infer(shapes, a):
        check_arity(name, shapes, 1, 1)
        return tuple(shapes[0])

    return infer


def size(s: Shape) -> int:
    """Number of entries of a per-sample shape."""
    return int(np.prod(s, dtype=np.int64))


def is_linear(op: Op) -> bool:
    """Whether the op is affine in its inputs."""
    return OPS[op.op].kind == "linear"


def linear_map(
    op: Op, shapes: Sequence[Shape], sparse: bool = True
) -> tuple[list[sp.csr_matrix | np.ndarray], np.ndarray]:
    """The matrices and bias of a linear IR op.

    Returns ``(mats, bias)`` with ``y = sum_i mats[i] @ x_i + bias`` for the flattened
    per-sample input(s) ``x_i`` and output ``y``. Bounds (interval and symbolic) and the MILP
    formulation are written once against this form, so every linear op of the vocabulary is
    covered by them as soon as it has a matrix. The matrices are built with vectorized index
    arithmetic — no Python loop per weight.

    With ``sparse`` (the default) every matrix is scipy.sparse (a rule's dense one converted to
    CSR), as the MILP and the LPs take them. Without it, each comes as the op's rule built it:
    a dense float64 ndarray where that is the natural form (a dense layer's weight, a small
    identity), sparse otherwise. Small networks' bounds then never import scipy.sparse, about
    0.15 s of a fresh process (``netopt check`` on ACAS Xu).
    """
    spec = OPS[op.op]
    out = tuple(spec.infer(shapes, op.attrs))
    if spec.linear_map is None:
        raise ValueError(f"{op.where} is not a linear op")
    mats, b = spec.linear_map(shapes, op.attrs, out)
    if sparse and any(isinstance(m, np.ndarray) for m in mats):
        import scipy.sparse as sp

        mats = [sp.csr_matrix(m) if isinstance(m, np.ndarray) else m for m in mats]
    return mats, b


# The largest identity a rule builds dense (64 x 64 float64, 32 KiB): the reshape of a small
# network's input, which bounds then multiply by BLAS without importing scipy.
DENSE_EYE = 64


def identity_map(n: int) -> sp.csr_matrix | np.ndarray:
    """The ``n x n`` identity: dense float64 up to ``DENSE_EYE``, scipy.sparse CSR above."""
    if n <= DENSE_EYE:
        return np.eye(n)
    import scipy.sparse as sp

    return sp.identity(n, format="csr")


def linear_vjp(op, shapes, out_shape, g, env):
    """The vector-Jacobian product of a linear op: :math:`M_i^\\top g` per input."""
    mats, _ = linear_map(op, shapes)
    return [(m.T @ g.T).T for m in mats]


def linear_relax(*args, **kwargs) -> str:
    """The CROWN rule of a linear op: exact, back-substituted through its ``linear_map``."""
    return "linear"
