r"""Random expansive generators with a planted latent (Lei, Jalal, Dhillon, Dimakis 2019).

.. math::

    G(z) = \phi(W_L \cdots \phi(W_2\, \phi(W_1 z))), \qquad
    (W_l)_{ij} \sim \mathcal{N}(0, 1/n_l), \qquad z^* \sim \mathcal{N}(0, I_k),
    \qquad y = G(z^*) + e,

with :math:`n_l` the number of rows of :math:`W_l` (the authors' scaling), no biases, and
:math:`\phi` = ReLU or LeakyReLU (slope 0.1) after *every* layer, the last included, as in the
authors' code. The settings of the paper: ``20-100-500`` (noise study, Fig. 1) and
``k-250-600`` for ``k = 10 .. 250`` (recovery vs latent size, Fig. 2).

The noise :math:`e` is uniform in :math:`[-\sigma, \sigma]` or Gaussian :math:`\mathcal{N}(0,
\sigma^2)`. Without noise the instance is realizable: the optimum is 0, attained at
:math:`z^*`. With noise, :math:`\|e\|_p` is an upper bound on the optimum (attained by
:math:`z^*`). The latent is unconstrained in the paper; the instance's box is
:math:`[-B, B]^k` with :math:`B = \max(5, \lceil \|z^*\|_\infty \rceil + 1)`, which contains
:math:`z^*` (an exact solver needs a bounded domain).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from netopt.errors import InputError
from netopt.instances._onnx import mlp_onnx
from netopt.instances.instance import Instance

__all__ = ["expansive_weights", "expansive_instance", "NOISE_KINDS"]

NOISE_KINDS = ("uniform", "gaussian")


def _widths(widths: Sequence[int]) -> list[int]:
    try:
        w = [int(v) for v in widths]
    except (TypeError, ValueError):
        raise InputError(f"widths must be integers, got {widths!r}") from None
    if len(w) < 2 or any(v < 1 for v in w):
        raise InputError(f"widths need at least an input and an output size, all >= 1: {widths!r}")
    return w


def expansive_weights(widths: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Gaussian layer matrices ``W_l`` of shape ``(n_l, n_{l-1})``, entries ``N(0, 1/n_l)``."""
    w = _widths(widths)
    return [rng.normal(size=(o, i)) / math.sqrt(o) for i, o in zip(w[:-1], w[1:], strict=True)]


def expansive_instance(
    widths: Sequence[int] = (20, 100, 500),
    seed: int = 0,
    *,
    activation: str = "relu",
    slope: float = 0.1,
    noise: float = 0.0,
    noise_kind: str = "uniform",
    norm: float = 1.0,
    dtype: type = np.float32,
    name: str | None = None,
) -> Instance:
    """A random expansive generator, a planted latent and its (noisy) image as the target.

    Parameters
    ----------
    widths : sequence of int
        ``k, n_1, ..., n_L`` (latent first).
    activation : {"relu", "leaky_relu"}
    slope : float
        LeakyReLU slope (the authors' 0.1).
    noise : float
        ``sigma`` of the noise on the target (0: realizable).
    noise_kind : {"uniform", "gaussian"}
    norm : 1, 2 or inf
        ``p`` of the instance's objective.
    dtype : float32 or float64
        Weight type in the ONNX file; the target is computed from the stored weights in
        float64, so a noiseless instance is exactly realizable by the file's network.

    Notes
    -----
    Expansivity (``n_l >= n_{l-1}``) is what the paper's recovery results need but is not
    enforced: contracting widths make harder or non-identifiable instances, which is allowed.
    """
    w = _widths(widths)
    if activation not in ("relu", "leaky_relu"):
        raise InputError(f"activation must be 'relu' or 'leaky_relu', got {activation!r}")
    if noise_kind not in NOISE_KINDS:
        raise InputError(f"noise_kind must be one of {NOISE_KINDS}, got {noise_kind!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise InputError(f"noise must be a finite non-negative number, got {noise!r}")
    rng = np.random.default_rng(seed)
    Ws = expansive_weights(w, rng)
    act = "relu" if activation == "relu" else f"leaky_relu:{slope}"
    model = mlp_onnx(Ws, [None] * len(Ws), [act] * len(Ws), dtype=dtype, name="expansive")
    z = rng.normal(size=w[0])
    inst = Instance(
        name=name or f"expansive_{'-'.join(map(str, w))}_s{seed}",
        family="expansive",
        model=model,
        target=np.zeros(w[-1]),
        lo=np.zeros(w[0]),
        hi=np.zeros(w[0]),
        norm=float(norm),
    )
    y = inst.net.forward(z[None, :]).reshape(-1)  # the stored (rounded) weights, in float64
    if noise_kind == "uniform":
        e = rng.uniform(-noise, noise, size=y.shape)
    else:
        e = rng.normal(scale=noise, size=y.shape)
    B = max(5.0, math.ceil(float(np.abs(z).max())) + 1.0)
    p = float(norm)
    e_norm = float(np.linalg.norm(e, ord=p)) if e.size else 0.0
    inst.target = y + e
    inst.lo, inst.hi = np.full(w[0], -B), np.full(w[0], B)
    # the region must contain G(z*) + e's reach: its half-width covers the noise
    inst.region_tol = max(1e-3, 2.0 * float(np.abs(e).max()) if e.size else 0.0)
    inst.ground_truth = {
        "reachable": True,
        "optimum": 0.0 if noise == 0 else None,
        "optimum_lower_bound": 0.0,
        "optimum_upper_bound": e_norm,
        "x_star": z.tolist(),
        "noise_norm": e_norm,
        "source": "planted latent z* (objective at z* = ||e||_p)",
    }
    inst.params = {
        "generator": "netopt.instances.expansive.expansive_instance",
        "widths": w,
        "activation": activation,
        "slope": slope,
        "noise": noise,
        "noise_kind": noise_kind,
        "seed": seed,
        "dtype": np.dtype(dtype).name,
    }
    return inst
