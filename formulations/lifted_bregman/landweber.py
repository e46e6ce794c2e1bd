r"""Nonlinear Landweber iteration for one layer: the baseline of the lifted Bregman method.

:math:`u \leftarrow u - \omega W^\top(\sigma(W u + b) - f)`, stopped by the discrepancy
principle.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import InputError
from netopt.formulations.lifted_bregman.blocks import outcome, setup
from netopt.formulations.lifted_bregman.pdhg import operator_norm
from netopt.model.convex import ConvexBlock, activation
from netopt.result import Result, assemble

__all__ = ["landweber"]


def landweber(
    problem_or_net: Any,
    target: Any = None,
    *,
    noise: float | None = None,
    tau_dp: float = 1.0,
    max_iter: int = 10000,
    step: float | None = None,
    x0: Any = None,
) -> Result:
    r"""Nonlinear Landweber iteration for one layer, the paper's baseline.

    :math:`u^{k+1} = u^k - \omega\,W^\top(\sigma(W u^k + b) - f^\delta)` (the gradient of
    :math:`B_\Psi(f^\delta, W u + b)`), :math:`\omega = 1/\|W\|^2`, from :math:`u^0 = 0`, stopped
    at the first :math:`k` with :math:`\|\sigma(W u^k + b) - f^\delta\|_2 \le \tau_{dp}\,\delta
    \sqrt m` (Morozov's discrepancy principle; ``noise`` :math:`\delta`) or after ``max_iter``.
    The point is re-checked in float64 (:func:`netopt.result.assemble`); ``extra["bregman"]``
    holds the iterations and the residual history.
    """
    t0 = time.perf_counter()
    problem, layers, f = setup(problem_or_net, target)
    if len(layers) != 1:
        raise InputError(f"landweber inverts one layer; this network has {len(layers)}")
    L = layers[0]
    if L.slope == 0.0:
        f = np.maximum(f, 0.0)  # into dom(Psi), as for the Bregman objective
    sub = ConvexBlock(L.W, L.b, f, L.slope, name="u")
    n = L.W.shape[1]
    u = np.zeros(n) if x0 is None else np.asarray(x0, dtype=np.float64).reshape(-1).copy()
    w = step or 1.0 / operator_norm(lambda v: L.W @ v, lambda y: L.W.T @ y, n) ** 2
    goal = tau_dp * noise * np.sqrt(L.W.shape[0]) if noise is not None else -1.0
    res_hist: list[float] = []
    k = 0
    for k in range(1, max_iter + 1):
        if interrupted():  # Ctrl-C: the iterate so far is the result
            k -= 1
            break
        z = L.W @ u + L.b
        r = (z if L.slope is None else activation(z, L.slope)) - f
        res = float(np.linalg.norm(r))
        res_hist.append(res)
        if res <= goal:
            k -= 1
            break
        u = u - w * (L.W.T @ r)
    info = {
        "method": "landweber",
        "iterations": k,
        "residual": res_hist[-1],
        "residual_history": res_hist,
        "discrepancy_target": goal if noise is not None else None,
        "bregman_objective": sub.data_term(u),
        "step": w,
    }
    out = outcome(problem, u, "landweber", info, time.perf_counter() - t0)
    if interrupted():
        out.claim = "interrupted"
    return assemble(problem, out)
