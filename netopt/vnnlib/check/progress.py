"""What a VNN-LIB check reports while it runs and keeps of branch and bound.

The events of branch and bound and of the MILP are passed on to the check's ``progress``
callback with the check's own elapsed time and the disjunct they belong to
(:func:`_bab_progress`, :func:`_milp_progress`); :func:`_bab_stats` rounds the statistics a
disjunct's details keep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netopt.control import Deadline


def _bab_stats(st: dict[str, Any]) -> dict[str, Any]:
    """The branch-and-bound statistics kept in a disjunct's details (rounded for reading)."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in st.items()}


def _bab_progress(
    progress: Callable[[dict], Any], deadline: Deadline, where: dict[str, int]
) -> Callable[[dict], None]:
    """Branch and bound's events (domains, open, leaves) as the check's."""

    def on_event(ev: dict) -> None:
        progress({**ev, "elapsed": deadline.elapsed(), **where})

    return on_event


def _milp_progress(
    progress: Callable[[dict], Any], deadline: Deadline, where: dict[str, int]
) -> Callable[[dict], None]:
    """The MILP's events as the check's: its phase prefixed, elapsed since the check started."""

    def on_event(ev: dict) -> None:
        progress({**ev, "phase": f"milp: {ev['phase']}", "elapsed": deadline.elapsed(), **where})

    return on_event
