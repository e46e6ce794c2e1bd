r"""Gradient baselines, batched over rows: GD, Adam, normalized and sign projected gradient.

With :math:`g = \nabla_x \phi(x)` of the (minimized) objective and :math:`\Pi` the projection
onto the box, one step of each method is

* ``gd``: :math:`x \leftarrow \Pi(x - \eta g)`;
* ``adam``: :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`, :math:`v \leftarrow \beta_2 v +
  (1-\beta_2) g^2`, :math:`x \leftarrow \Pi(x - \eta \hat m / (\sqrt{\hat v} + \epsilon))` with
  the bias-corrected moments :math:`\hat m = m / (1-\beta_1^t)`, :math:`\hat v = v /
  (1-\beta_2^t)`;
* ``pgd``: :math:`x \leftarrow \Pi(x - \eta g / \|g\|_2)` (steepest descent for the 2-norm);
* ``sign_pgd``: :math:`x \leftarrow \Pi(x - \eta \operatorname{sign}(g))` (steepest descent for
  the inf-norm).

:math:`\eta` decays as :math:`\eta_t = \eta / (1 + \text{decay} \cdot t)`. The best point of
every row (by the objective at the iterate, computed anyway by the forward pass) is kept; a row
whose objective or point becomes NaN or inf, or whose point exceeds ``blowup`` in magnitude, is
frozen at that iteration and reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from netopt.control import interrupted
from netopt.torch_utils import TorchObjective

__all__ = ["GradientOptions", "run_gradient"]


@dataclass
class GradientOptions:
    """Options of :func:`run_gradient` (see the module docstring)."""

    method: str = "adam"
    lr: float = 0.01
    max_iter: int = 1000
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    decay: float = 0.0
    tol: float | None = None
    patience: int = 50
    stop_value: float | None = None
    history_every: int = 1
    blowup: float = 1e12


def run_gradient(
    f, obj: TorchObjective, x0: torch.Tensor, opts: GradientOptions, deadline: float | None = None
) -> dict[str, Any]:
    """Minimize every row from ``x0`` (flat rows); ``f`` maps flat rows to flat outputs.

    Stops at ``max_iter``, at the deadline, when every row's best value is at most
    ``stop_value``, or when no row improved its best by more than ``tol`` (relative) over the
    last ``patience`` iterations.
    """
    t0 = time.perf_counter()
    B = x0.shape[0]
    x = obj.project(x0).detach().clone()
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    b1, b2 = opts.betas
    best_x = x.clone()
    best_v = torch.full((B,), torch.inf, dtype=x.dtype, device=x.device)
    alive = torch.ones(B, dtype=torch.bool, device=x.device)
    dead_at = torch.zeros(B, dtype=torch.long, device=x.device)
    hist: dict[str, list] = {"iteration": [], "objective": []}
    status, it = "iteration_limit", 0
    ref_v = None
    for it in range(1, opts.max_iter + 1):
        x.requires_grad_(True)
        val = obj.value(x, f(x))
        (g,) = torch.autograd.grad(val.sum(), x)
        x = x.detach()
        val = val.detach()
        bad = (
            ~torch.isfinite(val)
            | ~torch.isfinite(g).all(dim=1)
            | (x.abs().amax(dim=1) > opts.blowup)
        )
        newly = bad & alive
        if bool(newly.any()):
            dead_at = torch.where(newly, torch.full_like(dead_at, it), dead_at)
            alive = alive & ~bad
        better = alive & (val < best_v)
        best_v = torch.where(better, val, best_v)
        best_x = torch.where(better[:, None], x, best_x)
        if it % opts.history_every == 0:
            hist["iteration"].append(it)
            hist["objective"].append(best_v.clone())
        if not bool(alive.any()):
            status = "nan"
            break
        if opts.stop_value is not None and bool((best_v[alive] <= opts.stop_value).all()):
            status = "target_reached"
            break
        if opts.tol is not None and it % opts.patience == 0:
            if ref_v is not None:
                gain = (ref_v - best_v) / torch.clamp(ref_v.abs(), min=1.0)
                if bool((gain[alive] <= opts.tol).all()):
                    status = "stalled"
                    break
            ref_v = best_v.clone()
        if deadline is not None and time.perf_counter() >= deadline:
            status = "time_limit"
            break
        if interrupted():  # Ctrl-C: the best rows so far are the result
            status = "interrupted"
            break
        lr = opts.lr / (1.0 + opts.decay * it)
        g = torch.where(alive[:, None], g, torch.zeros_like(g))
        if opts.method == "gd":
            step = g
        elif opts.method == "adam":
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            step = (m / (1 - b1**it)) / (torch.sqrt(v / (1 - b2**it)) + opts.eps)
        elif opts.method == "pgd":
            step = g / torch.clamp(torch.linalg.vector_norm(g, dim=1, keepdim=True), min=1e-30)
        else:
            step = torch.sign(g)
        x = obj.project(x - lr * step)
    hist_np = {
        "iteration": np.asarray(hist["iteration"]),
        "objective": torch.stack(hist["objective"]).cpu().numpy()
        if hist["objective"]
        else np.zeros((0, B)),
    }
    dead = {int(i): int(dead_at[i]) for i in torch.nonzero(~alive).flatten().tolist()}
    msg = ""
    if dead:
        first = min(dead.values())
        msg = f"{len(dead)} of {B} rows produced NaN/inf or diverged (first at iteration {first})"
    return {
        "x": best_x,
        "value": best_v,
        "iterations": it,
        "status": status,
        "message": msg,
        "dead": dead,
        "history": hist_np,
        "seconds": time.perf_counter() - t0,
        "math_ok": math.isfinite(float(best_v.min())) if B else True,
    }
