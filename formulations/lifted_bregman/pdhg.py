r"""Chambolle-Pock PDHG for one convex block of the lifted Bregman objective.

One layer :math:`N(u) = \sigma(W u + b)`: :func:`pdhg` solves
:math:`\min_u B_\Psi(f^\delta, W u + b) + \alpha J(u)` (box optional) by the primal-dual
hybrid gradient method of Chambolle & Pock with both terms dualised, :math:`K = [W;\ c\,D]`
(:math:`D = \nabla` for TV, :math:`I` for L1; the scale :math:`c = \|W\|/\|D\|` balances the two
blocks). Step sizes follow the paper's rule :math:`\tau\sigma\|K\|^2 < 1`, :math:`\|K\|` by
power iteration (:func:`operator_norm`). The conjugate prox of the Bregman term is closed-form:
:math:`\mathrm{prox}_{\sigma F^*}(v) = \mathrm{prox}_{\frac{\sigma}{1+\sigma}\Psi}
\big(\tfrac{v + f + \sigma b}{1+\sigma}\big) - f`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import InputError
from netopt.formulations.lifted_bregman.penalty import prox_g, prox_scaled_psi
from netopt.model.convex import ConvexBlock, grad_operator

__all__ = ["pdhg", "operator_norm"]


def operator_norm(
    apply: Any, apply_t: Any, n: int, iters: int = 60, seed: int = 0, rtol: float = 1e-6
) -> float:
    r""":math:`\|K\|_2` by power iteration on :math:`K^\top K` (a slight underestimate)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n)
    v /= np.linalg.norm(v)
    s = 0.0
    for _ in range(iters):
        w = apply_t(apply(v))
        s_new = float(np.linalg.norm(w))
        if s_new == 0.0:
            return 0.0
        v = w / s_new
        if abs(s_new - s) <= rtol * s_new:
            s = s_new
            break
        s = s_new
    return float(np.sqrt(s))


def pdhg(
    sub: ConvexBlock,
    u0: np.ndarray | None = None,
    state: dict[str, Any] | None = None,
    *,
    max_iter: int = 10000,
    tol: float = 1e-6,
    ratio: float = 1.0,
    every: int = 10,
) -> tuple[np.ndarray, dict[str, Any]]:
    r"""Chambolle-Pock PDHG for one block :math:`\min_u D(u) + \alpha J(u)` (no hidden term).

    .. math::
        y^{k+1} &= \mathrm{prox}_{\sigma F^*}(y^k + \sigma K \bar u^k),\\
        u^{k+1} &= \mathrm{prox}_{\tau G}(u^k - \tau K^\top y^{k+1}),\qquad
        \bar u^{k+1} = 2u^{k+1} - u^k,

    with :math:`F(Ku) = D(u) + \alpha\,\mathrm{TV}(u)` (:math:`K = [W;\ c\nabla]`, or
    :math:`K = W` without TV) and :math:`G` = the box plus :math:`\alpha J` for L1/L2, whose
    prox is closed-form and separable.
    :math:`\tau = 0.99\,r/\|K\|`, :math:`\sigma = 0.99/(r\|K\|)` (``ratio`` :math:`r`), so
    :math:`\tau\sigma\|K\|^2 = 0.98 < 1`.

    Stops when :math:`\|u^{k+1}-u^k\| \le tol\,\max(1,\|u^k\|)` and the same for :math:`y`.

    Returns
    -------
    u : ndarray (n,)
    state : dict
        ``y1``, ``y2`` (duals, for a warm start), ``iterations``, ``history`` (objective every
        ``every`` iterations), ``tau``, ``sigma``, ``norm_K``, ``converged``.
    """
    if sub.in_pre is not None:
        raise InputError("pdhg solves input blocks; a hidden block has a closed-form prox step")
    W, b, f = sub.W, sub.b, sub.f
    m, n = W.shape
    tv_on = sub.reg == "tv" and sub.alpha > 0
    D = grad_operator(sub.image_shape) if tv_on else None
    norm_W = operator_norm(lambda v: W @ v, lambda w: W.T @ w, n)
    # scale the TV block so that both blocks of K have the same norm (||grad||^2 <= 8)
    c = norm_W / np.sqrt(8.0) if tv_on else 0.0
    if state is not None and "norm_K" in state and state.get("c") == c:
        norm_K = state["norm_K"]
    elif tv_on:
        norm_K = operator_norm(
            lambda v: np.concatenate([W @ v, c * (D @ v)]),
            lambda w: W.T @ w[:m] + c * (D.T @ w[m:]),
            n,
        )
    else:
        norm_K = norm_W
    norm_K *= 1.01  # power iteration underestimates; keep tau*sigma*||K||^2 < 1
    tau = 0.99 * ratio / norm_K
    sig = 0.99 / (ratio * norm_K)
    u = np.zeros(n) if u0 is None else np.asarray(u0, dtype=np.float64).reshape(-1).copy()
    u = prox_g(u, 0.0, sub)  # into the box
    y1 = np.zeros(m) if state is None or "y1" not in state else state["y1"].copy()
    y2 = (
        np.zeros(2 * n)
        if (state is None or state.get("y2") is None or not tv_on)
        else state["y2"].copy()
    )
    ubar = u.copy()
    bound = sub.alpha / c if tv_on else 0.0
    hist: list[float] = []
    converged = False
    k = 0
    for k in range(1, max_iter + 1):
        if interrupted():  # Ctrl-C: the iterate so far is the result
            break
        v = y1 + sig * (W @ ubar)
        if sub.out_slope is None:
            y1n = (v - sig * (f - b)) / (1.0 + sig / sub.lam)
        else:
            s = sig / (1.0 + sig)
            y1n = prox_scaled_psi((v + f + sig * b) / (1.0 + sig), s, sub.out_slope) - f
        kt = W.T @ y1n
        if tv_on:
            q = (y2 + sig * c * (D @ ubar)).reshape(2, n)
            # pixelwise projection onto {||q_ij||_2 <= alpha/c}
            nrm = np.maximum(1.0, np.sqrt(q[0] ** 2 + q[1] ** 2) / bound)
            y2n = (q / nrm).reshape(-1)
            kt = kt + c * (D.T @ y2n)
        else:
            y2n = y2
        un = prox_g(u - tau * kt, tau, sub)
        du = np.linalg.norm(un - u)
        dy = np.linalg.norm(y1n - y1) + np.linalg.norm(y2n - y2)
        ubar = 2.0 * un - u
        nu, ny = np.linalg.norm(u), np.linalg.norm(y1) + np.linalg.norm(y2)
        u, y1, y2 = un, y1n, y2n
        if every and k % every == 0:
            hist.append(sub.objective(u))
        if du <= tol * max(1.0, nu) and dy <= tol * max(1.0, ny):
            converged = True
            break
    return u, {
        "y1": y1,
        "y2": y2 if tv_on else None,
        "iterations": k,
        "history": hist,
        "tau": tau,
        "sigma": sig,
        "norm_K": norm_K / 1.01,
        "c": c,
        "converged": converged,
    }
