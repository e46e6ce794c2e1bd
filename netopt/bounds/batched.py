r"""CROWN, alpha-CROWN and beta-CROWN bounds of a chain network, batched over many boxes, in torch.

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

**beta-CROWN** (Wang et al. 2021): a split :math:`s_i z_i \ge 0` also enters the final bound
through a multiplier :math:`\beta_i \ge 0`: on the points of the box that respect the splits,
:math:`c^\top f(x) \ge c^\top f(x) - \sum_i \beta_i s_i z_i`, and CROWN bounds the right side
(the coefficient of :math:`z_i` loses :math:`\beta_i s_i`). Every :math:`\beta \ge 0` gives a
valid bound; the multipliers are optimized jointly with the slopes.

The optimized bounds (alpha-CROWN, beta-CROWN, a combination of the rows, an optimized row) are
:class:`ChainBounds`' methods from :mod:`netopt.bounds.batched_alpha`; this module holds the
tensors and the CROWN passes they differentiate through.

**Branching scores** on these bounds (BaBSR, the input smear): :mod:`netopt.bounds.branching`.

This module is the searches' torch engine (float32 by default, on CUDA when present): ReLU
splitting's, the optimized bounds everywhere, and input splitting's boxes on a GPU (on a CPU
numpy's :mod:`netopt.bounds.chain_numpy` bounds those, without torch). Its bounds are computed
in floating point without directed rounding, so a box it closes is a claim only once the
float64 bounds of :mod:`netopt.bounds` — which round outward — close it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netopt.bounds.batched_alpha import OptimizedBounds
from netopt.bounds.chain_numpy import DEAD_SHARE, check_dead
from netopt.bounds.spec_bound import SpecBound
from netopt.errors import FormulationError
from netopt.ir.chain import dense_chain
from netopt.ir.graph import Graph
from netopt.ir.ops.activations import relu_relaxation

__all__ = ["ChainBounds", "SpecBound"]


def _dot(Lam: Any, v: Any) -> Any:
    """``(B, k)``: every row of ``Lam`` (``(B, k, n)``) dotted with its box's ``v`` (``(B, n)``).

    A product and a sum: torch's batched matrix-vector product (``einsum``/``bmm``) took three
    times as long on a 2-core CPU (256 boxes, 100 rows of 50).
    """
    return (Lam * v[:, None, :]).sum(-1)


class ChainBounds(OptimizedBounds):
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

        from netopt.torch_utils import resolve_device, resolve_dtype

        Ws, bs, leaks = dense_chain(graph, "batched bounds")
        self.device = resolve_device(device)
        # (a name such as "float64" too; float32 by default)
        self.dtype = torch.float32 if dtype is None else resolve_dtype(dtype)
        self.W: list = [torch.tensor(W, dtype=self.dtype, device=self.device) for W in Ws]
        self.b: list = [torch.tensor(b, dtype=self.dtype, device=self.device) for b in bs]
        # the activation's slope for x < 0; None: identity
        self.leak: list[float | None] = leaks
        self.n_in = self.W[0].shape[1]
        # the activation layers: every layer before the first identity one
        self.n_act = next((j for j, a in enumerate(self.leak) if a is None), len(self.leak))

    # ------------------------------------------------------------------ helpers
    def _t(self, a: Any):
        import torch

        if isinstance(a, torch.Tensor):
            return a.to(dtype=self.dtype, device=self.device)
        return torch.tensor(np.asarray(a, dtype=np.float64), dtype=self.dtype, device=self.device)

    def _lines(self, j: int, l: Any, u: Any, slope: Any = None):  # noqa: E741
        lo_s, lo_b, up_s, up_b = relu_relaxation(l, u, self.leak[j], slope)
        # every lower line passes through the origin (:func:`relu_relaxation`): None spares
        # the back-substitution a product with zeros
        return lo_s, (None if lo_b is not None and not bool(lo_b.any()) else lo_b), up_s, up_b

    def _signs(self, splits: list | None) -> list:
        """``splits`` as tensors on the device, one per activation layer (``None``: no split)."""
        out = [None] * self.n_act
        if splits is not None:
            for j, s in enumerate(splits[: self.n_act]):
                if s is not None:
                    out[j] = self._t(s)
        return out

    def _backward(
        self,
        Lam: Any,
        top: int,
        lo: Any,
        hi: Any,
        lines: list,
        shift: list | None = None,
        keep: bool = False,
    ) -> Any:
        r"""Lower bound of :math:`\Lambda z_{top}` over the boxes, back-substituting to the input.

        ``Lam`` is ``(B, k, n_top)``; ``lines[j]`` holds the relaxation of activation ``j`` for
        every ``j < top``. ``shift[j]`` (``(B, k, n_j)`` or ``None``) is subtracted from the
        coefficient of :math:`z_j` after the activation step (beta-CROWN's
        :math:`\beta_j s_j`). With ``keep``, returns ``(bound, lams, coef)``: the coefficients
        of every :math:`a_j` (``lams[j]``, ``(B, k, n_j)``) and of the input (``(B, k, n_in)``).
        """
        import torch

        const = torch.einsum("bkn,n->bk", Lam, self.b[top])
        Lam = torch.einsum("bkn,nm->bkm", Lam, self.W[top])
        return self._substitute(Lam, const, top, lo, hi, lines, shift, keep)

    def _substitute(
        self,
        Lam: Any,
        const: Any,
        top: int,
        lo: Any,
        hi: Any,
        lines: list,
        shift: list | None = None,
        keep: bool = False,
    ) -> Any:
        r""":meth:`_backward` from :math:`\Lambda a_{top-1} + c` (``Lam`` the coefficients of
        the activation layer below ``top``, ``const`` ``(B, k)``)."""
        import torch

        lams: list = [None] * top
        for j in range(top - 1, -1, -1):
            if keep:
                lams[j] = Lam
            lo_s, lo_b, up_s, up_b = lines[j]
            # the negative part takes the upper line, the rest the lower one:
            # lo_s * Lam + (up_s - lo_s) * min(Lam, 0), in two passes over Lam
            neg = Lam.clamp(max=0)
            const = const + _dot(neg, up_b)
            if lo_b is not None:
                const = const + _dot(Lam.clamp(min=0), lo_b)
            Lam = torch.addcmul(Lam * lo_s[:, None, :], neg, (up_s - lo_s)[:, None, :])
            if shift is not None and shift[j] is not None:
                Lam = Lam - shift[j]
            # the layer's bias as the last column of one product
            out = torch.matmul(Lam, self._with_bias(j))
            const = const + out[..., -1]
            Lam = out[..., :-1]
        bound = const + _dot(Lam.clamp(min=0), lo) + _dot(Lam.clamp(max=0), hi)
        return (bound, lams, Lam) if keep else bound

    def _with_bias(self, j: int) -> Any:
        """``[W_j | b_j]``, made once and again only after ``W_j`` or ``b_j`` changed in place
        (torch's version counters)."""
        import torch

        W, b = self.W[j], self.b[j]
        cache = self.__dict__.setdefault("_wb", {})
        got = cache.get(j)
        # (the entry holds W and b themselves: an identity test, never a reused id)
        if got is None or got[0] is not W or got[1] is not b or got[2] != (W._version, b._version):
            got = cache[j] = (W, b, (W._version, b._version), torch.cat([W, b[:, None]], 1))
        return got[3]

    # ------------------------------------------------------------------ bounds
    def pre_bounds(
        self,
        lo: Any,
        hi: Any,
        splits: list | None = None,
        *,
        prev: list | None = None,
        reuse: bool = False,
        dead: Any = None,
    ) -> tuple[list, list]:
        r"""CROWN bounds of every activation's input, and the relaxation lines they give.

        Parameters
        ----------
        lo, hi : (B, n_in)
            The boxes.
        splits : list, optional
            ``splits[j]`` (``(B, n_j)`` in {-1, 0, 1}) fixes units' sides: the bounds are
            intersected with :math:`z \ge 0` (``+1``) or :math:`z \le 0` (``-1``).
        prev : list of (l_j, u_j), optional
            Bounds valid on a superset of each box (its parent's): they hold here too, so each
            layer's new bounds are intersected with them (max of the lows, min of the highs)
            before the next layer uses them.
        reuse : bool
            Take ``prev`` as the bounds, intersected with the splits, with no backward pass at
            all (the box is the parent's and only splits were added: recomputing would only
            gain from the new splits' effect on deeper layers). ``lo``, ``hi`` are then unused.
        dead : (B, N) bool, optional
            Units taken to be inactive (:math:`z \le 0`) on each box, every activation layer's
            units concatenated in layer order (in input splitting: those the box's parent
            bounds at :math:`z \le 0`). In a ReLU layer where at least :data:`DEAD_SHARE` of
            the (box, unit) pairs are dead, only the live units' bounds are back-substituted;
            a dead unit gets its interval bounds clipped to :math:`z \le 0`, so its relaxation
            is the zero line and its output's interval :math:`\{0\}`. When the mask is true
            (a parent's sound bounds) this only skips work, and tightens where the box's own
            bounds would not find the unit inactive; the search passes its float32 parents'
            bounds, a heuristic like the rest of its bounds.

        Returns
        -------
        ``(pre, lines)``: ``pre[j] = (l_j, u_j)`` and ``lines[j]`` CROWN's lines on them.
        """
        import torch

        signs = self._signs(splits)
        with torch.no_grad():
            if reuse:
                if prev is None:
                    raise ValueError("pre_bounds(reuse=True) needs the bounds to reuse (prev=)")
                pre = [
                    self._clip(self._t(pl), self._t(pu), signs[j])
                    for j, (pl, pu) in enumerate(prev[: self.n_act])
                ]
                return pre, [self._lines(j, *p) for j, p in enumerate(pre)]
            lo, hi = self._t(lo), self._t(hi)
            pre, lines = [], []
            a_lo, a_hi = lo, hi  # interval bounds of the current layer's input
            off = 0
            if dead is not None:
                dead = torch.as_tensor(dead, device=self.device, dtype=torch.bool)
                check_dead(dead.shape, lo.shape[0], self.W[: self.n_act])
            for j in range(self.n_act):
                n = self.W[j].shape[0]
                # (a leaky unit's lower bound still matters: its output's interval, which the
                # next layer's bounds take where tighter than CROWN's)
                dj = None if dead is None or self.leak[j] != 0 else dead[:, off : off + n]
                if dj is not None and float(dj.float().mean()) < DEAD_SHARE:
                    dj = None
                off += n
                low, up = self._unit_rows(j, lo, hi, lines, dj)
                # CROWN is not always tighter than interval arithmetic on every unit: keep the
                # better
                Wp, Wn = self.W[j].clamp(min=0), self.W[j].clamp(max=0)
                low = torch.maximum(low, a_lo @ Wp.T + a_hi @ Wn.T + self.b[j])
                up = torch.minimum(up, a_hi @ Wp.T + a_lo @ Wn.T + self.b[j])
                if prev is not None:
                    low = torch.maximum(low, self._t(prev[j][0]))
                    up = torch.minimum(up, self._t(prev[j][1]))
                low, up = self._clip(low, up, signs[j])
                if dj is not None:
                    up = torch.where(dj, up.clamp(max=0), up)
                    low = torch.where(dj, torch.minimum(low, up), low)
                pre.append((low, up))
                lines.append(self._lines(j, low, up))
                leak = self.leak[j]
                a_lo = torch.where(low >= 0, low, leak * low)
                a_hi = torch.where(up >= 0, up, leak * up)
        return pre, lines

    def _unit_rows(self, j: int, lo: Any, hi: Any, lines: list, dead: Any) -> tuple[Any, Any]:
        """CROWN's lower and upper bounds of layer ``j``'s units over the boxes, ``(B, n_j)``
        each (``-inf`` / ``+inf`` for the ``dead`` units it skips)."""
        import torch

        Wj, bj = self.W[j], self.b[j]
        n, B = Wj.shape[0], lo.shape[0]
        if dead is None or not bool(dead.any()):
            # both sides of every unit in one pass: rows W_j (lower) and -W_j (upper),
            # started below layer j's affine map (the identity's product is exact anyway)
            Lam = torch.cat([Wj, -Wj])[None].expand(B, 2 * n, Wj.shape[1])
            const = torch.cat([bj, -bj])[None].expand(B, 2 * n)
            both = self._substitute(Lam, const, j, lo, hi, lines)
            return both[:, :n], -both[:, n:]
        # one "box" per live (box, unit) pair, with that unit's two rows: no padding (the live
        # units per box vary from a few to all of them), at the cost of gathering each pair's
        # box's lines
        box, unit = torch.nonzero(~dead, as_tuple=True)
        low = torch.full((B, n), -float("inf"), dtype=lo.dtype, device=lo.device)
        up = torch.full((B, n), float("inf"), dtype=lo.dtype, device=lo.device)
        if len(box):
            Wg, bg = Wj[unit], bj[unit]
            sub = [tuple(None if a is None else a[box] for a in ln) for ln in lines[:j]]
            both = self._substitute(
                torch.stack([Wg, -Wg], 1), torch.stack([bg, -bg], 1), j, lo[box], hi[box], sub
            )
            low[box, unit] = both[:, 0]
            up[box, unit] = -both[:, 1]
        return low, up

    @staticmethod
    def _clip(low: Any, up: Any, s: Any) -> tuple[Any, Any]:
        """Bounds intersected with the split half-lines (``s`` in {-1, 0, 1} or ``None``)."""
        import torch

        if s is None:
            return low, up
        return torch.where(s > 0, low.clamp(min=0), low), torch.where(s < 0, up.clamp(max=0), up)

    def _bounds_of(
        self,
        lo: Any,
        hi: Any,
        splits: list | None,
        pre: list | None,
        prev: list | None,
        dead: Any = None,
    ) -> tuple[list, list]:
        if pre is not None and prev is not None:
            raise ValueError("give the parent's bounds either to reuse (pre=) or to intersect")
        if pre is not None:
            return self.pre_bounds(lo, hi, splits, prev=pre, reuse=True)
        return self.pre_bounds(lo, hi, splits, prev=prev, dead=dead)

    def _spec_start(self, B: int, C: Any, d: Any) -> tuple[Any, Any, int]:
        C, d = self._t(C), self._t(d).reshape(-1)
        C = C[None, :] if C.dim() == 1 else C
        top = len(self.W) - 1
        if self.leak[top] is not None:
            raise FormulationError("the chain must end with a linear layer (the output)")
        if C.dim() == 3:
            # (B, k, n_out): rows of its own per box, with ``d`` shared (k,) or per box (B, k)
            if d.numel() == C.shape[0] * C.shape[1]:
                d = d.reshape(C.shape[0], C.shape[1])
            return C, d, top
        return C.expand(B, *C.shape), d, top

    def _spec(self, lo: Any, hi: Any, C: Any, d: Any, lines: list) -> Any:
        Lam, d, top = self._spec_start(lo.shape[0], C, d)
        return self._backward(Lam, top, lo, hi, lines) - d

    @staticmethod
    def _result(lower: Any, slopes: list, pre: list, betas: list, lams: list, coefs: Any):
        import torch

        row = lower.argmax(dim=1)
        coef = coefs[torch.arange(lower.shape[0], device=lower.device), row]
        return SpecBound(lower, slopes, pre, betas, row, coef, lams, coefs=coefs)

    def crown(
        self,
        lo: Any,
        hi: Any,
        C: Any,
        d: Any,
        splits: list | None = None,
        *,
        pre: list | None = None,
        prev: list | None = None,
    ) -> SpecBound:
        """CROWN lower bounds of ``C f(x) - d`` over each box ``[lo[i], hi[i]]``.

        ``pre`` (reuse) and ``prev`` (intersect) pass a parent's activation bounds on to
        :meth:`pre_bounds`.
        """
        lower, lines, pre, lams, coefs = self._crown_pass(lo, hi, C, d, splits, pre, prev)
        return self._result(lower, [ln[0] for ln in lines], pre, [], lams, coefs)

    def _crown_pass(
        self, lo: Any, hi: Any, C: Any, d: Any, splits: Any, pre: Any, prev: Any, dead: Any = None
    ) -> tuple:
        """One CROWN pass: ``(C f - d lower bounds, lines, pre, lams, every row's coefs)``."""
        import torch

        lo_t, hi_t = self._t(lo), self._t(hi)
        pre, lines = self._bounds_of(lo_t, hi_t, splits, pre, prev, dead)
        with torch.no_grad():
            Lam, d_t, top = self._spec_start(lo_t.shape[0], C, d)
            bound, lams, coefs = self._backward(Lam, top, lo_t, hi_t, lines, keep=True)
        return bound - d_t, lines, pre, lams, coefs

    def crown_rows(
        self, lo: Any, hi: Any, C: Any, d: Any, with_pre: bool = False, dead: Any = None
    ) -> tuple:
        """CROWN lower bounds of ``C f(x) - d`` per box and row (``(B, k)``) and every row's
        input coefficients (``(B, k, n_in)``), as float64 numpy arrays; ``with_pre`` adds the
        activations' input bounds, ``(B, 2, N)``: the lower then the upper bounds of every
        activation layer's units, concatenated in layer order.

        Computed in the engine's dtype (float32 by default) and not rounded outward: a search
        heuristic, whose closing bounds the caller re-computes rigorously
        (:class:`netopt.bounds.bab.BatchCrown`). ``dead``: units inactive on a superset of
        each box, as :meth:`pre_bounds` takes them.
        """
        import torch

        lower, _, pre, _, coefs = self._crown_pass(lo, hi, C, d, None, None, None, dead)
        out = (lower.to(torch.float64).cpu().numpy(), coefs.to(torch.float64).cpu().numpy())
        if not with_pre:
            return out
        if not pre:  # no activation layer: an affine network
            return (*out, np.zeros((len(out[0]), 2, 0)))
        P = torch.stack([torch.cat([a for a, _ in pre], 1), torch.cat([b for _, b in pre], 1)], 1)
        return (*out, P.to(torch.float64).cpu().numpy())
