r"""Surfing: input optimization over a sequence of incrementally trained networks.

Song, Fan & Lafferty (NeurIPS 2019), "Surfing: iterative optimization over incrementally trained
deep networks". To invert a trained generator :math:`G_{\theta_T}`, i.e. to solve

.. math::

    \min_z \; f_{\theta_T}(z) = \tfrac12 \| G_{\theta_T}(z) - y \|_2^2,

follow the minimizer along the training path :math:`\theta_0, \theta_1, \dots, \theta_T`. The first
network :math:`G_{\theta_0}` is the random initialization, whose landscape is benign for expansive
ReLU networks, and successive objectives :math:`f_{\theta_t}` change slowly, so a local method
warm-started from the previous stage's point tracks the global minimizer (Algorithm 1, the
practical algorithm of the paper's experiments):

.. math::

    z \leftarrow z_{\text{init}}; \qquad
    \text{for } t = 0, \dots, T: \quad z \leftarrow \text{run } K_t \text{ steps of Adam (or GD)
    on } f_{\theta_t} \text{ from } z .

The projected-gradient variant analysed in the paper (Algorithm 2, with its careful initialization
and per-stage search step) is not implemented: its pseudo-code is not recoverable and the paper's
experiments do not use it.

:func:`surf` is the user-facing call (one target, ``restarts`` random starts, a re-checked
:class:`~netopt.Result`); :func:`surf_batch` runs many independent (target, start) pairs at once on
torch modules and is what the experiments use. :func:`train_generator_with_checkpoints` trains a
small ReLU decoder on scikit-learn's 8x8 digits and saves :math:`\theta_0, \dots, \theta_T` as ONNX
files, so the method can be run end to end on CPU.

torch is imported inside the functions: ``import netopt`` does not import it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.errors import InputError
from netopt.network import Network
from netopt.problems import Inversion
from netopt.result import Outcome, Result, assemble

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "surf",
    "surf_outcome",
    "surf_batch",
    "as_networks",
    "check_same_architecture",
    "stage_budgets",
    "train_generator_with_checkpoints",
]

NetworkLike = Network | str | os.PathLike | Any  # Any: a torch.nn.Module


# ----------------------------------------------------------------------------- the sequence
def _is_torch_module(obj: Any) -> bool:
    # without importing torch when the caller did not (``import netopt`` stays torch-free)
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def as_networks(
    networks: Sequence[NetworkLike],
    *,
    example_input: Any = None,
    exporter: str = "torchscript",
) -> list[Network]:
    """Turn a sequence of Networks, ONNX paths and torch modules into Networks.

    Parameters
    ----------
    networks : sequence
        Each a :class:`~netopt.Network`, a path to an ONNX file, ONNX bytes, or a
        ``torch.nn.Module``.
    example_input : torch.Tensor, optional
        For torch modules: the example input of the ONNX export. Default: a zero tensor of the
        input shape of the first non-torch entry, else of ``in_features`` of the module's first
        ``Linear`` layer.
    exporter : str
        The exporter :func:`netopt.from_torch` uses for torch modules. ``"torchscript"`` by
        default: a sequence holds tens of checkpoints and it is ~100x faster per module than
        the dynamo exporter, with the same IR for the MLP/conv generators surfing is used on.

    Returns
    -------
    list of Network

    Raises
    ------
    InputError
        If the sequence is empty, or an entry is none of the accepted kinds.
    """
    import netopt

    items = list(networks)
    if not items:
        raise InputError("surfing needs at least one network (the sequence is empty)")
    out: list[Network | None] = []
    for i, n in enumerate(items):
        if isinstance(n, Network):
            out.append(n)
        elif isinstance(n, str | os.PathLike | bytes):
            out.append(netopt.load(n))
        elif _is_torch_module(n):
            out.append(None)  # converted below, once an example input is known
        else:
            raise InputError(
                f"networks[{i}] is a {type(n).__name__}; pass a netopt.Network, the path of an "
                "ONNX file, or a torch.nn.Module"
            )
    if any(o is None for o in out):
        import torch

        if example_input is None:
            known = next((o for o in out if o is not None), None)
            # the export traces the module, so the example must have its parameters' dtype
            p0 = next(items[out.index(None)].parameters(), None)
            dt = p0.dtype if p0 is not None else torch.float32
            if known is not None:
                example_input = torch.zeros(1, *known.input_shape, dtype=dt)
            else:
                lin = next(
                    (m for m in items[0].modules() if isinstance(m, torch.nn.Linear)),
                    None,
                )
                if lin is None:
                    raise InputError(
                        "networks[0] is a torch module without a Linear layer: pass "
                        "example_input= for the ONNX export"
                    )
                example_input = torch.zeros(1, lin.in_features, dtype=dt)
        out = [
            o if o is not None else netopt.from_torch(items[i], example_input, exporter=exporter)
            for i, o in enumerate(out)
        ]
    return out  # type: ignore[return-value]


def _attr_signature(v: Any) -> Any:
    """What of an attribute must agree along a training path: an array's shape, else the value."""
    if isinstance(v, np.ndarray):
        return ("array", tuple(v.shape))
    return v


def check_same_architecture(nets: Sequence[Network]) -> None:
    """Refuse a sequence whose networks are not one architecture at different weights.

    Compared against ``nets[0]``: the IR input and output shapes, the number of ops, and per op
    (in graph order) its IR kind, input/output value shapes, attribute names, the shapes of array
    attributes (weights) and the values of the others (strides, pads, axes, ...).

    Raises
    ------
    InputError
        Naming the index of the first network that differs and what differs.
    """
    ref = nets[0]
    rg = ref.graph
    for i, net in enumerate(nets[1:], start=1):
        g = net.graph

        def refuse(what: str, i: int = i, net: Network = net) -> None:
            raise InputError(
                f"networks[{i}] ({net.source.name}) differs in architecture from networks[0] "
                f"({ref.source.name}): {what}. Surfing follows one architecture through "
                "training; pass checkpoints of the same model"
            )

        if tuple(net.input_shape) != tuple(ref.input_shape):
            refuse(f"input shape {net.input_shape} vs {ref.input_shape}")
        if tuple(net.output_shape) != tuple(ref.output_shape):
            refuse(f"output shape {net.output_shape} vs {ref.output_shape}")
        if len(g.ops) != len(rg.ops):
            refuse(f"{len(g.ops)} IR ops vs {len(rg.ops)}")
        for k, (a, b) in enumerate(zip(rg.ops, g.ops, strict=True)):
            where = f"op {k} ('{b.id}'" + (f", from {b.origin}" if b.origin else "") + ")"
            if a.op != b.op:
                refuse(f"{where} is '{b.op}' where networks[0] has '{a.op}'")
            sa = [rg.value(v).shape for v in (*a.inputs, *a.outputs)]
            sb = [g.value(v).shape for v in (*b.inputs, *b.outputs)]
            if sa != sb:
                refuse(f"{where} '{b.op}' has value shapes {sb} where networks[0] has {sa}")
            if set(a.attrs) != set(b.attrs):
                refuse(
                    f"{where} has attributes {sorted(b.attrs)} where networks[0] has "
                    f"{sorted(a.attrs)}"
                )
            for name in a.attrs:
                x, y = _attr_signature(a.attrs[name]), _attr_signature(b.attrs[name])
                same = x == y if not isinstance(x, np.ndarray) else np.array_equal(x, y)
                if not same:
                    refuse(f"{where} attribute '{name}' is {y} where networks[0] has {x}")


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
        For torch modules, see :func:`as_networks`.

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
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    dev = torch.device(device or "cpu")
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
        "none",
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


def surf(networks: Sequence[NetworkLike], target: Any, **kw: Any) -> Result:
    """Surfing over ``networks`` to ``target``, the point re-checked on the last network.

    The parameters are :func:`surf_outcome`'s; ``prob.solve("surfing", path=[...])`` is the same
    method on a problem posed on the last network.
    """
    problem, out = surf_outcome(networks, target, **kw)
    return assemble(problem, out)


# ----------------------------------------------------------------------------- a generator
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
