"""The live progress line of ``netopt invert`` and ``netopt check`` on stderr.

One line, rewritten in place with a carriage return, shows the phase that is running, the
elapsed time, and the incumbent, bound and gap as soon as they exist. It is written by hand
rather than with a progress-bar library: it is a single line on stderr (stdout stays the
result, or the JSON), it adds no dependency, and a test reads it back by capturing stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from netopt.control import relative_gap

__all__ = ["LiveLine", "add_live_flags", "wants_live_line"]

#: at most this many redraws per second (a phase change is always drawn at once)
RATE = 5.0


def add_live_flags(parser: Any, json_help: str) -> None:
    """``--json``, ``--progress`` and ``--quiet``: what a command with a live line prints."""
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument(
        "--progress",
        action="store_true",
        help="the live line on stderr even when not on a terminal (or with --json)",
    )
    parser.add_argument("--quiet", action="store_true", help="no live line")


def wants_live_line(args: Any) -> bool:
    """Whether a command shows the live line.

    ``--progress`` forces it; otherwise only on a terminal (stderr is a tty), never with
    ``--json`` or ``--quiet`` (a script reading the output gets nothing extra).
    """
    if getattr(args, "progress", False):
        return True
    if getattr(args, "json", False) or getattr(args, "quiet", False):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _num(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, int | float) else "-"


class LiveLine:
    """A progress callable (see :func:`netopt.control.emit`) that draws one live line.

    Parameters
    ----------
    stream : text stream, optional
        Where the line goes (default ``sys.stderr``, looked up when drawing).
    rate : float
        The most redraws per second; events in between only update what the next redraw shows,
        so the line costs nothing however often a solver reports.
    clock : callable
        The time source of the throttle (seconds).
    start : float, optional
        ``clock()`` when the command started: the line then shows the seconds since then (the
        command's whole wall time, which ``--time-limit`` bounds) instead of each event's
        ``elapsed`` (since its own phase of work started).

    Each event is a dict with ``phase`` and ``elapsed``, and optionally ``incumbent``,
    ``bound``, ``gap`` (recomputed with :func:`netopt.control.relative_gap` when absent),
    ``nodes``, and ``disjunct``/``disjuncts`` (``netopt check``). An incumbent or bound, once
    known, stays on the line until a later event replaces it within the same run.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        rate: float = RATE,
        clock: Callable[[], float] = time.perf_counter,
        start: float | None = None,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._start = start
        self._period = 1.0 / rate
        self._last_draw = -float("inf")
        self._width = 0
        self.state: dict[str, Any] = {}
        self.events: list[dict] = []  # every event received, in order (what the line showed)
        self.last_text = ""

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, ev: dict) -> None:
        ev = dict(ev)
        self.events.append(ev)
        phase_changed = ev.get("phase") != self.state.get("phase") or ev.get(
            "disjunct"
        ) != self.state.get("disjunct")
        if ev.get("disjunct") != self.state.get("disjunct"):
            # a new disjunct is a new problem: its figures start afresh
            self.state = {}
        self.state.update({k: v for k, v in ev.items() if v is not None})
        if "incumbent" in self.state or "bound" in self.state:
            self.state["gap"] = relative_gap(self.state.get("incumbent"), self.state.get("bound"))
        now = self._clock()
        if self._start is not None:
            self.state["elapsed"] = now - self._start
        if phase_changed or now - self._last_draw >= self._period:
            self._draw()
            self._last_draw = now

    def text(self) -> str:
        """The line for the current state (without the carriage return)."""
        s = self.state
        parts = []
        if "disjunct" in s:
            parts.append(f"disjunct {s['disjunct']}/{s.get('disjuncts', '?')}")
        parts.append(str(s.get("phase", "")))
        parts.append(f"{s.get('elapsed', 0.0):.1f} s")
        if s.get("incumbent") is not None:
            parts.append(f"incumbent {_num(s['incumbent'])}")
        if s.get("bound") is not None:
            parts.append(f"bound {_num(s['bound'])}")
        if s.get("gap") is not None:
            parts.append(f"gap {100 * s['gap']:.2f}%")
        if s.get("nodes") is not None:
            parts.append(f"nodes {s['nodes']}")
        if s.get("verdict") is not None:
            parts.append(str(s["verdict"]))
        return "  ".join(parts)

    def _draw(self) -> None:
        t = self.text()
        # pad with spaces over the rest of a longer previous line
        pad = max(0, self._width - len(t))
        self._width = len(t)
        self.last_text = t
        try:
            self.stream.write("\r" + t + " " * pad)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed: the run goes on without its line
            pass

    def finish(self, **final: Any) -> None:
        """Draw the final figures (the ones the summary prints) and end the line.

        ``final`` replaces the state's figures (``incumbent``, ``bound``, ``nodes``,
        ``elapsed``, ``verdict``...; None removes one), so the last live line shows what the
        summary then states; the gap is recomputed from them with the same formula.
        """
        self.state["phase"] = "done"
        for k, v in final.items():
            if v is None:
                self.state.pop(k, None)
            else:
                self.state[k] = v
        if "gap" not in final:
            self.state["gap"] = relative_gap(self.state.get("incumbent"), self.state.get("bound"))
        self._draw()
        try:
            self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass
