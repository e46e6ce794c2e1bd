"""What stops a run early: the wall-time budget and Ctrl-C, and how phases report progress.

A user's ``time_limit`` is the wall time of the whole solve — sampling, local search, bounds, LP
tightening, model build, the solver and the float64 re-check — not of the solver alone. A
:class:`Deadline` is created once when the solve starts; every phase asks it for its share
(:meth:`Deadline.share`) and the solver gets what is left after a reserve for the re-check.

Ctrl-C during a solve does not lose the work: :func:`sigint_guard` replaces Python's handler by
one that only records the request (a second Ctrl-C raises ``KeyboardInterrupt`` as usual). Each
phase polls :func:`interrupted` and stops where it is; a running solver is stopped through its
own interrupt callback (HiGHS ``cbMipInterrupt`` / ``cbSimplexInterrupt``), so its incumbent and
proven bound are kept, and the result's status is ``interrupted``.

Progress events are dicts handed to the ``progress`` option's callable (see :func:`emit`): a
``phase`` name, ``elapsed`` seconds since the solve started, and ``incumbent``/``bound``/``gap``
in the problem's own units as soon as they exist.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "Deadline",
    "interrupted",
    "request_interrupt",
    "clear_interrupt",
    "sigint_guard",
    "emit",
    "relative_gap",
]

_REQUESTED = threading.Event()


def interrupted() -> bool:
    """Whether the user asked the current solve to stop (Ctrl-C under :func:`sigint_guard`)."""
    return _REQUESTED.is_set()


def request_interrupt() -> None:
    """Ask the current solve to stop, keeping what it found (what Ctrl-C does)."""
    _REQUESTED.set()


def clear_interrupt() -> None:
    """Forget a request (done when a guarded solve starts and ends)."""
    _REQUESTED.clear()


@contextlib.contextmanager
def sigint_guard() -> Iterator[None]:
    """Within the block, a first Ctrl-C only records the request; a second one raises.

    Outside the main thread (where Python cannot install signal handlers) and when a handler
    other than Python's default is installed (an application that handles SIGINT itself), the
    block changes nothing: :func:`request_interrupt` still works.
    """
    own = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if not own:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if _REQUESTED.is_set():
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, whatever is lost
        _REQUESTED.set()

    clear_interrupt()
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # the request belonged to this solve (its result says "interrupted"); a later solve,
        # in any thread, starts afresh
        clear_interrupt()


class Deadline:
    """The wall-time budget of one solve, split between its phases.

    Parameters
    ----------
    time_limit : float or None
        Seconds for the whole solve; None: no limit (phases fall back to their own caps).
    start : float, optional
        ``time.perf_counter()`` at which the budget started (default: now).
    """

    def __init__(self, time_limit: float | None, start: float | None = None) -> None:
        self.time_limit = None if time_limit is None else float(time_limit)
        self.start = time.perf_counter() if start is None else float(start)

    def elapsed(self) -> float:
        """Seconds since the solve started."""
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        """Seconds left (``inf`` without a limit; never negative)."""
        if self.time_limit is None:
            return math.inf
        return max(0.0, self.time_limit - self.elapsed())

    def expired(self) -> bool:
        """Whether the budget is spent or the user interrupted the solve."""
        return interrupted() or self.remaining() <= 0.0

    def share(self, fraction: float, cap: float) -> float:
        r"""A phase's budget: :math:`\min(\text{cap}, f \cdot r)`.

        ``r`` is the time remaining now; without a limit the phase gets ``cap``.
        """
        r = self.remaining()
        if not math.isfinite(r):
            return float(cap)
        return min(float(cap), fraction * r)


def relative_gap(incumbent: float | None, bound: float | None) -> float | None:
    r"""The gap as a :class:`netopt.Result` states it: :math:`|f - b| / \max(1, |f|)`."""
    if incumbent is None or bound is None:
        return None
    if not (math.isfinite(incumbent) and math.isfinite(bound)):
        return None
    return abs(incumbent - bound) / max(1.0, abs(incumbent))


def emit(
    progress: Callable[[dict], Any] | None, phase: str, deadline: Deadline, **info: Any
) -> None:
    """Send one progress event: ``phase``, ``elapsed`` and whatever ``info`` holds.

    ``incumbent`` and ``bound`` are in the problem's units; the gap is computed here from them,
    the same way the result computes it, so the last live figures equal the final ones.
    """
    if progress is None:
        return
    ev: dict[str, Any] = {"phase": phase, "elapsed": deadline.elapsed(), **info}
    if "gap" not in ev:
        ev["gap"] = relative_gap(ev.get("incumbent"), ev.get("bound"))
    progress(ev)
