r"""Noiseless inversion of one layer by a linear system (Theorem 2 of Lei et al. 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netopt.formulations.layerwise_lp.lp import Layer

__all__ = ["ExactSolution", "exact_layer"]


@dataclass
class ExactSolution:
    """What :func:`exact_layer` returns."""

    z: np.ndarray
    rows: int
    rank: int
    residual: float
    unique: bool


def exact_layer(layer: Layer, target: np.ndarray, tol: float = 0.0) -> ExactSolution:
    r"""Noiseless inversion of one layer by a linear system (Theorem 2).

    ReLU: with :math:`I_+ = \{i : x_i > \mathrm{tol}\}`, solve :math:`M_{I_+} z = x_{I_+} - b_{I_+}`
    (least squares, which is Gaussian elimination when :math:`M_{I_+}` is square and invertible).
    The solution is unique iff :math:`\operatorname{rank} M_{I_+} = k`, which holds with high
    probability for random expansive layers (about half of the rows are active). LeakyReLU and
    linear layers are bijective on their range: :math:`M z = \phi_c^{-1}(x) - b` on every row,
    :math:`\phi_c^{-1}(y) = y` for :math:`y \ge 0`, :math:`y / c` otherwise.

    Returns
    -------
    ExactSolution
        ``z``; ``rows`` used; ``rank`` of the system; ``residual`` :math:`\|M_I z - r_I\|_\infty`;
        ``unique``.
    """
    x = np.asarray(target, dtype=np.float64).reshape(-1)
    M, b = layer.matrix, layer.bias
    if layer.activation == "relu":
        rows = x > tol
        rhs = x[rows] - b[rows]
    else:
        rows = np.ones(len(x), dtype=bool)
        rhs = np.where(x >= 0, x, x / layer.slope) - b
    A = M[rows]
    if A.shape[0] == 0:
        z = np.zeros(layer.shape[1])
        return ExactSolution(z, 0, 0, 0.0, False)
    z, _, rank, _ = np.linalg.lstsq(A, rhs, rcond=None)
    res = float(np.max(np.abs(A @ z - rhs)))
    return ExactSolution(z, int(rows.sum()), int(rank), res, int(rank) == layer.shape[1])
