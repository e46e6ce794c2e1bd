r"""The second activation layer's bounds in ReLU splitting, updated for the first layer's splits.

ReLU splitting keeps its box: a domain's activation bounds are its parent's, clipped to the new
split (a full CROWN pass per domain would cost a product through every layer). Yet a split of
a *first-layer* unit changes what CROWN gives for the layer above: the unit's relaxation
becomes exact (:math:`a = z` or :math:`a = \alpha z`), so the second layer's bounds tighten,
some of its units turn stable, and the domain's final bound rises. On some MNIST 256x2
disjuncts this is decisive (measured: one closes in 125 domains with the update, and is still
open after 23000 without); on others the tree it leads to is larger, so ReLU splitting runs a
search with it in turns with one without (:data:`netopt.bounds.relu_turns.SPLIT_UPDATE_TURN`).

Here that recomputation costs a low-rank update instead of a pass. With the first layer's
lines :math:`a_0 \ge s^l z_0`, :math:`a_0 \le s^u z_0 + c^u` from the root's bounds (the box
never changes, so neither do they), CROWN's rows of both sides of the second layer,
:math:`\pm W_1`, are

.. math::

    \Lambda = \begin{bmatrix} W_1 \\ -W_1 \end{bmatrix}, \quad
    S_{iu} = \begin{cases} s^l_u & \Lambda_{iu} \ge 0 \\ s^u_u & \Lambda_{iu} < 0 \end{cases},
    \quad
    A = (\Lambda \odot S) W_0, \quad
    c = (\Lambda \odot S) b_0 + (\Lambda \odot K) \mathbf{1} + \begin{bmatrix} b_1 \\ -b_1
    \end{bmatrix}

(:math:`K` the intercepts chosen the same way), and row :math:`i`'s lower bound over the box
:math:`[m - r, m + r]` is :math:`A_i m - |A_i| r + c_i`. A domain whose first-layer units
:math:`u \in U` are split (slope :math:`t_u = 1` on the active side, the leak on the other, no
intercept) has

.. math::

    A' = A + \sum_{u \in U} \big(\Lambda_{:u} \odot (t_u - S_{:u})\big) W_{0,u:}, \quad
    c' = c + \sum_{u \in U} \Lambda_{:u} \odot \big((t_u - S_{:u}) b_{0,u} - K_{:u}\big),

a rank-:math:`|U|` update of the root's rows: :math:`O(|U| \cdot 2 n_1 n_{in})` per domain
against :math:`O(2 n_1 n_0 n_{in})` for the pass. The search intersects them with the domain's
own (a parent's bounds hold on the child), so a domain's bounds only tighten.

These bounds are the search's (float32, no directed rounding) and choose nothing a proof
relies on unchecked: a domain they help close is confirmed in float64 like any other.
"""

from __future__ import annotations

from typing import Any

#: Memory (bytes) the per-domain rows of one chunk may take.
CHUNK_BYTES = 64 * 2**20


class SecondLayerUpdate:
    """The root's CROWN rows of the second activation layer, for low-rank updates by splits.

    Parameters
    ----------
    cb : ChainBounds
        The chain's torch layers; it must have at least two activation layers.
    lo, hi : (1, n_in) or (n_in,)
        The search's box (every domain's).
    pre0 : (l_0, u_0)
        The first activation layer's bounds on the box (``(n_0,)`` or ``(1, n_0)`` each).
    """

    def __init__(self, cb: Any, lo: Any, hi: Any, pre0: tuple) -> None:
        import torch

        W0, b0, W1, b1 = cb.W[0], cb.b[0], cb.W[1], cb.b[1]
        self.n1 = W1.shape[0]
        self.leak = float(cb.leak[0])
        lo, hi = cb._t(lo).reshape(-1), cb._t(hi).reshape(-1)
        self.mid, self.rad = (lo + hi) / 2, (hi - lo) / 2
        l0, u0 = (cb._t(a).reshape(-1) for a in pre0)
        lo_s, lo_b, up_s, up_b = cb._lines(0, l0[None], u0[None])
        lo_b = torch.zeros_like(lo_s) if lo_b is None else lo_b
        Lam = torch.cat([W1, -W1])  # (2 n1, n0): lower bounds of z_1 and of -z_1
        pos = Lam >= 0
        self.Lam = Lam
        self.S = torch.where(pos, lo_s, up_s)
        self.K = torch.where(pos, lo_b, up_b)
        LS = Lam * self.S
        self.A = LS @ W0
        self.c = LS @ b0 + (Lam * self.K).sum(1) + torch.cat([b1, -b1])
        self.W0, self.b0 = W0, b0

    def bounds(self, split0: Any, units: Any = None) -> tuple[Any, Any]:
        """CROWN's bounds of the second layer's inputs on domains whose first-layer splits are
        ``split0`` (``(B, n_0)`` in {-1, 0, 1}): ``(low, up)``, ``(B, n_1)`` each, or
        ``(B, len(units))`` for the second layer's ``units`` only (an index tensor: a stable
        unit's bounds change nothing in its relaxation, so a caller passes the unstable)."""
        import torch

        B = split0.shape[0]
        if units is None:
            units = torch.arange(self.n1, device=self.A.device)
        rix = torch.cat([units, units + self.n1])
        A0, c0, Lam, S0, K0 = self.A[rix], self.c[rix], self.Lam[rix], self.S[rix], self.K[rix]
        n = len(units)
        cnt = (split0 != 0).sum(1)
        Kmax = int(cnt.max()) if B else 0
        # a domain's (rows, n_in) products and its (rows, Kmax) gathered lines
        per = A0.shape[0] * (3 * A0.shape[1] + 5 * Kmax) * A0.element_size()
        step = max(1, CHUNK_BYTES // max(per, 1))
        out = torch.empty((B, 2 * n), dtype=A0.dtype, device=A0.device)
        if Kmax == 0:
            out[:] = A0 @ self.mid - A0.abs() @ self.rad + c0
        else:
            # each domain's split units first (a stable sort of "is split" puts them there)
            idx = torch.argsort((split0 == 0).to(torch.int8), dim=1, stable=True)[:, :Kmax]
            side = torch.gather(split0, 1, idx).to(A0.dtype)  # 0 where padding
            t = torch.where(side > 0, torch.ones_like(side), torch.full_like(side, self.leak))
            for a in range(0, B, step):
                ix, sd, tt = idx[a : a + step], side[a : a + step], t[a : a + step]
                S = S0[:, ix].permute(1, 0, 2)  # (b, rows, K)
                K = K0[:, ix].permute(1, 0, 2)
                L = Lam[:, ix].permute(1, 0, 2)
                used = sd[:, None, :] != 0
                U = torch.where(used, L * (tt[:, None, :] - S), 0.0)
                dc = (U * self.b0[ix][:, None, :]).sum(-1) - torch.where(used, L * K, 0.0).sum(-1)
                A = A0 + U @ self.W0[ix]  # (b, rows, n_in)
                out[a : a + step] = A @ self.mid - A.abs() @ self.rad + c0 + dc
        return out[:, :n], -out[:, n:]
