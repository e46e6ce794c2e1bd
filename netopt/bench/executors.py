"""Where jobs run: a local pool, or a Dask distributed cluster. Both run :func:`run_job`.

:func:`run_job` starts ``python -m netopt.bench.child`` for one job and enforces its time limit
(kill after ``time_limit + grace`` seconds) and its memory limit (the child's address space).
On this machine the process is forked from a server that has netopt and torch imported; on a Dask
worker it is a new interpreter (``python -m netopt.bench.child``), because a Dask worker is a
daemonic process and daemonic processes may not have ``multiprocessing`` children.

The runner alone writes the results database; an executor only runs jobs and hands back
``(outcome, result)``, so the two executors give the same tables by construction: each task runs
the same command on the same files, whichever machine runs it.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from netopt.errors import InputError

__all__ = ["run_job", "LocalExecutor", "DaskExecutor", "make_executor", "check_executor"]
__all__ += ["EXECUTORS"]

#: stderr kept in a crashed job's reason
_STDERR_TAIL = 2000
#: the processes of the jobs running now (so that an interrupted run can kill them)
_LIVE: set = set()
#: set by an interrupted run: a job whose process starts after the kill sweep kills it itself
_STOPPING = threading.Event()


def _register(proc: Any) -> None:
    _LIVE.add(proc)
    if _STOPPING.is_set():  # the sweep may have missed a process started just now
        proc.kill()


def _forkserver():
    """The fork server (started once, on first use) that has netopt and torch imported."""
    global _CTX
    if _CTX is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["netopt.bench._preload"])
        _CTX = ctx
    return _CTX


_CTX = None


def _forked_main(job_path: str, out_path: str, err_path: str) -> None:
    """A forked task: the same as ``python -m netopt.bench.child``, output to files."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # solver logs
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(err, 2)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from netopt.bench.child import main

    main([job_path, out_path])


def run_job(
    job: dict[str, Any], grace: float, start: str = "subprocess"
) -> tuple[str, dict[str, Any]]:
    """Run one job in a fresh process; returns ``(outcome, result)``.

    ``start="subprocess"`` runs ``python -m netopt.bench.child`` (a new interpreter: works in
    any process, a daemonic Dask worker included); ``"forkserver"`` forks it from a server that
    has already imported netopt and torch (the same code, seconds faster per task). Either way
    the task has its own address space, so a crash, a hang or a memory limit is its own.

    ``job["files"]`` (``{name: bytes}``), when present, is written to a temporary folder first
    and ``job["instance"]`` names the instance JSON among them: how a job reaches a machine
    that does not share the runner's file system.
    """
    if start == "forkserver" and mp.current_process().daemon:
        start = "subprocess"  # a daemonic process may not have multiprocessing children
    with tempfile.TemporaryDirectory(prefix="netopt-job-") as tmp:
        job = dict(job)
        files = job.pop("files", None)
        if files:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            job["instance"] = str(Path(tmp) / job["instance"])
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job))
        limit = float(job["time_limit"]) + float(grace)
        err_path = Path(tmp) / "stderr.txt"
        if start == "forkserver":
            proc = _forkserver().Process(
                target=_forked_main, args=(str(job_path), str(out_path), str(err_path))
            )
            proc.start()
        else:
            proc = _start_interpreter(job_path, out_path, err_path)
        return _supervise(proc, job, limit, grace, out_path, err_path)


def _start_interpreter(job_path: Path, out_path: Path, err_path: Path) -> subprocess.Popen:
    """``python -m netopt.bench.child JOB OUT`` with stderr to ``err_path``."""
    env = dict(os.environ)
    # the child imports what this process can (a user's own methods included)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    # tasks run side by side: one thread each keeps them from fighting over the cores
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, "1")
    with open(err_path, "wb") as err:  # the child holds its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "netopt.bench.child", str(job_path), str(out_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # solver logs
            stderr=err,
            env=env,
        )


def _supervise(proc, job, limit, grace, out_path: Path, err_path: Path):
    """Wait for a task's process (a ``Popen`` or a ``multiprocessing.Process``) up to ``limit``
    seconds, kill it past that or when the runner stops, and read its outcome."""
    popen = isinstance(proc, subprocess.Popen)

    def wait(timeout: float | None = None) -> bool:
        if popen:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        proc.join(timeout)
        return not proc.is_alive()

    _register(proc)
    try:
        if not wait(limit):
            proc.kill()
            wait()
            return _timeout(job, limit, grace)
    except BaseException:  # the runner is being stopped: take the job down with it
        proc.kill()
        wait()
        raise
    finally:
        _LIVE.discard(proc)
    if out_path.exists():
        d = json.loads(out_path.read_text())
        return d["outcome"], d["result"]
    tail = err_path.read_text(errors="replace")[-_STDERR_TAIL:] if err_path.exists() else ""
    return _crashed(proc.returncode if popen else proc.exitcode, tail)


def _crashed(code: int | None, tail: str) -> tuple[str, dict[str, Any]]:
    how = f"exit code {code}"
    if code is not None and code < 0:
        how += f", signal {signal.Signals(-code).name}"
    return "crashed", {"reason": f"the process died ({how})", "stderr": tail}


def _timeout(job: dict[str, Any], limit: float, grace: float) -> tuple[str, dict[str, Any]]:
    reason = f"killed after {limit:.1f} s (limit {job['time_limit']} s + {grace} s grace)"
    return "timeout", {"reason": reason, "seconds": limit}


class Future(Protocol):
    def done(self) -> bool: ...
    def result(self) -> Any: ...


class LocalExecutor:
    """``workers`` jobs at once on this machine (a thread per job, each waiting on its process);
    ``start``: how each job's process starts (see :func:`run_job`)."""

    name = "local"

    def __init__(self, workers: int = 2, start: str = "forkserver"):
        if workers < 1:
            raise InputError(f"workers must be >= 1, got {workers}")
        if start not in ("forkserver", "subprocess"):
            raise InputError(f"start must be 'forkserver' or 'subprocess', got {start!r}")
        self.slots = int(workers)
        self.start = start
        _STOPPING.clear()
        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix="netopt-bench")

    def submit(self, job: dict[str, Any], grace: float) -> Future:
        return self._pool.submit(run_job, job, grace, self.start)

    def close(self, kill: bool = False) -> None:
        """Wait for the jobs (none are left after a complete run); ``kill``: kill the running
        jobs' processes first (the run was interrupted - they run again on resume)."""
        if kill:
            _STOPPING.set()
            for proc in list(_LIVE):
                proc.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)
        _STOPPING.clear()


class DaskExecutor:
    """Jobs on a Dask distributed cluster: ``address`` of a running scheduler, or a new
    ``LocalCluster`` of ``workers`` single-threaded worker processes when ``address`` is None.

    Each job carries its instance's files, so the workers need not share this file system;
    they need netopt installed (the same version, for the same results).
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int = 2):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError(
                "the Dask executor needs dask.distributed: pip install 'netopt[dask]'"
            ) from None
        self._cluster = None
        self._futures: set = set()
        try:
            if address is None:
                import dask

                # non-daemonic workers may fork their tasks from a preloaded server (run_job);
                # a daemonic worker (the Dask default, as on a user's cluster) starts a new
                # interpreter per task instead
                with dask.config.set({"distributed.worker.daemon": False}):
                    self._cluster = LocalCluster(
                        n_workers=int(workers),
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=":0",  # any free port: never clash with another cluster
                        silence_logs=logging.ERROR,
                    )
                self.client = Client(self._cluster)
            else:
                self.client = Client(address, timeout=30)
        except OSError as e:
            raise InputError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        self.slots = max(1, sum(self.client.nthreads().values()))

    def submit(self, job: dict[str, Any], grace: float) -> Future:
        fut = self.client.submit(run_job, _with_files(job), grace, "forkserver", pure=False)
        self._futures.add(fut)
        fut.add_done_callback(self._futures.discard)
        return fut

    def close(self, kill: bool = False) -> None:
        if kill:  # cancelled futures stop their workers' jobs (their processes are killed)
            self.client.cancel(list(self._futures))
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _with_files(job: dict[str, Any]) -> dict[str, Any]:
    """``job`` carrying its instance JSON and the model file it names."""
    p = Path(job["instance"])
    d = json.loads(p.read_text())
    model = d.get("model")
    files = {}
    if model:
        # flattened into one folder: the model's SHA-256 in the JSON still pins the network
        files[Path(model).name] = (p.parent / model).read_bytes()
        d["model"] = Path(model).name
    # a generator instance's checkpoints (relative to the JSON), shipped and flattened too
    ckpts = d.get("params", {}).get("checkpoints") or []
    for i, c in enumerate(ckpts):
        flat = f"ckpt{i:03d}_{Path(c).name}"
        files[flat] = (p.parent / c).read_bytes()
        ckpts[i] = flat
    files[p.name] = json.dumps(d).encode()
    return job | {"instance": p.name, "files": files}


EXECUTORS = ("local", "dask")


def make_executor(
    kind: str = "local", workers: int = 2, address: str | None = None, start: str = "forkserver"
):
    """An executor by name: ``"local"`` (``start``: how its processes start) or ``"dask"``
    (``address``: a scheduler, else a LocalCluster of ``workers`` processes)."""
    check_executor(kind, address)
    return LocalExecutor(workers, start) if kind == "local" else DaskExecutor(address, workers)


def check_executor(kind: str, address: str | None = None) -> None:
    """Refuse an unknown executor, or a scheduler address without the Dask executor (cheap:
    done before any instance is generated)."""
    if kind not in EXECUTORS:
        raise InputError(f"unknown executor {kind!r}; known: {list(EXECUTORS)}")
    if kind == "local" and address:
        raise InputError("--scheduler is for the Dask executor: add --executor dask")
