r"""CROWN rows of a chain network in numpy float32: input splitting's search bounds without torch.

Input splitting (:mod:`netopt.bounds.branch_input`) bounds thousands of boxes by CROWN in low
precision and bounds again, in rigorous float64 (:mod:`netopt.bounds.bab`), only the boxes
those bounds close. The torch engine (:class:`~netopt.bounds.batched.ChainBounds`) does that on
CPU or CUDA, but importing torch takes about a second, as long as many instances' whole
search. This engine computes the same bounds (:meth:`ChainBounds.crown_rows`, intermediate
bounds by back-substitution, the interval ones where tighter, CROWN's adaptive slopes) with
numpy, at the same speed on a CPU (ACAS Xu, 1536 boxes, 2-core CPU: 3500 boxes/s either way;
7000-9000 with the parents' dead units skipped). Its alpha- and beta-CROWN
(:meth:`~netopt.bounds.chain_numpy_alpha.NumpyOptimized.alpha_crown`, the gradient written
out) spare input splitting torch altogether on a CPU.

It is a second implementation of :meth:`ChainBounds.crown_rows` and of the part of
:meth:`ChainBounds.alpha_crown` that input splitting uses (a chain of dense layers, ReLU or
leaky ReLU; the boxes' own activation bounds) rather than a backend switch inside
:class:`ChainBounds`: the torch engine's other passes (optimized intermediate bounds, the
rows' combination, ReLU splitting's bounds on a GPU) rest on autograd, and the tests hold both
engines to the same float64 results.

Every layer :math:`j` is :math:`z_j = W_j a_{j-1} + b_j`, :math:`a_j = \sigma(z_j)`; the
bounds of :math:`z_j` come from the rows :math:`\pm W_j` carried back through the relaxed
layers below (:func:`~netopt.ir.ops.activations.relu_relaxation`'s lines: the upper line where
the coefficient is negative, the lower one elsewhere) and concretized on the box.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netopt.bounds.chain_numpy_alpha import NumpyOptimized
from netopt.errors import FormulationError
from netopt.ir.chain import dense_chain
from netopt.ir.graph import Graph
from netopt.ir.ops.activations import relu_relaxation

__all__ = ["NumpyChainCrown"]


#: The share of a ReLU layer's (box, unit) pairs that must be dead for
#: :meth:`NumpyChainCrown.crown_rows` and :meth:`~netopt.bounds.batched.ChainBounds.pre_bounds`
#: to back-substitute only the live ones: each live pair then gathers its box's lines, slower
#: than the dense pass where few are dead (``benchmarks/perf/numpy_engine.py``).
DEAD_SHARE = 0.5


def check_dead(shape: tuple, B: int, Ws: list) -> None:
    """Refuse a ``dead`` mask that is not ``(B, N)`` (``N`` the activation layers' units)."""
    N = sum(int(W.shape[0]) for W in Ws)
    if tuple(shape) != (B, N):
        raise ValueError(f"dead must be (boxes, units) = ({B}, {N}), not {tuple(shape)}")


def _dot(Lam: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(B, k)``: every row of ``Lam`` (``(B, k, n)``) dotted with its box's ``v`` (``(B, n)``)."""
    return np.einsum("bkn,bn->bk", Lam, v)


class NumpyChainCrown(NumpyOptimized):
    """A chain network's layers as dense numpy arrays, CROWN-bounded over batches of boxes.

    Parameters
    ----------
    graph : Graph
        A chain of linear ops and ReLU / leaky ReLU activations (one input, one output).
    dtype : numpy dtype
        float32 (the search's; float64 for tests against the torch engine).

    Raises
    ------
    FormulationError
        If the graph is not such a chain (every refusal listed).
    """

    def __init__(self, graph: Graph, dtype: Any = np.float32) -> None:
        Ws, bs, leaks = dense_chain(graph, "numpy CROWN bounds")
        self.dtype = np.dtype(dtype)
        self.W = [np.ascontiguousarray(W, dtype=self.dtype) for W in Ws]
        self.b = [np.asarray(b, dtype=self.dtype) for b in bs]
        # [W_j | b_j]: a layer's weights and bias in one product
        self.Wb = [
            np.ascontiguousarray(np.concatenate([W, b[:, None]], 1))
            for W, b in zip(self.W, self.b, strict=True)
        ]
        self.Wpos = [np.ascontiguousarray(np.maximum(W, 0).T) for W in self.W]
        self.Wneg = [np.ascontiguousarray(np.minimum(W, 0).T) for W in self.W]
        self.leak: list[float | None] = leaks
        self.n_in = self.W[0].shape[1]
        self.n_act = next((j for j, a in enumerate(leaks) if a is None), len(leaks))
        if self.leak[-1] is not None:
            raise FormulationError("the chain must end with a linear layer (the output)")

    def _substitute(
        self,
        Lam: np.ndarray,
        const: np.ndarray,
        top: int,
        lo: np.ndarray,
        hi: np.ndarray,
        lines: list,
    ) -> tuple[np.ndarray, np.ndarray]:
        r"""Lower bound of :math:`\Lambda a_{top-1} + c` over the boxes and its input
        coefficients (as :meth:`ChainBounds._substitute`): ``Lam`` ``(B, k, n)``, ``const``
        ``(B, k)``."""
        for j in range(top - 1, -1, -1):
            lo_s, lo_b, up_s, up_b = lines[j]
            neg = np.minimum(Lam, 0)
            const = const + _dot(neg, up_b)
            if lo_b is not None:
                const = const + _dot(np.maximum(Lam, 0), lo_b)
            # lo_s * Lam + (up_s - lo_s) * min(Lam, 0)
            Lam = Lam * lo_s[:, None, :]
            neg *= (up_s - lo_s)[:, None, :]
            Lam += neg
            B, k, n = Lam.shape
            # one product for the batch (numpy's stacked matmul loops over the boxes)
            out = (Lam.reshape(B * k, n) @ self.Wb[j]).reshape(B, k, self.Wb[j].shape[1])
            const = const + out[..., -1]
            Lam = out[..., :-1]
        bound = const + _dot(np.maximum(Lam, 0), lo) + _dot(np.minimum(Lam, 0), hi)
        return bound, Lam

    def final_rows(
        self, lo: np.ndarray, hi: np.ndarray, P: np.ndarray, C: np.ndarray
    ) -> np.ndarray:
        """Lower bounds ``(B, k)`` of ``C[b] f(x)`` over each box ``b``, rows of its own (``C``
        ``(B, k, n_out)``), from the activations' input bounds ``P`` (``(B, 2, N)``) that
        :meth:`crown_rows` gave the box: the last back-substitution alone, in the engine's
        dtype and not rounded outward (a search heuristic)."""
        lo = np.asarray(lo, dtype=self.dtype)
        hi = np.asarray(hi, dtype=self.dtype)
        P = np.asarray(P, dtype=self.dtype)
        lines, off = [], 0
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            for j in range(self.n_act):
                n = self.W[j].shape[0]
                lines.append(self._lines(j, P[:, 0, off : off + n], P[:, 1, off : off + n]))
                off += n
            top = len(self.W) - 1
            C = np.asarray(C, dtype=self.dtype)
            B, k, _ = C.shape
            Lam = (C.reshape(B * k, -1) @ self.W[top]).reshape(B, k, -1)
            const = C @ self.b[top]
            bound, _ = self._substitute(Lam, const, top, lo, hi, lines)
        return bound.astype(np.float64)

    def _lines(self, j: int, low: np.ndarray, up: np.ndarray) -> tuple:
        lo_s, lo_b, up_s, up_b = relu_relaxation(low, up, self.leak[j])
        # the lower lines pass through the origin: no product with zeros
        return lo_s, (lo_b if lo_b.any() else None), up_s, up_b

    def _unit_rows(
        self, j: int, lo: np.ndarray, hi: np.ndarray, lines: list, dead: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """CROWN's bounds of layer ``j``'s units (``-inf`` / ``+inf`` where ``dead`` skips
        them), as :meth:`ChainBounds._unit_rows`."""
        W, b = self.W[j], self.b[j]
        n, B = W.shape[0], len(lo)
        if dead is None or not dead.any():
            Lam = np.broadcast_to(np.concatenate([W, -W])[None], (B, 2 * n, W.shape[1]))
            const = np.broadcast_to(np.concatenate([b, -b])[None], (B, 2 * n))
            both, _ = self._substitute(Lam, const, j, lo, hi, lines)
            return both[:, :n], -both[:, n:]
        # a "box" per live (box, unit) pair with the unit's two rows: no padding
        box, unit = np.nonzero(~dead)
        low = np.full((B, n), -np.inf, dtype=self.dtype)
        up = np.full((B, n), np.inf, dtype=self.dtype)
        if len(box):
            Wg, bg = W[unit], b[unit]
            sub = [tuple(None if a is None else a[box] for a in ln) for ln in lines[:j]]
            both, _ = self._substitute(
                np.stack([Wg, -Wg], 1), np.stack([bg, -bg], 1), j, lo[box], hi[box], sub
            )
            low[box, unit] = both[:, 0]
            up[box, unit] = -both[:, 1]
        return low, up

    def crown_rows(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        C: np.ndarray,
        d: np.ndarray,
        with_pre: bool = False,
        dead: np.ndarray | None = None,
    ) -> tuple:
        """:meth:`ChainBounds.crown_rows` in numpy: ``C f(x) - d`` lower bounds ``(B, k)``, the
        rows' input coefficients ``(B, k, n_in)`` and with ``with_pre`` the activations' input
        bounds ``(B, 2, N)``, as float64 arrays, computed in the engine's dtype and not rounded
        outward (a search heuristic). ``C`` is ``(k, n_out)``; ``dead`` as
        :meth:`ChainBounds.pre_bounds` takes it."""
        lo = np.asarray(lo, dtype=self.dtype)
        hi = np.asarray(hi, dtype=self.dtype)
        B = len(lo)
        if dead is not None:
            dead = np.asarray(dead, dtype=bool)
            check_dead(dead.shape, B, self.W[: self.n_act])
        pre: list = []
        lines: list = []
        a_lo, a_hi = lo, hi
        off = 0
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            for j in range(self.n_act):
                n = self.W[j].shape[0]
                leak = self.leak[j]
                # (a leaky unit's lower bound still matters: its output's interval)
                dj = None if dead is None or leak != 0 else dead[:, off : off + n]
                if dj is not None and dj.mean() < DEAD_SHARE:
                    dj = None
                off += n
                low, up = self._unit_rows(j, lo, hi, lines, dj)
                # CROWN is not always tighter than interval arithmetic on every unit
                low = np.maximum(low, a_lo @ self.Wpos[j] + a_hi @ self.Wneg[j] + self.b[j])
                up = np.minimum(up, a_hi @ self.Wpos[j] + a_lo @ self.Wneg[j] + self.b[j])
                if dj is not None:
                    up = np.where(dj, np.minimum(up, 0), up)
                    low = np.where(dj, np.minimum(low, up), low)
                pre.append((low, up))
                lines.append(self._lines(j, low, up))
                a_lo = np.where(low >= 0, low, leak * low)
                a_hi = np.where(up >= 0, up, leak * up)
            top = len(self.W) - 1
            C = np.asarray(C, dtype=self.dtype)
            Lam = np.ascontiguousarray(
                np.broadcast_to((C @ self.W[top])[None], (B, len(C), self.W[top].shape[1]))
            )
            const = np.broadcast_to((C @ self.b[top])[None], (B, len(C)))
            bound, coef = self._substitute(Lam, const, top, lo, hi, lines)
        out = (
            bound.astype(np.float64) - np.asarray(d, dtype=np.float64).reshape(-1),
            coef.astype(np.float64),
        )
        if not with_pre:
            return out
        if not pre:  # no activation layer: an affine network
            return (*out, np.zeros((B, 2, 0)))
        P = np.stack(
            [np.concatenate([a for a, _ in pre], 1), np.concatenate([u for _, u in pre], 1)], 1
        )
        return (*out, P.astype(np.float64))
