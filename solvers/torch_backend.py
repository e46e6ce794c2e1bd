"""The ``torch`` backend: first-order methods, batched over targets and restarts, CPU or GPU.

It solves the first-order formulations' models — :class:`~netopt.formulations.gradient.
GradientModel` (``"gd"``, ``"adam"``, ``"pgd"``, ``"sign_pgd"``) and
:class:`~netopt.formulations.admm.SplitModel` (``"admm"``) — for a batch of problems on one
network at once: row ``(p, k)`` of the batch is restart ``k`` of problem ``p``. It returns one
:class:`~netopt.solvers._base.RawSolution` per problem, its best row's input; the caller
(:func:`netopt.solve.solve`) re-evaluates it with the float64 reference interpreter. A
first-order method proves nothing: the status is ``feasible``, with no bound.

Options
-------
device : str or torch.device
    Default ``"cuda"`` when available, else ``"cpu"``.
dtype : {"float32", "float64"} or torch dtype
    Default float32.
seed : int
    Seeds the random restarts (default 0).
restarts : int
    Rows per problem (default 1): the first starts at ``start`` (or the box center / the L2
    center / 0), the others uniformly in the box.
start : array or list of arrays
    Starting point(s) (input shape).
max_iter, time_limit : int, float
    Iteration and wall-clock limits (the clock starts when the iterations start).
stop_value : float
    Stop once every row's objective is at most this (e.g. 0 for a reachable target).
history_every : int
    Record the histories every this many iterations (default 1).
Gradient methods: ``method`` (``"gradient"`` only), ``lr`` (default 1% of the mean box width,
0.01 without a box), ``decay``, ``betas``, ``tol``, ``patience``.
ADMM: ``rho`` (1), ``order`` (``"backward"``, ``"forward"``, ``"alternating"``, ``"jacobi"``),
``balance`` (True), ``balance_every`` (50), ``mu`` (10), ``tau`` (2), ``eps_abs`` (1e-6), ``eps_rel`` (1e-5),
``cg_iters`` (50), ``cg_tol`` (1e-10), ``newton_iters`` (20), ``eval_every`` (10),
``residual_every`` (10: residuals, stopping test and histories every this many iterations; the
ADMM history keeps every ``history_every``-th of those), ``refresh_every`` (50: exact
:math:`W z` products, which CG otherwise carries along).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from netopt.errors import InputError, OptionError
from netopt.solvers import register
from netopt.solvers._base import Backend, RawSolution, validate_common_options

log = logging.getLogger("netopt")

__all__ = ["TorchBackend", "OPTIONS"]

_GENERAL = (
    "device",
    "dtype",
    "seed",
    "restarts",
    "start",
    "max_iter",
    "time_limit",
    "stop_value",
    "history_every",
    "verbose",
)
_GRADIENT = ("method", "lr", "decay", "betas", "tol", "patience")
_ADMM = (
    "rho",
    "order",
    "balance",
    "balance_every",
    "mu",
    "tau",
    "eps_abs",
    "eps_rel",
    "cg_iters",
    "cg_tol",
    "newton_iters",
    "eval_every",
    "residual_every",
    "refresh_every",
)
#: every option the backend understands, by model type
OPTIONS = {"GradientModel": _GENERAL + _GRADIENT, "SplitModel": _GENERAL + _ADMM}


def resolve_device(device: Any = None):
    """``device`` as a torch device; ``None`` is cuda when available, else cpu."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"device {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r}: torch sees no CUDA device; use device='cpu'")
    return dev


def resolve_dtype(dtype: Any = None):
    """``dtype`` as a torch floating dtype (default float32)."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    table = {
        "float32": torch.float32,
        "float": torch.float32,
        "float64": torch.float64,
        "double": torch.float64,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }
    key = str(dtype).replace("torch.", "")
    if key not in table:
        raise InputError(
            f"dtype must be float32 or float64 (or a torch floating dtype), got {dtype!r}"
        )
    return table[key]


@register("torch")
class TorchBackend(Backend):
    """First-order methods in torch (gradient baselines and ADMM), on CPU or GPU."""

    name = "torch"
    model_types = ("GradientModel", "SplitModel")
    features = frozenset({"first_order", "batch", "gpu"})
    packages = ("torch",)
    pip = "pip install torch (the CPU wheel: pip install torch --index-url https://download.pytorch.org/whl/cpu)"

    def solve(self, model: Any, **opts: Any) -> RawSolution:
        """Solve a one-problem model (see :meth:`solve_batch`)."""
        return self.solve_batch(model, **opts)[0]

    def solve_batch(self, model: Any, **opts: Any) -> list[RawSolution]:
        """Solve every problem of ``model`` at once; one raw solution per problem, in order."""
        self.require()
        self.check_model(model)
        kind = type(model).__name__
        unknown = sorted(set(opts) - set(OPTIONS[kind]))
        if unknown:
            raise OptionError(
                f"backend 'torch': unknown option(s) {', '.join(unknown)} for a {kind}; it "
                f"takes {', '.join(sorted(OPTIONS[kind]))}"
            )
        # the values of the options shared with the exact backends (a NaN or negative time limit
        # would mean no limit at all)
        validate_common_options(
            "backend 'torch'", {k: opts.get(k) for k in ("time_limit", "seed") if k in opts}
        )
        import torch

        from netopt.solvers.firstorder.objective import Objective

        device = resolve_device(opts.get("device"))
        dtype = resolve_dtype(opts.get("dtype"))
        problems = model.problems
        net = problems[0].net
        R = int(opts.get("restarts", 1) or 1)
        if R < 1:
            raise InputError(f"restarts must be >= 1, got {R}")
        rows = np.repeat(np.arange(len(problems)), R)
        X0 = self._starts(problems, R, opts.get("start"), int(opts.get("seed", 0) or 0))
        obj = Objective(problems, rows, dtype, device)
        gm = net.torch_module(dtype=dtype, device=device)
        shape = tuple(net.input_shape)

        def f(x: torch.Tensor) -> torch.Tensor:
            return gm(x.reshape(x.shape[0], *shape)).reshape(x.shape[0], -1)

        x0 = torch.tensor(X0, dtype=dtype, device=device)
        max_iter = int(opts.get("max_iter", 1000))
        tl = opts.get("time_limit")
        common = {
            "max_iter": max_iter,
            "stop_value": opts.get("stop_value"),
            "history_every": int(opts.get("history_every", 1)),
        }
        if kind == "SplitModel":
            from netopt.solvers.firstorder.admm import ORDERS, ADMMOptions, ADMMRunner

            order = opts.get("order", "backward")
            if order not in ORDERS:
                raise InputError(f"order must be one of {ORDERS}, got {order!r}")
            aopts = ADMMOptions(**common, **{k: opts[k] for k in _ADMM if k in opts})
            runner = ADMMRunner(model, obj, aopts, dtype, device)
            deadline = None if tl is None else time.perf_counter() + float(tl)
            with torch.no_grad():
                out = runner.run(x0, f, deadline)
            method = f"admm ({aopts.order})"
        else:
            from netopt.solvers.firstorder.gradient import METHODS, GradientOptions, run_gradient

            method = opts.get("method", model.method)
            if method not in METHODS:
                raise InputError(f"method must be one of {METHODS}, got {method!r}")
            lr = opts.get("lr")
            if lr is None:
                w = (obj.hi - obj.lo)[torch.isfinite(obj.hi - obj.lo)]
                lr = 0.01 * float(w.mean()) if w.numel() else 0.01
            gopts = GradientOptions(
                method=method,
                lr=float(lr),
                **common,
                **{k: opts[k] for k in ("decay", "betas", "tol", "patience") if k in opts},
            )
            deadline = None if tl is None else time.perf_counter() + float(tl)
            out = run_gradient(f, obj, x0, gopts, deadline)
        return self._raw(problems, R, out, method, device, dtype, torch.__version__)

    @staticmethod
    def _starts(problems, R: int, start: Any, seed: int) -> np.ndarray:
        """(P * R, n) starting rows: the user's points first, then uniform samples."""
        from netopt.problems import CrossEntropy

        out = []
        for p in problems:
            # one generator per problem, seeded alike: a problem gets the same starts whether it
            # is solved alone or in a batch
            rng = np.random.default_rng(seed)
            dom = p.domain
            user = []
            if start is not None:
                s = np.asarray(start, dtype=np.float64) if not isinstance(start, list) else None
                if s is not None and s.ndim == len(dom.shape):
                    user = [s]
                else:
                    user = [np.asarray(u, dtype=np.float64) for u in start]
                for u in user:
                    if u.size != dom.lo.size:
                        raise InputError(
                            f"start has {u.size} entries; the network input has {dom.lo.size}"
                        )
            if dom.bounded:
                center = (dom.lo + dom.hi) / 2
            elif isinstance(p, CrossEntropy):
                center = p.x_ref
            else:
                center = np.zeros(dom.shape)
            pts = [u.reshape(dom.shape) for u in user[:R]]
            if not pts:
                pts.append(center)
            if len(pts) < R:
                pts.extend(list(dom.sample(R - len(pts), rng)))
            out.extend(dom.project(q).reshape(-1) for q in pts)
        return np.stack(out)

    @staticmethod
    def _raw(problems, R, out, method, device, dtype, version) -> list[RawSolution]:
        import torch

        vals = out["value"].detach().cpu().to(torch.float64).numpy()
        X = out["x"].detach().cpu().to(torch.float64).numpy()
        dead = out.get("dead", {})
        sols = []
        for p_i, p in enumerate(problems):
            rows = np.arange(p_i * R, (p_i + 1) * R)
            v = vals[rows]
            k = int(rows[np.argmin(np.where(np.isfinite(v), v, np.inf))])
            finite = bool(np.isfinite(vals[k]) and np.all(np.isfinite(X[k])))
            stop = out["status"]
            all_dead = all(int(r) in dead for r in rows)
            failed = stop in ("nan", "diverged") or all_dead
            message = out["message"]
            hist = {
                key: (h if key == "iteration" else h[:, k]) for key, h in out["history"].items()
            }
            extra = {
                "method": method,
                "stop": "nan" if all_dead and stop not in ("nan", "diverged") else stop,
                "iterations": out["iterations"],
                "device": str(device),
                "dtype": str(dtype).replace("torch.", ""),
                "restarts": R,
                "restart_objectives": v.tolist(),
                "history": hist,
            }
            if failed:
                its = [dead[int(r)] for r in rows if int(r) in dead]
                extra["diverged_at"] = min(its) if its else out["iterations"]
            sign = 1.0 if p.sense == "min" else -1.0
            sols.append(
                RawSolution(
                    status="error" if failed else "feasible",
                    x=X[k].reshape(p.domain.shape) if finite else None,
                    objective=sign * float(vals[k]) if finite else None,
                    seconds=out["seconds"],
                    message=message,
                    solver_version=f"torch {version}",
                    extra=extra,
                )
            )
        return sols
