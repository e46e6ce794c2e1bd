r"""A walk over linear regions: from the falsifier's best point to a counterexample, by LPs.

Where a counterexample region is a sliver (ACAS Xu 1_9 prop 7: every output within 1e-3 of the
others), projected gradient descent stalls a few ten-thousandths short of it: the margin
:math:`m(x) = \max_i (C f(x) - d)_i` is a maximum of rows, and sign steps zig-zag between them.
On the linear region of a point (its activation pattern fixed) a chain of affine maps and
(leaky) ReLUs is affine, :math:`f(x) = A x + c`, so the region's best point is one LP:

.. math::

    \min_{x, t}\ t \quad\text{s.t.}\quad C (A x + c) - d \le t, \quad
    s_j \odot (A_j x + c_j) \ge 0 \ \ \forall j, \quad l \le x \le u,

with :math:`A_j x + c_j` the pre-activations of layer :math:`j` and :math:`s_j` their signs at
the point. The optimum lies on the region's boundary, where some pre-activations are 0; taken as
active there, the next LP is over the neighbouring region, and so on while :math:`t` falls
(:func:`region_walk`). From the falsifier's best points on ACAS Xu 1_9 prop 7 (margins 3e-4 and
4e-4), two and four LPs of a few milliseconds reach counterexamples that 14 s of input
splitting found before.

The LPs are float64 (HiGHS: :func:`netopt.model.highs_lp.dense_lp`); a point is returned only when the
float64 reference interpreter gives it margin :math:`\le 0`, and callers confirm it in
onnxruntime as every counterexample. Networks that are not such chains are not walked.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import FormulationError

__all__ = ["MAX_WEIGHTS", "REGION_STEPS", "chain_layers", "region_walk"]

#: LPs of one walk at most.
REGION_STEPS = 25

#: Weights (entries of the layers' dense matrices) of the chains walked at most: a convolution
#: unrolled into a dense matrix is large, and its region LP too.
MAX_WEIGHTS = 4_000_000


def chain_layers(net: Any) -> tuple[list, list, list] | None:
    """The network as :func:`~netopt.ir.chain.dense_chain` arrays, kept on the network; None
    when it is not a chain of linear ops and (leaky) ReLUs, or is too large to walk
    (:data:`MAX_WEIGHTS`)."""
    got = getattr(net, "_region_layers", False)
    if got is not False and getattr(net, "_region_graph", None) is net.graph:
        return got
    from netopt.ir.chain import dense_chain

    layers: tuple | None
    try:
        layers = dense_chain(net.graph)
    except FormulationError:
        layers = None
    if layers is not None:
        Ws, _, leaks = layers
        # the dense weights, and the dense LP: a row per unit and output, a column per input
        lp = (sum(W.shape[0] for W in Ws) + 1) * (Ws[0].shape[1] + 1)
        if max(sum(W.size for W in Ws), lp) > MAX_WEIGHTS:
            layers = None
        # a chain ends with its output's affine map
        elif leaks[-1] is not None or any(lk is None for lk in leaks[:-1]):
            layers = None
    net._region_layers, net._region_graph = layers, net.graph
    return layers


def _region_lp(
    layers: tuple[list, list, list],
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    time_limit: float | None,
) -> np.ndarray | None:
    """The best point of ``x``'s linear region in the box (the LP of the module doc), or None
    when the LP solver does not report an optimum (in ``time_limit`` seconds)."""
    from netopt.ir.chain import pattern_map
    from netopt.model.highs_lp import dense_lp

    Ws, bs, leaks = layers
    n = x.size
    # the point's signs, and the chain's affine map on their region
    active, v = [], x.astype(np.float64)
    for W, b, leak in zip(Ws[:-1], bs[:-1], leaks[:-1], strict=True):
        v = W @ v + b
        active.append(v >= 0)
        v = np.where(v >= 0, v, leak * v)
    units = [(j, u) for j, a in enumerate(active) for u in range(len(a))]
    A, c, a_rows, b_vals = pattern_map(layers, n, active, units)
    # s (a x + b) >= 0 for every unit, as -s a x <= s b; then C (A x + c) - d <= t
    s = np.where(np.concatenate(active), 1.0, -1.0) if units else np.zeros(0)
    k = len(d)
    A_ub = np.vstack(
        [
            np.hstack([-s[:, None] * a_rows, np.zeros((len(units), 1))]),
            np.hstack([C @ A, -np.ones((k, 1))]),
        ]
    )
    b_ub = np.concatenate([s * b_vals, d - C @ c])
    obj = np.zeros(n + 1)
    obj[-1] = 1.0
    bounds = [(float(a), float(b_)) for a, b_ in zip(lo, hi, strict=True)] + [(None, None)]
    # (None also for non-finite data: an overflowing region is not walked)
    res = dense_lp(obj, A_ub=A_ub, b_ub=b_ub, bounds=bounds, time_limit=time_limit)
    if res is None:
        return None
    return np.clip(res.x[:n], lo, hi)


def region_walk(
    net: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    x0: np.ndarray,
    *,
    steps: int = REGION_STEPS,
    time_limit: float | None = None,
) -> tuple[np.ndarray | None, float, np.ndarray]:
    """Region LPs from ``x0`` while the float64 margin falls (module doc).

    Parameters
    ----------
    net : netopt.Network
    lo, hi : ndarray
        The box (flat or input shape).
    C, d : ndarray
        The rows a counterexample satisfies, ``C f(x) <= d``.
    x0 : ndarray
        The start (input shape or flat), in the box.
    steps : int
        LPs at most.
    time_limit : float, optional
        Wall seconds; the walk stops after the LP that passes it.

    Returns
    -------
    ``(x, margin, best)``: ``x`` a point of float64 margin ``<= 0`` or None, the best float64
    margin seen and its point (flat).
    """
    t0 = time.perf_counter()
    lo = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    x = np.clip(np.asarray(x0, dtype=np.float64).reshape(-1), lo, hi)
    best_m, best_x = _margin(net, x, C, d), x
    layers = chain_layers(net)
    # a row with d = +inf never binds; one with d = -inf (or NaN) is never met
    if layers is None or best_m <= 0 or not np.all(d > -np.inf):
        return (best_x if best_m <= 0 else None), best_m, best_x
    keep = np.isfinite(d)
    Ck, dk = C[keep], d[keep]
    for _ in range(steps):
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if (left is not None and left <= 0) or not len(dk) or interrupted():
            break
        y = _region_lp(layers, x, lo, hi, Ck, dk, left)
        if y is None:
            break
        m = _margin(net, y, C, d)
        if m >= best_m:
            break  # the walk stalls (or the LP's point is worse in float64)
        best_m, best_x, x = m, y, y
        if m <= 0:
            return y, m, y
    return None, best_m, best_x


def _margin(net: Any, x: np.ndarray, C: np.ndarray, d: np.ndarray) -> float:
    """The float64 margin :math:`\\max_i (C f(x) - d)_i` by the reference interpreter."""
    y = np.asarray(net.forward(x.reshape(1, *net.input_shape)), dtype=np.float64).reshape(-1)
    return float((C @ y - d).max())
