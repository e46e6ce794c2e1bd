r"""Tighter bounds for the open boxes of the optimization search (:mod:`netopt.bounds.optimize`).

Three steps, each proposing rows (and slopes or multipliers) that the rigorous float64 CROWN
(:class:`~netopt.bounds.bab.BatchCrown`) bounds again, kept only where that is better:

* :meth:`Tighten._alpha`: alpha-CROWN with the row optimized too (torch, float32);
* :meth:`Tighten._exact`: the LP-optimal row of a box on which the network is affine
  (:mod:`netopt.bounds.dual_rows`);
* :meth:`Tighten._pieces`: a box with one or two unstable ReLUs split into its pieces, each
  with an LP-optimal row and beta multipliers (:mod:`netopt.bounds.pieces`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["Tighten", "chain_bounds", "chain64"]

#: Adam steps of alpha-CROWN on each open box's best row (0: plain CROWN only)
ALPHA_ITERS = 10
#: the row's step size, times (box width / root width) ** ROW_LR_POWER
ROW_LR, ROW_LR_POWER = 0.1, 0.5


class Tighten:
    """The tightening steps of :class:`netopt.bounds.optimize._Search` (a mixin: it uses the
    search's ``bc``, ``cb``, ``chain``, ``mn``, ``rows``, ``lo``, ``hi`` and ``stats``)."""

    bc: Any
    cb: Any
    chain: Any
    mn: Any
    rows: Any
    lo: np.ndarray
    hi: np.ndarray
    stats: dict

    def _alpha(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        V: np.ndarray,
        own: np.ndarray,
        init: list[np.ndarray] | None = None,
        known: np.ndarray | None = None,
        pre: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
        r"""alpha-CROWN on each box with its row optimized too, confirmed in float64.

        CROWN's adaptive slopes and a row of signs are what keep a box from closing where the
        objective has a kink at the optimum: a ReLU's boundary (a valley whose floor is the
        optimum; the lower line follows the steeper side) or an output crossing its target
        (a sign row errs by the box's width however small the box). Optimized slopes and a
        fractional row (:math:`|v_j| < w_j`: the dual of the box's relaxation) make the bound
        exact where the network is affine on the box.
        (:meth:`~netopt.bounds.batched.ChainBounds.alpha_crown_row`, torch float32); the rows
        and slopes found go through the rigorous float64 bound, and only a bound that float64
        confirms is kept.

        ``known``: the activation signs proven on a superset of each box, for the float64
        bound (:meth:`~netopt.bounds.bab.BatchCrown.bound`; the same in every step here).
        ``pre``: the boxes' float64 activation-input bounds (``{value: (L, H)}``, as that
        bound gave them), which alpha-CROWN then takes as its own where its chain has the same
        layers: no pass of its own, and its slopes fit the relaxation they are confirmed on.

        Returns the new own bounds, rows, the slopes (per activation op ``(B, n_j)``) and the
        mask of boxes whose bound they raised.
        """
        import torch

        t = time.perf_counter()
        mn = self.mn
        optimize_row = mn.kind != "linear"
        y_t = None if not optimize_row else torch.tensor(mn.y, dtype=torch.float32)
        w_t = None if not optimize_row else torch.tensor(mn.w, dtype=torch.float32)

        def offset(v: Any) -> Any:
            return -(v @ y_t) if optimize_row else torch.zeros(len(v))

        def project(v: Any) -> Any:
            if not optimize_row:
                return v
            if mn.kind == "l1":
                return torch.maximum(torch.minimum(v, w_t), -w_t)
            safe = torch.where(w_t > 0, w_t, torch.ones_like(w_t))
            v = torch.where(w_t > 0, v, torch.zeros_like(v))
            if mn.kind == "linf":
                size = (v.abs() / safe).sum(dim=1, keepdim=True)
            else:
                size = ((v / safe) ** 2).sum(dim=1, keepdim=True).sqrt()
            return v / size.clamp(min=1.0)

        # a box's best row moves less the smaller the box: steps sized to it, so that the
        # row warm-started from the parent's converges down the tree instead of oscillating
        scale = float(np.max((hi - lo) / np.maximum(self.hi - self.lo, 1e-300)))
        _, sl_t, v_t = self.cb.alpha_crown_row(
            lo,
            hi,
            V,
            offset,
            project,
            iters=ALPHA_ITERS,
            lr_row=ROW_LR * scale**ROW_LR_POWER if optimize_row else 0.0,
            init=init,
            pre=self._chain_pre(pre),
        )
        slopes = [a.detach().to(torch.float64).numpy() for a in sl_t]
        V2 = mn.valid(v_t.detach().to(torch.float64).numpy())
        lower, _, _ = self.bc.bound(
            lo, hi, V2[:, None, :], slopes=slopes, unstable_only=True, known=known
        )
        new = lower[:, 0] + mn.offsets(V2)
        new = np.where(np.isnan(new), -np.inf, new)
        up = new > own + 1e-12 * (1.0 + np.abs(own))
        self.stats["t_alpha"] += time.perf_counter() - t
        self.stats["alpha_raised"] += int(up.sum())
        return np.where(up, new, own), np.where(up[:, None], V2, V), slopes, up

    def _chain_pre(self, pre: dict | None) -> list | None:
        """``pre`` as the torch chain's per-layer bounds, or None where its layers differ
        (a network whose chain form carries values through, :func:`chain_bounds`)."""
        if pre is None:
            return None
        vals = [pre[v] for v in self.bc.relu_inputs]
        sizes = [w.shape[0] for w in self.cb.W[: self.cb.n_act]]
        if [a.shape[-1] for a, _ in vals] != sizes:
            return None
        return [(a.astype(np.float32), b.astype(np.float32)) for a, b in vals]

    def _exact(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        coef: np.ndarray,
        y_mid: np.ndarray,
        own: np.ndarray,
        known: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LP-optimal rows of boxes on which the network is affine (:mod:`.dual_rows`),
        bounded again in rigorous float64: new own bounds, rows, and where they rose.

        ``coef``: the input coefficients of the base rows (``+w_j e_j`` first), which on an
        affine box are :math:`w_j A_j`.
        """
        from netopt.bounds.dual_rows import dual_rows

        t = time.perf_counter()
        mn = self.mn
        B, n = lo.shape
        keep = np.nonzero(mn.w > 0)[0]
        A = np.zeros((B, mn.m, n))
        A[:, keep, :] = coef[:, : len(keep), :] / mn.w[keep][None, :, None]
        V = dual_rows(mn.kind, mn.w, y_mid - mn.y, A, (hi - lo) / 2)
        if V is None:
            return own, np.zeros((B, mn.m)), np.zeros(B, dtype=bool)
        V = mn.valid(V)
        lower, _, _ = self.bc.bound(lo, hi, V[:, None, :], unstable_only=True, known=known)
        new = lower[:, 0] + mn.offsets(V)
        new = np.where(np.isnan(new), -np.inf, new)
        up = new > own + 1e-12 * (1.0 + np.abs(own))
        self.stats["t_lp"] += time.perf_counter() - t
        self.stats["lp_raised"] += int(up.sum())
        return np.where(up, new, own), V, up

    def _pieces(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        pre: dict,
        sel: np.ndarray,
        own: np.ndarray,
        cand: np.ndarray,
        known: np.ndarray | None = None,
    ) -> tuple[np.ndarray, dict[int, tuple]]:
        """Boxes ``cand`` with at most :data:`~netopt.bounds.pieces.MAX_UNSTABLE` unstable
        ReLUs, bounded exactly through their pieces (:func:`~netopt.bounds.pieces.piece_rows`)
        and confirmed in rigorous float64. ``pre`` is indexed by ``sel`` (the bound call's
        boxes). Returns the new own bounds and, per raised box, its proof fragment."""
        from netopt.bounds.pieces import MAX_UNSTABLE, PIECES_PER_ROUND, piece_arrays, piece_rows

        t = time.perf_counter()
        mn = self.mn
        vals = list(pre.values())  # in activation op order
        n_uns = sum(np.sum((a < 0) & (b > 0), axis=-1) for a, b in vals)[sel]
        ok = cand & (n_uns >= 1) & (n_uns <= MAX_UNSTABLE)
        idx = np.nonzero(ok)[0]
        idx = idx[np.argsort(own[idx])][:PIECES_PER_ROUND]
        boxes, P_lo, P_hi, P_v, parts, P_k = [], [], [], [], [], []
        sizes = [a.shape[-1] for a, _ in vals]
        for b in idx:
            i = sel[b]
            uns = [
                (j, int(u))
                for j, (a, h) in enumerate(vals)
                for u in np.nonzero((a[i] < 0) & (h[i] > 0))[0]
            ]
            active = [a[i] >= 0 for a, _ in vals]
            pieces = piece_rows(mn, self.chain, lo[b], hi[b], uns, active)
            if pieces is None:
                continue
            boxes.append((b, uns, pieces))
            for signs, v, beta in pieces:
                P_lo.append(lo[b])
                P_hi.append(hi[b])
                P_v.append(v)
                P_k.append(b)
                parts.append((uns, signs, beta))
        frags: dict[int, tuple] = {}
        if boxes:
            V = mn.valid(np.stack(P_v))
            splits, betas = piece_arrays(parts, sizes)
            lower, _, _ = self.bc.bound(
                np.stack(P_lo),
                np.stack(P_hi),
                V[:, None, :],
                splits=splits,
                betas=betas,
                unstable_only=True,
                known=None if known is None else known[P_k],
            )
            pb = lower[:, 0] + mn.offsets(V)
            pb = np.where(np.isnan(pb), -np.inf, pb)
            own = own.copy()
            k = 0
            for b, uns, pieces in boxes:
                np_ = len(pieces)
                low = float(pb[k : k + np_].min())
                if low > own[b] + 1e-12 * (1.0 + abs(own[b])):
                    own[b] = low
                    leaves = []
                    for q in range(np_):
                        bl = [
                            [j, u, float(betas[j][k + q, u])]
                            for j, u in uns
                            if betas[j][k + q, u] > 0
                        ]
                        leaves.append((int(self.rows.intern(V[k + q][None])[0]), bl))
                    frags[int(b)] = (uns, leaves)
                k += np_
        self.stats["t_pieces"] += time.perf_counter() - t
        self.stats["pieces_raised"] += len(frags)
        return own, frags


def chain_bounds(net: Any) -> Any:
    """The network's torch :class:`~netopt.bounds.batched.ChainBounds` (float32 on the CPU:
    only a search's slopes come from it), or None without torch or for a non-chain network."""
    from netopt.errors import FormulationError

    try:
        import torch

        from netopt.bounds.batched import ChainBounds

        return ChainBounds(
            getattr(net, "chain_graph", net.graph), device="cpu", dtype=torch.float32
        )
    except (ImportError, FormulationError):
        return None


def chain64(net: Any) -> tuple[list, list, list] | None:
    """The chain's layers as float64 numpy (weights, biases, slopes below 0), or None
    (:func:`netopt.ir.chain.dense_chain`; of a network's composed chain form where it has one,
    :class:`netopt.bounds.branch.ChainView`)."""
    from netopt.errors import FormulationError
    from netopt.ir.chain import dense_chain

    try:
        return dense_chain(getattr(net, "chain_graph", net.graph))
    except FormulationError:
        return None
