"""Bounds of every value of a graph over an input box: :class:`Bounds` and :func:`compute_bounds`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from netopt.bounds.crown import _crown_value
from netopt.bounds.interval import AffineMap, interval_op
from netopt.errors import InputError
from netopt.ir.graph import Graph
from netopt.ir.ops import is_linear

__all__ = ["Bounds", "compute_bounds", "METHODS"]

METHODS = ("interval", "crown")


@dataclass
class Bounds(Mapping):
    """Flattened lower/upper bounds per IR value.

    Attributes
    ----------
    lo, hi : dict of str -> ndarray
        Flattened float64 bounds of each value.
    method : str
        How they were computed.
    """

    lo: dict[str, np.ndarray]
    hi: dict[str, np.ndarray]
    method: str = "interval"
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    def __getitem__(self, vid: str) -> tuple[np.ndarray, np.ndarray]:
        return self.lo[vid], self.hi[vid]

    def __iter__(self) -> Iterator[str]:
        return iter(self.lo)

    def __len__(self) -> int:
        return len(self.lo)

    def copy(self) -> Bounds:
        return Bounds(
            {k: v.copy() for k, v in self.lo.items()},
            {k: v.copy() for k, v in self.hi.items()},
            self.method,
            self.seconds,
            dict(self.stats),
        )

    def unstable(self, graph: Graph) -> dict[str, int]:
        """Number of unstable units (pre-activation interval containing 0 strictly) per ReLU op."""
        out = {}
        for op in graph.ops:
            if op.op in ("relu", "leaky_relu"):
                lo, hi = self[op.inputs[0]]
                out[op.id] = int(np.sum((lo < 0) & (hi > 0)))
        return out

    def tighten(self, vid: str, lo: np.ndarray, hi: np.ndarray) -> None:
        """Intersect the bounds of ``vid`` with ``[lo, hi]``."""
        self.lo[vid] = np.maximum(self.lo[vid], lo)
        self.hi[vid] = np.minimum(self.hi[vid], hi)


def compute_bounds(
    graph: Graph,
    lo: np.ndarray | Mapping[str, np.ndarray],
    hi: np.ndarray | Mapping[str, np.ndarray],
    method: str = "crown",
    *,
    chunk: int = 1024,
) -> Bounds:
    """Bounds of every value of ``graph`` for inputs in the box ``[lo, hi]``.

    Parameters
    ----------
    graph : Graph
        The IR graph.
    lo, hi : array or mapping
        Input box (input's shape, or flattened), or ``{input id: array}`` for several inputs.
    method : {"interval", "crown"}
        See :mod:`netopt.bounds`. ``"crown"`` computes symbolic bounds for the inputs of the
        piecewise-linear and smooth ops and for the outputs, and interval bounds elsewhere.
    chunk : int
        Rows back-substituted at once (memory: ``chunk x size`` dense coefficients).
    """
    import time

    t0 = time.perf_counter()
    if method not in METHODS:
        raise InputError(f"unknown bound method '{method}'; choose one of {METHODS}")
    if not isinstance(lo, Mapping):
        lo = {graph.inputs[0]: lo}
    if not isinstance(hi, Mapping):
        hi = {graph.inputs[0]: hi}
    L: dict[str, np.ndarray] = {}
    H: dict[str, np.ndarray] = {}
    for i in graph.inputs:
        n = graph.value(i).size
        L[i] = np.broadcast_to(
            np.asarray(lo[i], dtype=np.float64).reshape(-1) if np.ndim(lo[i]) else lo[i], (n,)
        ).astype(np.float64)
        H[i] = np.broadcast_to(
            np.asarray(hi[i], dtype=np.float64).reshape(-1) if np.ndim(hi[i]) else hi[i], (n,)
        ).astype(np.float64)
        if np.any(np.isnan(L[i])) or np.any(np.isnan(H[i])):
            raise InputError(f"input box of '{i}' has a NaN bound")
        if np.any(L[i] > H[i]):
            k = int(np.argmax(L[i] > H[i]))
            raise InputError(f"input box has lo > hi at index {k} ({L[i][k]} > {H[i][k]})")
    needs = set(graph.outputs)
    if method == "crown":
        for op in graph.ops:
            if not is_linear(op):
                needs.add(op.inputs[0])
    finite_in = all(np.all(np.isfinite(L[i])) and np.all(np.isfinite(H[i])) for i in graph.inputs)
    # values affine in the input (no nonlinear op upstream): interval bounds are already exact
    affine_in = set(graph.inputs)
    for op in graph.ops:
        if is_linear(op) and all(i in affine_in for i in op.inputs):
            affine_in.add(op.outputs[0])
    maps: dict[str, AffineMap] = {}
    for op in graph.ops:
        out = op.outputs[0]
        L[out], H[out] = interval_op(graph, op, L, H, maps)
        if (
            method == "crown"
            and out in needs
            and finite_in
            and is_linear(op)
            and out not in affine_in
        ):
            size = graph.value(out).size
            for s in range(0, size, chunk):
                rows = np.arange(s, min(size, s + chunk))
                cl, cu = _crown_value(graph, out, L, H, rows, L, H, maps=maps)
                L[out][rows] = np.maximum(L[out][rows], cl)
                H[out][rows] = np.minimum(H[out][rows], cu)
    b = Bounds(L, H, method, time.perf_counter() - t0)
    b.stats["unstable"] = b.unstable(graph)
    return b
