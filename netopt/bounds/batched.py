r"""CROWN and alpha-CROWN bounds of a chain network, batched over many boxes, in torch.

For a chain (:mod:`netopt.ir.chain`) :math:`z_j = M_j a_{j-1} + b_j`, :math:`a_j = \sigma_j(z_j)`
(:math:`\sigma_j` a ReLU or leaky ReLU, or the identity on a last layer), :math:`a_0 = x`, and
output constraints :math:`C y \le d`, this computes for each box :math:`[l, u]` of a batch a lower
bound of every row of :math:`C f(x) - d` over the box. A row whose lower bound is positive proves
that no point of the box satisfies the constraints (the box is closed).

**CROWN** (Zhang et al. 2018): start from :math:`\Lambda = C`; through an activation, replace
:math:`\sigma(z)` by its lower line where :math:`\Lambda \ge 0` and its upper line where
:math:`\Lambda < 0` (:func:`netopt.ir.ops.activations.relu_relaxation`, the same rule the float64
bounds use); through a linear layer, :math:`\Lambda \leftarrow \Lambda M_j` and the constant
gains :math:`\Lambda b_j`; at the input, :math:`\min_{x \in [l,u]} \Lambda x = \Lambda^+ l +
\Lambda^- u`. The lines need bounds on every :math:`z_j`: each is the same backward pass started
from :math:`\Lambda = I` at layer :math:`j`.

**alpha-CROWN** (Xu et al. 2021): the lower line of an unstable unit may have any slope
:math:`\alpha \in [\alpha_{\text{leak}}, 1]`; the final bound is a differentiable function of
those slopes, maximized by projected Adam from CROWN's adaptive choice, per box.

**Splits**: a ReLU split fixes a unit's side (``+1``: :math:`z \ge 0`, ``-1``: :math:`z \le 0`)
in a box; its bounds are intersected with that half-line before the lines are chosen.

This module is the search's engine (float32 by default, on CUDA when present): its bounds are
computed in floating point without directed rounding, so a box it closes is a claim only once
the float64 bounds of :mod:`netopt.bounds` — which round outward — close it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.errors import FormulationError
from netopt.ir.chain import chain_refusals, split_chain
from netopt.ir.graph import Graph
from netopt.ir.ops.activations import relu_relaxation

__all__ = ["ChainBounds", "SpecBound"]

_ACTIVATIONS = ("relu", "leaky_relu")


@dataclass
class SpecBound:
    """Lower bounds of ``C f(x) - d`` over each box, with what produced them.

    Attributes
    ----------
    lower : Tensor
        ``(B, k)``: a lower bound per box and constraint row.
    slopes : list of Tensor
        The lower slopes used at each activation layer, ``(B, n_j)``.
    pre : list of tuple of Tensor
        The bounds ``(l_j, u_j)`` of each activation's input, ``(B, n_j)`` each.
    """

    lower: Any
    slopes: list
    pre: list


class ChainBounds:
    """A chain network's layers as dense torch tensors, bounded over batches of boxes.

    Parameters
    ----------
    graph : Graph
        A chain of linear ops and ReLU / leaky ReLU activations (one input, one output).
    device, dtype : optional
        Default: CUDA when available, else CPU; float32.

    Raises
    ------
    FormulationError
        If the graph is not such a chain (every refusal listed).
    """

    def __init__(self, graph: Graph, device: Any = None, dtype: Any = None) -> None:
        import torch

        from netopt.torch_utils import resolve_device

        bad = chain_refusals(graph, _ACTIVATIONS)
        if bad:
            raise FormulationError(
                "batched bounds take chains of linear ops and (leaky) ReLUs: "
                + "; ".join(map(str, bad))
            )
        self.device = resolve_device(device)
        self.dtype = torch.float32 if dtype is None else dtype
        self.W: list = []
        self.b: list = []
        self.leak: list[float | None] = []  # the activation's slope for x < 0; None: identity
        for layer in split_chain(graph):
            M, bias = layer.affine()
            self.W.append(torch.tensor(M.toarray(), dtype=self.dtype, device=self.device))
            self.b.append(torch.tensor(bias, dtype=self.dtype, device=self.device))
            act = layer.activation
            if act is None:
                self.leak.append(None)
            else:
                self.leak.append(
                    float(act.attrs.get("alpha", 0.0)) if act.op == "leaky_relu" else 0.0
                )
        self.n_in = self.W[0].shape[1]

    # ------------------------------------------------------------------ helpers
    def _t(self, a: Any):
        import torch

        if isinstance(a, torch.Tensor):
            return a.to(dtype=self.dtype, device=self.device)
        return torch.tensor(np.asarray(a, dtype=np.float64), dtype=self.dtype, device=self.device)

    def _lines(self, j: int, l: Any, u: Any, slope: Any = None):  # noqa: E741
        return relu_relaxation(l, u, self.leak[j], slope)

    def _backward(self, Lam: Any, top: int, lo: Any, hi: Any, lines: list) -> Any:
        r"""Lower bound of :math:`\Lambda z_{top}` over the boxes, back-substituting to the input.

        ``Lam`` is ``(B, k, n_top)``; ``lines[j]`` holds the relaxation of activation ``j`` for
        every ``j < top``.
        """
        import torch

        const = torch.einsum("bkn,n->bk", Lam, self.b[top])
        Lam = torch.einsum("bkn,nm->bkm", Lam, self.W[top])
        for j in range(top - 1, -1, -1):
            lo_s, lo_b, up_s, up_b = lines[j]
            pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
            const = (
                const
                + torch.einsum("bkn,bn->bk", pos, lo_b)
                + torch.einsum("bkn,bn->bk", neg, up_b)
            )
            Lam = pos * lo_s[:, None, :] + neg * up_s[:, None, :]
            const = const + torch.einsum("bkn,n->bk", Lam, self.b[j])
            Lam = torch.einsum("bkn,nm->bkm", Lam, self.W[j])
        pos, neg = Lam.clamp(min=0), Lam.clamp(max=0)
        return const + torch.einsum("bkn,bn->bk", pos, lo) + torch.einsum("bkn,bn->bk", neg, hi)

    # ------------------------------------------------------------------ bounds
    def pre_bounds(self, lo: Any, hi: Any, splits: list | None = None) -> tuple[list, list]:
        """CROWN bounds of every activation's input, and the relaxation lines they give.

        ``splits[j]`` (optional, ``(B, n_j)`` in {-1, 0, 1}) fixes units' sides.
        Returns ``(pre, lines)``: ``pre[j] = (l_j, u_j)`` and ``lines[j]`` CROWN's lines.
        """
        import torch

        lo, hi = self._t(lo), self._t(hi)
        B = lo.shape[0]
        pre, lines = [], []
        a_lo, a_hi = lo, hi  # interval bounds of the current layer's input
        for j in range(len(self.W)):
            if self.leak[j] is None:
                break
            n = self.W[j].shape[0]
            eye = torch.eye(n, dtype=self.dtype, device=self.device).expand(B, n, n)
            low = self._backward(eye, j, lo, hi, lines)
            up = -self._backward(-eye, j, lo, hi, lines)
            # CROWN is not always tighter than interval arithmetic on every unit: keep the better
            Wp, Wn = self.W[j].clamp(min=0), self.W[j].clamp(max=0)
            low = torch.maximum(low, a_lo @ Wp.T + a_hi @ Wn.T + self.b[j])
            up = torch.minimum(up, a_hi @ Wp.T + a_lo @ Wn.T + self.b[j])
            if splits is not None and splits[j] is not None:
                s = self._t(splits[j])
                low = torch.where(s > 0, low.clamp(min=0), low)
                up = torch.where(s < 0, up.clamp(max=0), up)
            pre.append((low, up))
            lines.append(self._lines(j, low, up))
            leak = self.leak[j]
            a_lo = torch.where(low >= 0, low, leak * low)
            a_hi = torch.where(up >= 0, up, leak * up)
        return pre, lines

    def crown(self, lo: Any, hi: Any, C: Any, d: Any, splits: list | None = None) -> SpecBound:
        """CROWN lower bounds of ``C f(x) - d`` over each box ``[lo[i], hi[i]]``."""
        lo_t, hi_t = self._t(lo), self._t(hi)
        pre, lines = self.pre_bounds(lo_t, hi_t, splits)
        return SpecBound(self._spec(lo_t, hi_t, C, d, lines), [ln[0] for ln in lines], pre)

    def _spec(self, lo: Any, hi: Any, C: Any, d: Any, lines: list) -> Any:
        C, d = self._t(np.atleast_2d(C)), self._t(np.reshape(d, -1))
        top = len(self.W) - 1
        if self.leak[top] is not None:
            raise FormulationError("the chain must end with a linear layer (the output)")
        Lam = C.expand(lo.shape[0], *C.shape)
        return self._backward(Lam, top, lo, hi, lines) - d

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
    ) -> SpecBound:
        """alpha-CROWN: CROWN with the unstable units' lower slopes optimized per box.

        A box is closed when one row's lower bound is positive, so the slopes of each box take
        ``iters`` projected Adam steps maximizing its largest row bound, starting from ``init``
        (a parent's, for warm starts) or CROWN's choice. Per box, the bounds returned are those
        of the best slopes seen (never worse than the start), and ``slopes`` are those slopes as
        the rule used them (clipped into :math:`[\alpha_{\text{leak}}, 1]`): recomputing the
        bound with them gives the same lines.
        """
        import torch

        lo_t, hi_t = self._t(lo), self._t(hi)
        pre, lines = self.pre_bounds(lo_t, hi_t, splits)
        if init is not None:
            lines = [self._lines(j, pre[j][0], pre[j][1], self._t(s)) for j, s in enumerate(init)]
        best = self._spec(lo_t, hi_t, C, d, lines)
        best_slopes = [ln[0].detach().clone() for ln in lines]
        if not best_slopes or iters <= 0:
            return SpecBound(best, best_slopes, pre)
        params = [s.clone().requires_grad_(True) for s in best_slopes]
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(iters):
            opt.zero_grad()
            lines_a = [self._lines(j, pre[j][0], pre[j][1], params[j]) for j in range(len(pre))]
            bound = self._spec(lo_t, hi_t, C, d, lines_a)
            score = bound.max(dim=1).values
            (-score.sum()).backward()
            with torch.no_grad():
                better = score > best.max(dim=1).values
                best = torch.where(better[:, None], bound, best)
                for j in range(len(params)):
                    used = lines_a[j][0].detach()
                    best_slopes[j] = torch.where(better[:, None], used, best_slopes[j])
            opt.step()
            with torch.no_grad():
                for j, p_ in enumerate(params):
                    p_.clamp_(min=self.leak[j], max=1.0)
        return SpecBound(best.detach(), best_slopes, pre)
