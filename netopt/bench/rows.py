"""Reading a results store's rows back: what each value may be, and why one cannot be read.

A row of :mod:`netopt.bench.store` may hold damaged bytes, text that is not JSON, a status
netopt never writes, a number that is text: each check here names the value and says what is
wrong with it, so that the store's repair and the report can name the row
(:meth:`netopt.bench.store.Store.repair`, :mod:`netopt.bench.report`).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["STATUSES", "FINAL", "NotUtf8", "parse_json_object", "task_problem", "task_name"]
__all__ += ["DESCRIPTION", "description_problems", "number_problem", "ground_truth_problems"]

STATUSES = ("pending", "running", "done", "failed", "timeout", "crashed")
#: outcomes that end a task (a rerun does not repeat them)
FINAL = ("done", "failed", "timeout", "crashed")


class NotUtf8(str):
    """Text that SQLite holds as bytes which are not UTF-8 (damaged bytes in a row).

    Decoded with replacement characters so that a message can show it, and of its own type so
    that it is never taken for the value it was.
    """


def _text(data: bytes) -> str:
    # the connections' text_factory: sqlite3's own decoding fails the whole query on one damaged
    # row, naming neither the row nor the column; this way the row is read, and named
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return NotUtf8(data.decode("utf-8", "replace"))


def _show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a message quotes values, not pages)."""
    text = repr(str(value) if isinstance(value, NotUtf8) else value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def parse_json_object(text: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``(value, None)`` for the JSON text of an object, else ``(None, why it is not)``."""
    if text is None:
        return None, "is NULL"
    if isinstance(text, NotUtf8):
        return None, f"is not UTF-8 text (damaged bytes: {_show(text)})"
    if not isinstance(text, str):
        return None, f"is a {type(text).__name__} ({_show(text)}), not JSON text"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"is not JSON ({e.msg} at character {e.pos}: {_show(text)})"
    if not isinstance(value, dict):
        return None, f"is JSON but not an object ({_show(text)})"
    return value, None


def task_problem(
    status: Any, result: Any, parsed: tuple[dict[str, Any] | None, str | None] | None = None
) -> str | None:
    """Why a task row cannot be taken as it stands (``None`` when it can).

    An unknown status (NULL, damaged, or a word netopt never writes), or a final status whose
    result is not a JSON object (a final status is only ever written with one). ``parsed``:
    :func:`parse_json_object` of ``result`` when the caller has it already (results are most
    of a store; parsing them twice doubles the time to read one).
    """
    if isinstance(status, NotUtf8) or status not in STATUSES:
        return f"unknown status {_show(status)}"
    if status in FINAL:
        _, why = parse_json_object(result) if parsed is None else parsed
        if why is not None:
            return f"status {status}, but its result {why}"
    return None


def task_name(key: Any, method: Any, instance: Any, seed: Any, time_limit: Any) -> str:
    """How a message names a task row: its key, and what it is in words."""
    return f"task {key} ({method} on {instance}, seed {seed}, time limit {time_limit})"


#: a task row's description: what its key is a digest of (the suite can write it again)
DESCRIPTION = ("instance", "method", "formulation", "options", "seed", "time_limit")


def description_problems(row: dict[str, Any]) -> list[str]:
    """What in a task row's description (:data:`DESCRIPTION`) cannot be read back: text that
    is NULL or damaged, a seed that is not an integer, a time limit that is not a number."""
    out = []
    for col in ("instance", "method", "formulation", "options"):
        v = row.get(col)
        if isinstance(v, NotUtf8) or not isinstance(v, str):
            out.append(f"{col} {_show(v)} is not readable text")
    seed = row.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        out.append(f"seed {_show(seed)} is not an integer")
    tl = row.get("time_limit")
    if tl is None or number_problem(tl) is not None:
        out.append(f"time_limit {_show(tl)} is not a number")
    return out


def number_problem(value: Any) -> str | None:
    """Why a value of a REAL column is not a number or NULL (``None`` when it is)."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return None
    return f"{_show(value)} is not a number"


#: the ground_truth columns :func:`ground_truth_problems` checks
_GT_COLUMNS = ("optimum", "bound", "seconds", "incumbent", "status", "source")


def ground_truth_problems(row: dict[str, Any]) -> list[str]:
    """What in a ground_truth row cannot be read: a value of a REAL column that is not a
    number, a status or source that is not text (an empty list when all can)."""
    out = []
    for col in ("optimum", "bound", "seconds", "incumbent"):
        why = number_problem(row.get(col))
        if why is not None:
            out.append(f"{col} {why}")
    for col in ("status", "source"):
        v = row.get(col)
        if isinstance(v, NotUtf8) or not isinstance(v, str):
            out.append(f"{col} {_show(v)} is not readable text")
    return out
