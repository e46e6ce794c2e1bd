"""Batched first-order methods: one model for many problems on one network, run at once in torch.

ADMM (:mod:`netopt.formulations.admm`) and the gradient methods
(:mod:`netopt.formulations.gradient`) build a model of every problem
(:meth:`BatchedFormulation.build`) and run their own torch iterations (CPU or CUDA, the
``device`` option) on every problem and restart as one batch: row ``(p, k)`` of the batch is
restart ``k`` of problem ``p``. They take no backend. They claim nothing: each problem's best
row's input is re-checked by the pipeline with the float64 reference interpreter, status
``feasible``, or ``error`` when every row of the problem produced NaN/inf or diverged
(``extra["diverged_at"]`` is the iteration; ``x`` is the best finite point seen before, if any).

Options (every batched method)
------------------------------
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

Each method adds the options of its iterations (:attr:`BatchedFormulation.engine_options`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from netopt.errors import InputError
from netopt.formulations._base import (
    Formulation,
    array_like,
    no_backend,
    torch_device,
    torch_dtype,
    verbosity,
)
from netopt.options import Check, Option, Schema, integer, number
from netopt.problems import CrossEntropy, Inversion, Problem
from netopt.result import Outcome
from netopt.solvers._base import COMMON
from netopt.torch_utils import (
    batched_starts,
    require_torch,
    resolve_device,
    resolve_dtype,
    torch_objective,
)

__all__ = ["BatchedFormulation", "check_batch", "GENERAL_OPTIONS", "GENERAL_CHECKS"]

#: the options every batched method takes (besides its :attr:`~BatchedFormulation.engine_options`)
GENERAL_OPTIONS = (
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
_COMMON = {o.name: o.check for o in COMMON}
#: the validators of :data:`GENERAL_OPTIONS` (:mod:`netopt.options`)
GENERAL_CHECKS: dict[str, Check] = {
    "device": torch_device,
    "dtype": torch_dtype,
    "seed": _COMMON["seed"],
    "restarts": integer(low=0),  # 0 (or None) means one row per problem
    "start": array_like,
    "max_iter": integer(low=0, none=False),
    "time_limit": _COMMON["time_limit"],
    "stop_value": number(),
    "history_every": integer(low=1, none=False),
    "verbose": verbosity,
}
#: the first-order methods' dtype when none is asked for (their results are re-checked in float64)
DEFAULT_DTYPE = "float32"


class BatchedFormulation(Formulation):
    """A first-order method: :meth:`build` one model for all problems, iterate them as a batch.

    Subclasses implement :meth:`build` and :meth:`iterate` (their torch iterations, imported
    lazily) and list their own options in :attr:`engine_options`.
    """

    batched: ClassVar[bool] = True
    #: the options of the method's iterations (besides :data:`GENERAL_OPTIONS`)
    engine_options: ClassVar[tuple[str, ...]] = ()
    #: the validator of each of :attr:`engine_options` (:mod:`netopt.options`)
    engine_checks: ClassVar[dict[str, Check]] = {}

    def build(self, problems: Any, bounds: Any = None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def iterate(
        self,
        model: Any,
        obj: Any,
        x0: Any,
        f: Any,
        common: dict[str, Any],
        options: dict[str, Any],
        dtype: Any,
        device: Any,
    ) -> tuple[dict[str, Any], str]:  # pragma: no cover - abstract
        """Run the iterations on the rows ``x0``: their result dict and the method's label.

        ``obj`` is the rows' :class:`~netopt.torch_utils.TorchObjective`, ``f`` the network on
        flat rows, ``common`` the iteration limits every method shares (``max_iter``,
        ``stop_value``, ``history_every``).
        """
        raise NotImplementedError

    @classmethod
    def options(cls) -> Schema:
        # every option is typed: a bad value is one OptionError before any work, never a
        # TypeError / ValueError from deep inside the iterations
        checks = {**GENERAL_CHECKS, **cls.engine_checks}
        untyped = [k for k in GENERAL_OPTIONS + cls.engine_options if k not in checks]
        if untyped:
            raise RuntimeError(f"method '{cls.name}': options without a validator: {untyped}")
        return Schema(
            f"method '{cls.name}'",
            [Option(k, checks[k]) for k in GENERAL_OPTIONS + cls.engine_options],
        )

    def run_batch(
        self, problems: Sequence[Problem], solver: str | None = None, **options: Any
    ) -> list[Outcome]:
        no_backend(self.name, solver)
        self.options().parse(options)  # one OptionError naming the option and the valid names
        t0 = time.perf_counter()
        plist = list(problems)
        require_torch(f"method '{self.name}'")
        model = self.build(plist)
        t1 = time.perf_counter()
        import torch

        device = resolve_device(options.get("device"))
        dtype = resolve_dtype(options.get("dtype", DEFAULT_DTYPE))
        net = plist[0].net
        R = int(options.get("restarts", 1) or 1)
        if R < 1:
            raise InputError(f"restarts must be >= 1, got {R}")
        rows = np.repeat(np.arange(len(plist)), R)
        X0 = batched_starts(plist, R, options.get("start"), int(options.get("seed", 0) or 0))
        obj = torch_objective(plist, rows, dtype, device)
        gm = net.torch_module(dtype=dtype, device=device)
        shape = tuple(net.input_shape)

        def f(x: torch.Tensor) -> torch.Tensor:
            return gm(x.reshape(x.shape[0], *shape)).reshape(x.shape[0], -1)

        x0 = torch.tensor(X0, dtype=dtype, device=device)
        common = {
            "max_iter": int(options.get("max_iter", 1000)),
            "stop_value": options.get("stop_value"),
            "history_every": int(options.get("history_every", 1)),
        }
        out, method = self.iterate(model, obj, x0, f, common, options, dtype, device)
        t2 = time.perf_counter()
        timings = {
            "build": t1 - t0,
            "solve": out["seconds"],
            "setup": max(0.0, (t2 - t1) - out["seconds"]),
        }
        return self._outcomes(
            plist, R, out, method, device, dtype, torch.__version__, model.size(), timings
        )

    def _outcomes(
        self,
        problems: list[Problem],
        R: int,
        out: dict[str, Any],
        method: str,
        device: Any,
        dtype: Any,
        version: str,
        model_size: dict[str, int],
        timings: dict[str, float],
    ) -> list[Outcome]:
        """One Outcome per problem: its best row's input (NaN / divergence: an error)."""
        import torch

        vals = out["value"].detach().cpu().to(torch.float64).numpy()
        X = out["x"].detach().cpu().to(torch.float64).numpy()
        dead = out.get("dead", {})
        outcomes = []
        for p_i, p in enumerate(problems):
            rows = np.arange(p_i * R, (p_i + 1) * R)
            v = vals[rows]
            k = int(rows[np.argmin(np.where(np.isfinite(v), v, np.inf))])
            finite = bool(np.isfinite(vals[k]) and np.all(np.isfinite(X[k])))
            stop = out["status"]
            all_dead = all(int(r) in dead for r in rows)
            failed = stop in ("nan", "diverged") or all_dead
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
            outcomes.append(
                Outcome(
                    [X[k].reshape(p.domain.shape)] if finite else [],
                    "error" if failed else "interrupted" if stop == "interrupted" else "none",
                    formulation=self.name,
                    solver="torch",
                    solver_version=f"torch {version}",
                    message=out["message"],
                    extra=extra,
                    model_size=dict(model_size),
                    solver_objective=sign * float(vals[k]) if finite else None,
                    timings=dict(timings),
                )
            )
        return outcomes


def check_batch(problem: Problem | list[Problem], formulation: str) -> list[Problem]:
    """The problems of one batch: one network, one kind, a box domain without extras.

    Shared by every first-order formulation (the batch rows differ in targets, labels, cost
    vectors and boxes only).
    """
    problems = [problem] if isinstance(problem, Problem) else list(problem)
    if not problems:
        raise InputError(f"formulation '{formulation}': no problem given")
    p0 = problems[0]
    for p in problems:
        if p.net is not p0.net:
            raise InputError(
                f"formulation '{formulation}': a batch must share one network "
                f"({p.net.source.name} vs {p0.net.source.name})"
            )
        if type(p) is not type(p0):
            raise InputError(
                f"formulation '{formulation}': a batch must hold one problem kind "
                f"({type(p).__name__} vs {type(p0).__name__})"
            )
        if isinstance(p, Inversion) and p.norm != p0.norm:
            raise InputError(f"formulation '{formulation}': a batch must share one norm")
        if isinstance(p, CrossEntropy) and p.l2 != p0.l2:
            raise InputError(f"formulation '{formulation}': a batch must share one l2 weight")
        if getattr(p, "sense", "min") != p0.sense:
            raise InputError(f"formulation '{formulation}': a batch must share one sense")
        d = p.domain
        if d.A is not None or d.integer is not None:
            raise InputError(
                f"formulation '{formulation}': the domain has "
                f"{'linear constraints A x <= b' if d.A is not None else 'integer coordinates'}, "
                "which first-order methods cannot project onto; use prob.solve('milp')"
            )
    return problems
