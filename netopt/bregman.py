r"""Lifted Bregman inversion (Wang & Benning, 2023): PDHG, coordinate descent, Landweber.

The math (the penalty :math:`B_\Psi`, the lifted objective, the convex blocks) is in
:mod:`netopt.formulations.lifted_bregman`. This module runs the first-order methods on it:

* **one layer** :math:`N(u) = \sigma(W u + b)`: :func:`pdhg` solves
  :math:`\min_u B_\Psi(f^\delta, W u + b) + \alpha J(u)` (box optional) by the primal-dual
  hybrid gradient method of Chambolle & Pock with both terms dualised, :math:`K = [W;\ c\,D]`
  (:math:`D = \nabla` for TV, :math:`I` for L1; the scale :math:`c = \|W\|/\|D\|` balances the two
  blocks). Step sizes follow the paper's rule :math:`\tau\sigma\|K\|^2 < 1`, :math:`\|K\|` by
  power iteration. The conjugate prox of the Bregman term is closed-form:
  :math:`\mathrm{prox}_{\sigma F^*}(v) = \mathrm{prox}_{\frac{\sigma}{1+\sigma}\Psi}
  \big(\tfrac{v + f + \sigma b}{1+\sigma}\big) - f`;
* **several layers**: :func:`coordinate_descent` over :math:`(u, z_1, \dots, z_{L-1})`, each
  hidden block a proximal-gradient step with step :math:`1/\|W_{l+1}\|^2` (the paper's (16)/(17)),
  the input block the same step with the closed-form prox of :math:`\alpha J` or, for TV, a
  warm-started PDHG on the block. Every block update is accepted only if it does not increase
  the lifted objective, so the objective is monotone by construction (the prox-gradient steps
  are monotone anyway; the guard matters only for an inexact inner TV solve);
* :func:`landweber`: the baseline, :math:`u \leftarrow u - \omega W^\top(\sigma(W u + b) - f)`
  stopped by the discrepancy principle;
* the discrepancy principle for :math:`\alpha`: bisection on :math:`\log\alpha` until
  :math:`\|\sigma(W u_\alpha + b) - f^\delta\|_2 \approx \tau_{dp}\,\delta\sqrt{m}`.

``certify=True`` solves the same convex block(s) exactly with the ``"cvxpy"`` backend and reports
the relative objective gap of the first-order point in ``Result.extra["bregman"]``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from netopt.errors import InputError
from netopt.formulations.lifted_bregman import (
    REGULARIZERS,
    BregmanLayer,
    BregmanSubproblem,
    activation,
    bregman_layers,
    bregman_penalty,
    grad_operator,
    prox_scaled_psi,
    regularizer_value,
)
from netopt.problems import Inversion
from netopt.result import Outcome, Result, assemble

log = logging.getLogger("netopt")

__all__ = [
    "invert_bregman",
    "bregman_outcome",
    "pdhg",
    "coordinate_descent",
    "landweber",
    "lifted_objective",
    "certify_block",
    "operator_norm",
]


# ------------------------------------------------------------------------------------ helpers
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


def _prox_g(v: np.ndarray, t: float, sub: BregmanSubproblem) -> np.ndarray:
    r"""Prox of :math:`t\,G`, :math:`G` = the box plus the separable part of :math:`\alpha J`
    (``l2``: :math:`v/(1+t\alpha)`; ``l1``: soft thresholding), then the box (exact for
    separable 1-D convex terms)."""
    if sub.reg == "l2":
        v = v / (1.0 + t * sub.alpha)
    elif sub.reg == "l1":
        v = np.sign(v) * np.maximum(np.abs(v) - t * sub.alpha, 0.0)
    if sub.lo is not None:
        v = np.maximum(v, sub.lo)
    if sub.hi is not None:
        v = np.minimum(v, sub.hi)
    return v


def _data_grad(sub: BregmanSubproblem, u: np.ndarray) -> np.ndarray:
    r""":math:`\nabla D(u) = W^\top(\sigma(Wu+b) - f)` (linear: :math:`\lambda W^\top(Wu+b-f)`)."""
    z = sub.W @ u + sub.b
    r = (z - sub.f) * sub.lam if sub.out_slope is None else activation(z, sub.out_slope) - sub.f
    return sub.W.T @ r


# --------------------------------------------------------------------------------------- PDHG
def pdhg(
    sub: BregmanSubproblem,
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
    u = _prox_g(u, 0.0, sub)  # into the box
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
        un = _prox_g(u - tau * kt, tau, sub)
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


# ---------------------------------------------------------------------- certification (cvxpy)
def certify_block(
    sub: BregmanSubproblem, u: np.ndarray, solver_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    r"""Solve ``sub`` exactly with the ``"cvxpy"`` backend and compare with the point ``u``.

    Returns ``{"objective": first-order value, "exact": value at the exact solver's point
    (recomputed in float64 after projecting onto the block's domain), "solver_value": cvxpy's own
    value, "rel_gap": (objective - exact) / max(|exact|, 1e-12), "solver", "seconds",
    "certified": True}``. A negative gap means the first-order point is better than the solver's.

    When no cvxpy solver reaches an accurate optimum (an inaccurate, failed or stopped run),
    nothing is certified: ``exact``, ``solver_value`` and ``rel_gap`` are None, ``certified`` is
    False and ``message`` says why; the first-order point itself is kept.
    """
    from netopt import solvers

    B = solvers.get("cvxpy")
    raw = B().solve(sub, options=dict(solver_options or {}))
    if raw.status != "optimal" or raw.x is None or raw.objective is None:
        return {
            "block": sub.name,
            "objective": sub.objective(u),
            "exact": None,
            "solver_value": None,
            "rel_gap": None,
            "solver": raw.extra.get("solver", ""),
            "seconds": raw.seconds,
            "certified": False,
            "message": f"cvxpy could not solve block '{sub.name}' accurately "
            f"(status {raw.status}): {raw.message}",
        }
    x = raw.x.copy()
    if sub.lo is not None:
        x = np.maximum(x, sub.lo)
    if sub.hi is not None:
        x = np.minimum(x, sub.hi)
    if sub.in_pre is not None and sub.in_slope == 0.0:
        x = np.maximum(x, 0.0)  # interior-point round-off below 0 would make B infinite
    exact = min(sub.objective(x), float(raw.objective))
    obj = sub.objective(u)
    return {
        "block": sub.name,
        "objective": obj,
        "exact": exact,
        "solver_value": float(raw.objective),
        "rel_gap": (obj - exact) / max(abs(exact), 1e-12),
        "solver": raw.extra.get("solver", ""),
        "seconds": raw.seconds,
        "certified": True,
    }


# -------------------------------------------------------------------------- lifted objective
def lifted_objective(
    layers: list[BregmanLayer],
    f: np.ndarray,
    zs: list[np.ndarray],
    reg: str,
    alpha: float,
    image_shape: tuple[int, int] | None = None,
    lam: float = 1.0,
) -> float:
    r""":math:`\sum_{l<L} B(z_l, W_l z_{l-1} + b_l) + D_L(z_{L-1}) + \alpha J(z_0)`."""
    val = alpha * regularizer_value(zs[0], reg, image_shape)
    for i, L in enumerate(layers):
        a = L.W @ zs[i] + L.b
        if i + 1 < len(layers):
            val += bregman_penalty(zs[i + 1], a, 1.0 if L.slope is None else L.slope)
        elif L.slope is None:
            val += 0.5 * lam * float(np.sum((a - f) ** 2))
        else:
            val += bregman_penalty(f, a, L.slope)
    return float(val)


def _block(
    layers: list[BregmanLayer],
    f: np.ndarray,
    zs: list[np.ndarray],
    i: int,
    reg: str,
    alpha: float,
    image_shape: Any,
    lo: Any,
    hi: Any,
    lam: float,
) -> BregmanSubproblem:
    """The convex block of variable ``zs[i]`` with the others fixed."""
    nxt = layers[i]
    target = zs[i + 1] if i + 1 < len(layers) else f
    slope = nxt.slope
    if i + 1 < len(layers) and slope is None:
        slope = 1.0  # a linear hidden layer: B = 1/2 ||y - z||^2
    if i == 0:
        return BregmanSubproblem(
            nxt.W, nxt.b, target, slope, lam, None, 0.0, reg, alpha, image_shape, lo, hi, "u"
        )
    prev = layers[i - 1]
    ps = 1.0 if prev.slope is None else prev.slope
    return BregmanSubproblem(
        nxt.W, nxt.b, target, slope, lam, prev.W @ zs[i - 1] + prev.b, ps, name=f"z{i}"
    )


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
    while k < max_iter:
        k += 1
        cur = hist[-1]
        for i in range(len(layers)):
            sub = _block(layers, f, zs, i, reg, alpha, image_shape, lo, hi, lam)
            t = steps[i]
            if i == 0 and reg == "tv" and alpha > 0:
                new, pd_state = pdhg(sub, zs[0], pd_state, max_iter=inner_iter, tol=0.0, every=0)
            elif i == 0:
                new = _prox_g(zs[0] - t * _data_grad(sub, zs[0]), t, sub)
            else:
                ps = sub.in_slope
                v = zs[i] + t * sub.in_pre - t * _data_grad(sub, zs[i])
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


# ----------------------------------------------------------------------------------- Landweber
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
    """
    t0 = time.perf_counter()
    problem, layers, f = _setup(problem_or_net, target)
    if len(layers) != 1:
        raise InputError(f"landweber inverts one layer; this network has {len(layers)}")
    L = layers[0]
    if L.slope == 0.0:
        f = np.maximum(f, 0.0)  # into dom(Psi), as for the Bregman objective
    sub = BregmanSubproblem(L.W, L.b, f, L.slope, name="u")
    n = L.W.shape[1]
    u = np.zeros(n) if x0 is None else np.asarray(x0, dtype=np.float64).reshape(-1).copy()
    w = step or 1.0 / operator_norm(lambda v: L.W @ v, lambda y: L.W.T @ y, n) ** 2
    goal = tau_dp * noise * np.sqrt(L.W.shape[0]) if noise is not None else -1.0
    res_hist: list[float] = []
    k = 0
    for k in range(1, max_iter + 1):
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
    return _result(problem, u, "landweber", info, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------- driver
def _setup(problem_or_net: Any, target: Any) -> tuple[Inversion, list[BregmanLayer], np.ndarray]:
    from netopt.network import Network, load

    if isinstance(problem_or_net, Inversion):
        problem = problem_or_net
        if target is not None:
            raise InputError("pass the target in the Inversion problem or as target=, not both")
    else:
        net = problem_or_net if isinstance(problem_or_net, Network) else load(problem_or_net)
        problem = Inversion(net, target, norm=2)
    layers = bregman_layers(problem.net.graph, f" of {problem.net.source.name}")
    f = problem.target.reshape(-1).astype(np.float64)
    return problem, layers, f


def _result(
    problem: Inversion, u: np.ndarray, solver: str, info: dict[str, Any], seconds: float
) -> Outcome:
    out = Outcome(
        [u],
        "none",
        formulation="lifted_bregman",
        solver=solver,
        timings={"solve": seconds},
        extra={"bregman": info},
        message=f"{solver}: {info.get('iterations')} iterations",
    )
    return out  # projected and re-checked in float64 by assemble


def _image_shape(problem: Inversion, image_shape: Any) -> tuple[int, int] | None:
    if image_shape is not None:
        return (int(image_shape[0]), int(image_shape[1]))
    s = [d for d in problem.net.input_shape]
    if len(s) >= 2 and s[-1] > 1 and s[-2] > 1:
        return (int(s[-2]), int(s[-1]))
    return None


_OPTIONS = {"verbose", "time_limit", "options", "backend", "ratio", "inner_iter", "lam"}


def bregman_outcome(
    problem_or_net: Any,
    target: Any = None,
    *,
    regularizer: str = "tv",
    alpha: float = 1e-2,
    image_shape: tuple[int, int] | None = None,
    box: tuple[Any, Any] | None = None,
    noise: float | None = None,
    discrepancy: bool = False,
    tau_dp: float = 1.0,
    alpha_range: tuple[float, float] | None = None,
    dp_rtol: float = 0.02,
    method: str = "auto",
    max_iter: int | None = None,
    tol: float | None = None,
    certify: bool = True,
    x0: Any = None,
    **options: Any,
) -> tuple[Inversion, Outcome]:
    r"""Invert a network by the lifted Bregman method (``Problem.solve("lifted_bregman")``).

    Returns the problem and the method's :class:`~netopt.result.Outcome` (its point, not yet
    re-checked); :func:`invert_bregman` re-checks it.

    Parameters
    ----------
    problem_or_net : Inversion, Network, or an ONNX model/path
        A chain of affine layers with ReLU/LeakyReLU (a linear last layer is allowed).
    target : array, optional
        :math:`f^\delta` when a network is given. For a ReLU output it is clipped at 0 (the data
        must lie in :math:`\mathrm{dom}\,\Psi`), as in the paper.
    regularizer : {"tv", "l1", "l2", "box", "none"}
        :math:`J`: isotropic TV, :math:`\|u\|_1`, :math:`\tfrac12\|u\|^2`, only the box, nothing.
    alpha : float
        :math:`\alpha` (the start of the search if ``discrepancy``).
    image_shape : (H, W), optional
        The pixel grid for TV (default: the input's last two axes if both exceed 1).
    box : (lo, hi), optional
        A box on :math:`u` in addition to the problem's domain.
    noise : float, optional
        :math:`\delta`, the noise standard deviation per output entry.
    discrepancy : bool
        Choose :math:`\alpha` by bisection on :math:`\log\alpha` (within ``alpha_range``, default
        ``alpha`` times [1e-3, 1e3]) until :math:`\|N(u_\alpha) - f^\delta\|_2` is within
        ``dp_rtol`` of :math:`\tau_{dp}\delta\sqrt m`.
    method : {"auto", "pdhg", "cd"}
        ``auto``: PDHG for one layer, coordinate descent for several.
    max_iter, tol : optional
        PDHG iterations (default 10000, tol 1e-6) or CD sweeps (default 500, tol 1e-8).
    certify : bool
        Solve the same convex block(s) exactly with cvxpy and report the relative gap.
    **options
        ``ratio`` (PDHG :math:`\tau/\sigma` balance), ``inner_iter`` (CD's TV block), ``lam``
        (:math:`\lambda` of a linear output), ``options`` (cvxpy solve options, e.g.
        ``{"solver": "SCS"}``), ``backend`` (the certifying backend: only ``"cvxpy"``).

    Returns
    -------
    Result
        Status ``feasible``; ``x`` re-checked by the float64 interpreter and scored by the problem
        (:math:`\|N(x) - f\|`); ``extra["bregman"]`` holds the lifted objective, its history,
        step sizes, the chosen :math:`\alpha` and the certification.
    """
    t0 = time.perf_counter()
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InputError(f"lifted_bregman: unknown option(s) {unknown}; known: {sorted(_OPTIONS)}")
    backend = options.get("backend") or "cvxpy"
    if backend != "cvxpy":
        raise InputError(f"lifted_bregman certifies with backend 'cvxpy', got {backend!r}")
    if regularizer not in REGULARIZERS:
        raise InputError(f"regularizer must be one of {REGULARIZERS}, got {regularizer!r}")
    if not alpha >= 0:
        raise InputError(f"alpha must be >= 0, got {alpha!r}")
    if discrepancy and (noise is None or noise <= 0):
        raise InputError("discrepancy=True needs the noise level: pass noise=<std per output>")
    problem, layers, f = _setup(problem_or_net, target)
    if method == "auto":
        method = "pdhg" if len(layers) == 1 else "cd"
    if method not in ("pdhg", "cd"):
        raise InputError(f"method must be 'auto', 'pdhg' or 'cd', got {method!r}")
    if method == "pdhg" and len(layers) != 1:
        raise InputError(
            f"method 'pdhg' inverts one layer; this network has {len(layers)} "
            f"({', '.join(L.where for L in layers)}): use method='cd'"
        )
    clipped = 0
    if layers[-1].slope == 0.0:
        clipped = int(np.sum(f < 0))
        f = np.maximum(f, 0.0)
    shape = _image_shape(problem, image_shape)
    if regularizer == "tv" and shape is None:
        raise InputError(
            f"regularizer 'tv' needs image_shape=(H, W) for the input of shape "
            f"{tuple(problem.net.input_shape)}"
        )
    lo = problem.domain.lo.reshape(-1).copy()
    hi = problem.domain.hi.reshape(-1).copy()
    if box is not None:
        lo = np.maximum(lo, np.broadcast_to(np.asarray(box[0], dtype=np.float64), lo.shape))
        hi = np.minimum(hi, np.broadcast_to(np.asarray(box[1], dtype=np.float64), hi.shape))
    if regularizer == "box" and not (np.all(np.isfinite(lo)) or np.all(np.isfinite(hi))):
        raise InputError("regularizer 'box' needs a box: pass box=(lo, hi) or a problem domain")
    lo_ = lo if np.any(np.isfinite(lo)) else None
    hi_ = hi if np.any(np.isfinite(hi)) else None
    lam = float(options.get("lam", 1.0))
    u_init = None if x0 is None else np.asarray(x0, dtype=np.float64).reshape(-1)

    def run(a: float, u_start: Any, st: Any) -> tuple[np.ndarray, dict[str, Any], Any]:
        if method == "pdhg":
            L = layers[0]
            sub = BregmanSubproblem(
                L.W, L.b, f, L.slope, lam, None, 0.0, regularizer, a, shape, lo_, hi_, "u"
            )
            u, stt = pdhg(
                sub,
                u_start,
                st,
                max_iter=max_iter or 10000,
                tol=1e-6 if tol is None else tol,
                ratio=float(options.get("ratio", 1.0)),
            )
            return u, {**stt, "objective": sub.objective(u)}, [u]
        zs, info = coordinate_descent(
            layers,
            f,
            reg=regularizer,
            alpha=a,
            image_shape=shape,
            lo=lo_,
            hi=hi_,
            u0=u_start,
            lam=lam,
            max_iter=max_iter or 500,
            tol=1e-8 if tol is None else tol,
            inner_iter=int(options.get("inner_iter", 100)),
        )
        return zs[0], {**info, "objective": info["history"][-1]}, zs

    def residual(u: np.ndarray) -> float:
        z = u
        for L in layers:
            z = L.W @ z + L.b
            z = z if L.slope is None else activation(z, L.slope)
        return float(np.linalg.norm(z - f))

    dp_info: dict[str, Any] | None = None
    if discrepancy:
        goal = tau_dp * noise * np.sqrt(f.size)
        a_lo, a_hi = alpha_range or (alpha * 1e-3, alpha * 1e3)
        trials: list[tuple[float, float]] = []
        best = None
        st: Any = None
        u_prev = u_init
        lg_lo, lg_hi = np.log(a_lo), np.log(a_hi)
        for _ in range(30):
            a = float(np.exp(0.5 * (lg_lo + lg_hi)))
            u, info, zs = run(a, u_prev, st)
            st = info if method == "pdhg" else None
            u_prev = u
            r = residual(u)
            trials.append((a, r))
            if best is None or abs(r - goal) < abs(best[1] - goal):
                best = (a, r, u, info, zs)
            if abs(r / goal - 1.0) <= dp_rtol:
                break
            # the residual grows with alpha: too small a residual means too little regularization
            if r < goal:
                lg_lo = np.log(a)
            else:
                lg_hi = np.log(a)
        alpha, r, u, info, zs = best
        dp_info = {"target": goal, "residual": r, "trials": trials, "tau_dp": tau_dp}
    else:
        u, info, zs = run(alpha, u_init, None)

    out: dict[str, Any] = {
        "method": method,
        "alpha": alpha,
        "regularizer": regularizer,
        "objective": info["objective"],
        "history": info["history"],
        "iterations": info["iterations"],
        "residual": residual(u),
        "clipped_targets": clipped,
        "discrepancy": dp_info,
    }
    for k in ("tau", "sigma", "norm_K", "converged", "steps", "rejected"):
        if k in info:
            out[k] = info[k]
    if certify:
        cert_opts = options.get("options") or {}
        blocks = [
            _block(layers, f, zs, i, regularizer, alpha, shape, lo_, hi_, lam)
            for i in range(len(layers))
        ]
        certs = [certify_block(b, zs[i], cert_opts) for i, b in enumerate(blocks)]
        out["certificate"] = certs
        # a gap only when every block was solved accurately: one uncertified block leaves the
        # whole point uncertified
        out["certified"] = all(c["certified"] for c in certs)
        out["rel_gap"] = max(c["rel_gap"] for c in certs) if out["certified"] else None
        if not out["certified"]:
            log.warning(
                "lifted Bregman: %s", next(c["message"] for c in certs if not c["certified"])
            )
    return problem, _result(problem, u, method, out, time.perf_counter() - t0)


def invert_bregman(problem_or_net: Any, target: Any = None, **kw: Any) -> Result:
    """The lifted Bregman method, its point re-checked in float64 (see :func:`bregman_outcome`)."""
    problem, out = bregman_outcome(problem_or_net, target, **kw)
    return assemble(problem, out)
