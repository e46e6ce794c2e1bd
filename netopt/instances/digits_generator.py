r"""A small ReLU decoder trained on scikit-learn's 8x8 digits, with its training path.

:func:`train_generator_with_checkpoints` saves the decoder's weights :math:`\theta_0, \dots,
\theta_T` along training as ONNX files (seeded), so that Surfing (Song, Fan & Lafferty 2019;
``prob.solve("surfing", path=[...])``) can be run end to end on CPU; :func:`surfing_method` runs
it on a ``generator`` instance of a benchmark suite. torch and scikit-learn are imported inside
the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from netopt.errors import InputError
from netopt.instances.instance import Instance

__all__ = ["train_generator_with_checkpoints", "surfing_method"]


def _digits(seed: int) -> np.ndarray:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        from netopt.errors import SolverUnavailableError

        raise SolverUnavailableError(
            "training the digits generator needs scikit-learn (its 8x8 digits ship with it): "
            "pip install 'netopt[examples]'"
        ) from None

    x = load_digits().data.astype(np.float32) / 16.0  # pixels in [0, 1]
    return x[np.random.default_rng(seed).permutation(len(x))]


def train_generator_with_checkpoints(
    out_dir: str | os.PathLike,
    *,
    latent: int = 5,
    hidden: int = 128,
    epochs: int = 60,
    seed: int = 0,
    n_checkpoints: int = 40,
    batch_size: int = 64,
    lr: float = 1e-3,
) -> list[Path]:
    r"""Train a small ReLU decoder on 8x8 digits and save its training path as ONNX files.

    An autoencoder with encoder :math:`64 \to h \to k` and decoder
    :math:`G_\theta: k \to h \to h \to 64` (ReLU hidden layers, linear output), trained with Adam
    on :math:`\|G_\theta(E(x)) - x\|^2` over scikit-learn's digits (pixels scaled to [0, 1]).
    Only the decoder is saved: :math:`\theta_0` is its random initialization before any step,
    :math:`\theta_T` the trained weights, and the steps in between are log-spaced, since the
    weights move fastest early in training. Seeded: the same arguments give the same files.

    Parameters
    ----------
    out_dir : path
        Created if missing; files ``theta_000.onnx`` ... are written there.
    latent, hidden : int
        :math:`k` and :math:`h` (:math:`h > k`: the decoder is expansive, as in the theory).
    epochs : int
        Passes over the 1797 digits.
    seed : int
    n_checkpoints : int
        :math:`T + 1`, including :math:`\theta_0` and :math:`\theta_T` (at least 2); fewer are
        written only if training has fewer than ``n_checkpoints - 1`` steps. The step of each
        file is listed in ``out_dir/steps.txt``.
    batch_size, lr : training settings.

    Returns
    -------
    list of Path
        The checkpoint files in training order.
    """
    import torch
    from torch import nn

    import netopt

    if n_checkpoints < 2:
        raise InputError(f"n_checkpoints must be >= 2 (theta_0 and theta_T), got {n_checkpoints}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = torch.as_tensor(_digits(seed))
    enc = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, latent))
    dec = nn.Sequential(
        nn.Linear(latent, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 64),
    )
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr)
    n_batches = -(-len(data) // batch_size)
    total = epochs * n_batches
    # checkpoint after these many steps: 0 (the initialization), then log-spaced up to `total`
    m = np.round(np.geomspace(1, max(total, 1), n_checkpoints - 1)).astype(int)
    for i in range(1, len(m)):  # early log-spaced marks round to the same step: keep them distinct
        m[i] = max(m[i], m[i - 1] + 1)
    # fewer checkpoints only when training has fewer steps than n_checkpoints - 1
    marks = [0, *np.unique(np.minimum(m, total)).tolist()]
    ex = torch.zeros(1, latent)
    paths: list[Path] = []

    def save(step: int) -> None:
        net = netopt.from_torch(dec, ex, exporter="torchscript")
        p = out / f"theta_{len(paths):03d}.onnx"
        p.write_bytes(net.onnx_bytes)
        paths.append(p)
        saved_steps.append(step)

    saved_steps: list[int] = []
    gen = torch.Generator().manual_seed(seed)
    step = 0
    save(0)
    for _ in range(epochs):
        perm = torch.randperm(len(data), generator=gen)
        for b in range(n_batches):
            xb = data[perm[b * batch_size : (b + 1) * batch_size]]
            opt.zero_grad(set_to_none=True)
            loss = (dec(enc(xb)) - xb).pow(2).sum(dim=1).mean()
            loss.backward()
            opt.step()
            step += 1
            if step in marks:
                save(step)
    (out / "steps.txt").write_text(
        "# training step of each checkpoint\n"
        + "\n".join(f"{p.name} {s}" for p, s in zip(paths, saved_steps, strict=True))
        + "\n"
    )
    return paths


def surfing_method(
    problem: Any,
    *,
    instance: Instance,
    seed: int = 0,
    time_limit: float | None = None,
    steps_per_stage: int = 100,
    lr: float = 1e-2,
    restarts: int = 1,
    init: str = "normal",
    dtype: str = "float32",
) -> Any:
    """Surfing along the instance's checkpoints, as a benchmark method
    (``formulation = "netopt.instances.digits_generator:surfing_method"`` in a suite).

    The registered ``"surfing"`` method on ``problem`` (posed on the last checkpoint), with the
    checkpoints before it as its ``path``. ``time_limit`` is not enforced inside the descent (the
    runner's limit is); the budget is ``steps_per_stage`` times the number of checkpoints.
    """
    ckpts = instance.params.get("checkpoints")
    if not ckpts:
        raise InputError(f"instance {instance.name} lists no checkpoints: not a generator instance")
    base = Path(instance.model_path).parent if instance.model_path else Path(".")
    paths = [str(base / c) for c in ckpts]
    return problem.solve(
        "surfing",
        path=paths[:-1],
        steps_per_stage=steps_per_stage,
        lr=lr,
        restarts=restarts,
        init=init,
        seed=seed,
        dtype=dtype,
    )
