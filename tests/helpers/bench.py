"""Readers of a results database shared by the bench tests (tests/test_bench*.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from netopt.bench.store import Store


def task_rows(db: Path) -> list[dict]:
    """Every task row, result parsed (through the store)."""
    s = Store(db)
    try:
        return s.results()
    finally:
        s.close()


def statuses(db: Path) -> list[str]:
    """Task statuses, read without writing (a runner may own the database meanwhile)."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return [r[0] for r in con.execute("SELECT status FROM tasks")]
        finally:
            con.close()
    except sqlite3.Error:
        return []


def ground_truth(db: Path) -> dict[str, dict]:
    """Instance -> its ground_truth row."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return {r["instance"]: dict(r) for r in con.execute("SELECT * FROM ground_truth")}
    finally:
        con.close()


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (field 6 of /proc/PID/stat)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                out.append(int(d.name))
    return out
