"""Interval bounds (IBP), rigorous in floating point.

Linear ops go through :func:`affine_interval` (centre-radius form, :math:`y_c = M x_c + b`,
:math:`y_r = |M| x_r`, with Higham's a-priori error term); every other op through its own
``interval`` rule in :mod:`netopt.ir.ops`. :func:`interval_op` dispatches one op.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from netopt.ir.graph import Graph, Op
from netopt.ir.ops import OPS
from netopt.ir.ops.affine import AffineMap, affine_interval

__all__ = ["AffineMap", "affine_interval", "interval_op"]


def interval_op(
    graph: Graph,
    op: Op,
    lo: Mapping[str, np.ndarray],
    hi: Mapping[str, np.ndarray],
    maps: dict[str, AffineMap] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of ``op``'s output from its inputs' bounds (flattened).

    They hold for the exact (real-arithmetic) op on the float64 weights: the linear ops'
    rounding is bounded by :func:`affine_interval`, ReLU and max-pool are exact in floating
    point, LeakyReLU's product is rounded outward
    (:func:`~netopt.ir.ops.activations.leaky_bound`), the smooth ops by their own rules
    (:mod:`netopt.ir.ops.smooth`): each op's ``interval`` rule (:data:`netopt.ir.ops.OPS`)
    computes them. ``maps`` caches the linear ops' :class:`AffineMap` by op id.
    """
    shapes = [graph.value(i).shape for i in op.inputs]
    rule = OPS[op.op].interval
    if rule is None:
        raise NotImplementedError(f"no interval rule for IR op '{op.op}'")
    return rule(op, shapes, [lo[i] for i in op.inputs], [hi[i] for i in op.inputs], maps)
