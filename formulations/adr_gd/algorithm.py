r"""ADR-GD (Yu & Gao, ICML 2024): input optimization of ReLU networks over activation variables.

The math (activation variables :math:`\eta`, offset-sigmoid gate, sigmoid-surrogate network,
row-norm-normalized constraint loss, the Lagrangian) is in
:mod:`netopt.formulations.adr_gd`. This module runs Algorithm 1 in torch (imported lazily; CPU
or CUDA), for :class:`~netopt.problems.OutputObjective` (:math:`c^\top f(x) + c_0`, min or max)
and :class:`~netopt.problems.Inversion` (:math:`\|w \odot (f(x) - y)\|_p`) over a box:

.. code-block:: text

    x <- start;  eta <- 0.5 - 0.01 sign(g(x));  lam <- lam0
    for t = 0..T-1:
        L = phi(ft(x, eta)) / ||grad_x phi(ft)|| + lam * C(x, eta);  backprop
        x   <- clip(x - lr * n(grad_x L), box)               n(g) = g / max(||g||, 1)
        lam <- lam + lr_lam * C   if C > tol   else  lam - lam_decay;   clip to [0.2, 10]
        for each layer l:
            g <- n(grad_eta^l L)
            if ||g|| <= grad_threshold and t - last_l >= perturb_freq:  g += perturb * N(0, I)
            eta^l <- clip(eta^l - lr_eta * g, 0.3, 0.7)
    return the iterate with the best TRUE objective

Every iterate is scored by the true ReLU network (computed alongside the surrogate), and the
candidates (each restart's best, the final iterates and the start) are re-scored in float64 by
the reference interpreter; the answer is never worse than the start. :func:`gd_baseline_outcome`
is the authors' baseline: the same normalized, projected steps on :math:`x` alone.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import InputError
from netopt.formulations.adr_gd.surrogate import (
    _to_torch,
    constraint_loss,
    dense_layers,
    offset_sigmoid,
)
from netopt.problems import Inversion, OutputObjective, Problem
from netopt.result import Outcome
from netopt.torch_utils import resolve_device, resolve_dtype

__all__ = ["adr_outcome", "gd_baseline_outcome", "DEFAULTS", "LARGE_NET"]

#: the authors' small random-net configuration (10-64-64-1), ALGORITHMS.md section 5.6
DEFAULTS: dict[str, Any] = {
    "steps": 3000,
    "lr": 0.5,
    "lr_eta": 1.0,
    "lam": 1.0,
    "lr_lam": 1e-2,
    "lam_decay": 1e-2,
    "lam_range": (0.2, 10.0),
    "lam_tol": 1e-2,
    "perturb": 0.1,
    "perturb_freq": 25,
    "grad_threshold": 1e-4,
    "beta": 2000.0,
    "eta_range": (0.3, 0.7),
    "reinit_freq": 0,
    "row_norm_floor": 0.0,
}
#: overrides of the authors' large random-net configuration (128-500-500-500-1)
LARGE_NET: dict[str, Any] = {
    "lr_eta": 1.25,
    "lr_lam": 1e-4,
    "perturb": 0.35,
    "grad_threshold": 1e-2,
}


# ------------------------------------------------------------------------ torch plumbing
def _device_dtype(device: str | None, dtype: str) -> tuple[Any, Any]:
    """The torch device (default CUDA when available, else CPU) and dtype (float64 or float32)."""
    if str(dtype) not in ("float64", "float32"):
        raise InputError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return resolve_device(device or None), resolve_dtype(str(dtype))


def _objective_fn(problem: Problem, like: Any):
    """``phi(y)`` per batch row as a minimization (torch), and the sign of the problem's sense."""
    import torch

    if isinstance(problem, OutputObjective):
        c = torch.as_tensor(problem.c.reshape(-1), dtype=like.dtype, device=like.device)
        sign = -1.0 if problem.sense == "max" else 1.0
        c0 = problem.constant
        return (lambda y: sign * (y @ c + c0)), sign
    if isinstance(problem, Inversion):
        t = torch.as_tensor(problem.target.reshape(-1), dtype=like.dtype, device=like.device)
        w = torch.as_tensor(problem.weights.reshape(-1), dtype=like.dtype, device=like.device)
        p = problem.norm

        def phi(y):
            r = w * (y - t)
            if p == 1:
                return r.abs().sum(dim=1)
            if p == 2:
                return torch.sqrt((r**2).sum(dim=1) + 1e-24)  # smooth at 0: finite gradient
            return r.abs().amax(dim=1)

        return phi, 1.0
    raise InputError(
        f"ADR-GD optimizes OutputObjective or Inversion problems, not {type(problem).__name__}"
    )


def _check_problem(problem: Problem) -> None:
    dom = problem.domain
    if dom.A is not None or dom.integer is not None:
        raise InputError(
            "ADR-GD works over a box; the domain has linear constraints or integer coordinates"
        )


def _starts(problem: Problem, start: Any, restarts: int, seed: int) -> np.ndarray:
    """Restart 0 at ``start`` (default: 0 projected on the box, the authors' start), the others
    uniform in the box."""
    dom = problem.domain
    n = int(np.prod(dom.shape))
    x0 = np.zeros(dom.shape) if start is None else np.asarray(start, dtype=np.float64)
    if x0.size != n:
        raise InputError(f"start has {x0.size} entries; the network input has {n}")
    rows = [dom.project(x0.reshape(dom.shape)).reshape(-1)]
    if restarts > 1:
        rows += list(dom.sample(restarts - 1, np.random.default_rng(seed)).reshape(-1, n))
    return np.stack(rows)


def _norm_step(g: Any) -> Any:
    """Gradient normalized per row when its norm exceeds 1 (the authors' x and eta steps)."""
    import torch

    nrm = g.norm(dim=1, keepdim=True)
    return torch.where(nrm > 1.0, g / nrm.clamp(min=1e-300), g), nrm.squeeze(1)


def _outcome(
    problem: Problem,
    cands: np.ndarray,
    name: str,
    key: str,
    info: dict[str, Any],
    seconds: float,
    device: str,
) -> Outcome:
    """The candidates, to be re-scored in float64 by :func:`~netopt.result.assemble` (no claim)."""
    info["device"] = device
    out = Outcome(
        list(cands),
        "none",
        formulation=name,
        solver="torch",
        timings={"solve": seconds},
        extra={key: info},
    )
    return out


# ------------------------------------------------------------------------------- ADR-GD
def adr_outcome(
    problem: Problem,
    *,
    lam: float = DEFAULTS["lam"],
    schedule: str = "dual",
    steps: int = DEFAULTS["steps"],
    lr: float = DEFAULTS["lr"],
    lr_eta: float = DEFAULTS["lr_eta"],
    lr_lam: float = DEFAULTS["lr_lam"],
    lam_decay: float = DEFAULTS["lam_decay"],
    lam_range: tuple[float, float] = DEFAULTS["lam_range"],
    lam_tol: float = DEFAULTS["lam_tol"],
    perturb: float = DEFAULTS["perturb"],
    perturb_freq: int = DEFAULTS["perturb_freq"],
    grad_threshold: float = DEFAULTS["grad_threshold"],
    beta: float = DEFAULTS["beta"],
    eta_range: tuple[float, float] = DEFAULTS["eta_range"],
    reinit_freq: int = DEFAULTS["reinit_freq"],
    row_norm_floor: float = DEFAULTS["row_norm_floor"],
    restarts: int = 1,
    start: Any = None,
    seed: int = 0,
    time_limit: float | None = None,
    device: str | None = None,
    dtype: str = "float64",
    history: bool = True,
) -> Outcome:
    r"""Maximize/minimize over the input by ADR-GD (Algorithm 1 of Yu & Gao 2024).

    Parameters
    ----------
    problem : OutputObjective or Inversion
        Over a box (finite or not); chains of affine + ReLU only.
    lam : float
        :math:`\lambda_0`, the constraint-loss multiplier.
    schedule : {"dual", "fixed"}
        ``"dual"``: :math:`\lambda \mathrel{+}= \mathrm{lr}_\lambda C` when :math:`C >`
        ``lam_tol``, else :math:`\lambda \mathrel{-}=` ``lam_decay``, clipped to ``lam_range``
        (random nets, attacks); ``"fixed"``: :math:`\lambda = \lambda_0` (the authors' RL code).
    steps, lr : int, float
        Iterations :math:`T` and the step on :math:`x` (normalized when the gradient's norm
        exceeds 1).
    lr_eta : float
        Step on :math:`\eta` (same normalization).
    perturb, perturb_freq, grad_threshold : float, int, float
        Noise scale added to a layer's :math:`\eta`-gradient whose norm is at most
        ``grad_threshold``, at most once every ``perturb_freq`` iterations per layer.
    beta : float
        Gate sharpness :math:`\beta`.
    eta_range : (float, float)
        Clamp of :math:`\eta`.
    reinit_freq : int
        Re-initialize :math:`\eta` from the true pattern every so many iterations (0: never).
    row_norm_floor : float
        :math:`\nu` in :math:`\hat g = g / \max(\|P_j\|, \nu)`.
    restarts : int
        Independent runs, batched: the first from ``start``, the others uniform in the box.
    start : array, optional
        Default 0 projected on the box (the authors' start).
    seed : int
        Seeds the restarts and the perturbations.
    time_limit : float, optional
        Seconds; the loop stops early and returns the best so far.
    device : str, optional
        Torch device; default CUDA when available, else CPU.
    dtype : {"float64", "float32"}
    history : bool
        Record per-iteration diagnostics.

    Returns
    -------
    Result
        Status ``feasible``; ``x`` the best iterate by the true network; ``objective`` recomputed
        in float64. ``extra["adr"]``: ``lam`` (T, R), ``true`` (T+1, R) true objective of each
        iterate, ``surrogate`` (T, R) :math:`\pm` the surrogate's objective (the problem's sense),
        ``constraint`` (T, R), ``best`` (T+1,) best true objective so far, ``perturbations``,
        ``start_objective``, ``best_restart``, ``best_iteration``, ``iterations``, ``params``.
    """
    import torch

    if schedule not in ("dual", "fixed"):
        raise InputError(f"schedule must be 'dual' or 'fixed', got {schedule!r}")
    if steps < 0 or restarts < 1:
        raise InputError("steps must be >= 0 and restarts >= 1")
    _check_problem(problem)
    net = dense_layers(problem)
    dev, dt = _device_dtype(device, dtype)
    t0 = time.perf_counter()
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    X0 = _starts(problem, start, restarts, seed)
    R, n = X0.shape
    x = torch.as_tensor(X0, dtype=dt, device=dev).requires_grad_(True)
    lo = torch.as_tensor(problem.domain.lo.reshape(-1), dtype=dt, device=dev)
    hi = torch.as_tensor(problem.domain.hi.reshape(-1), dtype=dt, device=dev)
    phi, sign = _objective_fn(problem, x)
    Ws, (WL, bL) = _to_torch(net, x)
    H = len(Ws)
    e_lo, e_hi = eta_range

    def true_pre(xx):
        """True pre-activations g^l(x) and output f(x) (autograd flows through the ReLUs)."""
        pre, h = [], xx
        for W, b in Ws:
            g = h @ W.T + b
            pre.append(g)
            h = torch.relu(g)
        return pre, h @ WL.T + bL

    def init_eta(xx):
        with torch.no_grad():
            pre, _ = true_pre(xx)
        return [(0.5 - 0.01 * torch.sign(g)).requires_grad_(True) for g in pre]

    etas = init_eta(x)
    lam_t = torch.full((R,), float(lam), dtype=dt, device=dev)
    last_perturb = np.zeros((R, H), dtype=np.int64)  # the authors start the counters at 0
    n_perturb = 0
    eye = torch.eye(n, dtype=dt, device=dev).expand(R, n, n)

    with torch.no_grad():
        _, y0 = true_pre(x)
        val0 = (sign * phi(y0)).cpu().numpy()  # problem's sense
    best_val = val0.copy()
    best_x = X0.copy()
    best_it = np.zeros(R, dtype=np.int64)
    hist: dict[str, list] = {"lam": [], "true": [val0.copy()], "surrogate": [], "constraint": []}
    better = (lambda a, b: a > b) if problem.sense == "max" else (lambda a, b: a < b)
    t_done = 0
    stopped = False  # by the user (Ctrl-C)
    for t in range(steps):
        if reinit_freq and (t + 1) % reinit_freq == 0:
            etas = init_eta(x)
        pre, _ = true_pre(x)
        # surrogate forward and the region's input-gradients P^l (gates detached)
        h, P, row_norms = x, eye, []
        for (W, b), eta in zip(Ws, etas, strict=True):
            s = offset_sigmoid(eta, beta)
            P = torch.matmul(W, P)  # (R, n_l, n): W_l D^{l-1} P^{l-1}
            row_norms.append(P.norm(dim=2))
            h = s * (h @ W.T + b)
            P = s.detach().unsqueeze(2) * P
        ft = h @ WL.T + bL
        obj_raw = phi(ft)
        (gx_obj,) = torch.autograd.grad(obj_raw.sum(), x, retain_graph=True)
        scale = gx_obj.norm(dim=1).clamp(min=1e-12).detach()  # constant per iteration
        C = constraint_loss(pre, row_norms, etas, row_norm_floor)
        lagr = obj_raw / scale + lam_t * C
        grads = torch.autograd.grad(lagr.sum(), [x, *etas], allow_unused=True)
        with torch.no_grad():
            gx, _ = _norm_step(grads[0])
            x.sub_(lr * gx)
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
            Cd = C.detach()
            if schedule == "dual":
                lam_t = torch.where(Cd <= lam_tol, lam_t - lam_decay, lam_t + lr_lam * Cd)
                lam_t = lam_t.clamp(*lam_range)
            for l_, (eta, ge) in enumerate(zip(etas, grads[1:], strict=True)):
                ge = torch.zeros_like(eta) if ge is None else ge
                ge, gn = _norm_step(ge)
                fire = ((t - last_perturb[:, l_]) >= perturb_freq) & (
                    gn.cpu().numpy() <= grad_threshold
                )
                if fire.any():
                    noise = torch.randn(eta.shape, generator=gen, dtype=dt, device=dev)
                    mask = torch.as_tensor(fire, device=dev).unsqueeze(1)
                    ge = ge + perturb * noise * mask
                    last_perturb[fire, l_] = t
                    n_perturb += int(fire.sum())
                eta.sub_(lr_eta * ge)
                eta.clamp_(e_lo, e_hi)
            # score the new iterate by the TRUE network
            _, y = true_pre(x)
            val = (sign * phi(y)).cpu().numpy()
            imp = better(val, best_val)
            if imp.any():
                best_val = np.where(imp, val, best_val)
                best_x[imp] = x.detach().cpu().numpy()[imp]
                best_it[imp] = t + 1
            if history:
                hist["lam"].append(lam_t.cpu().numpy())
                hist["true"].append(val)
                hist["surrogate"].append((sign * obj_raw.detach()).cpu().numpy())
                hist["constraint"].append(Cd.cpu().numpy())
        t_done = t + 1
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            break
        if interrupted():  # Ctrl-C: the best iterates so far are the result
            stopped = True
            break
    seconds = time.perf_counter() - t0
    cands = np.concatenate([best_x, x.detach().cpu().numpy(), X0[:1]])
    info: dict[str, Any] = {
        "iterations": t_done,
        "perturbations": n_perturb,
        "start_objective": float(problem.objective_of_input(X0[0].reshape(problem.domain.shape))),
        "best_restart": int(np.argmax(best_val) if problem.sense == "max" else np.argmin(best_val)),
        "best_iteration": None,
        "final_objective": [float(v) for v in (hist["true"][-1] if history else best_val)],
        "params": {
            "lam": lam, "schedule": schedule, "steps": steps, "lr": lr, "lr_eta": lr_eta,
            "lr_lam": lr_lam, "lam_decay": lam_decay, "perturb": perturb,
            "perturb_freq": perturb_freq, "grad_threshold": grad_threshold, "beta": beta,
            "restarts": restarts, "seed": seed, "dtype": dtype,
        },
    }  # fmt: skip
    info["best_iteration"] = int(best_it[info["best_restart"]])
    if history:
        true = np.stack(hist["true"])
        info["true"] = true
        info["best"] = (np.maximum if problem.sense == "max" else np.minimum).accumulate(
            true.max(axis=1) if problem.sense == "max" else true.min(axis=1)
        )
        for k in ("lam", "surrogate", "constraint"):
            info[k] = np.stack(hist[k]) if hist[k] else np.zeros((0, R))
    out = _outcome(problem, cands, "adr_gd", "adr", info, seconds, str(dev))
    out.message = f"ADR-GD: {t_done} iterations x {R} restart(s), {n_perturb} perturbations"
    if stopped:
        out.claim = "interrupted"
    return out


# -------------------------------------------------------------------------- GD baseline
def gd_baseline_outcome(
    problem: Problem,
    *,
    steps: int = DEFAULTS["steps"],
    lr: float = DEFAULTS["lr"],
    restarts: int = 1,
    start: Any = None,
    seed: int = 0,
    device: str | None = None,
    dtype: str = "float64",
) -> Outcome:
    r"""The authors' gradient-descent baseline on :math:`x` alone, same budget as ADR-GD.

    :math:`x \leftarrow \mathrm{clip}(x - \mathrm{lr}\, g / \max(\|g\|, 1), \text{box})`,
    :math:`g = \nabla_x \phi(f(x))` through the true ReLU network. ``extra["gd"]["final"]`` is
    the last iterate's objective (what the authors' notebooks report), ``Result`` the best
    iterate (re-scored in float64), ``extra["gd"]["true"]`` (T+1, R) every iterate's objective.
    """
    import torch

    _check_problem(problem)
    net = dense_layers(problem)
    dev, dt = _device_dtype(device, dtype)
    t0 = time.perf_counter()
    X0 = _starts(problem, start, restarts, seed)
    x = torch.as_tensor(X0, dtype=dt, device=dev).requires_grad_(True)
    lo = torch.as_tensor(problem.domain.lo.reshape(-1), dtype=dt, device=dev)
    hi = torch.as_tensor(problem.domain.hi.reshape(-1), dtype=dt, device=dev)
    phi, sign = _objective_fn(problem, x)
    Ws, (WL, bL) = _to_torch(net, x)

    def f(xx):
        h = xx
        for W, b in Ws:
            h = torch.relu(h @ W.T + b)
        return h @ WL.T + bL

    vals = []
    best_x, best_val = X0.copy(), None
    better = np.greater if problem.sense == "max" else np.less
    for _ in range(steps + 1):
        o = phi(f(x))
        v = (sign * o.detach()).cpu().numpy()
        vals.append(v)
        if best_val is None:
            best_val = v.copy()
        else:
            imp = better(v, best_val)
            best_val = np.where(imp, v, best_val)
            best_x[imp] = x.detach().cpu().numpy()[imp]
        if len(vals) == steps + 1:
            break
        (g,) = torch.autograd.grad(o.sum(), x)
        with torch.no_grad():
            g, _ = _norm_step(g)
            x.sub_(lr * g)
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
    true = np.stack(vals)
    info = {
        "true": true,
        "final": [float(v) for v in true[-1]],
        "iterations": steps,
        "params": {"steps": steps, "lr": lr, "restarts": restarts, "seed": seed},
    }
    cands = np.concatenate([best_x, x.detach().cpu().numpy(), X0[:1]])
    out = _outcome(problem, cands, "gd_baseline", "gd", info, time.perf_counter() - t0, str(dev))
    out.message = f"GD baseline: {steps} iterations x {len(X0)} restart(s)"
    return out
