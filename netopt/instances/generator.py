r"""Inversion of a trained generator, with its training path: the Surfing setting.

A ReLU decoder :math:`G_\theta: \mathbb{R}^k \to \mathbb{R}^{64}` trained on scikit-learn's 8x8
digits (:func:`~netopt.instances.digits_generator.train_generator_with_checkpoints`, seeded)
leaves checkpoints
:math:`\theta_0, \dots, \theta_T`. An instance inverts the trained network :math:`G_{\theta_T}`
at :math:`y = G_{\theta_T}(z^*)` for a planted :math:`z^* \sim N(0, I_k)`: the optimum of
:math:`\min_z \|G_{\theta_T}(z) - y\|_2` is 0, attained at :math:`z^*`. The box is
:math:`[-B, B]^k` with :math:`B = \max(5, \lceil \|z^*\|_\infty \rceil + 1)` (it contains
:math:`z^*`; an exact solver needs a bounded domain).

The checkpoints are listed in the instance's ``params["checkpoints"]``, relative to the
instance file's folder, so that Surfing (Song, Fan & Lafferty 2019) can descend along the
training path (:func:`~netopt.instances.digits_generator.surfing_method`) while every other
method sees only :math:`G_{\theta_T}`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from netopt.errors import InputError
from netopt.instances.digits_generator import train_generator_with_checkpoints
from netopt.instances.instance import Instance

__all__ = ["generator_instance", "train_generator"]


def train_generator(
    out_dir: str | os.PathLike,
    *,
    latent: int = 5,
    hidden: int = 128,
    epochs: int = 60,
    checkpoints: int = 40,
    seed: int = 0,
) -> list[Path]:
    """The checkpoint files of a digits generator in ``out_dir``, training it when they are not
    there yet (seeded: the same arguments give the same files)."""
    d = Path(out_dir)
    done = d / "steps.txt"
    if done.exists():
        paths = sorted(d.glob("theta_*.onnx"))
        if len(paths) == len(done.read_text().split()):
            return paths
    return train_generator_with_checkpoints(
        d, latent=latent, hidden=hidden, epochs=epochs, seed=seed, n_checkpoints=checkpoints
    )


def generator_instance(
    checkpoints: Sequence[str | os.PathLike],
    seed: int = 0,
    *,
    relative_to: str | os.PathLike | None = None,
    name: str | None = None,
) -> Instance:
    """Invert ``checkpoints[-1]`` at the image of a planted latent (see the module docstring).

    Parameters
    ----------
    checkpoints : sequence of paths
        ONNX files :math:`\\theta_0, \\dots, \\theta_T` of one architecture.
    seed : int
        Seeds :math:`z^*`.
    relative_to : path, optional
        The folder the instance will be saved in: the checkpoint paths are stored relative to it.
    """
    import onnx

    paths = [Path(p) for p in checkpoints]
    if len(paths) < 1:
        raise InputError("a generator instance needs at least one checkpoint")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InputError(f"generator checkpoints not found: {missing[:3]}")
    model = onnx.load(str(paths[-1]))
    base = Path(relative_to) if relative_to is not None else None
    rel = [os.path.relpath(p, base) if base is not None else str(p) for p in paths]
    inst = Instance(
        name=name or f"generator_{paths[-1].parent.name}_s{seed}",
        family="generator",
        model=model,
        target=np.zeros(1),
        lo=np.zeros(1),
        hi=np.zeros(1),
        norm=2.0,
    )
    k = int(np.prod(inst.net.input_shape))
    z = np.random.default_rng(seed).normal(size=k)
    inst.target = inst.net.forward(z[None, :]).reshape(-1)
    B = max(5.0, math.ceil(float(np.abs(z).max())) + 1.0)
    inst.lo, inst.hi = np.full(k, -B), np.full(k, B)
    inst.ground_truth = {
        "reachable": True,
        "optimum": 0.0,
        "optimum_lower_bound": 0.0,
        "optimum_upper_bound": 0.0,
        "x_star": z.tolist(),
        "source": "planted latent z* of the trained generator (f(z*) is the target)",
    }
    inst.params = {
        "generator": "netopt.instances.generator.generator_instance",
        "checkpoints": rel,
        "seed": seed,
    }
    return inst
