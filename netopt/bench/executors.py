"""Where jobs run: a local pool, or a Dask distributed cluster. Both run :func:`run_job`.

:func:`run_job` starts ``python -m netopt.bench.child`` for one job and enforces its time limit
(kill after ``time_limit + grace`` seconds) and its memory limit (the child's address space).
A plain subprocess rather than ``multiprocessing`` because a Dask worker is a daemonic process,
and daemonic processes may not have ``multiprocessing`` children.

The runner alone writes the results database; an executor only runs jobs and hands back
``(outcome, result)``, so the two executors give the same tables by construction: each task runs
the same command on the same files, whichever machine runs it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from netopt.errors import InputError

__all__ = ["run_job", "LocalExecutor", "DaskExecutor", "make_executor", "check_executor"]
__all__ += ["EXECUTORS"]

#: stderr kept in a crashed job's reason
_STDERR_TAIL = 2000


def run_job(job: dict[str, Any], grace: float) -> tuple[str, dict[str, Any]]:
    """Run one job in a fresh Python process; returns ``(outcome, result)``.

    ``job["files"]`` (``{name: bytes}``), when present, is written to a temporary folder first
    and ``job["instance"]`` names the instance JSON among them: how a job reaches a machine
    that does not share the runner's file system.
    """
    with tempfile.TemporaryDirectory(prefix="netopt-job-") as tmp:
        job = dict(job)
        files = job.pop("files", None)
        if files:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            job["instance"] = str(Path(tmp) / job["instance"])
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job))
        env = dict(os.environ)
        # the child imports what this process can (a user's own methods included)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        # tasks run side by side: one thread each keeps them from fighting over the cores
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, "1")
        limit = float(job["time_limit"]) + float(grace)
        with open(Path(tmp) / "stderr.txt", "w+b") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "netopt.bench.child", str(job_path), str(out_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # solver logs
                stderr=err,
                env=env,
            )
            try:
                code = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                reason = (
                    f"killed after {limit:.1f} s (limit {job['time_limit']} s + {grace} s grace)"
                )
                return "timeout", {"reason": reason, "seconds": limit}
            except BaseException:  # the runner is being stopped: take the job down with it
                proc.kill()
                proc.wait()
                raise
            if out_path.exists():
                d = json.loads(out_path.read_text())
                return d["outcome"], d["result"]
            err.seek(0)
            tail = err.read().decode(errors="replace")[-_STDERR_TAIL:]
        how = f"exit code {code}"
        if code < 0:
            how += f", signal {signal.Signals(-code).name}"
        return "crashed", {"reason": f"the process died ({how})", "stderr": tail}


class Future(Protocol):
    def done(self) -> bool: ...
    def result(self) -> Any: ...


class LocalExecutor:
    """``workers`` jobs at once on this machine (a thread per job, each waiting on its process)."""

    name = "local"

    def __init__(self, workers: int = 2):
        if workers < 1:
            raise InputError(f"workers must be >= 1, got {workers}")
        self.slots = int(workers)
        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix="netopt-bench")

    def submit(self, job: dict[str, Any], grace: float) -> Future:
        return self._pool.submit(run_job, job, grace)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


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
        try:
            if address is None:
                self._cluster = LocalCluster(
                    n_workers=int(workers),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self.client = Client(self._cluster)
            else:
                self.client = Client(address, timeout=30)
        except OSError as e:
            raise InputError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        self.slots = max(1, sum(self.client.nthreads().values()))

    def submit(self, job: dict[str, Any], grace: float) -> Future:
        return self.client.submit(run_job, _with_files(job), grace, pure=False)

    def close(self) -> None:
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
    files[p.name] = json.dumps(d).encode()
    return job | {"instance": p.name, "files": files}


EXECUTORS = ("local", "dask")


def make_executor(kind: str = "local", workers: int = 2, address: str | None = None):
    """An executor by name: ``"local"`` or ``"dask"`` (``address``: a scheduler, else a
    LocalCluster of ``workers`` processes)."""
    check_executor(kind, address)
    return LocalExecutor(workers) if kind == "local" else DaskExecutor(address, workers)


def check_executor(kind: str, address: str | None = None) -> None:
    """Refuse an unknown executor, or a scheduler address without the Dask executor (cheap:
    done before any instance is generated)."""
    if kind not in EXECUTORS:
        raise InputError(f"unknown executor {kind!r}; known: {list(EXECUTORS)}")
    if kind == "local" and address:
        raise InputError("--scheduler is for the Dask executor: add --executor dask")
