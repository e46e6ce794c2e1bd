"""Run a suite: every task in its own child process, results into the store, resumable.

Each task runs in a fresh process (``spawn`` by default: no state leaks between tasks, and a
crash or a hang takes only that task down). The parent alone writes to the database, one
transaction per state change, so killing the run at any moment loses at most the tasks then
running; a rerun resets them to pending and runs only what is not finished.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from netopt.bench.store import Store
from netopt.bench.suite import Family, Suite, Task, folder_files, load_suite, parse_suite

__all__ = ["run_suite", "make_instance"]


def make_instance(fam: Family, index: int, name: str):
    """Generate (or, for a folder, read) instance ``index`` of ``fam``."""
    from netopt import instances as I  # noqa: N812

    p = fam.params
    seed = int(p.get("seed", 0)) + index
    if fam.kind == "mlp":
        return I.mlp_instance(p["widths"], seed, target=p["target"], name=name)
    if fam.kind == "expansive":
        return I.expansive_instance(p["widths"], seed, noise=float(p["noise"]), name=name)
    if fam.kind == "sat3":
        sat = {"sat": True, "unsat": False, "any": None}[p["kind"]]
        n = int(p["n"])
        cnf, assignment = I.random_formula(n, round(p["ratio"] * n), sat, seed)
        return I.sat3_instance(cnf, p["variant"], name=name, assignment=assignment)
    return I.load_instance(folder_files(fam)[index])


def _watch_parent() -> None:
    # a child whose runner was killed must not run on for its whole time limit
    ppid = os.getppid()

    def loop() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != ppid:
                os._exit(1)

    threading.Thread(target=loop, daemon=True).start()


def _child(conn, job: dict[str, Any]) -> None:
    """Run one job in this (child) process and send back ``(status, summary)``."""
    _watch_parent()
    # tasks run side by side: one thread each keeps them from fighting over the cores
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if job.get("memory_mb"):
        import resource

        lim = int(job["memory_mb"] * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    t0 = time.perf_counter()
    try:
        from netopt.instances import load_instance

        prob = load_instance(job["instance"]).problem
        opts = dict(job["options"])
        fn = job.get("callable")
        if fn is not None:
            res = fn(prob, seed=job["seed"], time_limit=job["time_limit"], **opts)
        else:
            from netopt.bench.suite import method_options

            allowed = method_options(job["formulation"])
            for k, v in (("seed", job["seed"]), ("time_limit", job["time_limit"])):
                if allowed is None or k in allowed:
                    opts[k] = v
            res = prob.solve(job["formulation"], **opts)
        out = {
            "status": str(res.status),
            "objective": res.objective,
            "bound": res.bound,
            "gap": res.gap,
            "message": res.message,
        }
        status = "done"
    except MemoryError:
        status, out = "crashed", {"reason": "MemoryError (memory limit reached)"}
    except Exception as e:  # a method's error is a result of the benchmark, not of the runner
        status = "failed"
        out = {"reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5)}
    out["seconds"] = time.perf_counter() - t0
    conn.send((status, out))
    conn.close()


def _gap(objective: float | None, optimum: float | None) -> float | None:
    if objective is None or optimum is None:
        return None
    return (objective - optimum) / max(1.0, abs(optimum))


def run_suite(
    suite: str | os.PathLike | Suite,
    db_path: str | os.PathLike,
    workers: int = 2,
    progress: Callable[[dict[str, Any]], None] | None = None,
    *,
    extra_methods: dict[str, Callable] | None = None,
    context: str = "spawn",
) -> dict[str, int]:
    """Run (or resume) every unfinished task of ``suite``; returns the final status counts.

    Parameters
    ----------
    suite : path or Suite
        A suite file or a parsed :class:`~netopt.bench.suite.Suite`.
    db_path : path
        The SQLite store (created when missing). Instance files go into the folder
        ``<db stem>_instances`` beside it.
    workers : int
        Tasks run at once.
    progress : callable, optional
        Called with ``{"done", "failed", "running", "pending", "eta"}`` (failed counts failed,
        timeout and crashed; eta in seconds or None) whenever something changes.
    extra_methods : dict, optional
        ``{name: callable}`` methods beyond the registered formulations (module-level functions,
        as the child process imports them by name).
    context : str
        The multiprocessing start method.

    Raises
    ------
    InputError
        A bad suite, or a database of a newer schema (left untouched).
    """
    if isinstance(suite, Suite):
        s = suite
    elif str(suite).lstrip().startswith(("[", "#", "name", "seeds")) and not Path(suite).exists():
        s = parse_suite(str(suite), extra_methods=extra_methods)
    else:
        s = load_suite(suite, extra_methods)
    extra = dict(extra_methods or {})
    db = Path(db_path)
    store = Store(db)
    try:
        return _run(s, store, db, workers, progress, extra, context)
    finally:
        store.close()


def _run(s, store, db, workers, progress, extra, context) -> dict[str, int]:
    import json

    store.reset_running()
    tasks: list[Task] = s.tasks()
    inst_dir = db.parent / f"{db.stem}_instances"
    paths: dict[str, str] = {}
    for t in tasks:
        ik = t.instance_key
        if ik in paths:
            continue
        row = store.instance(ik)
        if row is None or not Path(row["path"]).exists():
            inst = make_instance(t.family, t.index, ik)
            if t.family.kind == "folder":  # read in place: a folder is its own cache
                path = str(folder_files(t.family)[t.index])
            else:
                path = str(inst.save(inst_dir)["json"])
            gt = {k: v for k, v in inst.ground_truth.items() if k != "x_star"}
            store.add_instance(ik, t.family.kind, t.family.params, t.index, path, gt)
            row = store.instance(ik)
        paths[ik] = row["path"]
        if store.ground_truth(ik) is None and row["ground_truth"].get("optimum") is not None:
            g = row["ground_truth"]
            store.set_ground_truth(ik, float(g["optimum"]), None, "known", g.get("source", ""))
    store.add_tasks(
        [
            (
                t.key,
                t.instance_key,
                t.method.name,
                t.method.formulation,
                json.dumps(t.method.options, sort_keys=True),
                t.seed,
                t.time_limit,
            )
            for t in tasks
        ]
    )
    by_key = {t.key: t for t in tasks}
    gt_limit = float(s.ground_truth_time_limit or max(s.time_limits))
    # ground-truth MILPs first: their optima give the tasks' gaps
    queue: list[tuple[str, dict]] = []
    for ik, path in paths.items():
        if store.ground_truth(ik) is None:
            job = {"instance": path, "formulation": "milp", "options": {}, "seed": 0}
            queue.append((f"gt:{ik}", job | {"time_limit": gt_limit}))
    for key in store.pending(list(by_key)):
        t = by_key[key]
        job = {
            "instance": paths[t.instance_key],
            "formulation": t.method.formulation,
            "options": t.method.options,
            "seed": t.seed,
            "time_limit": t.time_limit,
            "callable": extra.get(t.method.formulation),
        }
        queue.append((key, job))
    ctx = mp.get_context(context)
    running: dict[Any, tuple[str, dict, Any, float, int | None]] = {}
    durations: list[float] = []

    def report() -> None:
        if progress is None:
            return
        c = store.counts()
        left = c["pending"] + c["running"]
        eta = None
        if durations:
            eta = sum(durations) / len(durations) * left / max(1, workers)
        failed = c["failed"] + c["timeout"] + c["crashed"]
        progress(
            {
                "done": c["done"],
                "failed": failed,
                "running": c["running"],
                "pending": c["pending"],
                "eta": eta,
            }
        )

    def record(key: str, job: dict, status: str, out: dict, attempt: int | None) -> None:
        secs = float(out.get("seconds", 0.0))
        if key.startswith("gt:"):
            ok = status == "done" and out.get("status") == "optimal"
            store.set_ground_truth(
                key[3:],
                out.get("objective") if ok else None,
                out.get("bound"),
                out.get("status", status),
                "milp",
                secs,
            )
            return
        g = store.ground_truth(by_key[key].instance_key)
        if status == "done" and g is not None:
            out["gap_to_optimum"] = _gap(out.get("objective"), g["optimum"])
        durations.append(secs)
        store.finish(key, attempt, status, out, secs)

    report()
    while queue or running:
        while queue and len(running) < workers:
            key, job = queue.pop(0)
            attempt = None if key.startswith("gt:") else store.start(key)
            recv, send = ctx.Pipe(duplex=False)
            job = job | {"memory_mb": s.memory_limit_mb}
            proc = ctx.Process(target=_child, args=(send, job), daemon=True)
            proc.start()
            send.close()  # the child holds the only writer: EOF on recv means it died
            running[recv] = (key, job, proc, time.monotonic(), attempt)
            report()
        wait(list(running) + [r[2].sentinel for r in running.values()], timeout=0.2)
        now = time.monotonic()
        for recv in list(running):
            key, job, proc, t0, attempt = running[recv]
            deadline = t0 + job["time_limit"] + s.grace
            status = None
            if recv.poll():
                try:
                    status, out = recv.recv()
                except (EOFError, OSError):
                    status = "crashed"
                    proc.join(5)
                    out = {"reason": f"the process died (exit code {proc.exitcode})"}
            elif not proc.is_alive():
                status = "crashed"
                out = {"reason": f"the process died (exit code {proc.exitcode})"}
            elif now > deadline:
                proc.kill()
                status = "timeout"
                out = {
                    "reason": f"killed after {now - t0:.1f} s (limit {job['time_limit']} s "
                    f"+ {s.grace} s grace)"
                }
            if status is None:
                continue
            out.setdefault("seconds", now - t0)
            proc.join(5)
            recv.close()
            del running[recv]
            record(key, job, status, out, attempt)
            report()
    # a ground truth that arrived after some of its tasks: fill in their gaps now
    for r in store.results():
        res = r["result"]
        if r["status"] == "done" and res is not None and res.get("gap_to_optimum") is None:
            g = store.ground_truth(r["instance"])
            if g is not None and g["optimum"] is not None:
                res["gap_to_optimum"] = _gap(res.get("objective"), g["optimum"])
                store.update_result(r["key"], res)
    report()
    return store.counts()
