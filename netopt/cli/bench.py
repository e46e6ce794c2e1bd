"""``netopt bench SUITE`` (run or resume a suite) and ``netopt report DB`` (tables, figures)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from netopt.cli.args import _float_arg, _int_arg
from netopt.errors import NetoptError

__all__ = ["Progress", "add_parser", "suite_header"]


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Live progress: one rewritten line on a terminal, else a line every ``every`` seconds.

    ``done 12/40  failed 1  running 2  pending 25  elapsed 0:01:10  ETA 0:02:31``
    """

    def __init__(self, stream: TextIO | None = None, every: float = 10.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self.t0 = time.monotonic()
        self._last = -1e9
        self._shown: dict[str, Any] | None = None

    def line(self, c: dict[str, Any]) -> str:
        gt = c.get("ground_truth_left", 0)
        return (
            (f"ground truth: {gt} MILPs left  " if gt else "")
            + f"done {c['done']}/{c['total']}  failed {c['failed']}  running {c['running']}  "
            f"pending {c['pending']}  elapsed {_clock(time.monotonic() - self.t0)}  "
            f"ETA {_clock(c['eta'])}"
        )

    def __call__(self, c: dict[str, Any]) -> None:
        now = time.monotonic()
        self._shown = c
        if self.tty:
            self.stream.write("\r\033[K" + self.line(c))
            self.stream.flush()
        elif now - self._last >= self.every:
            self.stream.write(self.line(c) + "\n")
            self.stream.flush()
            self._last = now

    def close(self) -> None:
        if self._shown is not None:
            self.stream.write(("\r\033[K" if self.tty else "") + self.line(self._shown) + "\n")
            self.stream.flush()


def _terminate_like_interrupt() -> None:
    """SIGTERM (``kill PID``, a batch system's stop) ends the run as Ctrl-C does: the running
    tasks' processes are killed and left to rerun. A SIGINT that was ignored when netopt started
    (a job started with ``nohup ... &``) stays ignored."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _count(n: int, what: str, plural: str = "") -> str:
    """``"1 seed"``, ``"2 seeds"``."""
    return f"{n} {what}" if n == 1 else f"{n} {plural or what + 's'}"


def suite_header(suite: Any) -> str:
    """What a suite runs, counted from its tasks: the factors multiply to the task count.

    ``suite 'grid': 10 tasks = 10 runs x 1 seed x 1 time limit (8 instances in 8 families,
    2 methods; 6 method-family pairs skipped)``: a run is one (instance, method) pair that the
    method's ``families`` allows, and every run is repeated for each seed and time limit. A
    family may hold several instances (a folder, a list of targets), and a method may skip
    families, so families x methods is not what runs.
    """
    tasks = suite.tasks()
    runs = {(id(t.family), t.index, id(t.method)) for t in tasks}
    instances = sum(suite.instance_count(f) for f in suite.families)
    skipped = sum(1 for f in suite.families for m in suite.methods if not m.runs_on(f))
    return (
        f"suite {suite.name!r}: {_count(len(tasks), 'task')} = {_count(len(runs), 'run')} x "
        f"{_count(len(suite.seeds), 'seed')} x {_count(len(suite.time_limits), 'time limit')} "
        f"({_count(instances, 'instance')} in {_count(len(suite.families), 'family', 'families')}, "
        f"{_count(len(suite.methods), 'method')}"
        + (f"; {_count(skipped, 'method-family pair')} skipped" if skipped else "")
        + ")"
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from netopt.bench.runner import run_suite
    from netopt.bench.suite import load_suite

    suite = load_suite(args.suite)
    db = Path(args.db) if args.db else Path(f"{Path(args.suite).stem}.sqlite")
    if args.workers < 1:
        raise NetoptError(f"--workers must be at least 1, got {args.workers}")
    print(f"{suite_header(suite)} -> {db}", file=sys.stderr)
    prog = Progress(every=args.progress_every)
    _terminate_like_interrupt()
    try:
        counts = run_suite(
            suite,
            db,
            workers=args.workers,
            progress=prog,
            executor=args.executor,
            scheduler=args.scheduler,
            retry=args.retry_failed,
        )
    finally:
        prog.close()
    bad = counts["failed"] + counts["timeout"] + counts["crashed"]
    # a complete run leaves none of its own tasks pending: any left belong to another suite
    # (or an older version of this one) and were not run; said, not left to the totals
    left = counts["pending"] + counts["running"]
    print(
        f"{counts['done']} done, {counts['failed']} failed, {counts['timeout']} timed out, "
        f"{counts['crashed']} crashed; results in {db}"
        + ("" if not bad else " (rerun with --retry-failed to try those again)")
        + (f"\n{left} other task(s) in {db} are not in this suite and were not run" if left else "")
        + f"\nnext: netopt report {db}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from netopt.bench.report import build_report

    db = Path(args.db)
    out = Path(args.out) if args.out else db.with_name(f"{db.stem}_report")
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    known = {"md", "html", "csv", "png"}
    if not formats or set(formats) - known:
        raise NetoptError(f"--format {args.format!r}: choose from {sorted(known)}, comma-separated")
    paths = build_report(
        db,
        out,
        objective_tol=args.objective_tol,
        x_star_tol=args.x_star_tol,
        criterion=args.criterion,
        formats=formats,
        reference=args.reference,
    )
    for k in ("md", "html", "csv", "instances_csv"):
        if paths.get(k):
            print(f"{k.split('_')[-1]:5s} {paths[k]}")
    for f in paths.get("figures", []):
        print(f"png   {f}")
    return 0


def add_parser(sub: Any) -> None:
    b = sub.add_parser(
        "bench",
        help="run (or resume) a benchmark suite into a results database",
        description=(
            "Run every (instance, method, seed, time limit) task of a TOML suite, each in its "
            "own process, into a SQLite database. Rerunning resumes: finished tasks are not "
            "repeated, tasks that were running when a run was killed are run again."
        ),
    )
    b.add_argument("suite", help="the suite file (TOML)")
    b.add_argument("--db", help="results database (default: SUITE_STEM.sqlite here)")
    b.add_argument(
        "--workers",
        type=_int_arg("a number of tasks", 1),
        default=2,
        help="tasks at once (default 2)",
    )
    b.add_argument(
        "--executor",
        default="local",
        choices=["local", "dask"],
        help="where tasks run: processes on this machine (default) or a Dask cluster",
    )
    b.add_argument(
        "--scheduler", help="a Dask scheduler address (default: a LocalCluster of --workers)"
    )
    b.add_argument(
        "--retry-failed", action="store_true", help="run failed/timed-out/crashed tasks again"
    )
    b.add_argument(
        "--progress-every",
        type=_float_arg("a number of seconds", positive=True),
        default=10.0,
        help="seconds between lines when not a tty",
    )
    b.set_defaults(func=cmd_bench)

    r = sub.add_parser(
        "report",
        help="tables and figures from a results database",
        description=(
            "Markdown and HTML tables, a CSV of every task, and figures: success vs a "
            "parameter, performance profiles (Dolan-More), gap distributions, time CDFs. "
            "The database is only read."
        ),
    )
    r.add_argument("db", help="the results database written by netopt bench")
    r.add_argument("--out", help="output folder (default: DB_STEM_report beside the database)")
    r.add_argument("--format", default="md,html,csv,png", help="any of md,html,csv,png")
    r.add_argument(
        "--objective-tol",
        type=_float_arg("a tolerance", lo=0.0),
        help="success: objective within tol of optimum",
    )
    r.add_argument(
        "--x-star-tol",
        type=_float_arg("a tolerance", lo=0.0),
        help="success: relative distance to planted x*",
    )
    r.add_argument("--criterion", choices=["objective", "x_star", "either"])
    r.add_argument(
        "--reference",
        choices=["certified", "best"],
        help="where the MILP certified no optimum: leave the instance out (certified, default) "
        "or judge against the best objective found on it (best; not a certificate)",
    )
    r.set_defaults(func=cmd_report)
