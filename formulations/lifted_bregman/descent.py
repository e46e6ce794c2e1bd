r"""Block coordinate descent on the lifted Bregman objective (several layers).

Over :math:`(u, z_1, \dots, z_{L-1})`, each hidden block a proximal-gradient step with step
:math:`1/\|W_{l+1}\|^2` (the paper's (16)/(17)), the input block the same step with the
closed-form prox of :math:`\alpha J` or, for TV, a warm-started PDHG on the block. Every block
update is accepted only if it does not increase the lifted objective, so the objective is
monotone by construction (the prox-gradient steps are monotone anyway; the guard matters only
for an inexact inner TV solve).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.formulations.lifted_bregman.blocks import BregmanLayer, block, lifted_objective
from netopt.formulations.lifted_bregman.pdhg import operator_norm, pdhg
from netopt.formulations.lifted_bregman.penalty import data_grad, prox_g, prox_scaled_psi
from netopt.model.convex import activation

__all__ = ["coordinate_descent"]


def coordinate_descent(
    layers: list[BregmanLayer],
    f: np.ndarray,
    *,
    reg: str = "tv",
    alpha: float = 1e-2,
    image_shape: tuple[int, int] | None = None,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
    u0: np.ndarray | None = None,
    lam: float = 1.0,
    max_iter: int = 500,
    tol: float = 1e-8,
    inner_iter: int = 100,
) -> tuple[list[np.ndarray], dict[str, Any]]:
    r"""Block coordinate descent on the lifted objective (the paper's (15)-(17)).

    One sweep updates :math:`u`, then :math:`z_1, \dots, z_{L-1}` in order. Hidden block
    :math:`z_l` (step :math:`t = 1/L_l`, :math:`L_l = \|W_{l+1}\|^2`, times :math:`\lambda` for a
    linear output):

    .. math::
        z_l \leftarrow \mathrm{prox}_{\frac{t}{1+t}\Psi_l}\Big(\frac{z_l + t(W_l z_{l-1} + b_l)
        - t\,W_{l+1}^\top(\sigma(W_{l+1} z_l + b_{l+1}) - z_{l+1})}{1+t}\Big).

    Input block: the same step with :math:`\mathrm{prox}_{t\alpha J}` (closed form for L1, L2,
    box, none) or, for TV, ``inner_iter`` warm-started PDHG iterations on the block. An update
    that would raise the lifted objective is rejected (it can only happen for the inexact TV
    solve), so the recorded objective never increases.

    The start is the forward pass of ``u0`` (zeros by default): every hidden penalty is 0 there.

    Returns
    -------
    zs : list of arrays
        ``[u, z_1, ..., z_{L-1}]``.
    info : dict
        ``history`` (lifted objective after each sweep, the start first), ``iterations``,
        ``rejected`` (block updates refused by the monotonicity guard), ``steps``.
    """
    n0 = layers[0].W.shape[1]
    u = np.zeros(n0) if u0 is None else np.asarray(u0, dtype=np.float64).reshape(-1).copy()
    if lo is not None:
        u = np.maximum(u, lo)
    if hi is not None:
        u = np.minimum(u, hi)
    zs = [u]
    for L in layers[:-1]:
        zs.append(activation(L.W @ zs[-1] + L.b, 1.0 if L.slope is None else L.slope))
    norms = [
        operator_norm(lambda v, W=L.W: W @ v, lambda w, W=L.W: W.T @ w, L.W.shape[1])
        for L in layers
    ]
    steps = [
        1.0 / ((lam if (i == len(layers) - 1 and layers[i].slope is None) else 1.0) * nw**2) / 1.02
        for i, nw in enumerate(norms)
    ]

    def obj(zz: list[np.ndarray]) -> float:
        return lifted_objective(layers, f, zz, reg, alpha, image_shape, lam)

    hist = [obj(zs)]
    rejected = 0
    pd_state: dict[str, Any] | None = None
    k = 0
    while k < max_iter and not interrupted():  # Ctrl-C: the blocks so far are the result
        k += 1
        cur = hist[-1]
        for i in range(len(layers)):
            sub = block(layers, f, zs, i, reg, alpha, image_shape, lo, hi, lam)
            t = steps[i]
            if i == 0 and reg == "tv" and alpha > 0:
                new, pd_state = pdhg(sub, zs[0], pd_state, max_iter=inner_iter, tol=0.0, every=0)
            elif i == 0:
                new = prox_g(zs[0] - t * data_grad(sub, zs[0]), t, sub)
            else:
                ps = sub.in_slope
                v = zs[i] + t * sub.in_pre - t * data_grad(sub, zs[i])
                new = prox_scaled_psi(v / (1.0 + t), t / (1.0 + t), ps)
            trial = list(zs)
            trial[i] = new
            val = obj(trial)
            if val <= cur:
                zs, cur = trial, val
            else:
                rejected += 1
        hist.append(cur)
        if abs(hist[-2] - hist[-1]) <= tol * max(1.0, abs(hist[-1])):
            break
    return zs, {"history": hist, "iterations": k, "rejected": rejected, "steps": steps}
