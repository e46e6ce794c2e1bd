r"""The optimized bounds of :class:`netopt.bounds.batched.ChainBounds`: alpha-CROWN slopes,
beta-CROWN multipliers, a combination of the rows and an optimized objective row, each a
projected Adam ascent per box through the CROWN passes of :mod:`netopt.bounds.batched`.

They are methods of :class:`~netopt.bounds.batched.ChainBounds` (through the mixin
:class:`OptimizedBounds`), kept apart from the engine's tensors and passes; the math is in
:mod:`netopt.bounds.batched`'s docstring and in each method's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.bounds.spec_bound import CLOSE_HEADROOM, BoxBatch
from netopt.torch_utils import Adam

if TYPE_CHECKING:  # (batched imports this module: the name only, for the annotation)
    from netopt.bounds.batched import SpecBound

__all__ = ["OptimizedBounds"]


def _simplex(m: Any) -> Any:
    """Nonnegative weights summing to 1 (clipped and rescaled; all-zero rows: uniform). Any map
    into the simplex will do here: a bound with any such weights is valid."""
    import torch

    m = m.clamp(min=0)
    s = m.sum(1, keepdim=True)
    return torch.where(s > 0, m / s.clamp(min=1e-30), torch.full_like(m, 1.0 / m.shape[1]))


def _rows_of(t: Any, B: int) -> Any:
    """``t`` with ``B`` rows of its own (a clone; one shared row repeated)."""
    return t.expand(B, *t.shape[1:]).clone()


def _own(t: Any) -> Any:
    """``t`` as a tensor of its own (a clone), to be written in place; None stays None."""
    return None if t is None else t.clone()


class OptimizedBounds:
    """The optimizing methods of :class:`~netopt.bounds.batched.ChainBounds` (a mixin: they use
    its tensors ``W``, ``leak``, ``n_act``, ``dtype``, ``device`` and its CROWN passes)."""

    def alpha_crown(
        self,
        lo: Any,
        hi: Any,
        C: Any,
        d: Any,
        splits: list | None = None,
        *,
        iters: int = 20,
        lr: float = 0.25,
        init: list | None = None,
        beta: bool = False,
        lr_beta: float = 0.05,
        init_betas: list | None = None,
        pre: list | None = None,
        prev: list | None = None,
        mix: bool = False,
        init_mix: Any = None,
        lr_mix: float = 0.1,
    ) -> SpecBound:
        r"""alpha-CROWN (and with ``beta``, beta-CROWN): slopes and multipliers optimized per box.

        A box is closed when one row's lower bound is positive, so the parameters of each box
        take up to ``iters`` projected Adam steps maximizing its largest row bound (a box stops
        once that bound exceeds :data:`~netopt.bounds.spec_bound.CLOSE_HEADROOM` times
        :math:`1 + \max |d|`): the slopes
        (learning rate ``lr``, from ``init`` — a parent's, for warm starts — or CROWN's choice)
        and, with ``beta``, the multipliers :math:`\beta \ge 0` of the split units (rate
        ``lr_beta``, from ``init_betas`` or 0). The bound minimized over the box is

        .. math::

            C f(x) - d \;\ge\; C f(x) - d - \sum_j (\beta_j \odot s_j) z_j,

        valid on the points respecting the splits :math:`s_j z_j \ge 0` for every
        :math:`\beta_j \ge 0` (``(B, k, n_j)``: one multiplier per row and unit, zero where
        :math:`s_j = 0`).

        Per box, the bounds returned are those of the best parameters seen up to the step that
        closed it (never worse than the start; the start's, for a box closed at once), and
        ``slopes`` / ``betas`` are those parameters as the bound used them
        (slopes clipped into :math:`[\alpha_{\text{leak}}, 1]`, multipliers projected onto
        :math:`\beta \ge 0` and masked to the splits): recomputing the bound with them gives
        the same value. ``pre`` / ``prev``: a parent's activation bounds, reused as they are or
        intersected with recomputed ones (:meth:`pre_bounds`).

        With ``mix`` (and ``k > 1`` rows, which must all hold at a counterexample), one more
        row is bounded: the combination :math:`\mu^\top (C f(x) - d)` with weights :math:`\mu`
        in the simplex, optimized per box with the rest (rate ``lr_mix``, from ``init_mix`` — a
        parent's — or else the best single row; the steps then follow the combination alone,
        which can be any one row). It is positive on a box where no single row is (two rows that meet at the
        box's best point, as the two signs of :math:`|r|` do at :math:`r = 0`) and then closes
        it just as well: no point makes every row :math:`\le 0`. ``lower`` and ``betas`` then
        have ``k + 1`` rows, the last the combination's, and ``mix`` holds :math:`\mu`
        ``(B, k)``.
        """
        import torch

        lo_t, hi_t = self._t(lo), self._t(hi)
        pre, lines = self._bounds_of(lo_t, hi_t, splits, pre, prev)
        Lam0, d_t, top = self._spec_start(lo_t.shape[0], C, d)
        B, k = Lam0.shape[:2]
        mu = None
        if mix and k > 1:
            d_t = d_t.expand(B, k)
            if init_mix is not None:
                mu = _simplex(self._t(init_mix))
            else:
                # from the best single row: the combination can then only do better
                with torch.no_grad():
                    first = self._spec(lo_t, hi_t, C, d, lines)
                mu = torch.nn.functional.one_hot(first.argmax(1), k).to(self.dtype)
            k += 1
        signs = self._signs(splits)
        if init is not None:
            slopes = [self._t(s) for s in init[: self.n_act]]
        else:
            slopes = [ln[0] for ln in lines]
        # the multipliers: only the layers with a split unit carry them
        masks: list = [None] * self.n_act
        betas: list = [None] * self.n_act
        if beta:
            for j, s in enumerate(signs):
                if s is None or not bool((s != 0).any()):
                    continue
                masks[j] = (s != 0).to(self.dtype)[:, None, :]
                if init_betas is not None and init_betas[j] is not None:
                    betas[j] = self._t(init_betas[j]).clamp(min=0) * masks[j]
                else:
                    betas[j] = torch.zeros(B, k, s.shape[1], dtype=self.dtype, device=self.device)

        # what evaluate reads of each box: the lines but the unstable units' lower slopes (they
        # do not change with the parameters: built once, relu_relaxation's rule, a slope clipped
        # into [leak, 1] on unstable units), the splits, the rows
        full = BoxBatch(
            B,
            lo_t,
            hi_t,
            [self._lines(j, p[0], p[1]) for j, p in enumerate(pre)],
            [(p[0] < 0) & (p[1] > 0) for p in pre],
            signs,
            masks,
            Lam0,
            d_t,
        )

        def evaluate(slopes: list, betas: list, m: Any = mu, bx: BoxBatch = full):
            lines = [
                (torch.where(bx.unstable[j], slopes[j].clamp(self.leak[j], 1.0), ln[0]), *ln[1:])
                for j, ln in enumerate(bx.lines)
            ]
            shift = [
                None if b_ is None else b_ * bx.signs[j][:, None, :] for j, b_ in enumerate(betas)
            ]
            Lam, dd = bx.Lam, bx.d
            if m is not None:
                # the rows, and with weights m their combination as one more row
                comb = (m[:, :, None] * Lam).sum(1, keepdim=True)
                Lam = torch.cat([Lam, comb], 1)
                dd = torch.cat([dd, (m * dd).sum(1, keepdim=True)], 1)
            bound, lams, coefs = self._backward(Lam, top, bx.lo, bx.hi, lines, shift, keep=True)
            return bound - dd, [ln[0] for ln in lines], lams, coefs

        with torch.no_grad():
            best, best_slopes, best_lams, best_coefs = evaluate(slopes, betas)
        best_betas = list(betas)
        best_mu = mu
        n_par = self.n_act + sum(b_ is not None for b_ in betas) + (mu is not None)
        # A box is optimized while it is open: once a row is positive (the searches' test of a
        # closed box; here with CLOSE_HEADROOM above it) its steps change nothing the search
        # uses, so the batch shrinks to the open boxes (at the start, and whenever a quarter of
        # them closed). The open boxes' steps are the same as in the whole batch: Adam is
        # elementwise and the objective a sum over boxes. (Not "<= tau": a NaN bound is open,
        # as it was before any box stopped.)
        tau = CLOSE_HEADROOM * (1.0 + float(d_t.abs().max())) if d_t.numel() else CLOSE_HEADROOM
        sel = None
        if n_par and iters > 0:
            sel = torch.nonzero(~(best.max(dim=1).values > tau))[:, 0]
        if sel is not None and len(sel):
            bx = full
            if len(sel) < B:
                bx = full.take(sel)
            else:
                sel = None
            # (the best values are written row by row from here: tensors of their own, each
            # with the rows' batch, where one box was given for rows of each box's own)
            best, best_coefs, best_mu = best.clone(), _rows_of(best_coefs, B), _own(best_mu)
            best_slopes = [_rows_of(s, B) for s in best_slopes]
            best_lams = [_rows_of(s, B) for s in best_lams]
            best_betas = [_own(b_) for b_ in best_betas]

            def rows(t: Any) -> Any:
                return t if sel is None else t[sel]

            def put(dst: Any, where: Any, src: Any) -> None:
                if sel is None:
                    dst.copy_(torch.where(where, src, dst))
                else:
                    dst[sel] = torch.where(where, src, dst[sel])

            a_params = [rows(s).detach().clone().requires_grad_(True) for s in best_slopes]
            b_params = [
                None if b_ is None else rows(b_).clone().requires_grad_(True) for b_ in betas
            ]
            groups = [{"params": a_params, "lr": lr}]
            b_at = [j for j, p in enumerate(b_params) if p is not None]
            if b_at:
                groups.append({"params": [b_params[j] for j in b_at], "lr": lr_beta})
            m_param = None
            if mu is not None:
                m_param = rows(mu).clone().requires_grad_(True)
                groups.append({"params": [m_param], "lr": lr_mix})
            opt = Adam(groups)
            for _ in range(iters):
                opt.zero_grad()
                used_b = [None if p is None else p * bx.masks[j] for j, p in enumerate(b_params)]
                bound, used_s, lams, coefs = evaluate(a_params, used_b, m_param, bx)
                score = bound.max(dim=1).values
                # the combination (which can be any one row) is what the weights improve
                (-(bound[:, -1] if m_param is not None else score).sum()).backward()
                with torch.no_grad():
                    cur = rows(best).max(dim=1).values
                    # (a box closed before this step keeps its values, whether or not the
                    # batch has shrunk yet: its answer does not depend on the other boxes)
                    better = (score > cur) & ~(cur > tau)
                    b1, b2 = better[:, None], better[:, None, None]
                    put(best, b1, bound.detach())
                    put(best_coefs, b2, coefs.detach())
                    for j in range(self.n_act):
                        put(best_slopes[j], b1, used_s[j].detach())
                        put(best_lams[j], b2, lams[j].detach())
                        if used_b[j] is not None:
                            put(best_betas[j], b2, used_b[j].detach())
                    if m_param is not None:
                        put(best_mu, b1, m_param.detach())
                    now_open = ~(rows(best).max(dim=1).values > tau)
                opt.step()
                with torch.no_grad():
                    for j, p_ in enumerate(a_params):
                        p_.clamp_(min=self.leak[j], max=1.0)
                    for p_ in b_params:
                        if p_ is not None:
                            p_.clamp_(min=0)
                    if m_param is not None:
                        m_param.copy_(_simplex(m_param))
                n_open = int(now_open.sum())
                if n_open == 0:
                    break
                if 4 * n_open <= 3 * len(now_open):
                    keep = torch.nonzero(now_open)[:, 0]
                    sel = keep if sel is None else sel[keep]
                    bx = bx.take(keep)
                    opt.select(keep)
                    a_params = opt.groups[0][0]
                    b_params = [None] * self.n_act
                    for j, p_ in zip(b_at, opt.groups[1][0] if b_at else [], strict=True):
                        b_params[j] = p_
                    if m_param is not None:
                        m_param = opt.groups[-1][0][0]
        # (every field with the rows' batch, also where no box took a step)
        best_slopes = [s.expand(B, *s.shape[1:]) for s in best_slopes]
        best_lams = [s.expand(B, *s.shape[1:]) for s in best_lams]
        best_coefs = best_coefs.expand(B, *best_coefs.shape[1:])
        out_betas: list = []
        if beta:
            out_betas = [
                b_
                if b_ is not None
                else torch.zeros(B, k, self.W[j].shape[0], dtype=self.dtype, device=self.device)
                for j, b_ in enumerate(best_betas)
            ]
        res = self._result(best, best_slopes, pre, out_betas, best_lams, best_coefs)
        res.mix = best_mu
        return res

    def alpha_crown_row(
        self,
        lo: Any,
        hi: Any,
        V0: Any,
        offset: Any,
        project: Any,
        *,
        iters: int = 10,
        lr: float = 0.25,
        lr_row: float = 0.1,
        init: list | None = None,
        pre: list | None = None,
    ) -> tuple[Any, list, Any]:
        r"""alpha-CROWN with the bounded row optimized too: per box, the best of

        .. math::

            \max_{v \in \mathcal{V}} \Big( \min_{x}{}^{\text{CROWN}(\alpha)} v^\top f(x)
            + e(v) \Big)

        over the slopes and the row :math:`v`, from ``V0`` (``(B, n_out)``) by projected Adam;
        ``offset(v)`` is :math:`e(v)` (a torch function of ``(B, n_out)`` rows), ``project(v)``
        maps rows back into :math:`\mathcal{V}` (in place of the set's projection any map into
        it will do). For a norm of the residual this is the dual of the box's linear
        relaxation: where the network is affine on the box the optimum is the exact minimum.

        Returns the best bounds ``(B,)``, the slopes per activation op ``(B, n_j)`` and rows
        ``(B, n_out)`` that gave them (slopes clipped, rows projected). ``init``: starting
        slopes per activation op (a parent box's), else CROWN's adaptive ones. ``pre``: the
        activations' input bounds per layer ``(l_j, u_j)``, each ``(B, n_j)``, taken as they
        are (no backward pass of its own).
        """
        import torch

        lo_t, hi_t = self._t(lo), self._t(hi)
        pre, lines = self._bounds_of(lo_t, hi_t, None, pre, None)
        top = len(self.W) - 1

        def evaluate(slopes: list, v: Any) -> tuple[Any, list]:
            ls = [self._lines(j, p[0], p[1], slopes[j]) for j, p in enumerate(pre)]
            b = self._backward(v[:, None, :], top, lo_t, hi_t, ls)[:, 0]
            return b + offset(v), [ln[0] for ln in ls]

        v0 = project(self._t(V0))
        start = [ln[0] for ln in lines] if init is None else [self._t(a) for a in init]
        with torch.no_grad():
            best, best_sl = evaluate(start, v0)
        best_v = v0.clone()
        if iters > 0:
            a_params = [s.detach().clone().requires_grad_(True) for s in best_sl]
            v_param = v0.clone().requires_grad_(True)
            groups = [{"params": [v_param], "lr": lr_row}]
            if a_params:
                groups.append({"params": a_params, "lr": lr})
            opt = Adam(groups)
            for _ in range(iters):
                opt.zero_grad()
                score, used = evaluate(a_params, v_param)
                (-score.sum()).backward()
                with torch.no_grad():
                    better = score > best
                    best = torch.where(better, score.detach(), best)
                    best_v = torch.where(better[:, None], v_param.detach(), best_v)
                    for j in range(self.n_act):
                        best_sl[j] = torch.where(better[:, None], used[j].detach(), best_sl[j])
                opt.step()
                with torch.no_grad():
                    for j, p_ in enumerate(a_params):
                        p_.clamp_(min=self.leak[j], max=1.0)
                    v_param.copy_(project(v_param))
        return best, best_sl, best_v

    def optimize_pre(
        self,
        lo: Any,
        hi: Any,
        *,
        iters: int = 30,
        lr: float = 0.25,
        max_elems: int = 1 << 25,
    ) -> tuple[list, list]:
        r"""alpha-CROWN bounds of every activation's input over one box, each bound with slopes
        of its own (alpha-CROWN's optimized intermediate bounds).

        For each activation layer :math:`j \ge 1` in turn, every unit :math:`u` unstable under
        the bounds so far gets two rows, :math:`\pm z_{j,u}`, whose CROWN lower bounds over the
        box are maximized by projected Adam over the lower-line slopes of layers :math:`i < j`
        (one set per row, from CROWN's adaptive choice; the best seen is kept). Layer 0's
        bounds need none (an affine map's interval over a box is exact), and a layer's new
        bounds tighten the relaxations every later layer (and every domain of a ReLU-splitting
        search) uses. For one relaxed layer the optimum is the triangle relaxation's LP bound.

        Parameters
        ----------
        lo, hi : (1, n_in)
            The box.
        iters, lr : int, float
            Adam steps per layer, and their rate.
        max_elems : int
            A layer whose rows' coefficients (rows times the widest earlier layer) would exceed
            this many entries keeps CROWN's bounds.

        Returns
        -------
        ``(pre, rows)``: ``pre[j] = (l_j, u_j)`` (``(1, n_j)`` each, float32's, for the
        search); ``rows`` a list of ``(j, units, sides, slopes)`` (numpy), one per optimized
        layer ``j``: its units (each twice), ``+1`` for a lower bound and ``-1`` for an upper
        one, and per layer ``i < j`` ``(i, cols, (R, len(cols)))``, the rows' slopes of that
        layer's unstable units ``cols`` (clipped into :math:`[\alpha_i, 1]`) -- the form of
        :meth:`netopt.bounds.bab.BatchCrown.bound`'s ``pre_slopes``, whose float64 bounds
        with these slopes are the claim.
        """
        import torch

        lo_t, hi_t = self._t(lo), self._t(hi)
        if lo_t.shape[0] != 1:
            raise ValueError("optimize_pre bounds one box")
        pre, _ = self.pre_bounds(lo_t, hi_t)
        rows: list = []
        for j in range(1, self.n_act):
            lj, uj = pre[j]
            unst = torch.nonzero(((lj < 0) & (uj > 0))[0]).flatten()
            n = len(unst)
            R = 2 * n
            if n == 0 or R * max(w.shape[1] for w in self.W[: j + 1]) > max_elems:
                continue
            Wj, bj = self.W[j][unst], self.b[j][unst]
            Lam = torch.cat([Wj, -Wj])[:, None, :]
            const = torch.cat([bj, -bj])[:, None]
            loR, hiR = lo_t.expand(R, -1), hi_t.expand(R, -1)
            base = [
                self._lines(i, p[0].expand(R, -1), p[1].expand(R, -1))
                for i, p in enumerate(pre[:j])
            ]
            unstable = [((p[0] < 0) & (p[1] > 0)).expand(R, -1) for p in pre[:j]]

            def evaluate(
                slopes: list,
                base=base,
                unstable=unstable,
                Lam=Lam,
                const=const,
                loR=loR,
                hiR=hiR,
                j=j,
            ) -> tuple[Any, list]:
                ls = [
                    (torch.where(unstable[i], s.clamp(self.leak[i], 1.0), base[i][0]), *base[i][1:])
                    for i, s in enumerate(slopes)
                ]
                return self._substitute(Lam, const, j, loR, hiR, ls)[:, 0], [x[0] for x in ls]

            with torch.no_grad():
                best, best_sl = evaluate([b_[0] for b_ in base])
            params = [s.detach().clone().requires_grad_(True) for s in best_sl]
            opt = Adam([{"params": params, "lr": lr}])
            for _ in range(iters):
                opt.zero_grad()
                bound, used = evaluate(params)
                (-bound.sum()).backward()
                with torch.no_grad():
                    better = bound > best
                    best = torch.where(better, bound.detach(), best)
                    for i in range(j):
                        best_sl[i] = torch.where(better[:, None], used[i].detach(), best_sl[i])
                opt.step()
                with torch.no_grad():
                    for i, p_ in enumerate(params):
                        p_.clamp_(min=self.leak[i], max=1.0)
            new_l, new_u = lj.clone(), uj.clone()
            new_l[0, unst] = torch.maximum(lj[0, unst], best[:n])
            new_u[0, unst] = torch.minimum(uj[0, unst], -best[n:])
            pre[j] = (new_l, new_u)
            # the later layers' CROWN bounds on the tightened relaxations
            if j + 1 < self.n_act:
                lines = [self._lines(i, *p) for i, p in enumerate(pre[: j + 1])]
                for k in range(j + 1, self.n_act):
                    low, up = self._unit_rows(k, lo_t, hi_t, lines, None)
                    pl, pu = pre[k]
                    pre[k] = (torch.maximum(low, pl), torch.minimum(up, pu))
                    lines.append(self._lines(k, *pre[k]))
            sl = []
            for i in range(j):
                cols = torch.nonzero(unstable[i][0]).flatten()
                sl.append((i, cols.cpu().numpy(), best_sl[i][:, cols].double().cpu().numpy()))
            units = torch.cat([unst, unst]).cpu().numpy()
            rows.append((j, units, np.r_[np.ones(n, np.int64), -np.ones(n, np.int64)], sl))
        return pre, rows
