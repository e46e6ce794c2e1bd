r"""The problems' objectives in torch, batched over rows, with their proximal maps.

A batch has ``B`` rows; row ``i`` solves problem ``rows[i]`` (several rows per problem are
random restarts). Every objective is turned into a minimization (a maximized
:class:`~netopt.problems.OutputObjective` is negated). Outputs ``y`` and inputs ``x`` are flat,
``(B, n)``.

Proximal maps :math:`\operatorname{prox}_{\ell/\rho}(a) = \arg\min_z \ell(z) + \frac{\rho}{2}
\|z - a\|^2` (ADMM's output update (8)), with :math:`s = z - t`, :math:`\tilde a = a - t`:

* weighted 1-norm :math:`\sum_j w_j |s_j|`: :math:`s_j = \operatorname{sign}(\tilde a_j)
  \max(|\tilde a_j| - w_j / \rho, 0)` (soft thresholding);
* 2-norm: ADMM minimizes :math:`\frac12 \|w \odot s\|^2`, which has the same minimizers as
  :math:`\|w \odot s\|_2` (an inversion has no input term): :math:`s = \rho \tilde a / (w^2 +
  \rho)`;
* weighted inf-norm :math:`\max_j w_j |s_j|`: for a level :math:`\tau`, :math:`s_j =
  \operatorname{sign}(\tilde a_j) \min(|\tilde a_j|, \tau / w_j)`, and :math:`\tau \ge 0` is the
  root of the decreasing :math:`1 - \rho \sum_j w_j^{-1} (|\tilde a_j| - \tau / w_j)_+` (0 if
  that is :math:`\ge 0` at :math:`\tau = 0`), found by bisection; coordinates with
  :math:`w_j = 0` are free (:math:`s_j = \tilde a_j`);
* linear :math:`c^\top z`: :math:`z = a - c / \rho`;
* cross-entropy :math:`\operatorname{lse}(z) - z_c`: no closed form; damped Newton on the
  strongly convex :math:`\operatorname{lse}(z) - z_c + \frac{\rho}{2}\|z - a\|^2`, gradient
  :math:`p - e_c + \rho (z - a)`, Hessian :math:`\operatorname{diag}(p) - p p^\top + \rho I`
  (:math:`p = \operatorname{softmax}(z)`), from :math:`z = a` (or the previous iterate), with
  an Armijo backtracking line search over the steps :math:`1, 1/2, \dots, 2^{-11}` evaluated
  together.

The input term :math:`r(x) = \frac{\lambda}{2}\|x - x_{\mathrm{ref}}\|^2` (cross-entropy's L2)
has :math:`\operatorname{prox}_{r/\rho}(a) = (\rho a + \lambda x_{\mathrm{ref}}) / (\rho +
\lambda)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from netopt.errors import FormulationError, InputError
from netopt.problems import CrossEntropy, Feasibility, Inversion, OutputObjective, Problem

__all__ = ["Objective"]

#: trial steps of the cross-entropy prox's line search: 1, 1/2, ..., 2^-(L-1)
_LINE_SEARCH = 12


class Objective:
    """The batched objective of ``problems`` on rows ``rows`` (problem index of each row).

    Parameters
    ----------
    problems : list of Problem
        One network, one kind (checked by the formulation).
    rows : array of int, shape (B,)
    dtype, device : torch dtype and device
    """

    def __init__(
        self,
        problems: Sequence[Problem],
        rows: np.ndarray,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.problems = list(problems)
        self.rows = np.asarray(rows, dtype=np.int64)
        p0 = self.problems[0]
        self.B = len(self.rows)
        self.dtype, self.device = dtype, device

        def stack(arrays: list[np.ndarray]) -> torch.Tensor:
            a = np.stack([np.asarray(arrays[r], dtype=np.float64).reshape(-1) for r in self.rows])
            return torch.tensor(a, dtype=dtype, device=device)

        self.lo = stack([p.domain.lo for p in self.problems])
        self.hi = stack([p.domain.hi for p in self.problems])
        self.bounded_lo = bool(torch.isfinite(self.lo).all())
        self.bounded_hi = bool(torch.isfinite(self.hi).all())
        self.has_box = bool(torch.isfinite(self.lo).any() or torch.isfinite(self.hi).any())
        self.l2 = 0.0
        self.x_ref = None
        if isinstance(p0, Inversion):
            self.kind = "norm"
            self.p = float(p0.norm)
            self.target = stack([p.target for p in self.problems])
            self.weights = stack([p.weights for p in self.problems])
        elif isinstance(p0, OutputObjective):
            self.kind = "linear"
            sign = 1.0 if p0.sense == "min" else -1.0
            self.c = sign * stack([p.c for p in self.problems])
            self.c0 = sign * stack([np.array([p.constant]) for p in self.problems])[:, 0]
        elif isinstance(p0, Feasibility):
            self.kind = "feasibility"
            shapes = {p.C.shape for p in self.problems}
            if len(shapes) != 1:
                raise InputError("a batch of Feasibility problems must share the shape of C")
            C = np.stack([self.problems[r].C for r in self.rows])
            self.C = torch.tensor(C, dtype=dtype, device=device)
            self.d = stack([p.d for p in self.problems])
        elif isinstance(p0, CrossEntropy):
            self.kind = "cross_entropy"
            self.label = torch.tensor(
                [self.problems[r].label for r in self.rows], device=device, dtype=torch.long
            )
            self.l2 = float(p0.l2)
            self.x_ref = stack([p.x_ref for p in self.problems])
        else:
            raise FormulationError(
                f"first-order methods have no torch objective for {type(p0).__name__}"
            )

    # ----------------------------------------------------------------- values
    def output_value(self, y: torch.Tensor) -> torch.Tensor:
        """The (minimized) output term :math:`\\ell(y)` of every row, ``(B,)``."""
        if self.kind == "norm":
            r = self.weights * (y - self.target)
            if self.p == 1.0:
                return r.abs().sum(dim=1)
            if self.p == 2.0:
                # vector_norm's backward is 0 (a subgradient) at r = 0, never NaN
                return torch.linalg.vector_norm(r, dim=1)
            return r.abs().amax(dim=1)
        if self.kind == "linear":
            return (y * self.c).sum(dim=1) + self.c0
        if self.kind == "feasibility":
            return (torch.bmm(self.C, y.unsqueeze(2)).squeeze(2) - self.d).amax(dim=1)
        return torch.logsumexp(y, dim=1) - y.gather(1, self.label[:, None])[:, 0]

    def input_value(self, x: torch.Tensor) -> torch.Tensor:
        """The input term :math:`r(x)` (the L2 regularizer; 0 when there is none)."""
        if self.l2 == 0.0:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return 0.5 * self.l2 * ((x - self.x_ref) ** 2).sum(dim=1)

    def value(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The whole (minimized) objective of every row."""
        return self.output_value(y) + self.input_value(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Onto the box (the identity where a side is infinite)."""
        if not self.has_box:
            return x
        return torch.maximum(torch.minimum(x, self.hi), self.lo)

    # ----------------------------------------------------------------- proxes
    def prox_input(self, a: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        """:math:`\\operatorname{prox}_{r/\\rho}(a)` (the box is handled by the input block)."""
        if self.l2 == 0.0:
            return a
        return (rho * a + self.l2 * self.x_ref) / (rho + self.l2)

    def prox_output(
        self,
        a: torch.Tensor,
        rho: torch.Tensor,
        newton_iters: int = 30,
        z0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:math:`\\operatorname{prox}_{\\ell/\\rho}(a)` row by row (module docstring).

        ``z0`` warm-starts the Newton iterations of the cross-entropy (ADMM passes the previous
        output iterate, which is close once the iterations settle).
        """
        if self.kind == "linear":
            return a - self.c / rho
        if self.kind == "cross_entropy":
            return self._prox_ce(a, rho, newton_iters, z0)
        if self.kind != "norm":
            raise FormulationError("ADMM has no output update for a Feasibility objective")
        at = a - self.target
        w = self.weights
        if self.p == 1.0:
            s = torch.sign(at) * torch.clamp(at.abs() - w / rho, min=0.0)
        elif self.p == 2.0:
            s = rho * at / (w * w + rho)
        else:
            s = self._prox_inf(at, w, rho)
        return self.target + s

    @staticmethod
    def _prox_inf(at: torch.Tensor, w: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        pos = w > 0
        winv = torch.where(pos, 1.0 / torch.where(pos, w, torch.ones_like(w)), torch.zeros_like(w))
        mag = at.abs()

        def g(tau: torch.Tensor) -> torch.Tensor:
            return 1.0 - rho[:, 0] * (winv * torch.clamp(mag - tau[:, None] * winv, min=0.0)).sum(1)

        hi = torch.where(pos, w * mag, torch.zeros_like(mag)).amax(dim=1)
        lo = torch.zeros_like(hi)
        # g is continuous, decreasing, g(hi) = 1 > 0: bisection keeps g(lo) < 0 <= g(hi)
        for _ in range(60 if at.dtype == torch.float64 else 30):
            mid = 0.5 * (lo + hi)
            neg = g(mid) < 0
            lo = torch.where(neg, mid, lo)
            hi = torch.where(neg, hi, mid)
        tau = torch.where(g(torch.zeros_like(hi)) >= 0, torch.zeros_like(hi), hi)
        cap = tau[:, None] * winv
        return torch.where(pos, torch.sign(at) * torch.minimum(mag, cap), at)

    def _prox_ce(
        self,
        a: torch.Tensor,
        rho: torch.Tensor,
        iters: int,
        z0: torch.Tensor | None,
        early_exit: bool | None = None,
    ) -> torch.Tensor:
        onehot = torch.zeros_like(a)
        onehot.scatter_(1, self.label[:, None], 1.0)

        def f(z: torch.Tensor) -> torch.Tensor:
            # z is (B, n) or (L, B, n): the prox objective of every row (and step)
            return (
                torch.logsumexp(z, -1)
                - (z * onehot).sum(-1)
                + 0.5 * rho[:, 0] * ((z - a) ** 2).sum(-1)
            )

        z = a.clone() if z0 is None else z0.clone()
        # below this gradient the objective's change is under the dtype's resolution
        tol = 1e-12 if a.dtype == torch.float64 else 1e-5
        # the backtracking line search tries every step 1, 1/2, ..., 2^-(L-1) at once (an
        # (L, B, n) evaluation, cheap for a logit vector) and keeps the largest that satisfies
        # Armijo; no host sync per halving. A row where none does (rounding at the optimum)
        # does not move.
        steps = None
        # on a GPU every .item() is a device sync: run the fixed number of steps there; on the
        # CPU the early exits are free and save the remaining steps
        check = a.device.type == "cpu" if early_exit is None else early_exit
        eps4 = 4 * torch.finfo(a.dtype).eps
        for _ in range(iters):
            p = torch.softmax(z, dim=1)
            grad = p - onehot + rho * (z - a)
            if check and float(grad.abs().max()) <= tol:
                break
            # H = A - p p^T with A = diag(p + rho): Sherman-Morrison, elementwise. The
            # denominator 1 - sum p^2 / (p + rho) > 1 - sum p = 0, so H^{-1} always exists.
            ainv = 1.0 / (p + rho)
            q = p * ainv
            denom = 1.0 - (p * q).sum(1, keepdim=True)
            d = -(grad * ainv + q * (q * grad).sum(1, keepdim=True) / denom)
            slope = (grad * d).sum(1)  # < 0: H is positive definite
            f0 = f(z)
            if check:
                # the predicted decrease is below the objective's rounding: converged as far
                # as the dtype resolves
                if bool((-slope <= eps4 * (1.0 + f0.abs())).all()):
                    break
                # near the solution the full step passes: try it alone first
                zt = z + d
                if bool((f(zt) <= f0 + 1e-4 * slope).all()):
                    z = zt
                    continue
            if steps is None:
                steps = 0.5 ** torch.arange(_LINE_SEARCH, dtype=a.dtype, device=a.device)[:, None]
            fc = f(z[None] + steps[:, :, None] * d[None])  # (L, B)
            ok = fc <= f0 + 1e-4 * steps * slope
            first = torch.argmax(ok.to(torch.int8), dim=0)  # the first (largest) accepted step
            t = torch.where(ok.any(dim=0), steps[first, 0], torch.zeros_like(f0))
            z = z + t[:, None] * d
        return z
