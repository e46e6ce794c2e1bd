r"""The Bregman penalty of the lifted formulation: its proximal maps and gradients.

An activation that is a proximal map, :math:`\sigma = \mathrm{prox}_\Psi`, comes with the penalty

.. math::
    B_\Psi(y, z) = \phi(y) + \phi^*(z) - \langle y, z\rangle,
    \qquad \phi = \tfrac12\|\cdot\|^2 + \Psi,

which is :math:`\ge \tfrac12\|y - \sigma(z)\|^2 \ge 0`, zero exactly on the graph
:math:`y = \sigma(z)`, convex in :math:`y` and in :math:`z` separately, and has
:math:`\nabla_z B_\Psi(y, z) = \sigma(z) - y` (no derivative of :math:`\sigma` needed).

For the LeakyReLU of slope :math:`c \in [0, 1)` (ReLU is :math:`c = 0`),
:math:`\Psi(u) = \frac{1/c - 1}{2}\min(u, 0)^2` (ReLU: the indicator of :math:`u \ge 0`), and
the two halves are closed-form and elementwise:

.. math::
    \phi(y) = \begin{cases} \tfrac12 y^2 & y \ge 0 \\ \tfrac{1}{2c} y^2 & y < 0
              \ (+\infty \text{ for ReLU})\end{cases},
    \qquad
    \phi^*(z) = \tfrac12 z\,\sigma(z) = \begin{cases} \tfrac12 z^2 & z \ge 0 \\
              \tfrac{c}{2} z^2 & z < 0 \end{cases}.

So for ReLU, :math:`B(y, z) = \tfrac12\|y - \max(z,0)\|^2 + \langle y, \max(-z, 0)\rangle` for
:math:`y \ge 0`.

The values (:func:`~netopt.model.convex.psi`, :func:`~netopt.model.convex.phi`,
:func:`~netopt.model.convex.phi_conj`, :func:`~netopt.model.convex.bregman_penalty`,
:func:`~netopt.model.convex.activation`) live with the convex block that is evaluated and solved
with them (:class:`netopt.model.ConvexBlock`); this module holds what the first-order methods step
with: :math:`\mathrm{prox}_{t\Psi}`, the prox of the separable part of a block, and the gradient of
a block's data term.
"""

from __future__ import annotations

import numpy as np

from netopt.model.convex import ConvexBlock, activation

__all__ = ["prox_scaled_psi", "prox_g", "data_grad"]


def prox_scaled_psi(v: np.ndarray, t: float, slope: float) -> np.ndarray:
    r""":math:`\mathrm{prox}_{t\Psi}(v)`: ReLU: :math:`\max(v, 0)`; LeakyReLU:
    :math:`v` for :math:`v \ge 0`, :math:`v / (1 + t(1/c - 1))` otherwise."""
    v = np.asarray(v, dtype=np.float64)
    if slope == 0.0:
        return np.maximum(v, 0.0)
    return np.where(v >= 0, v, v / (1.0 + t * (1.0 / slope - 1.0)))


def prox_g(v: np.ndarray, t: float, sub: ConvexBlock) -> np.ndarray:
    r"""Prox of :math:`t\,G`, :math:`G` = the box plus the separable part of :math:`\alpha J`
    (``l2``: :math:`v/(1+t\alpha)`; ``l1``: soft thresholding), then the box (exact for
    separable 1-D convex terms)."""
    if sub.reg == "l2":
        v = v / (1.0 + t * sub.alpha)
    elif sub.reg == "l1":
        v = np.sign(v) * np.maximum(np.abs(v) - t * sub.alpha, 0.0)
    if sub.lo is not None:
        v = np.maximum(v, sub.lo)
    if sub.hi is not None:
        v = np.minimum(v, sub.hi)
    return v


def data_grad(sub: ConvexBlock, u: np.ndarray) -> np.ndarray:
    r""":math:`\nabla D(u) = W^\top(\sigma(Wu+b) - f)` (linear: :math:`\lambda W^\top(Wu+b-f)`)."""
    z = sub.W @ u + sub.b
    r = (z - sub.f) * sub.lam if sub.out_slope is None else activation(z, sub.out_slope) - sub.f
    return sub.W.T @ r
