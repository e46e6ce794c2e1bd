r"""The ADMM iterations of Wong & Kolter (2017) on a split model, batched in torch.

The model is a :class:`~netopt.formulations.admm.splitting.SplitModel`.

Scaled duals :math:`(\tilde u_j, u_j)` with the paper's signs. One iteration (paper (8)-(12),
ALGORITHMS.md section 1.2; :math:`K` blocks, chain :math:`z_0 \dots z_K`):

.. math::

    z_0 &= \operatorname{prox}_{r/\rho}(\tilde v_0 + \tilde u_0)                                  \\
    z_j &= (I + W_j^\top W_j)^{-1} \big(v_{j-1} + u_{j-1} + W_j^\top(\tilde v_j + \tilde u_j - b_j)
           \big), \quad 0 < j < K                                                               \\
    z_K &= \operatorname{prox}_{\ell/\rho}(v_{K-1} + u_{K-1})                                     \\
    (\tilde v_j, v_j) &= P_{\mathcal{A}_j}(W_j z_j + b_j - \tilde u_j, \; z_{j+1} - u_j)          \\
    \tilde u_j &\mathrel{+}= \tilde v_j - (W_j z_j + b_j), \qquad u_j \mathrel{+}= v_j - z_{j+1}

The interior updates and the projections do not involve :math:`\rho` (both penalties share it),
which is why :math:`\rho` can be a per-row vector and residual balancing costs nothing.

Orderings (``order``): ``jacobi`` — all :math:`z`, then all pairs, then the duals (two-block
ADMM, convergent on convex problems); ``backward`` — :math:`z_K`, then pair/:math:`z_j` from the
output to the input (the paper's best); ``forward`` — the reverse sweep; ``alternating`` —
forward and backward sweeps in turn. Duals are updated after each sweep.

Residuals per row: primal :math:`r = (\sum_j \|W_j z_j + b_j - \tilde v_j\|^2 + \|z_{j+1} -
v_j\|^2)^{1/2}`, dual :math:`s = \rho \|z^{t} - z^{t-1}\|`. Stopping (Boyd et al. 2011, 3.3.1):
:math:`r \le \epsilon_{abs}\sqrt{n} + \epsilon_{rel}\max(\|(Wz+b, z)\|, \|(\tilde v, v)\|)` and
:math:`s \le \epsilon_{abs}\sqrt{n} + \epsilon_{rel}\rho\|(\tilde u, u)\|`. Residual balancing
(Boyd 3.4.1): :math:`\rho \leftarrow \tau\rho` when :math:`r > \mu s`, :math:`\rho/\tau` when
:math:`s > \mu r`, scaled duals rescaled by the inverse factor.

ADMM iterates are only approximately feasible: the candidate input is :math:`\Pi(z_0)`, scored
by a true forward pass every ``eval_every`` iterations; the best one per row is returned.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from netopt.control import interrupted
from netopt.formulations.admm.linops import make_operator
from netopt.formulations.admm.projections import (
    project_box,
    project_leaky_relu,
    project_linear,
    project_maxpool,
    project_relu,
)
from netopt.torch_utils import TorchObjective

__all__ = ["ADMMOptions", "ADMMRunner", "ORDERS"]

ORDERS = ("backward", "forward", "alternating", "jacobi")


@dataclass
class ADMMOptions:
    """Options of :class:`ADMMRunner` (see the module docstring).

    The residuals (and the stopping test and histories that use them) are computed every
    ``residual_every`` iterations; a history entry is kept every ``history_every``-th time.
    ``refresh_every`` recomputes the products :math:`W_j z_j` exactly (0: never).
    """

    rho: float = 1.0
    order: str = "backward"
    max_iter: int = 1000
    eps_abs: float = 1e-6
    eps_rel: float = 1e-5
    balance: bool = True
    balance_every: int = 50
    mu: float = 10.0
    tau: float = 2.0
    rho_min: float = 1e-8
    rho_max: float = 1e8
    cg_iters: int = 50
    cg_tol: float = 1e-10
    newton_iters: int = 20
    eval_every: int = 10
    residual_every: int = 10
    refresh_every: int = 50
    history_every: int = 1
    stop_value: float | None = None
    blowup: float = 1e12


class _Block:
    """Torch state of one block: operator, projection, pair and duals."""

    def __init__(self, blk, dtype: torch.dtype, device: torch.device, opts: ADMMOptions) -> None:
        self.act = blk.activation
        self.alpha = blk.alpha
        self.node = blk.node
        self.op = make_operator(blk.linear, dtype, device, opts.cg_iters, opts.cg_tol)
        if self.act == "maxpool":
            w = torch.tensor(blk.windows, dtype=torch.long, device=device)
            n_pre = self.op.n_out
            self.win = torch.where(w >= 0, w, torch.full_like(w, n_pre))  # -1 -> an -inf column
            self.valid = w >= 0
            self.cells = w[self.valid]

    def act_forward(self, pre: torch.Tensor) -> torch.Tensor:
        if self.act in ("relu",):
            return torch.clamp(pre, min=0.0)
        if self.act == "leaky_relu":
            return torch.where(pre >= 0, pre, self.alpha * pre)
        if self.act == "maxpool":
            return self._windows(pre).amax(dim=-1)
        return pre  # box (the start is in the box), linear

    def _windows(self, pre: torch.Tensor) -> torch.Tensor:
        ext = torch.cat([pre, torch.full_like(pre[:, :1], -torch.inf)], dim=1)
        return ext[:, self.win]

    def project(
        self, a: torch.Tensor, b: torch.Tensor, obj: TorchObjective
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.act == "relu":
            return project_relu(a, b)
        if self.act == "leaky_relu":
            return project_leaky_relu(a, b, self.alpha)
        if self.act == "maxpool":
            xw, y = project_maxpool(self._windows(a), b)
            x = a.clone()
            # cells in no window stay where they are (they are unconstrained)
            x[:, self.cells] = xw[:, self.valid]
            return x, y
        if self.act == "box":
            return project_box(a, b, obj.lo, obj.hi)
        return project_linear(a, b)


class ADMMRunner:
    """ADMM on a split model for a batch of rows.

    Parameters
    ----------
    model : SplitModel
    obj : TorchObjective
        The rows' objective (its ``project`` is the input box).
    opts : ADMMOptions
    dtype, device : torch dtype and device
    """

    def __init__(
        self,
        model,
        obj: TorchObjective,
        opts: ADMMOptions,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.model, self.obj, self.opts = model, obj, opts
        self.dtype, self.device = dtype, device
        self.blocks = [_Block(b, dtype, device, opts) for b in model.blocks]
        self.K = len(self.blocks)
        self.n_total = int(sum(model.sizes))

    # ------------------------------------------------------------ state
    def init(self, x0: torch.Tensor) -> None:
        """A forward pass from ``x0`` (rows, flat): every constraint holds, duals are zero."""
        z = self.obj.project(x0)
        self.z = [z]
        self.vt, self.v, self.wz = [], [], []
        for blk in self.blocks:
            pre = blk.op.mv(z) + blk.op.bias
            z = blk.act_forward(pre)
            self.wz.append(pre)
            self.vt.append(pre.clone())
            self.v.append(z.clone())
            self.z.append(z)
        self.ut = [torch.zeros_like(t) for t in self.vt]
        self.u = [torch.zeros_like(t) for t in self.v]
        self.rho = torch.full(
            (x0.shape[0], 1), float(self.opts.rho), dtype=self.dtype, device=self.device
        )
        self._dz2 = torch.zeros(x0.shape[0], dtype=self.dtype, device=self.device)

    def _upd_z(self, j: int, track: bool) -> None:
        K = self.K
        old = self.z[j]
        if j == 0:
            new = self.obj.prox_input(self.vt[0] + self.ut[0], self.rho)
        elif j == K:
            new = self.obj.prox_output(
                self.v[K - 1] + self.u[K - 1], self.rho, self.opts.newton_iters, old
            )
        else:
            # z_j and W_j z_j in one go (linops module docstring): W_j z_j is reused by the
            # next pair projection, so it is never recomputed
            op = self.blocks[j].op
            new, wz = op.update(
                self.v[j - 1] + self.u[j - 1],
                self.vt[j] + self.ut[j] - op.bias,
                old,
                self.wz[j] - op.bias,
            )
            self.wz[j] = wz.add_(op.bias)
        self.z[j] = new
        if j == 0:
            self.wz[0] = self.blocks[0].op.mv(new) + self.blocks[0].op.bias
        if track:
            self._dz2 = self._dz2 + ((new - old) ** 2).sum(dim=1)

    def _upd_pair(self, j: int) -> None:
        a = self.wz[j] - self.ut[j]
        b = self.z[j + 1] - self.u[j]
        self.vt[j], self.v[j] = self.blocks[j].project(a, b, self.obj)

    def _duals(self) -> None:
        # in place: the duals are owned by the runner (no other reference to them is kept)
        for j in range(self.K):
            self.ut[j].add_(self.vt[j]).sub_(self.wz[j])
            self.u[j].add_(self.v[j]).sub_(self.z[j + 1])

    def refresh(self) -> None:
        r"""Recompute every :math:`W_j z_j + b_j` exactly.

        CG carries :math:`W x` along its steps (:math:`W x \mathrel{+}= \alpha W p`) from the
        previous iterate's product, so rounding errors add up over ADMM iterations; this resets
        them (every ``refresh_every`` iterations).
        """
        for j, blk in enumerate(self.blocks):
            self.wz[j] = blk.op.mv(self.z[j]) + blk.op.bias

    def sweep(self, it: int, track: bool) -> None:
        """One ADMM iteration in the chosen order."""
        K = self.K
        order = self.opts.order
        if order == "alternating":
            order = "forward" if it % 2 == 0 else "backward"
        if order == "jacobi":
            for j in range(K + 1):
                self._upd_z(j, track)
            for j in range(K):
                self._upd_pair(j)
        elif order == "backward":
            self._upd_z(K, track)
            for j in range(K - 1, -1, -1):
                self._upd_pair(j)
                self._upd_z(j, track)
        else:
            self._upd_z(0, track)
            for j in range(K):
                self._upd_pair(j)
                self._upd_z(j + 1, track)
        self._duals()

    def residuals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per row: primal and dual residuals and their stopping thresholds."""
        r2 = torch.zeros_like(self._dz2)
        n_a = torch.zeros_like(r2)
        n_b = torch.zeros_like(r2)
        n_u = torch.zeros_like(r2)
        for j in range(self.K):
            r2 = (
                r2
                + ((self.wz[j] - self.vt[j]) ** 2).sum(1)
                + ((self.z[j + 1] - self.v[j]) ** 2).sum(1)
            )
            n_a = n_a + (self.wz[j] ** 2).sum(1) + (self.z[j + 1] ** 2).sum(1)
            n_b = n_b + (self.vt[j] ** 2).sum(1) + (self.v[j] ** 2).sum(1)
            n_u = n_u + (self.ut[j] ** 2).sum(1) + (self.u[j] ** 2).sum(1)
        rho = self.rho[:, 0]
        r = torch.sqrt(r2)
        s = rho * torch.sqrt(self._dz2)
        base = self.opts.eps_abs * math.sqrt(self.n_total)
        eps_p = base + self.opts.eps_rel * torch.sqrt(torch.maximum(n_a, n_b))
        eps_d = base + self.opts.eps_rel * rho * torch.sqrt(n_u)
        return r, s, eps_p, eps_d

    def _balance(self, r: torch.Tensor, s: torch.Tensor) -> None:
        o = self.opts
        up = (r > o.mu * s) & (self.rho[:, 0] * o.tau <= o.rho_max)
        down = (s > o.mu * r) & (self.rho[:, 0] / o.tau >= o.rho_min)
        f = torch.where(up, o.tau, torch.where(down, 1.0 / o.tau, 1.0)).to(self.dtype)[:, None]
        self.rho = self.rho * f
        # scaled duals are y / rho: rescale so the unscaled multipliers stay put
        self.ut = [t / f for t in self.ut]
        self.u = [t / f for t in self.u]

    def candidate(self) -> torch.Tensor:
        """The input the iterate stands for: :math:`\\Pi(z_0)`."""
        return self.obj.project(self.z[0])

    # --------------------------------------------------------------- run
    def run(self, x0: torch.Tensor, f, deadline: float | None = None) -> dict[str, Any]:
        """Iterate from ``x0``; ``f`` is the network as a torch function (for scoring).

        Returns a dict: best inputs and values per row, the final iteration, a status
        (``converged``, ``iteration_limit``, ``time_limit``, ``target_reached``, ``diverged``,
        ``nan``) and the histories.
        """
        o = self.opts
        t0 = time.perf_counter()
        self.init(x0)
        B = x0.shape[0]
        best_x = self.candidate().clone()
        with torch.no_grad():
            best_v = self.obj.value(best_x, f(best_x))
        hist: dict[str, list] = {
            "iteration": [],
            "primal": [],
            "dual": [],
            "rho": [],
            "objective": [],
        }
        status, it = "iteration_limit", 0
        message = ""
        for it in range(1, o.max_iter + 1):
            # residuals (and the host syncs of the checks on them) only every residual_every
            # iterations, and where rho balancing needs them
            track = (
                it % o.residual_every == 0
                or (o.balance and it % o.balance_every == 0)
                or it == o.max_iter
            )
            if track:
                self._dz2 = torch.zeros(B, dtype=self.dtype, device=self.device)
            self.sweep(it, track)
            if o.refresh_every > 0 and it % o.refresh_every == 0:
                self.refresh()
            evaluate = it % o.eval_every == 0 or it == o.max_iter
            if evaluate:
                x = self.candidate()
                val = self.obj.value(x, f(x))
                better = val < best_v
                best_v = torch.where(better, val, best_v)
                best_x = torch.where(better[:, None], x, best_x)
            if not track:
                continue
            r, s, eps_p, eps_d = self.residuals()
            if (it // o.residual_every) % o.history_every == 0 or it == o.max_iter:
                hist["iteration"].append(it)
                hist["primal"].append(r)
                hist["dual"].append(s)
                hist["rho"].append(self.rho[:, 0].clone())
                hist["objective"].append(best_v.clone())
            zmax = max(float(z.abs().max()) for z in self.z)
            if not (
                bool(torch.isfinite(r).all()) and bool(torch.isfinite(s).all())
            ) or not math.isfinite(zmax):
                status, message = "nan", f"NaN or inf in the ADMM iterates at iteration {it}"
                break
            if zmax > o.blowup or float(r.max()) > o.blowup:
                status = "diverged"
                message = (
                    f"ADMM diverged at iteration {it} (|z| reached {zmax:.3g}; try a larger rho)"
                )
                break
            if bool(((r <= eps_p) & (s <= eps_d)).all()):
                if not evaluate:  # score the converged iterate before returning
                    x = self.candidate()
                    val = self.obj.value(x, f(x))
                    better = val < best_v
                    best_v = torch.where(better, val, best_v)
                    best_x = torch.where(better[:, None], x, best_x)
                status = "converged"
                break
            if o.stop_value is not None and evaluate and bool((best_v <= o.stop_value).all()):
                status = "target_reached"
                break
            if deadline is not None and time.perf_counter() >= deadline:
                status = "time_limit"
                break
            if interrupted():  # Ctrl-C: the best iterates so far are the result
                status = "interrupted"
                break
            if o.balance and it % o.balance_every == 0:
                self._balance(r, s)
        history = {
            k: (np.asarray(v) if k == "iteration" else torch.stack(v).cpu().numpy())
            if v
            else np.zeros((0, B))
            for k, v in hist.items()
        }
        return {
            "x": best_x,
            "value": best_v,
            "iterations": it,
            "status": status,
            "message": message,
            "history": history,
            "seconds": time.perf_counter() - t0,
        }
