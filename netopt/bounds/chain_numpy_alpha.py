r"""alpha- and beta-CROWN in numpy for :class:`~netopt.bounds.chain_numpy.NumpyChainCrown`.

Input splitting (:mod:`netopt.bounds.branch_input`) gives the boxes its CROWN bounds leave open
optimized slopes (alpha-CROWN) and, under a few ReLU splits, optimized multipliers
(beta-CROWN: :mod:`netopt.bounds.input_relu`). Their torch version
(:meth:`ChainBounds.alpha_crown <netopt.bounds.batched_alpha.OptimizedBounds.alpha_crown>`)
differentiates the bound by autograd; importing torch costs about 1.2 s of a fresh process
(2-core CPU), paid by every ACAS Xu instance that reaches these bounds. Here the gradient is
written out, which on a chain of dense layers is one forward pass.

With the activations' input bounds fixed (the boxes' own, reused: ``pre``), the bound of row
:math:`k` for a box is the CROWN back-substitution

.. math::

    \Lambda_{top-1} = c_k^\top W_{top},\quad
    \Lambda'_j = \Lambda_j^+ \odot s^{lo}_j + \Lambda_j^- \odot s^{up}_j - \beta_j \odot
    \sigma_j,\quad \Lambda_{j-1} = \Lambda'_j W_j \quad (j = top-1, \dots, 0),

    \underline{b} = c_k^\top b_{top} - d_k + \sum_j \big(\Lambda'_j b_j + \Lambda_j^- t^{up}_j
    + \Lambda_j^+ t^{lo}_j\big) + \Lambda_{-1}^+ l + \Lambda_{-1}^- u,

with :math:`\Lambda_j` the coefficients of layer :math:`j`'s activations (:math:`\Lambda_{-1}`
the input's), the lower lines' slopes :math:`s^{lo}` (the parameters on unstable units), the upper
lines' slopes and intercepts :math:`s^{up}, t^{up}`, the split signs :math:`\sigma_j` and their
multipliers :math:`\beta_j \ge 0`. Almost everywhere (a fixed sign pattern of the
:math:`\Lambda`'s) the bound is linear in each coefficient, and its derivative with respect to
:math:`\Lambda'_j` is :math:`\hat z_j = W_j \hat a_{j-1} + b_j`, where :math:`\hat a_{-1} =
x^\ast` is the box's corner that concretizes :math:`\Lambda_{-1}` (:math:`l_i` where
:math:`\Lambda_{-1,i} > 0`, else :math:`u_i`) and :math:`\hat a_j` is :math:`\hat z_j` through the
line each unit's sign of :math:`\Lambda_j` chose (the lower one where :math:`\Lambda_j > 0`):
the network linearized by the bound's own relaxation, evaluated at :math:`x^\ast`. So

.. math::

    \frac{\partial \underline{b}}{\partial s^{lo}_{j}} = \Lambda_j^+ \odot \hat z_j,\qquad
    \frac{\partial \underline{b}}{\partial \beta_j} = -\sigma_j \odot \hat z_j .

As in the torch version each box ascends its best row (the largest bound; a box closes when one
row is positive, and stops once it is above :data:`~netopt.bounds.spec_bound.CLOSE_HEADROOM`),
with the same projected Adam steps and the same record of the best bounds seen, so both give
the same parameters up to rounding (the tests hold them to each other in float64). Where a
coefficient is exactly 0 the bound has a kink; the derivative taken there is torch's (its
clamps pass both sides': an activation's :math:`\hat a` takes both lines' terms, the input's
corner :math:`l_i + u_i`, not a point of the box), and any choice serves the ascent: the bounds
returned are evaluated, never extrapolated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from netopt.bounds.spec_bound import CLOSE_HEADROOM, BoxBatch, SpecBound
from netopt.ir.ops.activations import relu_relaxation

__all__ = ["NumpyAdam", "NumpyOptimized"]


class NumpyAdam:
    r"""Adam (Kingma & Ba 2015) ascending on numpy arrays: torch's constants and update
    (:class:`netopt.torch_utils.Adam`), :math:`p \leftarrow p + \frac{lr}{1 - \beta_1^t} m /
    (\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon)` for the gradient of the objective to
    maximize."""

    def __init__(self, params: list, lrs: list, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.params, self.lrs = params, lrs
        self.b1, self.b2, self.eps, self.t = betas[0], betas[1], 1e-8, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def select(self, idx: np.ndarray) -> list:
        """Keep the rows ``idx`` (of the first dimension) of every parameter and its moments,
        as though the steps had run on those rows alone (the update is elementwise); returns
        the new parameters, in their order."""
        self.params = [p[idx] for p in self.params]
        self.m = [m[idx] for m in self.m]
        self.v = [v[idx] for v in self.v]
        return self.params

    def step(self, grads: list) -> None:
        """One step up the gradients ``grads`` (one per parameter, in place)."""
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, math.sqrt(1 - self.b2**self.t)
        for p, g, m, v, lr in zip(self.params, grads, self.m, self.v, self.lrs, strict=True):
            # (torch's form minimizes the negated objective: its gradient is -g)
            m *= self.b1
            m -= (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= (lr / c1) * m / (np.sqrt(v) / c2 + self.eps)


class NumpyOptimized:
    """alpha- and beta-CROWN for :class:`~netopt.bounds.chain_numpy.NumpyChainCrown` (a mixin:
    it uses the engine's ``W``, ``b``, ``Wb``, ``leak``, ``n_act`` and ``dtype``)."""

    W: list
    b: list
    Wb: list
    leak: list
    n_act: int
    dtype: Any

    def alpha_crown(
        self,
        lo: Any,
        hi: Any,
        C: Any,
        d: Any,
        splits: list | None = None,
        *,
        pre: list,
        iters: int = 20,
        lr: float = 0.25,
        init: list | None = None,
        beta: bool = False,
        lr_beta: float = 0.05,
        init_betas: list | None = None,
    ) -> SpecBound:
        r"""The torch engine's ``alpha_crown``
        (:meth:`~netopt.bounds.batched_alpha.OptimizedBounds.alpha_crown`) in numpy, on the
        boxes' activation bounds ``pre`` (reused, intersected with the splits' half-lines: the
        torch version's ``pre=``), for rows shared by the boxes, without the rows' combination
        (``mix``).

        Parameters
        ----------
        lo, hi : (B, n_in)
        C, d : (k, n_out), (k,)
            The rows: lower bounds of ``C f(x) - d`` (the same rows for every box).
        splits : list, optional
            ``splits[j]`` ``(B, n_j)`` in {-1, 0, 1}, or None per layer.
        pre : list of (l_j, u_j)
            ``(B, n_j)`` each: bounds of each activation's input over each box.
        iters, lr, init, beta, lr_beta, init_betas
            As the torch version: Adam steps, the slopes' rate and start (a parent's), and with
            ``beta`` the split multipliers' rate and start (``(B, k, n_j)`` per layer).

        Returns
        -------
        SpecBound
            numpy arrays in the engine's dtype: the best bounds seen per box (up to the step
            that closed it), the slopes (clipped) and multipliers (projected, masked to the
            splits) that gave them, the clipped ``pre``, each row's coefficients (``lams``,
            ``coefs``), the best row.
        """
        dt = self.dtype
        lo, hi = np.asarray(lo, dtype=dt), np.asarray(hi, dtype=dt)
        B = len(lo)
        C = np.atleast_2d(np.asarray(C, dtype=dt))
        if C.ndim != 2:
            raise ValueError(f"C must be (rows, outputs), shared by the boxes, not {C.shape}")
        d = np.asarray(d, dtype=dt).reshape(-1)
        k = len(C)
        top = len(self.W) - 1
        n_act = self.n_act
        signs: list = [None] * n_act
        for j, s in enumerate((splits or [])[:n_act]):
            if s is not None:
                signs[j] = np.asarray(s, dtype=dt)
        pre = [_clip(np.asarray(a, dtype=dt), np.asarray(b_, dtype=dt), signs[j])
               for j, (a, b_) in enumerate(pre[:n_act])]  # fmt: skip
        lines = [relu_relaxation(lj, uj, self.leak[j]) for j, (lj, uj) in enumerate(pre)]
        unstable = [(lj < 0) & (uj > 0) for lj, uj in pre]
        Lam0 = (C @ self.W[top])[None]
        const0 = (C @ self.b[top])[None]
        slopes = [np.asarray(s, dtype=dt).copy() for s in init[:n_act]] if init is not None \
            else [ln[0].copy() for ln in lines]  # fmt: skip
        masks: list = [None] * n_act
        betas: list = [None] * n_act
        if beta:
            for j, s in enumerate(signs):
                if s is None or not (s != 0).any():
                    continue
                masks[j] = (s != 0).astype(dt)[:, None, :]
                if init_betas is not None and init_betas[j] is not None:
                    betas[j] = np.maximum(np.asarray(init_betas[j], dtype=dt), 0) * masks[j]
                else:
                    betas[j] = np.zeros((B, k, s.shape[1]), dtype=dt)

        def used_slopes(params: list, bx: BoxBatch) -> list:
            return [
                np.where(bx.unstable[j], np.clip(p, self.leak[j], 1.0), bx.lines[j][0])
                for j, p in enumerate(params)
            ]

        def evaluate(sl: list, bt: list, bx: BoxBatch) -> tuple:
            """The bounds ``(b, k)`` of the boxes ``bx``, each layer's coefficients and the
            input's."""
            nb = len(bx.lo)
            Lam = np.broadcast_to(Lam0, (nb, k, Lam0.shape[2]))
            const = np.broadcast_to(const0, (nb, k)).astype(dt)
            lams: list = [None] * top
            for j in range(top - 1, -1, -1):
                lams[j] = Lam
                _, lo_b, up_s, up_b = bx.lines[j]
                neg = np.minimum(Lam, 0)
                const = const + np.einsum("bkn,bn->bk", neg, up_b)
                if lo_b.any():
                    const = const + np.einsum("bkn,bn->bk", np.maximum(Lam, 0), lo_b)
                Lam = Lam * sl[j][:, None, :] + neg * (up_s - sl[j])[:, None, :]
                if bt[j] is not None:
                    Lam = Lam - bt[j] * bx.signs[j][:, None, :]
                out = (Lam.reshape(nb * k, -1) @ self.Wb[j]).reshape(nb, k, -1)
                const = const + out[..., -1]
                Lam = out[..., :-1]
            bound = const + np.einsum("bkn,bn->bk", np.maximum(Lam, 0), bx.lo)
            bound = bound + np.einsum("bkn,bn->bk", np.minimum(Lam, 0), bx.hi)
            return bound - d, lams, Lam

        full = BoxBatch(B, lo, hi, lines, unstable, signs, masks)
        sl = used_slopes(slopes, full)
        best, best_lams, best_coefs = evaluate(sl, betas, full)
        best_slopes = [s.copy() for s in sl]
        best_betas = list(betas)
        n_par = n_act + sum(b_ is not None for b_ in betas)
        # A box takes steps while it is open (its best row at most CLOSE_HEADROOM (1 + max |d|)),
        # as in the torch engine (its reasons there): the batch shrinks to the open boxes at the
        # start and whenever a quarter of them closed.
        tau = CLOSE_HEADROOM * (1.0 + float(np.abs(d).max())) if d.size else CLOSE_HEADROOM
        sel = np.nonzero(~(best.max(axis=1) > tau))[0]
        if n_par and iters > 0 and len(sel):
            bx = full if len(sel) == B else full.take(sel)
            # (written row by row from here: arrays of their own)
            best_lams = [np.array(a) for a in best_lams]
            best_coefs = np.array(best_coefs)
            best_betas = [None if b_ is None else b_.copy() for b_ in best_betas]
            a_params = [s[sel] for s in sl]
            b_params = [None if b_ is None else b_[sel] for b_ in betas]
            b_at = [j for j, p in enumerate(b_params) if p is not None]
            opt = NumpyAdam(
                a_params + [b_params[j] for j in b_at], [lr] * n_act + [lr_beta] * len(b_at)
            )
            for _ in range(iters):
                used_b = [None if p is None else p * bx.masks[j] for j, p in enumerate(b_params)]
                sl = used_slopes(a_params, bx)
                bound, lams, coefs = evaluate(sl, used_b, bx)
                score = bound.max(axis=1)
                cur = best[sel].max(axis=1)
                # (a box closed before this step keeps its values: see the torch engine)
                better = (score > cur) & ~(cur > tau)
                if better.any():
                    ix = sel[better]
                    best[ix] = bound[better]
                    best_coefs[ix] = coefs[better]
                    for j in range(n_act):
                        best_slopes[j][ix] = sl[j][better]
                        best_lams[j][ix] = lams[j][better]
                        if used_b[j] is not None:
                            best_betas[j][ix] = used_b[j][better]
                ar = np.arange(len(sel))
                g_a, g_b = self._gradients(
                    bound.argmax(axis=1), ar, bx.lo, bx.hi, coefs, lams, sl, bx.lines,
                    bx.signs, bx.masks,
                )  # fmt: skip
                for j in range(n_act):
                    # only the unstable units' slopes are parameters (the params are clipped
                    # into [leak, 1] after each step, where the clip's derivative is 1)
                    g_a[j] = np.where(bx.unstable[j], g_a[j], 0).astype(dt)
                opt.step(g_a + [g_b[j] for j in b_at])
                for j, p in enumerate(a_params):
                    np.clip(p, self.leak[j], 1.0, out=p)
                for p in b_params:
                    if p is not None:
                        np.maximum(p, 0, out=p)
                still = ~(best[sel].max(axis=1) > tau)
                n_open = int(still.sum())
                if n_open == 0:
                    break
                if 4 * n_open <= 3 * len(sel):
                    keep = np.nonzero(still)[0]
                    sel, bx = sel[keep], bx.take(keep)
                    ps = opt.select(keep)
                    a_params = ps[:n_act]
                    b_params = [None] * n_act
                    for j, p in zip(b_at, ps[n_act:], strict=True):
                        b_params[j] = p
        out_betas: list = []
        if beta:
            out_betas = [
                b_ if b_ is not None else np.zeros((B, k, self.W[j].shape[0]), dtype=dt)
                for j, b_ in enumerate(best_betas)
            ]
        row = best.argmax(axis=1)
        return SpecBound(
            best,
            best_slopes,
            pre,
            out_betas,
            row,
            best_coefs[np.arange(B), row],
            best_lams,
            coefs=best_coefs,
        )

    def _gradients(
        self,
        r: np.ndarray,
        ar: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        coefs: np.ndarray,
        lams: list,
        sl: list,
        lines: list,
        signs: list,
        masks: list,
    ) -> tuple[list, list]:
        r"""The derivatives of each box's row ``r`` bound by the slopes (``(B, n_j)``) and the
        multipliers (``(B, k, n_j)``, nonzero in row ``r`` only): the forward pass of the
        module doc from the corner :math:`x^\ast`."""
        # (at a coefficient of exactly 0 torch's clamp passes the gradient to both sides)
        a = np.where(coefs[ar, r] > 0, lo, np.where(coefs[ar, r] < 0, hi, lo + hi))
        g_a, g_b = [], []
        for j in range(self.n_act):
            z = a @ self.W[j].T + self.b[j]
            lam = lams[j][ar, r]
            g_a.append(np.maximum(lam, 0) * z)
            if masks[j] is not None:
                g = np.zeros(masks[j].shape[:1] + (lams[j].shape[1], z.shape[1]), dtype=z.dtype)
                g[ar, r] = -signs[j] * z * masks[j][:, 0, :]
                g_b.append(g)
            else:
                g_b.append(None)
            _, lo_b, up_s, up_b = lines[j]
            a = np.where(lam > 0, sl[j] * z + lo_b, up_s * z + up_b)
            # (a zero coefficient: torch's clamps pass both parts' derivatives)
            a = np.where(lam == 0, sl[j] * z + lo_b + (up_s - sl[j]) * z + up_b, a)
        return g_a, g_b


def _clip(low: np.ndarray, up: np.ndarray, s: np.ndarray | None) -> tuple:
    """Bounds intersected with the split half-lines (``s`` in {-1, 0, 1} or None)."""
    if s is None:
        return low, up
    return np.where(s > 0, np.maximum(low, 0), low), np.where(s < 0, np.minimum(up, 0), up)
