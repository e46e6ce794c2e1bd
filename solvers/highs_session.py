"""One HiGHS instance, checked: every option call, every run and its model status.

Everything in netopt that drives highspy (the ``highs`` backend, the LP bound tightening, the
layer-wise LPs, the Pyomo backend's option check) goes through :class:`HighsSession`, except
the searches' small proposal LPs (:func:`netopt.model.highs_lp.dense_lp`, which only ever
returns an optimum and sets no thread count), so that

* an option HiGHS rejects is an error naming it, never a silently ignored setting (``setOptionValue``
  returns ``kError`` for ``time_limit=-5`` and the limit stays infinite);
* a failed ``run()`` (``HighsStatus.kError``) or an unset model status (``kNotset``) is reported as
  a failure with HiGHS's own message — its dual bound, objective and solution are then stale
  values of nothing and are never read;
* ``threads`` works in any order within one process. HiGHS keeps one global task scheduler per
  process, created at the first run with the thread count of that run; from highspy 1.16 on a later
  run that asks for a *different* explicit count fails at once ("the scheduler has already been
  initialized"). HiGHS's documented remedy is to destroy the scheduler between runs
  (``Highs.resetGlobalScheduler``); we do that only when the count changes, under a lock, which is
  safe because netopt never runs two HiGHS solves at once in one process. ``threads=0`` (HiGHS's
  default) runs on whatever scheduler exists, so it needs no reset;
* the banner that highspy 1.16 prints on standard output when the first ``Highs`` object of a
  process is created never reaches stdout (it would break ``--json`` output): the first creation
  happens with file descriptor 1 pointed at the null device
  (:func:`netopt.model.highs_lp.quiet_banner`, shared with :func:`~netopt.model.highs_lp.dense_lp`);
* HiGHS's log is captured through its logging callback (``output_flag`` on, ``log_to_console``
  off), so a failure's message can be shown without ``verbose``; with ``verbose`` it goes to stderr.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import OptionError, SolveError
from netopt.model.highs_lp import highspy_module, new_highs, quiet_banner

__all__ = [
    "HighsSession",
    "new_highs",
    "quiet_banner",
    "prepare_threads",
    "restart_scheduler",
    "run_failed",
    "highs_version",
]

_lock = threading.Lock()
#: the thread count the process's HiGHS scheduler was last started with by netopt (None: unknown)
_scheduler_threads: int | None = None


def _highspy() -> Any:
    return highspy_module()


def highs_version(h: Any) -> str:
    return f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"


def prepare_threads(threads: int | None) -> None:
    """Make the next HiGHS run in this process accept ``threads`` (None or 0: any scheduler).

    Resets HiGHS's global scheduler when the count differs from the one netopt last started it
    with (or when that is unknown). Must not be called while another HiGHS run is in progress in
    this process.
    """
    global _scheduler_threads
    if not threads:
        return
    hs = _highspy()
    with _lock:
        if _scheduler_threads == threads:
            return
        reset = getattr(hs.Highs, "resetGlobalScheduler", None)
        if reset is not None:
            reset(True)
        _scheduler_threads = int(threads)


def restart_scheduler(threads: int) -> None:
    """Reset HiGHS's scheduler for ``threads`` even where netopt believes it has that count.

    For a run that failed because another library (Pyomo's own HiGHS objects) restarted the
    scheduler with another count behind netopt's back.
    """
    global _scheduler_threads
    with _lock:
        _scheduler_threads = None
    prepare_threads(threads)


def run_failed(h: Any, run_status: Any) -> bool:
    """A HiGHS run that failed (``kError``) or left the model status unset: nothing it says counts."""
    hs = _highspy()
    return run_status == hs.HighsStatus.kError or h.getModelStatus() == hs.HighsModelStatus.kNotset


def _on_interrupt_check(e: Any) -> None:
    """HiGHS's interrupt callback: stop the run once the user asked (Ctrl-C)."""
    try:
        if interrupted():
            e.interrupt()
    except BaseException:  # noqa: BLE001 - never let an exception unwind through HiGHS's C++
        e.interrupt()


class HighsSession:
    """A ``highspy.Highs`` whose every option call and run is checked.

    Parameters
    ----------
    where : str
        Who runs it, for messages (``"backend 'highs'"``, ``"LP bound tightening"``).
    verbose : bool
        Echo HiGHS's log on stderr.
    capture : bool
        Keep HiGHS's log in memory (:attr:`log`) during every run. Off by default for loops of
        many small LPs; a failed run is then repeated once with the log captured, to report
        HiGHS's own message.
    """

    def __init__(self, where: str, *, verbose: bool = False, capture: bool = True) -> None:
        self.hs = _highspy()
        self.where = where
        self.verbose = verbose
        self.capture = capture or verbose
        self.h = new_highs()
        self.log: list[str] = []
        self.threads: int | None = None
        if self.capture:
            self._start_capture()

    # ------------------------------------------------------------------ options
    def _start_capture(self) -> None:
        self.h.setOptionValue("output_flag", True)
        self.h.setOptionValue("log_to_console", False)
        if not getattr(self, "_subscribed", False):
            self.h.cbLogging.subscribe(self._on_log)
            self._subscribed = True

    def _on_log(self, e: Any) -> None:
        msg = str(e.message)
        self.log.append(msg)
        if len(self.log) > 2000:  # a long MIP log: keep its head and its tail
            del self.log[100:1100]
        if self.verbose:
            sys.stderr.write(msg)

    def set(self, name: str, value: Any, *, user: bool = False) -> None:
        """Set one HiGHS option; a rejection is an :class:`OptionError` naming it.

        ``user`` marks an option the user passed through ``options={...}``.
        """
        if name == "threads":
            self.threads = int(value)
        try:
            st = self.h.setOptionValue(name, value)
        except Exception as e:  # highspy raises on a value of the wrong type
            raise OptionError(
                f"{self.where}: HiGHS rejected option {name}={value!r} ({e}); see HiGHS's option list"
            ) from None
        if st != self.hs.HighsStatus.kOk:
            kind = "HiGHS rejected option" if user else "HiGHS refused the setting"
            raise OptionError(
                f"{self.where}: {kind} {name}={value!r} (unknown name or value out of range); "
                "see HiGHS's option list"
            )

    def set_common(self, opts: dict[str, Any], default_gap: float | None = 1e-6) -> None:
        """Translate netopt's common options (already validated) into HiGHS options."""
        if opts.get("time_limit") is not None:
            self.set("time_limit", float(opts["time_limit"]))
        gap = opts.get("gap", default_gap)
        if gap is not None:
            self.set("mip_rel_gap", float(gap))
        if opts.get("abs_gap") is not None:
            self.set("mip_abs_gap", float(opts["abs_gap"]))
        if opts.get("threads") is not None:
            self.set("threads", int(opts["threads"]))
        self.set("random_seed", int(opts.get("seed") or 0))
        for k, v in (opts.get("options") or {}).items():
            self.set(k, v, user=True)

    def option(self, name: str) -> Any:
        st, v = self.h.getOptionValue(name)
        return v if st == self.hs.HighsStatus.kOk else None

    # ------------------------------------------------------------------ model and run
    def pass_model(self, lp: Any) -> None:
        st = self.h.passModel(lp)
        if st == self.hs.HighsStatus.kError:
            raise SolveError(
                f"{self.where}: HiGHS rejected the model (passModel failed){self._tail()}"
            )

    def run(self, *, interruptible: bool = False) -> tuple[bool, str]:
        """Run HiGHS; ``(ok, message)``.

        ``ok`` is False when ``run()`` returned ``kError`` or the model status is unset, in which
        case nothing HiGHS reports about the model may be used; ``message`` carries HiGHS's error
        lines. ``interruptible``: stop at HiGHS's next interrupt check once the user asked the
        solve to stop (:func:`netopt.control.interrupted`, Ctrl-C); HiGHS then ends with model
        status ``kInterrupt`` and keeps its incumbent and dual bound. Off for loops of many
        small LPs, whose callers poll between LPs (a Python callback per simplex check costs).
        """
        if interruptible and not getattr(self, "_interruptible", False):
            for cb in (self.h.cbMipInterrupt, self.h.cbSimplexInterrupt, self.h.cbIpmInterrupt):
                cb.subscribe(_on_interrupt_check)
            self._interruptible = True
        prepare_threads(self.threads)
        self.log.clear()
        st = self.h.run()
        if self._failed(st):
            if self.threads and "scheduler" in self._errors():
                # another library started HiGHS's scheduler with another count: reset and retry
                restart_scheduler(self.threads)
                st = self.h.run()
            if self._failed(st) and not self.capture:
                # repeat once with the log captured, to say why
                self._start_capture()
                self.log.clear()
                st = self.h.run()
        if self._failed(st):
            why = (
                self._errors()
                or f"run() returned {st.name}, model status {self.model_status_name()}"
            )
            return False, f"{self.where}: HiGHS failed: {why}"
        return True, ""

    def _failed(self, st: Any) -> bool:
        return run_failed(self.h, st)

    def _errors(self) -> str:
        lines = [m.strip() for m in self.log if "ERROR" in m or "error" in m.lower()]
        return " ".join(lines[-3:])

    def _tail(self) -> str:
        e = self._errors()
        return f": {e}" if e else ""

    def model_status_name(self) -> str:
        return self.h.getModelStatus().name

    def model_status_text(self) -> str:
        return self.h.modelStatusToString(self.h.getModelStatus())

    @property
    def version(self) -> str:
        return highs_version(self.h)

    def objective(self) -> float:
        return float(self.h.getInfo().objective_function_value)

    def solution(self) -> np.ndarray:
        return np.asarray(self.h.getSolution().col_value, dtype=np.float64)
