r"""Solver-neutral convex models: :class:`ConvexBlock`, one convex block of a lifted objective.

A ConvexBlock is what an exact convex solver (the ``"cvxpy"`` backend) receives: matrices, data, a
regularizer and a box, plus the closed forms needed to evaluate the block in float64. The terms
come from the Bregman penalty of a proximal activation :math:`\sigma = \mathrm{prox}_\Psi`
(Wang & Benning, 2023):

.. math::
    B_\Psi(y, z) = \phi(y) + \phi^*(z) - \langle y, z\rangle,
    \qquad \phi = \tfrac12\|\cdot\|^2 + \Psi,

which is :math:`\ge \tfrac12\|y - \sigma(z)\|^2 \ge 0`, zero exactly on the graph
:math:`y = \sigma(z)`, and convex in :math:`y` and in :math:`z` separately.

For the LeakyReLU of slope :math:`c \in [0, 1)` (ReLU is :math:`c = 0`),
:math:`\Psi(u) = \frac{1/c - 1}{2}\min(u, 0)^2` (ReLU: the indicator of :math:`u \ge 0`), and
the two halves are closed-form and elementwise:

.. math::
    \phi(y) = \begin{cases} \tfrac12 y^2 & y \ge 0 \\ \tfrac{1}{2c} y^2 & y < 0
              \ (+\infty \text{ for ReLU})\end{cases},
    \qquad
    \phi^*(z) = \tfrac12 z\,\sigma(z) = \begin{cases} \tfrac12 z^2 & z \ge 0 \\
              \tfrac{c}{2} z^2 & z < 0 \end{cases}.

The regularizers :math:`J` are isotropic total variation (through :func:`grad_operator`), the
:math:`\ell_1` norm, :math:`\tfrac12\|\cdot\|^2`, or nothing (a box only). The method that builds
these blocks and runs first-order solvers on them is
:mod:`netopt.formulations.lifted_bregman`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from netopt.errors import InputError

__all__ = [
    "REGULARIZERS",
    "ConvexBlock",
    "activation",
    "psi",
    "phi",
    "phi_conj",
    "bregman_penalty",
    "grad_operator",
    "tv",
    "regularizer_value",
]

REGULARIZERS = ("tv", "l1", "l2", "box", "none")


# ---------------------------------------------------------------------------------- the penalty
def activation(z: np.ndarray, slope: float) -> np.ndarray:
    r""":math:`\sigma_c(z) = \max(z, 0) + c \min(z, 0)` (``slope`` :math:`c = 0`: ReLU)."""
    z = np.asarray(z, dtype=np.float64)
    return np.where(z >= 0, z, slope * z)


def psi(u: np.ndarray, slope: float) -> float:
    r""":math:`\Psi(u)` summed: ReLU: 0 on :math:`u \ge 0`, :math:`+\infty` elsewhere;
    LeakyReLU: :math:`\frac{1/c - 1}{2}\sum\min(u, 0)^2`."""
    u = np.asarray(u, dtype=np.float64)
    neg = np.minimum(u, 0.0)
    if slope == 0.0:
        return 0.0 if not np.any(neg < 0) else float("inf")
    return float(0.5 * (1.0 / slope - 1.0) * np.sum(neg**2))


def phi(y: np.ndarray, slope: float) -> float:
    r""":math:`\phi(y) = \tfrac12\|y\|^2 + \Psi(y)` (see the module docstring)."""
    y = np.asarray(y, dtype=np.float64)
    return float(0.5 * np.sum(y**2) + psi(y, slope))


def phi_conj(z: np.ndarray, slope: float) -> float:
    r""":math:`\phi^*(z) = \tfrac12 \langle z, \sigma(z)\rangle` (the Moreau envelope of
    :math:`\Psi^*`; its gradient is :math:`\sigma`)."""
    z = np.asarray(z, dtype=np.float64)
    return float(0.5 * np.sum(z * activation(z, slope)))


def bregman_penalty(y: np.ndarray, z: np.ndarray, slope: float = 0.0) -> float:
    r""":math:`B_\Psi(y, z) = \phi(y) + \phi^*(z) - \langle y, z\rangle` summed over entries.

    ``slope`` 0 is ReLU (then :math:`+\infty` if any :math:`y_i < 0`), ``slope`` in (0, 1) is
    LeakyReLU. The value is :math:`\ge \tfrac12\|y - \sigma(z)\|^2`, with equality for ReLU where
    :math:`z \ge 0`.
    """
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    p = phi(y, slope)
    if not np.isfinite(p):
        return float("inf")
    return float(p + phi_conj(z, slope) - np.sum(y * z))


# ------------------------------------------------------------------------------ regularizers
def grad_operator(shape: tuple[int, int]) -> sp.csr_matrix:
    # cached: evaluated by every objective call; callers must not modify the matrix
    return _grad_operator((int(shape[0]), int(shape[1])))


@lru_cache(maxsize=16)
def _grad_operator(shape: tuple[int, int]) -> sp.csr_matrix:
    r"""Forward differences :math:`\nabla: \mathbb{R}^{H \times W} \to \mathbb{R}^{2HW}`
    (row-major pixels; the last difference along each axis is 0, i.e. Neumann boundary).

    Rows ``0..HW-1`` are horizontal differences :math:`u_{i,j+1} - u_{i,j}`, rows ``HW..2HW-1``
    vertical ones :math:`u_{i+1,j} - u_{i,j}`. :math:`\|\nabla\|^2 \le 8`.
    """
    H, Wd = (int(s) for s in shape)

    def d(n: int) -> sp.csr_matrix:
        m = sp.diags([-np.ones(n), np.ones(n - 1)], [0, 1], shape=(n, n), format="lil")
        m[n - 1, n - 1] = 0.0  # no difference past the border
        return m.tocsr()

    dx = sp.kron(sp.identity(H), d(Wd))
    dy = sp.kron(d(H), sp.identity(Wd))
    return sp.vstack([dx, dy], format="csr")


def tv(u: np.ndarray, shape: tuple[int, int], isotropic: bool = True) -> float:
    r"""Total variation :math:`\sum_{ij} \|(\nabla u)_{ij}\|_2` (isotropic) or
    :math:`\sum_{ij} |(\nabla u)_{ij,1}| + |(\nabla u)_{ij,2}|` (anisotropic)."""
    g = (grad_operator(shape) @ np.asarray(u, dtype=np.float64).reshape(-1)).reshape(2, -1)
    if isotropic:
        return float(np.sum(np.sqrt(g[0] ** 2 + g[1] ** 2)))
    return float(np.sum(np.abs(g)))


def regularizer_value(
    u: np.ndarray, kind: str, image_shape: tuple[int, int] | None = None
) -> float:
    r""":math:`J(u)`: ``tv`` isotropic TV, ``l1`` :math:`\|u\|_1`, ``l2``
    :math:`\tfrac12\|u\|^2`, ``box``/``none`` 0 (the box is a constraint, not a cost)."""
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    if kind == "tv":
        if image_shape is None:
            raise InputError("regularizer 'tv' needs image_shape=(H, W)")
        return tv(u, image_shape)
    if kind == "l1":
        return float(np.sum(np.abs(u)))
    if kind == "l2":
        return float(0.5 * np.sum(u**2))
    if kind in ("box", "none"):
        return 0.0
    raise InputError(f"regularizer must be one of {REGULARIZERS}, got {kind!r}")


# ------------------------------------------------------------------------------------ the block
@dataclass(eq=False)
class ConvexBlock:
    r"""One convex block of the lifted objective, in the variable :math:`u \in \mathbb{R}^n`:

    .. math::
        \min_{lo \le u \le hi}\ D(u) + \underbrace{B_{\Psi_{in}}(u, a)}_{\text{if } a
        \text{ given}} + \alpha J(u),

    with the data term :math:`D(u) = B_{\Psi_{out}}(f, W u + b)` (``out_slope`` 0 or LeakyReLU
    slope) or :math:`D(u) = \tfrac\lambda2\|W u + b - f\|^2` (``out_slope`` None, a linear
    layer). The second term appears for a hidden variable :math:`u = z_l` that should equal
    :math:`\sigma(a)`, :math:`a = W_l z_{l-1} + b_l` fixed. Every term is convex in :math:`u`.

    Attributes
    ----------
    W : ndarray (m, n)
    b, f : ndarray (m,)
    out_slope : float or None
    lam : float
        :math:`\lambda` of the linear data term.
    in_pre : ndarray (n,) or None
        :math:`a`.
    in_slope : float
        Slope of :math:`\Psi_{in}`.
    reg : {"tv", "l1", "l2", "box", "none"}
    alpha : float
    image_shape : (H, W) or None
        The pixel grid of :math:`u` for TV.
    lo, hi : ndarray (n,) or None
        The box (``box`` regularizer or the input domain); None is unbounded.
    name : str
        Which block this is, for messages (``"u"``, ``"z1"``, ...).
    """

    W: np.ndarray
    b: np.ndarray
    f: np.ndarray
    out_slope: float | None = 0.0
    lam: float = 1.0
    in_pre: np.ndarray | None = None
    in_slope: float = 0.0
    reg: str = "none"
    alpha: float = 0.0
    image_shape: tuple[int, int] | None = None
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    name: str = "u"

    def __post_init__(self) -> None:
        if self.reg not in REGULARIZERS:
            raise InputError(f"regularizer must be one of {REGULARIZERS}, got {self.reg!r}")
        if self.reg == "tv" and self.image_shape is None:
            raise InputError("regularizer 'tv' needs image_shape=(H, W)")
        m, n = self.W.shape
        if self.reg == "tv" and int(np.prod(self.image_shape)) != n:
            raise InputError(
                f"image_shape {tuple(self.image_shape)} has {int(np.prod(self.image_shape))} "
                f"pixels; the variable has {n} entries"
            )
        if self.out_slope == 0.0 and np.any(np.asarray(self.f) < 0):
            # B_Psi(f, .) is +inf unless f is in dom(Psi) = {f >= 0}; the paper clips the data
            raise InputError(
                f"block {self.name}: a ReLU output's data must be >= 0 (min "
                f"{float(np.min(self.f)):.3g}); clip it with np.maximum(f, 0)"
            )

    @property
    def n(self) -> int:
        return int(self.W.shape[1])

    def data_term(self, u: np.ndarray) -> float:
        """:math:`D(u)` in float64."""
        z = self.W @ np.asarray(u, dtype=np.float64).reshape(-1) + self.b
        if self.out_slope is None:
            return float(0.5 * self.lam * np.sum((z - self.f) ** 2))
        return bregman_penalty(self.f, z, self.out_slope)

    def objective(self, u: np.ndarray) -> float:
        """The block's objective at ``u`` in float64 (the box is not checked here)."""
        u = np.asarray(u, dtype=np.float64).reshape(-1)
        val = self.data_term(u) + self.alpha * regularizer_value(u, self.reg, self.image_shape)
        if self.in_pre is not None:
            val += bregman_penalty(u, self.in_pre, self.in_slope)
        return float(val)
