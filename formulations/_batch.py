"""Batched formulations: one model for many problems on one network, run at once on a backend.

ADMM and the gradient methods build a model of every problem (:meth:`BatchedFormulation.build`),
and the first-order backend (``"torch"``, CPU or CUDA) solves every problem and restart as one
batch. They claim nothing: each problem's best point is re-checked by the pipeline, status
``feasible``, or ``error`` when every row of the problem produced NaN/inf or diverged
(``extra["diverged_at"]`` is the iteration; ``x`` is the best finite point seen before, if any).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from netopt.formulations._base import Formulation
from netopt.options import Option, Schema
from netopt.problems import Problem
from netopt.result import Outcome

__all__ = ["BatchedFormulation"]


class BatchedFormulation(Formulation):
    """A first-order method: :meth:`build` one model for all problems, solve them as a batch."""

    default_backend: ClassVar[str | None] = "torch"
    batched: ClassVar[bool] = True

    def build(self, problems: Any, bounds: Any = None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def options(cls) -> Schema:
        from netopt.solvers._base import COMMON
        from netopt.solvers.torch_backend import OPTIONS

        # the torch backend checks the rest of its options' values itself
        typed = {o.name: o for o in COMMON if o.name in ("time_limit", "seed")}
        return Schema(
            f"method '{cls.name}'", [typed.get(k, Option(k)) for k in OPTIONS[cls.model_type]]
        )

    def run_batch(
        self, problems: Sequence[Problem], solver: str | None = None, **options: Any
    ) -> list[Outcome]:
        from netopt import solvers

        t0 = time.perf_counter()
        plist = list(problems)
        name = solver or self.default_backend
        B = solvers.get(name)
        B.require()
        model = self.build(plist)
        B.check_model(model)
        t1 = time.perf_counter()
        backend = B()
        raws = (
            backend.solve_batch(model, **options)
            if hasattr(backend, "solve_batch")
            else [backend.solve(model, **options)]
        )
        t2 = time.perf_counter()
        return [
            Outcome(
                [] if raw.x is None else [raw.x],
                "error" if raw.status == "error" else "none",
                formulation=self.name,
                solver=name,
                solver_version=raw.solver_version,
                message=raw.message,
                extra=dict(raw.extra),
                model_size=model.size(),
                solver_objective=raw.objective,
                timings={
                    "build": t1 - t0,
                    "solve": raw.seconds,
                    "setup": max(0.0, (t2 - t1) - raw.seconds),
                },
            )
            for raw in raws
        ]
