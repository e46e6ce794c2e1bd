r"""The children's bounds that filtered smart branching compares, from their parent's bound.

Filtered smart branching (De Palma et al. 2021; :data:`netopt.bounds.branch_relu.FSB_CANDIDATES`)
scores a candidate unit by the bounds of both its children, each bounded once with its parent's
slopes, multipliers and activation bounds (the unit's clipped to its side). A child then differs
from its parent in the lines of one unit only, so its bound is the parent's plus a change that
back-substitution computes from the split layer down, and nothing above it is redone.

With :math:`\Lambda_j` the parent's coefficients of :math:`a_j` (layer :math:`j`, unit
:math:`u` split) in one row's bound, the unit's relaxed coefficient of :math:`z_j[u]` and its
constant are

.. math::

    g_u = s^{lo}_u \Lambda_u + (s^{up}_u - s^{lo}_u) \min(\Lambda_u, 0) - \beta_u s_u, \qquad
    c_u = \min(\Lambda_u, 0)\, b^{up}_u + \max(\Lambda_u, 0)\, b^{lo}_u,

and on the child's side they become :math:`g'_u = \alpha \Lambda_u` (inactive, :math:`\alpha`
the leak) or :math:`\Lambda_u` (active), :math:`c'_u = 0` (the unit was unsplit, so its
multiplier is 0 on both). With :math:`\delta = g'_u - g_u`, the coefficients one layer down
change by the rank-one :math:`\delta W_j[u, :]` and the constant by :math:`\delta\, b_j[u] - c_u`:

* below the first activation layer (:math:`j = 0`) the coefficients are the input's, and the
  child's bound is the parent's plus that change and the change of the box's concretization
  :math:`\Lambda^+ l + \Lambda^- u` (no product with a weight matrix at all);
* in the second activation layer (:math:`j = 1`) only the first layer's units that are
  unstable on some parent of the batch go through their lines per child; the rest are linear
  there, and their share is the rank-one :math:`\delta V_u` of a matrix made once per call
  (:func:`_second_layer`): ReLU splitting's box is fixed, so most of the first layer is stable
  on every domain (MNIST 256x2 at eps 0.05: 13-44 of 256 unstable);
* deeper, the rest of the back-substitution (:math:`j - 1` down to the input) runs on the
  child's coefficients, and its result replaces the parent's.

The bounds equal those of a full pass with the same parameters (:func:`children_full`, the
reference; ``tests/bounds/test_fsb.py``, in float64); they only rank the candidates, and nothing
is claimed from them. :func:`children_splits` gives the children's split signs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["children_full", "children_lower", "children_splits"]


def children_lower(
    cb: Any, sb: Any, lo: Any, hi: Any, signs: list, part: Any, lay: Any, uni: Any
) -> Any:
    """Every row's lower bound of both children of each candidate.

    Parameters
    ----------
    cb : ChainBounds
    sb : SpecBound
        The parents' bounds from :meth:`~netopt.bounds.batched.ChainBounds.alpha_crown` (its
        ``lams``, ``coefs``, ``slopes``, ``betas`` and ``pre``), ``B`` domains.
    lo, hi : Tensor
        ``(1, n_in)``: the box (the same for every domain: ReLU splitting).
    signs : list of Tensor
        The parents' split signs per activation layer, ``(B, n_j)``.
    part : Tensor
        ``(m,)`` indices (into the ``B`` domains) of the parents to branch.
    lay, uni : Tensor
        ``(m, K)``: each parent's candidates' layers and units (unstable on the parent).

    Returns
    -------
    Tensor ``(K, 2, m, k)``: candidate, side (``z <= 0`` first), parent, row.
    """
    import torch

    with torch.no_grad():
        return _children(cb, sb, lo, hi, signs, part, lay, uni)


def _children(cb: Any, sb: Any, lo: Any, hi: Any, signs: list, part: Any, lay: Any, uni: Any):
    import torch

    dt, dev = cb.dtype, cb.device
    m, K = lay.shape
    low = sb.lower[part]
    k = low.shape[1]
    out = torch.full((K, 2, m, k), -torch.inf, dtype=dt, device=dev)
    lines = []
    for j in range(cb.n_act):
        pl, pu = sb.pre[j]
        _, lo_b, up_s, up_b = cb._lines(j, pl[part], pu[part])
        lines.append((sb.slopes[j][part], lo_b, up_s, up_b))
    shift: list = [None] * cb.n_act
    if sb.betas:
        shift = [b[part] * s[part].to(dt)[:, None, :] for b, s in zip(sb.betas, signs, strict=True)]
    below: dict[int, Any] = {}  # per layer j >= 1: the parents' back-substitution below it
    for j in range(cb.n_act):
        ii, qq = torch.nonzero(lay == j, as_tuple=True)
        if not len(ii):
            continue
        u = uni[ii, qq]
        par = part[ii]
        lam_u = sb.lams[j][par, :, u]  # (r, k)
        lo_s, lo_b, up_s, up_b = (None if t is None else t[ii, u][:, None] for t in lines[j])
        neg = lam_u.clamp(max=0)
        g = lo_s * lam_u + (up_s - lo_s) * neg
        c = neg * up_b
        if lo_b is not None:
            c = c + lam_u.clamp(min=0) * lo_b
        if shift[j] is not None:
            g = g - shift[j][ii, :, u]
        w_u = cb.W[j][u][:, None, :]  # (r, 1, n_below)
        b_u = cb.b[j][u][:, None]
        if j == 1:
            deltas = [slope * lam_u - g for slope in (cb.leak[j], 1.0)]
            rest = _second_layer(cb, sb, lo, hi, part, lines, ii, u, deltas)
            for side, delta in enumerate(deltas):
                out[qq, side, ii] = low[ii] + delta * b_u - c + rest[side]
            continue
        if j == 0:
            X = sb.coefs[par]
            base = _concretize(X, lo, hi)
        else:
            if j not in below:
                below[j] = _below(cb, sb.lams[j - 1][part], j, lo, hi, lines, shift)
            X = sb.lams[j - 1][par]
            base = below[j][ii]
        for side, slope in ((0, cb.leak[j]), (1, 1.0)):
            delta = slope * lam_u - g
            Xc = X + delta[:, :, None] * w_u
            if j == 0:
                rest = _concretize(Xc, lo, hi)
            else:
                sub = [tuple(None if t is None else t[ii] for t in ln) for ln in lines[:j]]
                sh = [None if s is None else s[ii] for s in shift[:j]]
                rest = _below(cb, Xc, j, lo, hi, sub, sh)
            out[qq, side, ii] = low[ii] + delta * b_u - c + rest - base
    return out


def _second_layer(
    cb: Any, sb: Any, lo: Any, hi: Any, part: Any, lines: list, ii: Any, u: Any, deltas: list
) -> list:
    r"""For candidates of the second activation layer: the change of the back-substitution
    below them (through the first layer to the input) for each change ``deltas`` of the
    candidate's coefficient (``(r, k)``: its inactive side, then its active one), each
    ``(r, k)``.

    The child's coefficients of :math:`a_0` are the parent's :math:`X` plus :math:`\delta
    W_1[u, :]`. Through the first layer's lines a unit :math:`v` stable on every parent of the
    batch (the same side) is linear, :math:`s_v (\cdot)`: its share of the change is
    :math:`\delta\, s_v W_1[u, v]` times row :math:`v` of :math:`[W_0 | b_0]`, and summed
    over those units it is :math:`\delta V_u` with :math:`V = (W_1 \odot s) [W_0 | b_0]`
    restricted to them, made once per call. Only the other units (those unstable on some
    parent: a few where most of the first layer is stable, as ReLU splitting's fixed box has
    it) go through the lines and their product with :math:`W_0` per child; the parent's own
    coefficients of the input are ``sb.coefs``. The same bound as the pass, without a
    product through the whole first layer per child.
    """
    import torch

    leak = cb.leak[0]
    pl, pu = sb.pre[0][0][part], sb.pre[0][1][part]
    act, dead = (pl >= 0).all(0), (pu <= 0).all(0)
    fixed = act | dead
    s = torch.where(act, torch.ones_like(pl[0]), torch.full_like(pl[0], leak))
    Wb = cb._with_bias(0)  # [W0 | b0]
    F = torch.nonzero(fixed)[:, 0]
    R = torch.nonzero(~fixed)[:, 0]
    V = (cb.W[1][:, F] * s[F]) @ Wb[F]  # (n1, n_in + 1)
    par = part[ii]
    P = sb.coefs[par]  # (r, k, n_in)
    base = _concretize(sb.coefs[part], lo, hi)[ii]  # (per parent, then per candidate)
    X = sb.lams[0][par][:, :, R]  # (r, k, |R|)
    wR = cb.W[1][u][:, None, :][:, :, R]  # (r, 1, |R|)
    lo_s, lo_b, up_s, up_b = (None if t is None else t[ii][:, None, R] for t in lines[0])

    def relaxed(Y: Any) -> tuple[Any, Any]:
        neg = Y.clamp(max=0)
        const = (neg * up_b).sum(-1)
        if lo_b is not None:
            const = const + (Y.clamp(min=0) * lo_b).sum(-1)
        return lo_s * Y + (up_s - lo_s) * neg, const

    rel_p, c_p = relaxed(X)
    out = []
    for delta in deltas:
        rel_c, c_c = relaxed(X + delta[:, :, None] * wR)
        dWb = (rel_c - rel_p) @ Wb[R] + delta[:, :, None] * V[u][:, None, :]
        dc = c_c - c_p + dWb[..., -1]
        out.append(dc + _concretize(P + dWb[..., :-1], lo, hi) - base)
    return out


def _concretize(X: Any, lo: Any, hi: Any) -> Any:
    """``(r, k)``: the minimum of ``X x`` over the box (``X`` ``(r, k, n_in)``), as
    :math:`X m - |X| \rho` (the box's middle and half-widths: two matrix-vector products
    instead of four elementwise passes; the box is finite)."""
    assert lo.shape[0] == 1  # (one box: ReLU splitting's)
    mid, rad = ((lo + hi) / 2)[0], ((hi - lo) / 2)[0]
    return X @ mid - X.abs() @ rad


def _below(cb: Any, X: Any, j: int, lo: Any, hi: Any, lines: list, shift: list) -> Any:
    """The back-substitution of ``X a_{j-1}`` (``(r, k, n_{j-1})``) down to the input box."""
    import torch

    r = X.shape[0]
    zero = torch.zeros(X.shape[:2], dtype=X.dtype, device=X.device)
    return cb._substitute(X, zero, j, lo.expand(r, -1), hi.expand(r, -1), lines[:j], shift[:j])


def children_full(
    cb: Any, lo: Any, hi: Any, C: Any, d: Any, sb: Any, sp: list, part: Any, lay: Any, uni: Any
) -> Any:
    """Every row's bound of both children of each candidate, ``(K, 2, m, k)``, by a full
    beta-CROWN pass per child with its parent's slopes, multipliers and activation bounds: what
    :func:`~netopt.bounds.fsb.children_lower` computes from the parent's bound (the reference
    it is tested against; the arguments as there, ``lo``/``hi`` ``(1, n_in)`` arrays and the
    rows ``C``, ``d``)."""
    m, K = lay.shape
    children = children_splits([s[part] for s in sp], lay, uni)
    rep = part.repeat(2 * K)
    R = len(rep)
    sb2 = cb.alpha_crown(
        np.broadcast_to(lo, (R, lo.shape[1])),
        np.broadcast_to(hi, (R, hi.shape[1])),
        C,
        d,
        children,
        iters=0,
        init=[s.detach()[rep] for s in sb.slopes],
        beta=True,
        init_betas=[b.detach()[rep] for b in sb.betas] if sb.betas else None,
        pre=[(a.detach()[rep], b.detach()[rep]) for a, b in sb.pre],
        mix=sb.mix is not None,
        init_mix=None if sb.mix is None else sb.mix[rep],
    )
    return sb2.lower.reshape(K, 2, m, -1)


def children_splits(sp: list, layer: Any, unit: Any) -> list:
    """Both children of each domain per candidate: ``sp`` ``(n, n_j)`` per layer, candidates
    ``layer``/``unit`` ``(n, K)`` -> ``(2 K n, n_j)`` per layer, ordered (candidate, side,
    domain), the side ``z <= 0`` first. Torch tensors (ReLU splitting) or numpy arrays (input
    splitting's ReLU splits), all of one kind."""
    n, K = layer.shape
    out = []
    for j, s in enumerate(sp):
        # (2 K n, n_j): the parent's rows once per candidate and side
        rep = np.tile(s, (2 * K, 1)) if isinstance(s, np.ndarray) else s.repeat(2 * K, 1)
        for q in range(K):
            m = layer[:, q] == j
            sel = np.nonzero(m)[0] if isinstance(m, np.ndarray) else m.nonzero().flatten()
            if len(sel):
                u = unit[sel, q]
                rep[(2 * q) * n + sel, u] = -1
                rep[(2 * q + 1) * n + sel, u] = 1
        out.append(rep)
    return out
