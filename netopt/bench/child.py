"""One benchmark job, run as ``python -m netopt.bench.child JOB.json OUT.json``.

The job runs in a fresh interpreter so that nothing leaks between tasks and a crash, a hang or
an exhausted memory limit takes down only this process. The outcome ``{"outcome": status,
"result": {...}}`` is written to ``OUT.json`` atomically (a temporary file, then a rename): a
process killed midway leaves no half-written result, which the parent reads as a crash.

``seconds`` times the method's call alone (after the instance is loaded and torch imported).
The result holds what the report needs and nothing bulky: the solver status, the objective
(recomputed in float64 by :meth:`~netopt.problems.Problem.solve`), the solver-attested bound,
the relative distance to the instance's planted input, and a trace of the best objective over
time when the method keeps a history.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import threading
import time
import traceback
from typing import Any

import numpy as np

#: points kept in a result's trace (the history is thinned to this many)
TRACE_POINTS = 100


def _watch_parent() -> None:
    # a job whose runner was killed must not run on for its whole time limit
    ppid = os.getppid()

    def loop() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != ppid:
                os._exit(1)

    threading.Thread(target=loop, daemon=True).start()


def trace_of(res: Any, seconds: float) -> list[list[float]] | None:
    """``[[t, best objective so far], ...]`` from a first-order method's per-iteration history.

    The history counts iterations, not seconds; iteration ``i`` of ``I`` is placed at
    ``t = t_0 + (i / I) (t_1 - t_0)``, where ``[t_0, t_1]`` is the solver's part of the job
    (iterations of one method cost about the same, so this is the time to within that).
    """
    hist = res.extra.get("history") if isinstance(res.extra, dict) else None
    if not isinstance(hist, dict) or "iteration" not in hist or "objective" not in hist:
        return None
    its = np.asarray(hist["iteration"], dtype=float).ravel()
    obj = np.asarray(hist["objective"], dtype=float)
    if obj.ndim != 1 or its.size == 0 or its.size != obj.size:
        return None
    total = float(res.extra.get("iterations") or its[-1] or 1.0)
    solve = float(res.timings.get("solve", seconds))
    t0 = max(0.0, seconds - solve)
    best = np.minimum.accumulate(np.where(np.isfinite(obj), obj, np.inf))
    keep = np.unique(np.linspace(0, its.size - 1, min(TRACE_POINTS, its.size)).round().astype(int))
    return [
        [t0 + float(its[k]) / total * solve, float(best[k])] for k in keep if np.isfinite(best[k])
    ]


def _warm_up(form: str) -> None:
    """Import what the method will import (torch, for every method but a model formulation)."""
    from netopt import formulations

    if ":" in form or form not in formulations.available():
        return
    F = formulations.get(form)
    from netopt.formulations._model import ModelFormulation

    if not issubclass(F, ModelFormulation):
        try:
            import torch  # noqa: F401
        except ImportError:
            pass


def run(job: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Run ``job`` in this process; returns ``(outcome, result)``."""
    from netopt.bench.methods import load_callable, method_options
    from netopt.instances import load_instance

    t0 = time.perf_counter()
    try:
        inst = load_instance(job["instance"])
        prob = inst.problem
        opts = dict(job["options"])
        form = job["formulation"]
        _warm_up(form)
        # the clock times the method alone: not the interpreter's start, the imports or the
        # instance's loading, which every method pays alike
        t0 = time.perf_counter()
        if job.get("callable") or ":" in form:
            fn = load_callable(job.get("callable") or form)
            if "instance" in inspect.signature(fn).parameters:
                opts["instance"] = inst
            res = fn(prob, seed=job["seed"], time_limit=job["time_limit"], **opts)
        else:
            allowed = method_options(form)
            for k, v in (("seed", job["seed"]), ("time_limit", job["time_limit"])):
                if allowed is None or k in allowed:
                    opts[k] = v
            res = prob.solve(form, **opts)
        seconds = time.perf_counter() - t0
        out: dict[str, Any] = {
            "status": str(res.status),
            "objective": res.objective,
            "bound": res.bound,
            "gap": res.gap,
            "message": res.message,
        }
        x_star = inst.ground_truth.get("x_star")
        if x_star is not None and res.x is not None:
            xs = np.asarray(x_star, dtype=float).ravel()
            x = np.asarray(res.x, dtype=float).ravel()
            if x.shape == xs.shape:
                out["dist_to_planted"] = float(
                    np.linalg.norm(x - xs) / max(float(np.linalg.norm(xs)), 1e-12)
                )
        trace = trace_of(res, seconds)
        if trace:
            out["trace"] = trace
        outcome = "done"
    except MemoryError:
        outcome, out = "crashed", {"reason": "MemoryError (memory limit reached)"}
    except Exception as e:  # a method's error is a result of the benchmark, not of the runner
        outcome = "failed"
        out = {"reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5)}
    out["seconds"] = time.perf_counter() - t0
    return outcome, out


def main(argv: list[str]) -> int:
    job_path, out_path = argv
    _watch_parent()
    with open(job_path) as fh:
        job = json.load(fh)
    if job.get("memory_mb"):
        import resource

        lim = int(job["memory_mb"] * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    outcome, out = run(job)
    tmp = out_path + ".part"
    with open(tmp, "w") as fh:
        json.dump({"outcome": outcome, "result": out}, fh, default=str)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
