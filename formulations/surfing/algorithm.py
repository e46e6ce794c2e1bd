r"""Algorithm 1 of Surfing (Song, Fan & Lafferty 2019) in torch: the stages and the descent.

:func:`surf_batch` runs many independent (target, start) pairs at once on torch modules (what the
experiments use); :func:`surf_outcome` runs one target from ``restarts`` random starts over a
sequence of networks and judges the points on the last one. The math is in
:mod:`netopt.formulations.surfing`. torch is imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import InputError
from netopt.network import check_same_architecture
from netopt.problems import Inversion
from netopt.result import Outcome
from netopt.torch_export import NetworkLike, as_networks
from netopt.torch_utils import resolve_device, resolve_dtype

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["surf_outcome", "surf_batch", "stage_budgets"]


def stage_budgets(steps_per_stage: int | Sequence[int], n_stages: int) -> list[int]:
    """The per-stage step counts :math:`K_0, \\dots, K_T` (an int is used for every stage)."""
    if isinstance(steps_per_stage, int | np.integer):
        ks = [int(steps_per_stage)] * n_stages
    else:
        ks = [int(k) for k in steps_per_stage]
        if len(ks) != n_stages:
            raise InputError(
                f"steps_per_stage has {len(ks)} entries for {n_stages} networks; give one per "
                "network (or one int for all)"
            )
    if any(k < 0 for k in ks):
        raise InputError(f"steps_per_stage must be non-negative, got {ks}")
    return ks


# ----------------------------------------------------------------------------- the method
def surf_batch(
    modules: Sequence[torch.nn.Module],
    targets: torch.Tensor,
    z0: torch.Tensor,
    steps: Sequence[int],
    *,
    lr: float = 1e-2,
    optimizer: str = "adam",
    box: tuple[float, float] | None = None,
    reset_optimizer: bool = True,
    record: bool = True,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    r"""Algorithm 1 on a batch of independent problems.

    Row ``b`` minimizes :math:`\tfrac12 \|G_{\theta_t}(z_b) - y_b\|_2^2` stage by stage. The loss
    summed over rows has a block-diagonal Hessian, and Adam and GD act per coordinate, so each
    row follows exactly the path it would follow alone.

    Parameters
    ----------
    modules : sequence of torch.nn.Module
        :math:`G_{\theta_0}, \dots, G_{\theta_T}`, batched (e.g. ``Network.torch_module()``).
    targets : torch.Tensor
        ``(B, *output_shape)``.
    z0 : torch.Tensor
        ``(B, *input_shape)`` starting points.
    steps : sequence of int
        :math:`K_t` per stage.
    lr : float
        Step size of Adam (default betas) or of gradient descent.
    optimizer : {"adam", "gd"}
    box : (lo, hi), optional
        Project onto the box after each step (projected gradient).
    reset_optimizer : bool
        Fresh Adam moments at each stage (default). The paper does not say; resetting is the
        conservative choice, since the moments were estimated on the previous landscape.
    record : bool
        Keep each stage's start and end points in the history.

    Returns
    -------
    z : torch.Tensor
        The final points, detached.
    history : list of dict
        Per stage: ``stage``, ``steps``, ``loss_start``/``loss_end`` (per row, of
        :math:`\tfrac12\|G(z)-y\|^2` on that stage's network) and, with ``record``,
        ``z_start``/``z_end`` (numpy arrays).
    """
    import torch

    if optimizer not in ("adam", "gd"):
        raise InputError(f"optimizer must be 'adam' or 'gd', got {optimizer!r}")
    if len(steps) != len(modules):
        raise InputError(f"{len(steps)} stage budgets for {len(modules)} networks")

    def rowloss(g: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (g(z) - targets).reshape(len(z), -1).pow(2).sum(dim=1)

    z = z0.detach().clone().requires_grad_(True)
    opt = None
    history: list[dict[str, Any]] = []
    for t, (g, k) in enumerate(zip(modules, steps, strict=True)):
        if opt is None or reset_optimizer:
            opt = (
                torch.optim.Adam([z], lr=lr) if optimizer == "adam" else torch.optim.SGD([z], lr=lr)
            )
        with torch.no_grad():
            l0 = rowloss(g, z)
        rec: dict[str, Any] = {"stage": t, "steps": int(k)}
        if record:
            rec["z_start"] = z.detach().cpu().numpy().copy()
        for _ in range(k):
            if interrupted():  # Ctrl-C: the iterate so far is the result
                break
            opt.zero_grad(set_to_none=True)
            rowloss(g, z).sum().backward()
            opt.step()
            if box is not None:
                with torch.no_grad():
                    z.clamp_(box[0], box[1])
        with torch.no_grad():
            l1 = rowloss(g, z)
        rec["loss_start"] = l0.cpu().numpy()
        rec["loss_end"] = l1.cpu().numpy()
        if record:
            rec["z_end"] = z.detach().cpu().numpy().copy()
        history.append(rec)
    return z.detach(), history


def surf_outcome(
    networks: Sequence[NetworkLike],
    target: Any,
    *,
    steps_per_stage: int | Sequence[int] = 100,
    lr: float = 1e-2,
    optimizer: str = "adam",
    restarts: int = 1,
    init: Any = None,
    seed: int = 0,
    device: str | None = None,
    dtype: str = "float32",
    box: tuple[float, float] | None = None,
    norm: Any = 2,
    reset_optimizer: bool = True,
    example_input: Any = None,
    exporter: str = "torchscript",
) -> tuple[Inversion, Outcome]:
    r"""Invert the last network of a training path by surfing along the path.

    Minimizes :math:`\tfrac12\|G_{\theta_t}(z) - y\|_2^2` with ``steps_per_stage[t]`` steps on
    each network in turn, each stage warm-started from the previous stage's final point
    (Algorithm 1 of Song, Fan & Lafferty 2019). With a single network this is plain Adam (or GD)
    on it, with the same seed giving the same start.

    Parameters
    ----------
    networks : sequence
        :math:`\theta_0, \dots, \theta_T`: Networks, ONNX paths or torch modules (exported with
        :func:`netopt.from_torch`), all of one architecture; ``networks[-1]`` is the target
        network the result is judged on.
    target : array
        :math:`y`, of the networks' output shape.
    steps_per_stage : int or sequence of int
        :math:`K_t` (one int for all stages, or one per network). The total budget is
        :math:`\sum_t K_t`.
    lr : float
        Step size (Adam with default betas, or GD).
    optimizer : {"adam", "gd"}
    restarts : int
        Independent random starts, run as one batch; the best on the last network is returned.
    init : array or {"normal", "uniform"}, optional
        Starting point(s): an array of the input shape, or ``(restarts, *input_shape)``;
        ``"normal"`` (default) draws :math:`z_0 \sim N(0, I)`, ``"uniform"`` draws from
        :math:`[-1, 1]^k` as in the paper's experiments.
    seed : int
        Seeds the random starts.
    device : str, optional
        torch device (default ``"cpu"``).
    dtype : {"float32", "float64"}
        torch dtype of the descent; the result is re-checked in float64 either way.
    box : (lo, hi), optional
        Project :math:`z` onto the box after every step; also the domain of the returned
        problem.
    norm : 1, 2 or inf
        The norm of the reported objective :math:`\|G_{\theta_T}(\hat z) - y\|_p` (the descent
        itself always uses the squared 2-norm of the paper).
    reset_optimizer : bool
        Fresh Adam moments at each stage (default).
    example_input, exporter :
        For torch modules, see :func:`netopt.torch_export.as_networks`.

    Returns
    -------
    Result
        Status ``feasible``; ``x`` the final :math:`\hat z`; ``y`` and ``objective`` recomputed on
        ``networks[-1]`` by the float64 reference interpreter. ``extra["surfing"]`` holds the
        per-stage history of the returned start (``stage``, ``steps``, ``loss_start``,
        ``loss_end``, ``z_start``, ``z_end``), ``extra["budgets"]`` the :math:`K_t`,
        ``extra["objectives"]`` the float64 objective of every restart.

    Raises
    ------
    InputError
        On networks of different architectures (naming the first mismatching index), a target
        of the wrong size, or malformed options.
    """
    import torch

    t0 = time.perf_counter()
    nets = as_networks(networks, example_input=example_input, exporter=exporter)
    check_same_architecture(nets)
    last = nets[-1]
    problem = Inversion(last, target, norm=norm, box=box)
    ks = stage_budgets(steps_per_stage, len(nets))
    if restarts < 1:
        raise InputError(f"restarts must be >= 1, got {restarts}")
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    tdtype = resolve_dtype(dtype)
    dev = resolve_device(device or "cpu")
    shape = tuple(last.input_shape)

    rng = np.random.default_rng(seed)
    if init is None or isinstance(init, str):
        kind = init or "normal"
        if kind == "normal":
            z0 = rng.standard_normal((restarts, *shape))
        elif kind == "uniform":
            z0 = rng.uniform(-1.0, 1.0, (restarts, *shape))
        else:
            raise InputError(f"init must be an array, 'normal' or 'uniform', got {init!r}")
    else:
        a = np.asarray(init, dtype=np.float64)
        if a.shape == shape:
            z0 = np.broadcast_to(a, (restarts, *shape)).copy()
        elif a.shape == (restarts, *shape):
            z0 = a.copy()
        else:
            raise InputError(
                f"init has shape {a.shape}; expected {shape} or ({restarts}, *{shape})"
            )
    if box is not None:
        z0 = np.clip(z0, box[0], box[1])

    mods = [n.torch_module(dtype=tdtype, device=dev) for n in nets]
    y = torch.as_tensor(problem.target, dtype=tdtype, device=dev)
    ys = y.expand(restarts, *y.shape)
    t1 = time.perf_counter()
    z, hist = surf_batch(
        mods,
        ys,
        torch.as_tensor(z0, dtype=tdtype, device=dev),
        ks,
        lr=lr,
        optimizer=optimizer,
        box=box,
        reset_optimizer=reset_optimizer,
    )
    t2 = time.perf_counter()

    # judge every restart on the target network in float64, never on the torch loss
    zs = z.cpu().numpy().astype(np.float64)
    if box is not None:
        zs = np.clip(zs, box[0], box[1])
    objs = np.array([problem.objective_of_input(zi) for zi in zs])
    best = int(np.argmin(objs))
    x = zs[best].reshape(shape)
    per_stage = [
        {k: (v[best] if isinstance(v, np.ndarray) and v.ndim >= 1 else v) for k, v in rec.items()}
        for rec in hist
    ]
    out = Outcome(
        [x],
        "interrupted" if interrupted() else "none",  # stopped by Ctrl-C, or ran its steps
        formulation="surfing",
        solver="torch",
        solver_version=torch.__version__,
        timings={
            "build": t1 - t0,
            "solve": t2 - t1,
            "recheck": time.perf_counter() - t2,  # every restart scored on the last network
        },
        message=(
            f"surfing over {len(nets)} networks, {sum(ks)} {optimizer} steps in all, "
            f"best of {restarts} start(s)"
        ),
        extra={
            "surfing": per_stage,
            "budgets": ks,
            "objectives": objs,
            "best_restart": best,
            "optimizer": optimizer,
            "lr": lr,
        },
    )
    return problem, out
