"""Run a suite: every task in its own process, results into the store, resumable.

Each task runs in a fresh Python process (:func:`~netopt.bench.executors.run_job`: nothing leaks
between tasks, and a crash or a hang takes only that task down), on this machine or on a Dask
cluster. The runner alone writes to the database, one transaction per state change, so killing
the run at any moment loses at most the tasks then running; a rerun resets them to pending and
runs only what is not finished.

A run holds an exclusive lock on the store's file itself (:func:`_lock`, keyed on the resolved
path), so no two runs share a store whatever names they reach it by, and it first puts back in
order the rows it cannot read (:meth:`~netopt.bench.store.Store.repair`), warning about each.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netopt.bench.executors import check_executor, make_executor
from netopt.bench.families import FAMILIES, folder_files
from netopt.bench.store import Store, store_file
from netopt.bench.suite import Family, Suite, Task, load_suite, parse_suite
from netopt.errors import InputError

__all__ = ["run_suite", "make_instance"]

log = logging.getLogger("netopt")
#: repaired rows named in warnings (more are counted)
_WARN_LINES = 20


def make_instance(fam: Family, index: int, name: str, workdir: Path | None = None):
    """Instance ``index`` of ``fam`` (its registered maker: :mod:`netopt.bench.families`);
    ``workdir`` is where the instance will be saved."""
    spec = FAMILIES.get(fam.kind)
    try:
        return spec.make(fam.params, index, name, Path(workdir) if workdir else Path("."))
    except InputError as e:
        raise InputError(f"family {fam.label} {fam.params}: {e}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(f"family {fam.label} {fam.params}: bad parameter ({e})") from None


def _number(v: Any) -> float | None:
    """``v`` as a float when it is a number (not a bool, not text a store row may hold)."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _gap(objective: Any, optimum: Any) -> float | None:
    # values from the store: a damaged one is no number, and gives no gap rather than a crash
    objective, optimum = _number(objective), _number(optimum)
    if objective is None or optimum is None:
        return None
    return (objective - optimum) / max(1.0, abs(optimum))


def run_suite(
    suite: str | os.PathLike | Suite,
    db_path: str | os.PathLike,
    workers: int = 2,
    progress: Callable[[dict[str, Any]], None] | None = None,
    *,
    executor: str = "local",
    scheduler: str | None = None,
    retry: bool = False,
    extra_methods: dict[str, Callable] | None = None,
    start: str = "forkserver",
) -> dict[str, int]:
    """Run (or resume) every unfinished task of ``suite``; returns the final status counts.

    Parameters
    ----------
    suite : path, str or Suite
        A suite file, a suite's TOML text (several lines) or a parsed
        :class:`~netopt.bench.suite.Suite`.
    db_path : path
        The SQLite store (created when missing). Instance files go into the folder
        ``<db stem>_instances`` beside it.
    workers : int
        Tasks run at once (with ``executor="dask"`` and a scheduler: the cluster's threads).
    progress : callable, optional
        Called with ``{"done", "failed", "running", "pending", "total", "ground_truth_left",
        "eta"}`` (failed counts failed, timeout and crashed; running counts the ground-truth
        MILPs too; eta in seconds or None) whenever something changes.
    executor : {"local", "dask"}
        A local pool, or Dask distributed (``scheduler``: its address; None: a LocalCluster).
    retry : bool
        Run again the tasks that failed, timed out or crashed (their earlier attempts stay in
        the attempts log).
    start : {"forkserver", "subprocess"}
        How the local executor starts a task's process: forked from a server with netopt and
        torch imported (default), or a new interpreter (see
        :func:`~netopt.bench.executors.run_job`).
    extra_methods : dict, optional
        ``{name: function}`` methods beyond the registered formulations; module-level
        functions, which the task's process imports by name.

    Raises
    ------
    InputError
        A bad suite; a database of a newer schema, a damaged one or one with several names
        (each left untouched); or another run on the same database file.
    """
    if isinstance(suite, Suite):
        s = suite
    elif isinstance(suite, str) and "\n" in suite:  # the suite's text itself
        s = parse_suite(str(suite), extra_methods=extra_methods)
    else:
        s = load_suite(suite, extra_methods)
    extra = {k: f"{f.__module__}:{f.__qualname__}" for k, f in (extra_methods or {}).items()}
    check_executor(executor, scheduler)
    shown = Path(db_path)
    db = store_file(shown)  # the file itself: every name of it is one store
    # locked before the store is opened: a refused run must not even migrate it
    lock = _lock(db, shown)
    store = None
    try:
        store = Store(db, name=shown)  # its messages name the store as the user did
        tasks, paths = _prepare(s, store, db, retry)
        ex = make_executor(executor, workers, scheduler, start)
        try:
            counts = _run(s, tasks, paths, store, ex, progress, extra)
        except BaseException:  # interrupted (Ctrl-C): the running tasks rerun on resume
            ex.close(kill=True)
            raise
        ex.close()
        return counts
    finally:
        if store is not None:
            store.close()
        if lock is not None:
            lock.close()  # releases the lock, after SQLite has let go of the file


def _lock(db: Path, shown: Path | None = None):
    """Hold an exclusive lock on ``<db>.lock`` for the run, or refuse to start.

    Two runs on one database would run the same pending tasks twice, and each would reset the
    other's running tasks at its start; the lock makes a second run stop with a clear message.
    The operating system releases it when the process ends, however it ends.

    ``db`` is the resolved file (:func:`~netopt.bench.store.store_file`), so a symlink, a
    relative path or a path through ``..`` takes the same lock as the file's own name; a second
    hard link is refused before this. The lock is a file of its own, not the database: ``flock``
    on the database's descriptor would have to be closed while SQLite still holds its POSIX
    locks on the file, and closing any descriptor of a file drops all of a process's POSIX locks
    on it (and on NFS ``flock`` is itself a POSIX lock, which SQLite's would then overwrite).
    A lock file beside the database also follows the database through a bind mount or a
    case-insensitive file system, since it is reached by the same folder.
    """
    shown = shown or db
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return None
    path = db.with_name(db.name + ".lock")
    try:
        fh = open(path, "a")  # noqa: SIM115 - held for the whole run
    except OSError as e:
        raise InputError(
            f"{shown}: cannot create the lock file {path} ({e.strerror}); the database's "
            "folder must exist and be writable"
        ) from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        same = "" if shown == db else f" (the file {db})"
        raise InputError(
            f"{shown}{same}: another netopt bench run is using this database; wait for it to "
            "finish, or give this run another --db"
        ) from None
    return fh


def _prepare(s: Suite, store: Store, db: Path, retry: bool) -> tuple[list[Task], dict[str, str]]:
    """Generate the instances (once), insert the tasks (existing keys kept), record the suite;
    returns the tasks and each instance's file."""
    tasks: list[Task] = s.tasks()
    rows = [
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
    fixes = store.repair(rows)  # before anything relies on the rows' statuses
    for fix in fixes[:_WARN_LINES]:
        log.warning("%s: %s", store.path, fix)
    if len(fixes) > _WARN_LINES:  # named up to a screenful, counted beyond it
        log.warning("%s: ... and %d more rows repaired", store.path, len(fixes) - _WARN_LINES)
    store.reset_running()
    if retry:
        store.retry()
    inst_dir = db.parent / f"{db.stem}_instances"
    paths: dict[str, str] = {}
    for t in tasks:
        ik = t.instance_key
        if ik in paths:
            continue
        row = store.instance(ik)
        if row is not None and row["problem"] is not None:
            # generation is seeded: the same instance comes back, and its row is rewritten
            log.warning("%s: instance %s: %s; generated again", store.path, ik, row["problem"])
            row = None
        if row is None or not Path(row["path"]).exists():
            inst = make_instance(t.family, t.index, ik, inst_dir)
            if t.family.kind == "folder":  # read in place: a folder is its own cache
                path = str(folder_files(t.family.params)[t.index])
            else:
                path = str(inst.save(inst_dir)["json"])
            gt = {k: v for k, v in inst.ground_truth.items() if k != "x_star"}
            store.add_instance(ik, t.family.kind, t.family.params, t.index, path, gt)
            row = store.instance(ik)
        paths[ik] = row["path"]
        if store.ground_truth(ik) is None and row["ground_truth"].get("optimum") is not None:
            g = row["ground_truth"]
            store.set_ground_truth(ik, float(g["optimum"]), None, "known", g.get("source", ""))
    store.add_tasks(rows)
    store.set_meta(
        "suite",
        json.dumps(
            {
                "name": s.name,
                "path": s.path,
                "success": s.success,
                "ground_truth": s.ground_truth,
                "methods": [m.name for m in s.methods],
            }
        ),
    )
    return tasks, paths


def _run(
    s: Suite, task_list: list[Task], paths: dict[str, str], store: Store, ex, progress, extra
) -> dict[str, int]:
    tasks = {t.key: t for t in task_list}
    gt_limit = float(s.ground_truth_time_limit or max(s.time_limits))
    # ground-truth MILPs first: their optima give the tasks' gaps
    queue: list[tuple[str, dict]] = []
    if s.ground_truth in ("milp", "bab"):
        for ik, path in paths.items():
            if store.ground_truth(ik) is None:
                job = {"instance": path, "formulation": s.ground_truth, "options": {}, "seed": 0}
                queue.append((f"gt:{ik}", job | {"time_limit": gt_limit}))
    for key in store.pending(list(tasks)):
        t = tasks[key]
        job = {
            "instance": paths[t.instance_key],
            "formulation": t.method.formulation,
            "options": t.method.options,
            "seed": t.seed,
            "time_limit": t.time_limit,
            "callable": extra.get(t.method.formulation),
            "memory_mb": s.memory_limit_mb,
        }
        queue.append((key, job))
    running: dict[Any, tuple[str, float, int | None]] = {}
    durations: list[float] = []
    t_start = time.monotonic()

    def report() -> None:
        if progress is None:
            return
        c = store.counts()
        left = c["pending"] + c["running"]
        gt_left = sum(k.startswith("gt:") for k, _ in queue)
        gt_left += sum(v[0].startswith("gt:") for v in running.values())
        eta = None
        if durations:
            # tasks of this run so far, spread over the slots
            eta = (time.monotonic() - t_start) / len(durations) * left
        progress(
            {
                "done": c["done"],
                "failed": c["failed"] + c["timeout"] + c["crashed"],
                "running": len(running),  # ground-truth MILPs included
                "pending": c["pending"],
                "total": sum(c.values()),
                "ground_truth_left": gt_left,
                "eta": eta,
            }
        )

    report()
    dirty = False
    while queue or running:
        while queue and len(running) < ex.slots:
            key, job = queue.pop(0)
            attempt = None if key.startswith("gt:") else store.start(key)
            running[ex.submit(job, s.grace)] = (key, time.monotonic(), attempt)
            dirty = True
        if dirty:  # once the freed slots are filled again: the counts a user should see
            report()
            dirty = False
        finished = [f for f in running if f.done()]
        if not finished:
            time.sleep(0.05)
            continue
        for fut in finished:
            key, t0, attempt = running.pop(fut)
            try:
                outcome, out = fut.result()
            except Exception as e:  # the executor lost the job (a Dask worker died, ...)
                outcome, out = "crashed", {"reason": f"{type(e).__name__}: {e}"}
            out.setdefault("seconds", time.monotonic() - t0)
            _record(store, tasks, key, outcome, out, attempt, s.ground_truth)
            if not key.startswith("gt:"):
                durations.append(float(out["seconds"]))
            dirty = True
    _fill_gaps(store)
    report()
    return store.counts()


def _record(
    store: Store, tasks: dict[str, Task], key, outcome, out, attempt, gt_method: str = "milp"
) -> None:
    secs = float(out.get("seconds", 0.0))
    if key.startswith("gt:"):
        ok = outcome == "done" and out.get("status") == "optimal"
        store.set_ground_truth(
            key[3:],
            out.get("objective") if ok else None,
            out.get("bound"),
            out.get("status", outcome),
            gt_method,
            secs,
            out.get("objective") if outcome == "done" else None,
        )
        return
    g = store.ground_truth(tasks[key].instance_key)
    if outcome == "done" and g is not None:
        out["gap_to_optimum"] = _gap(out.get("objective"), g["optimum"])
    store.finish(key, attempt, outcome, out, secs)


def _fill_gaps(store: Store) -> None:
    """A ground truth that arrived after some of its tasks: fill in their gaps now."""
    for r in store.results():
        res = r["result"]
        if r["status"] == "done" and res is not None and res.get("gap_to_optimum") is None:
            g = store.ground_truth(r["instance"])
            if g is not None and g["optimum"] is not None:
                res["gap_to_optimum"] = _gap(res.get("objective"), g["optimum"])
                store.update_result(r["key"], res)
