r"""A falsifier: batched projected gradient descent on the margin of an output property.

Given a box :math:`[l, u]` and output constraints :math:`C f(x) \le d` (one disjunct of a VNN-LIB
property: the region a counterexample must reach), find :math:`x \in [l, u]` with

.. math:: m(x) = \max_i \, (C f(x) - d)_i \le 0 .

This is the attack stage of the field's verifiers (alpha,beta-CROWN runs PGD before any bound;
Madry et al. 2018; Croce & Hein 2020 for the step schedule). Several problems — the disjuncts of
a property, or the open sub-boxes of a branch and bound — are searched as **one batch**: each gets
``restarts`` starting points (the box centre, box vertices, uniform samples, and from the second
round on the best point found so far), and every point descends on its own problem's margin
:math:`m` — the max over that problem's rows, whose subgradient moves the row furthest from
holding — with signed-gradient steps

.. math:: x \leftarrow \Pi_{[l,u]}\big(x - \eta_t\, (u - l) \odot \mathrm{sign}\, \tilde\nabla m(x)\big),

the step :math:`\eta_t` decaying on a cosine schedule from ``step0`` within each round.

**Gradients through inactive ReLUs.** On a sparsely active ReLU network (MNIST 256x2 at
:math:`\epsilon = 0.05` has two active first-layer units at the image) the exact gradient of
:math:`m` is often zero after one step: every unit that could raise the target logit is inactive,
so plain PGD stops on a plateau far from any counterexample. :math:`\tilde\nabla` is therefore
the gradient of the same network with each ReLU's derivative :math:`\mathbb 1[z > 0]` replaced by
:math:`\mathbb 1[z > 0] + \lambda\, \mathbb 1[z \le 0]` (a leaky backward pass; the forward values,
hence every margin, stay exact). Each start gets one leak :math:`\lambda` from ``leaks`` (0, the
exact subgradient, among them), so the batch mixes exact descent with descent that sees which
inactive units would help.

Every few steps (and at once when a float32 margin reaches 0) the best points are re-evaluated in
float64 by the reference interpreter: only a point whose float64 margin is :math:`\le 0` is
returned as a candidate (callers confirm it in onnxruntime, as every counterexample is), so
float32 round-off on a GPU never makes a claim.

**Engines.** A chain of flattening reshapes, affine maps and ReLUs (an MLP: ACAS Xu, MNIST FC)
runs in float32 numpy by default, forward and leaky backward by hand: no torch import (about a
second of start-up) and no per-op dispatch, so the MNIST counterexamples take a tenth of a second.
Any other graph, or an explicit ``device``, runs as a
:class:`netopt.ir.torch_module.GraphModule` (any op with a torch rule) on the device
:func:`netopt.torch_utils.resolve_device` picks: CUDA when present, else CPU. A small batch on the
CPU runs on one thread (:data:`_ONE_THREAD_ENTRIES`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import InputError

__all__ = ["AttackResult", "BoxAttackResult", "falsify", "falsify_disjuncts", "falsify_boxes"]

#: Leaks of the ReLU backward pass, one per start in turn (see the module doc): 0 is plain PGD;
#: small leaks let the sign step feel inactive units without drowning the active ones.
LEAKS = (0.0, 0.001, 0.003, 0.01)

#: Batches of at most this many input entries (starts x inputs) run on one CPU thread.
_ONE_THREAD_ENTRIES = 2**20

#: Padding for problems with fewer rows than the batch's widest: ``0 y - PAD`` never wins the max.
_PAD = 1e30


@dataclass
class AttackResult:
    """What :func:`falsify` found.

    Attributes
    ----------
    x : ndarray or None
        A point of the box (input shape) whose float64 margin is ``<= 0``; None if none found.
    margin : float
        The best float64 margin seen (``<= 0`` exactly when ``x`` is set).
    best : ndarray or None
        The point of that margin (a start for an exact method when no counterexample is found).
    evaluations : int
        Forward passes (points) spent.
    seconds : float
    """

    x: np.ndarray | None
    margin: float
    evaluations: int
    seconds: float
    best: np.ndarray | None = None


@dataclass
class BoxAttackResult:
    """What :func:`falsify_boxes` found, one entry per box.

    Attributes
    ----------
    x : ndarray
        ``(B, *input_shape)``: the point of each box with the smallest float64 margin seen.
    margin : ndarray
        ``(B,)``: that margin, computed by the float64 reference interpreter; ``<= 0`` marks a
        counterexample in that box.
    evaluations : int
    seconds : float
    """

    x: np.ndarray
    margin: np.ndarray
    evaluations: int
    seconds: float

    @property
    def found(self) -> int | None:
        """Index of a box whose point is a counterexample (the smallest margin), or None."""
        k = int(np.argmin(self.margin)) if len(self.margin) else -1
        return k if k >= 0 and self.margin[k] <= 0.0 else None


class _NumpyChain:
    """A chain of flattening reshapes, affine maps and ReLUs (an MLP: ACAS Xu, MNIST FC) in
    float32 numpy: the margin and its leaky gradient without torch, whose import alone costs
    about a second.
    """

    def __init__(self, layers: list[tuple[str, Any, Any]]) -> None:
        self.layers = layers

    @classmethod
    def build(cls, net: Any) -> _NumpyChain | None:
        """The chain of ``net``, or None when its graph is anything else."""
        g = net.graph
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            return None
        layers: list[tuple[str, Any, Any]] = []
        cur = g.inputs[0]
        for op in g.ops:
            if tuple(op.inputs) != (cur,) or len(op.outputs) != 1:
                return None
            out_shape = tuple(g.value(op.outputs[0]).shape)
            if op.op == "reshape" and len(out_shape) == 1:
                pass  # a flat sample is already flat: row-major order is kept
            elif op.op == "affine" and len(tuple(g.value(cur).shape)) == 1:
                W = np.asarray(op.attrs["weight"], dtype=np.float32)
                b = np.asarray(op.attrs["bias"], dtype=np.float32)
                layers.append(("affine", W, b))
            elif op.op == "relu" and len(out_shape) == 1:
                layers.append(("relu", None, None))
            else:
                return None
            cur = op.outputs[0]
        return cls(layers) if cur == g.outputs[0] else None

    def __call__(
        self, X: np.ndarray, C: np.ndarray, D: np.ndarray, leak: np.ndarray, grad: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Margins ``(B,)`` of the flat points ``X`` and (``grad``) their leaky gradients."""
        h = X.astype(np.float32, copy=False)
        masks = []
        for kind, W, b in self.layers:
            if kind == "affine":
                h = h @ W.T + b
            else:
                masks.append(h > 0)
                h = np.maximum(h, 0)
        V = np.einsum("bko,bo->bk", C, h) - D
        row = np.argmax(V, axis=1)
        m = V[np.arange(len(V)), row]
        if not grad:
            return m, None
        # the max's subgradient: the winning row of C, back through the chain
        g = C[np.arange(len(V)), row]
        lk = leak[:, None].astype(np.float32)
        for kind, W, _ in reversed(self.layers):
            if kind == "affine":
                g = g @ W
            else:
                g = np.where(masks.pop(), g, lk * g)
        return m, g


class _TorchEngine:
    """The network as a torch module (float32, any op with a torch rule) on ``dev``, with
    every ReLU's backward pass leaking (module doc); points and gradients cross as numpy."""

    def __init__(self, net: Any, dev: Any, C: np.ndarray, D: np.ndarray, leak: np.ndarray):
        import torch

        self.torch, self.dev, self.shape = torch, dev, tuple(net.input_shape)
        self.mod = _leaky_module(net, dev)
        self.state = self.mod.__dict__["_leak_state"]
        f32 = torch.float32
        self.C = torch.tensor(C, dtype=f32, device=dev)
        self.D = torch.tensor(D, dtype=f32, device=dev)
        self.leak = torch.tensor(leak, dtype=f32, device=dev)

    def __call__(
        self, X: np.ndarray, C: np.ndarray, D: np.ndarray, leak: np.ndarray, grad: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self.torch
        x = torch.as_tensor(X, dtype=torch.float32).to(self.dev)
        B = len(x)
        if not grad:
            with torch.no_grad():
                y = self.mod(x.reshape(B, *self.shape)).reshape(B, -1)
                m = (self.C @ y.unsqueeze(-1)).squeeze(-1).sub(self.D).max(dim=1).values
            return m.cpu().numpy(), None
        x.requires_grad_(True)
        self.state["leak"] = self.leak
        try:
            y = self.mod(x.reshape(B, *self.shape)).reshape(B, -1)
        finally:
            self.state["leak"] = None
        m = (self.C @ y.unsqueeze(-1)).squeeze(-1).sub(self.D).max(dim=1).values
        (g,) = torch.autograd.grad(m.sum(), x)
        return m.detach().cpu().numpy(), g.cpu().numpy()


def _leaky_module(net: Any, dev: Any) -> Any:
    """The network in torch (float32) with every ReLU's backward pass leaking (module doc).

    The forward values are torch's exact ReLU; the leak is read from ``_leak_state["leak"]``, a
    ``(B,)`` tensor set before a forward (None: no leak). Cached per device on the network: a
    check attacks every disjunct of a property, a branch and bound many boxes.
    """
    import torch
    from torch import nn

    cache = net.__dict__.setdefault("_attack_modules", {})
    key = f"leaky:{dev}"
    if key in cache:
        return cache[key]
    mod = net.torch_module(dtype=torch.float32, device=dev)
    state: dict[str, Any] = {"leak": None}

    class _LeakyGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, z: torch.Tensor, leak: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(z, leak)
            return torch.relu(z)

        @staticmethod
        def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
            z, leak = ctx.saved_tensors
            lk = leak.reshape(-1, *([1] * (z.dim() - 1)))
            # the derivative 1[z > 0] (torch's at 0 too) plus the leak where the unit is off
            return torch.where(z > 0, g, lk * g), None

    class _Relu(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            lk = state["leak"]
            if lk is None or not torch.is_grad_enabled() or lk.shape[0] != z.shape[0]:
                return torch.relu(z)
            return _LeakyGrad.apply(z, lk)

    for k, op in enumerate(net.graph.ops):
        if op.op == "relu":
            mod.steps[k] = _Relu()
    mod.__dict__["_leak_state"] = state
    cache[key] = mod
    return mod


@contextmanager
def _few_threads(torch_engine: bool, small: bool) -> Iterator[None]:
    """One BLAS / torch thread for a small batch on the CPU: its matmuls take a millisecond on
    one core, while on a loaded machine more threads wait on each other and a step takes ten
    times as long."""
    if not small:
        yield
        return
    if torch_engine:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional helper: without it numpy keeps its threads
        yield
        return
    with threadpool_limits(1):
        yield


def _as_problem(
    lo: np.ndarray, hi: np.ndarray, C: np.ndarray, d: np.ndarray, n_in: int, n_out: int, who: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 ``(lo, hi, C, d)`` of one problem (flat box)."""
    lo64 = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi64 = np.asarray(hi, dtype=np.float64).reshape(-1)
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    if lo64.size != n_in or hi64.size != n_in or not np.all(lo64 <= hi64):
        raise InputError(
            f"{who}: the box must be two arrays of the input's {n_in} values with lo <= hi "
            f"(got {lo64.size} and {hi64.size} values)"
        )
    if C.shape[1] != n_out or len(d) != C.shape[0]:
        raise InputError(
            f"{who}: C must be (k, {n_out}) for the {n_out} outputs and d of length k (got C "
            f"{C.shape}, d {d.shape})"
        )
    return lo64, hi64, C, d


def _search(
    net: Any,
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    who: str,
    *,
    restarts: int | None,
    steps: int,
    rounds: int,
    step0: float,
    seed: int,
    time_limit: float | None,
    device: Any,
    leaks: Sequence[float],
    stop_at_first: bool,
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Batched PGD on ``P`` problems ``(lo, hi, C, d)`` at once (module doc).

    The problems are validated first (``who`` names the caller in error messages); the time
    limit counts from the call. ``restarts`` None takes ``clip(2**16 / (n P), 16, 1024)``
    starts per problem for ``n`` inputs.

    Returns
    -------
    X : (P, *input_shape) ndarray
        Each problem's best point (its box centre where none was evaluated).
    margin : (P,) ndarray
        Their float64 margins (``inf`` where no point was evaluated).
    evaluations : int
        Forward passes (points) spent.
    seconds : float
    """
    t0 = time.perf_counter()
    shape = tuple(net.input_shape)
    n_in, n_out = int(np.prod(shape)), int(np.prod(net.output_shape))
    if not problems:
        raise InputError(f"{who}: no problem to attack")
    problems = [_as_problem(*p, n_in, n_out, who) for p in problems]
    if restarts is None:
        # the batch of one falsify shared out, down to 16 starts each: 1024 starts per disjunct
        # of a 5-input box (sparse counterexamples want dense sampling), 16 per MNIST class
        restarts = int(np.clip(2**16 // (max(n_in, 1) * len(problems)), 16, 1024))
    P, n = len(problems), n_in
    LO = np.stack([p[0] for p in problems])
    HI = np.stack([p[1] for p in problems])
    k_max = max(len(p[3]) for p in problems)
    # rows padded to a common count: a padding row 0 y - PAD never attains the max
    CP = np.zeros((P, max(k_max, 1), n_out))
    DP = np.full((P, max(k_max, 1)), _PAD)
    for j, (_, _, C, d) in enumerate(problems):
        CP[j, : len(d)], DP[j, : len(d)] = C, d
    best_x, best_m, evals = (LO + HI) / 2, np.full(P, math.inf), 0

    def result() -> tuple[np.ndarray, np.ndarray, int, float]:
        return best_x.reshape(P, *shape), best_m, evals, time.perf_counter() - t0

    if k_max == 0:
        # no constraint at all: every point of a box is a counterexample
        best_m[:] = -math.inf
        return result()

    rng = np.random.default_rng(seed)
    R = max(1, int(restarts))
    owner = np.repeat(np.arange(P), R)  # the problem of each start
    B = len(owner)
    lo32, hi32 = LO[owner].astype(np.float32), HI[owner].astype(np.float32)
    width = hi32 - lo32
    C32 = CP[owner].astype(np.float32)
    D32 = np.minimum(DP[owner], 3e38).astype(np.float32)
    leak = np.asarray(leaks, dtype=np.float32)[np.arange(B) % R % len(leaks)]
    engine: Any = _NumpyChain.build(net) if device is None else None
    if engine is None:
        from netopt.torch_utils import resolve_device

        dev = resolve_device(device)
        engine = _TorchEngine(net, dev, C32, D32, leak)
        on_cpu = dev.type == "cpu"
    else:
        on_cpu = True

    def out_of_time() -> bool:
        return interrupted() or (time_limit is not None and time.perf_counter() - t0 > time_limit)

    def check64(X: np.ndarray, who: np.ndarray) -> bool:
        """Float64 margins of points ``X`` of problems ``who``; keep each problem's best; True
        once a counterexample holds (for ``stop_at_first``: any; else: every problem's)."""
        nonlocal evals
        X = np.clip(X.astype(np.float64), LO[who], HI[who])
        Y = net.forward(X.reshape(len(X), *shape)).reshape(len(X), -1)
        m = np.max(np.einsum("bko,bo->bk", CP[who], Y) - DP[who], axis=1)
        evals += len(X)
        for i in np.argsort(m):
            j = who[i]
            if m[i] < best_m[j]:
                best_m[j], best_x[j] = float(m[i]), X[i].copy()
        return bool(np.any(best_m <= 0.0)) if stop_at_first else bool(np.all(best_m <= 0.0))

    def per_problem_best(mv: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each problem's start of the smallest float32 margin ``mv`` (points, owners)."""
        order = np.lexsort((mv, owner))
        first = order[np.r_[0, np.nonzero(np.diff(owner[order]))[0] + 1]]
        return X[first], owner[first]

    def run() -> None:
        """The rounds; returns at a counterexample, the time limit or the last round."""
        nonlocal evals
        slot = np.arange(B) % R
        for r in range(max(1, rounds)):
            # per problem: its best point so far, then (first round) the centre and random
            # vertices, then uniform samples up to `restarts`
            X0 = LO[owner] + rng.uniform(size=(B, n)) * (HI - LO)[owner]
            if r == 0:
                X0[slot == 0] = (LO + HI) / 2
                vert = (slot >= 1) & (slot <= R // 4)
                bits = rng.integers(0, 2, size=(int(vert.sum()), n)).astype(bool)
                X0[vert] = np.where(bits, HI[owner[vert]], LO[owner[vert]])
            else:
                again = (slot == 0) & np.isfinite(best_m)[owner]
                X0[again] = best_x[owner[again]]
            if check64(X0, owner):
                return
            x = X0.astype(np.float32)
            for t in range(steps):
                if out_of_time():
                    return
                m, g = engine(x, C32, D32, leak)
                evals += B
                hit = np.nonzero(m <= 0.0)[0]
                # float32 says a counterexample: the float64 interpreter decides at once
                hit = hit[np.argsort(m[hit])[:16]]
                if len(hit) and check64(x[hit], owner[hit]):
                    return
                if (t + 1) % 10 == 0 and check64(*per_problem_best(m, x)):
                    return
                eta = step0 * 0.5 * (1 + math.cos(math.pi * t / steps))
                x = np.clip(x - (eta * width) * np.sign(g), lo32, hi32)
            if out_of_time():
                return
            # every problem's final best in float64 before the next round restarts from it
            m, _ = engine(x, C32, D32, leak, grad=False)
            evals += B
            if check64(*per_problem_best(m, x)):
                return

    with _few_threads(isinstance(engine, _TorchEngine), on_cpu and B * n <= _ONE_THREAD_ENTRIES):
        run()
    return result()


def _default_restarts(n: int) -> int:
    """``clip(2**16 / n, 64, 1024)`` starts for ``n`` inputs: a low-dimensional box (ACAS Xu has
    5 inputs) is cheap to cover densely."""
    return int(np.clip(2**16 // max(n, 1), 64, 1024))


def falsify(
    net: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    *,
    restarts: int | None = None,
    steps: int = 100,
    rounds: int = 4,
    step0: float = 0.2,
    seed: int = 0,
    time_limit: float | None = None,
    device: Any = None,
    leaks: Sequence[float] = LEAKS,
) -> AttackResult:
    """Search ``[lo, hi]`` for ``x`` with ``C f(x) <= d`` (row-wise); see the module doc.

    Parameters
    ----------
    net : netopt.Network
    lo, hi : ndarray
        The box (input shape or flat).
    C, d : ndarray
        ``(k, n_out)`` and ``(k,)``: the constraints a counterexample satisfies.
    restarts : int, optional
        Points descending together (one batch); default ``clip(2**16 / n, 64, 1024)`` for ``n``
        inputs.
    steps : int
        Signed-gradient steps per round.
    rounds : int
        Rounds; each starts from fresh samples plus the best point so far.
    step0 : float
        First step as a fraction of the box's width per coordinate.
    seed : int
    time_limit : float, optional
        Wall seconds; the search stops at the next step past it (or on Ctrl-C).
    device : optional
        A torch device; default: the numpy engine for a chain of affine maps and ReLUs, else
        torch on CUDA when available, else CPU (module doc).
    leaks : sequence of float
        Leaks of the ReLU backward pass, one per start in turn (module doc); ``(0.0,)`` is plain
        PGD on the exact subgradient.

    Returns
    -------
    AttackResult
    """
    return falsify_disjuncts(
        net,
        [(lo, hi, C, d)],
        restarts=restarts,
        steps=steps,
        rounds=rounds,
        step0=step0,
        seed=seed,
        time_limit=time_limit,
        device=device,
        leaks=leaks,
    )[0]


def falsify_disjuncts(
    net: Any,
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    *,
    restarts: int | None = None,
    steps: int = 100,
    rounds: int = 4,
    step0: float = 0.2,
    seed: int = 0,
    time_limit: float | None = None,
    device: Any = None,
    leaks: Sequence[float] = LEAKS,
) -> list[AttackResult]:
    """:func:`falsify` on several ``(lo, hi, C, d)`` problems at once, until one has a
    counterexample.

    The disjuncts of a VNN-LIB property (MNIST's "some class j scores at least the label": one
    disjunct, one row per target class) are attacked in one batch, each start on its own
    disjunct's margin: a targeted attack per class, cheaper together than one after another, and
    a counterexample of the last disjunct is found as fast as one of the first.

    Parameters
    ----------
    problems : sequence of (lo, hi, C, d)
        As :func:`falsify`'s arguments, one tuple per disjunct.
    restarts : int, optional
        Starts per problem; default ``clip(2**16 / (n P), 16, 1024)`` for ``P`` problems of
        ``n`` inputs.
    steps, rounds, step0, seed, time_limit, device, leaks
        As :func:`falsify` (the time limit is for all problems together).

    Returns
    -------
    list of AttackResult
        One per problem, in order; the search stops once any has ``x`` set (the others report
        their best margin so far).
    """
    X, M, evals, secs = _search(
        net,
        problems,
        "falsify",
        restarts=restarts,
        steps=steps,
        rounds=rounds,
        step0=step0,
        seed=seed,
        time_limit=time_limit,
        device=device,
        leaks=leaks,
        stop_at_first=True,
    )
    out = []
    for x, m in zip(X, M, strict=True):
        seen = bool(m < math.inf)  # some point of this problem was evaluated
        out.append(
            AttackResult(x if m <= 0.0 else None, float(m), evals, secs, x if seen else None)
        )
    return out


def falsify_boxes(
    net: Any,
    lo: np.ndarray,
    hi: np.ndarray,
    C: np.ndarray,
    d: np.ndarray,
    *,
    restarts: int = 8,
    steps: int = 20,
    rounds: int = 1,
    step0: float = 0.2,
    seed: int = 0,
    time_limit: float | None = None,
    device: Any = None,
    leaks: Sequence[float] = LEAKS,
) -> BoxAttackResult:
    """A short attack on each of ``B`` sub-boxes of one problem, all in one batch.

    For a branch and bound between rounds: its most promising open boxes (the smallest lower
    bounds of the margin) are where a counterexample most likely is, and a few steps in each box
    either find one (ending the search "sat") or rank the boxes by the best margin seen.

    Parameters
    ----------
    net : netopt.Network
    lo, hi : ndarray
        ``(B, n)`` (or ``(B, *input_shape)``): the boxes.
    C, d : ndarray
        ``(k, n_out)`` and ``(k,)``: the constraints a counterexample satisfies, as
        :func:`falsify`.
    restarts : int
        Starts per box (the centre, vertices, uniform samples).
    steps, rounds, step0, seed, time_limit, device, leaks
        As :func:`falsify`; few steps by default: each box is small and many are attacked.

    Returns
    -------
    BoxAttackResult
        Every box's best point and its float64 margin; the search runs all its steps unless
        the time runs out or every box has a counterexample.
    """
    n_in = int(np.prod(net.input_shape))
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if lo.ndim < 1 or len(lo) == 0 or lo.shape != hi.shape:
        raise InputError(
            f"falsify_boxes: lo and hi must be (B, {n_in}) arrays of one shape with B >= 1 "
            f"(got {lo.shape} and {hi.shape})"
        )
    lo, hi = lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)
    X, M, evals, secs = _search(
        net,
        [(a, b, C, d) for a, b in zip(lo, hi, strict=True)],
        "falsify_boxes",
        restarts=restarts,
        steps=steps,
        rounds=rounds,
        step0=step0,
        seed=seed,
        time_limit=time_limit,
        device=device,
        leaks=leaks,
        stop_at_first=False,
    )
    return BoxAttackResult(X, M, evals, secs)
