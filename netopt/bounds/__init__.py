"""Sound per-value intervals over an input domain: interval (IBP) and symbolic (CROWN) bounds.

``compute_bounds(graph, lo, hi, method)`` returns :class:`Bounds`, a mapping value id ->
``(lo, hi)`` (flattened float64 arrays). All methods are sound: for every input in the box, every
value of the network lies in its interval -- the network's *exact* value (real arithmetic on its
float64 weights), not only its float64 forward pass, because the bounds back claims ("unsat",
big-M constants, proven bounds). Every float64 computation here rounds, so each is widened by a
rigorous a-priori error term (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
§3.1: a dot product of :math:`n` terms computed in any order is within :math:`\\gamma_n
= nu/(1 - nu)` of the exact one relative to the dot product of the absolute values,
:math:`u = 2^{-53}`), plus underflow terms, and rounded outward (see :func:`affine_interval`,
:func:`backsub`, :func:`concretize`, :func:`relu_relaxation`). The tests check this against exact
rational arithmetic with weights from 1e-160 to 1e37. Scale rule: infinite or NaN weights and NaN
input bounds are refused (:class:`~netopt.errors.InputError`); any bound whose computation
overflows (a non-finite intermediate) is infinite, so no false finite bound ever comes out, at
any scale. Methods:

* ``"interval"`` — interval arithmetic through every op (linear ops in centre-radius form,
  :math:`y_c = M x_c + b`, :math:`y_r = |M| x_r`).
* ``"crown"`` — symbolic linear bounds by back-substitution to the input (CROWN, Zhang et al.
  2018; DeepPoly, Singh et al. 2019), intersected with the interval bounds. A ReLU with pre-activation
  bounds :math:`l < 0 < u` is relaxed by :math:`\\alpha x \\le y \\le \\frac{u}{u-l}(x - l)` with the
  adaptive :math:`\\alpha = [u > -l]`; a LeakyReLU likewise; a max-pool window by
  :math:`x_{j^*} \\le y \\le \\max_i u_i`, exact when one cell dominates; smooth ops by their
  interval bounds (monotone rules for sigmoid and tanh, corner rules in log-sum-exp form for
  (log-)softmax, all rounded outward so that they hold for the exact functions).

LP-based tightening (:mod:`netopt.bounds.lp`) and the output-side tightening used for inversion
refine these further; branch and bound (:mod:`netopt.bounds.branch`) splits the input box or the
ReLUs and bounds the pieces in batches.

The package: :mod:`~netopt.rounding` (the outward-rounding error terms),
:mod:`~netopt.bounds.interval` (the interval pass), :mod:`~netopt.bounds.crown`
(back-substitution), :mod:`~netopt.bounds.compute` (:class:`Bounds`, :func:`compute_bounds`),
:mod:`~netopt.bounds.lp`, :mod:`~netopt.bounds.bab` (rigorous float64 CROWN over a batch of
boxes), :mod:`~netopt.bounds.branch` (branch and bound) and :mod:`~netopt.bounds.proof`
(branch-and-bound proofs, :class:`BabProof`, re-checked by :func:`check_proof`). The per-op
rules (``interval``, ``relax``) live with the ops in :mod:`netopt.ir.ops`: an engine walks the
graph and asks each op for them, so another engine (a batched one on other hardware, say) reuses
the same rules.
"""

from __future__ import annotations

from netopt.bounds.compute import METHODS, Bounds, compute_bounds
from netopt.bounds.crown import backsub, concretize, linear_bounds, relu_relaxation
from netopt.bounds.interval import AffineMap, affine_interval, interval_op
from netopt.bounds.proof import BabProof, ProofCheck, check_proof
from netopt.ir.ops.activations import leaky_bound

__all__ = [
    "Bounds",
    "compute_bounds",
    "linear_bounds",
    "interval_op",
    "relu_relaxation",
    "METHODS",
    "AffineMap",
    "affine_interval",
    "leaky_bound",
    "backsub",
    "concretize",
    "BabProof",
    "ProofCheck",
    "check_proof",
]
