"""What a batched CROWN pass returns (:class:`SpecBound`), shared by the torch engine
(:mod:`netopt.bounds.batched`) and input splitting's numpy one
(:mod:`netopt.bounds.chain_numpy_alpha`), which therefore import it from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SpecBound", "BoxBatch", "CLOSE_HEADROOM"]

#: The optimized bounds (alpha/beta-CROWN, both engines) stop a box's steps once its best row
#: bound exceeds this much times ``1 + max |d|``: a closed box's later steps change nothing a
#: search uses, and the headroom above the searches' test (``> 0``, or their tiny margins)
#: keeps a box from stopping at a bound so near zero that its float64 confirmation could fail
#: (float32 rounds these bounds by about 1e-6 of their terms).
CLOSE_HEADROOM = 1e-4


@dataclass
class SpecBound:
    r"""Lower bounds of ``C f(x) - d`` over each box, with what produced them.

    Each array below is a torch tensor (:class:`ChainBounds`), or a numpy array where input
    splitting's :class:`~netopt.bounds.chain_numpy.NumpyChainCrown` made it.

    Attributes
    ----------
    lower : Tensor
        ``(B, k)``: a lower bound per box and constraint row.
    slopes : list of Tensor
        The lower slopes used at each activation layer, ``(B, n_j)``.
    pre : list of tuple of Tensor
        The bounds ``(l_j, u_j)`` of each activation's input, ``(B, n_j)`` each (intersected
        with the splits' half-lines).
    betas : list of Tensor
        beta-CROWN's multipliers per activation layer, ``(B, k, n_j)``, zero where a unit is not
        split; empty when beta-CROWN was not used.
    row : Tensor or None
        ``(B,)`` (int64): each box's best row, the one with the largest lower bound.
    coef : Tensor or None
        ``(B, n_in)``: the input coefficients :math:`\Lambda_0` of each box's best row; its
        bound is :math:`\Lambda_0^+ l + \Lambda_0^- u` plus a constant.
    lams : list of Tensor
        ``(B, k, n_j)``: the coefficients :math:`\Lambda_j` of each row's bound on the
        activation outputs :math:`a_j` (what the activation step receives), for branching scores.
    mix : Tensor or None
        ``(B, k)``: with :meth:`ChainBounds.alpha_crown`'s ``mix``, the weights of the rows'
        combination that the last of ``lower``'s ``k + 1`` columns bounds.
    coefs : Tensor or None
        ``(B, k, n_in)``: every row's input coefficients (``coef`` is the best row's).
    """

    lower: Any
    slopes: list
    pre: list
    betas: list = field(default_factory=list)
    row: Any = None
    coef: Any = None
    lams: list = field(default_factory=list)
    mix: Any = None
    coefs: Any = None


@dataclass
class BoxBatch:
    """What a step of alpha/beta-CROWN's ascent reads of each box (both engines: numpy arrays or
    torch tensors): the boxes, the activations' lines ``(lo_s, lo_b, up_s, up_b)`` and unstable
    units per layer, the split signs and multiplier masks per layer (None: no split there), and
    the torch engine's rows ``Lam`` ``(n, k, m)`` and right-hand sides ``d`` (``(k,)`` shared or
    ``(n, k)``; None in the numpy engine, whose rows are shared).

    ``n`` is the batch; an array whose first dimension is not ``n`` (one box ``(1, n_in)`` for
    rows of each box's own, rows shared by all) belongs to every box and is kept as it is.
    """

    n: int
    lo: Any
    hi: Any
    lines: list
    unstable: list
    signs: list
    masks: list
    Lam: Any = None
    d: Any = None

    def take(self, idx: Any) -> BoxBatch:
        """The boxes ``idx`` (an index array or tensor into the batch)."""

        def t(x: Any) -> Any:
            return x[idx] if x is not None and x.ndim > 0 and x.shape[0] == self.n else x

        return BoxBatch(
            len(idx),
            t(self.lo),
            t(self.hi),
            [tuple(t(a) for a in ln) for ln in self.lines],
            [t(u) for u in self.unstable],
            [t(x) for x in self.signs],
            [t(x) for x in self.masks],
            t(self.Lam),
            self.d if self.d is None or self.d.ndim < 2 else t(self.d),  # ((k,) may equal n)
        )
