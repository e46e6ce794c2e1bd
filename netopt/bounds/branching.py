r"""Branching scores on the batched bounds of :class:`~netopt.bounds.batched.ChainBounds`.

BaBSR (Bunel et al. 2020) for ReLU splitting (:func:`babsr_scores`), and the input
coefficients' smear :math:`|\Lambda_i| (u_i - l_i)` for input splitting (:func:`input_scores`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netopt.bounds.batched import ChainBounds, SpecBound

__all__ = ["babsr_scores", "input_scores"]


#: The tie-breaker every unstable unit's BaBSR score gets (times its input's width), so that
#: none scores 0: negligible next to the scores that rank the units (it can reorder only
#: scores of about 1e-10 and below), and the same node counts measured on MNIST 256x2 and the
#: bench's 10-32-32-2 decision.
TIE = 1e-12


def babsr_scores(cb: Any, res: SpecBound, reduce: str = "min") -> list:
    r"""BaBSR scores of every activation unit, for each box's best row (Bunel et al. 2020).

    With :math:`\lambda` the coefficient of the unit's output :math:`a` in the bound of the
    box's best row (``res.lams``), :math:`b` its layer's bias, :math:`[l, u]` its input's
    bounds, :math:`\alpha` the leak and the upper line's slope and intercept
    :math:`r = (u - \alpha l) / (u - l)`, :math:`t = (1 - \alpha)(-l) u / (u - l)`, the
    score estimates how much a split moves the bound:

    .. math::

        s = \bigl|\operatorname{reduce}\bigl(b\lambda(r - 1),\ b\lambda(r - \alpha)\bigr)
            + \min(\lambda, 0)\, t\bigr|,

    the bias's contribution lost when the unit's coefficient on :math:`z` goes from
    :math:`\lambda r` to :math:`\lambda` (active) or :math:`\lambda \alpha` (inactive), and
    the upper line's intercept, which both sides drop. ``reduce`` is ``"min"`` or ``"max"``
    over the two sides, plus :data:`TIE` :math:`(u - l)`, so that every unstable unit scores
    above 0. Stable units (:math:`l \ge 0` or :math:`u \le 0`, split units among them: their
    bounds were clipped to the split's half-line) score 0.

    Returns
    -------
    list of arrays, one ``(B, n_j)`` per activation layer: torch tensors for a torch
    ``SpecBound``, numpy arrays for a numpy one (from
    :class:`~netopt.bounds.chain_numpy.NumpyChainCrown`, whose weights ``cb.b`` are numpy).
    """
    if reduce not in ("min", "max"):
        raise ValueError(f"reduce must be 'min' or 'max', not {reduce!r}")
    if res.row is None or len(res.lams) < cb.n_act:
        raise ValueError("babsr_scores needs a SpecBound from crown() or alpha_crown()")
    if isinstance(res.lower, np.ndarray):
        return _babsr(np, cb, res, np.minimum if reduce == "min" else np.maximum)
    import torch

    with torch.no_grad():
        return _babsr(torch, cb, res, torch.minimum if reduce == "min" else torch.maximum)


def _babsr(xp: Any, cb: Any, res: SpecBound, op: Any) -> list:
    """:func:`babsr_scores` in the array namespace ``xp`` (numpy or torch)."""
    B = res.lower.shape[0]
    idx = xp.arange(B) if xp is np else xp.arange(B, device=res.lower.device)
    scores = []
    for j in range(cb.n_act):
        lam = res.lams[j][idx, res.row]  # (B, n_j)
        low, up = res.pre[j]
        a = cb.leak[j]
        unst = (low < 0) & (up > 0)
        width = xp.where(unst, up - low, xp.ones_like(low))
        r = xp.where(unst, (up - a * low) / width, xp.zeros_like(low))
        t = xp.where(unst, (1 - a) * (-low) * up / width, xp.zeros_like(low))
        bl = cb.b[j] * lam
        neg = xp.where(lam < 0, lam, xp.zeros_like(lam))
        s = xp.abs(op(bl * (r - 1), bl * (r - a)) + neg * t)
        # every unstable unit scores above 0, so that "no unit scores" means "none is left
        # unstable": a unit of zero bias whose coefficient is >= 0 (a max pool's ReLU
        # form) scores 0 above, yet a domain is affine only once it is split
        s = s + TIE * (up - low)
        scores.append(xp.where(unst, s, xp.zeros_like(s)))
    return scores


def input_scores(cb: ChainBounds, res: SpecBound, lo: Any, hi: Any) -> Any:
    r"""The smear :math:`|\Lambda_{0,i}| (u_i - l_i)` of each input for each box's best row.

    The best row's bound depends on input :math:`i` through :math:`\Lambda_{0,i}^+ l_i +
    \Lambda_{0,i}^- u_i`; halving the widest such term gains most (``(B, n_in)``).
    """
    return res.coef.abs() * (cb._t(hi) - cb._t(lo))
