"""The results store: one SQLite file (WAL mode) with a versioned schema.

An older store is migrated in place when opened (``_MIGRATIONS``, one transaction); a newer one
is refused untouched.

Tables: ``meta`` (``schema_version``), ``instances`` (generated instance files),
``tasks`` (key, status, result JSON, seconds, attempts), ``attempts`` (an append-only log of
every attempt and its outcome) and ``ground_truth`` (one cached optimum per instance).

Each state change is one transaction, so a SIGKILL leaves a task either ``done`` (its result
committed) or re-runnable: :meth:`Store.reset_running` turns the ``running`` rows of a dead run
back into ``pending``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from netopt.errors import InputError

__all__ = ["Store", "SCHEMA_VERSION", "STATUSES", "connect_readonly"]

SCHEMA_VERSION = 2
#: how an older store is brought to this version, step by step (``version -> SQL``)
_MIGRATIONS = {
    # v2: the ground-truth MILP's incumbent, kept also when it did not prove optimality
    1: "ALTER TABLE ground_truth ADD COLUMN incumbent REAL",
}
STATUSES = ("pending", "running", "done", "failed", "timeout", "crashed")
#: outcomes that end a task (a rerun does not repeat them)
FINAL = ("done", "failed", "timeout", "crashed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    key TEXT PRIMARY KEY, family TEXT NOT NULL, params TEXT NOT NULL, idx INTEGER NOT NULL,
    path TEXT NOT NULL, ground_truth TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY, instance TEXT NOT NULL, method TEXT NOT NULL, formulation TEXT NOT NULL,
    options TEXT NOT NULL, seed INTEGER NOT NULL, time_limit REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', result TEXT, seconds REAL,
    attempts INTEGER NOT NULL DEFAULT 0, updated REAL);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, started REAL NOT NULL,
    outcome TEXT, seconds REAL);
CREATE TABLE IF NOT EXISTS ground_truth (
    instance TEXT PRIMARY KEY, optimum REAL, bound REAL, status TEXT NOT NULL,
    source TEXT NOT NULL, seconds REAL, incumbent REAL);
"""


def connect_readonly(path: Path) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to a netopt store and its schema version, having checked both.

    Checking must never write: without a WAL file beside it, "immutable" keeps SQLite from
    creating one (plain read-only mode would add -wal and -shm files).

    Raises
    ------
    InputError
        A missing file, a file that is not a netopt store, or a newer schema (the file is left
        as it was).
    """
    if not path.is_file():
        raise InputError(f"{path}: no such results database")
    wal = path.with_name(path.name + "-wal").exists()
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
    con = sqlite3.connect(uri, uri=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit():
            raise InputError(f"{path}: not a netopt results database (no schema_version)")
        if int(row[0]) > SCHEMA_VERSION:
            raise InputError(
                f"{path}: results database schema version {row[0]} is newer than this "
                f"netopt's ({SCHEMA_VERSION}); upgrade netopt or use another database. "
                "The file was not modified."
            )
    except sqlite3.DatabaseError as e:
        con.close()
        raise InputError(f"{path}: not a netopt results database ({e})") from None
    except InputError:
        con.close()
        raise
    return con, int(row[0])


class Store:
    """A results database (created when missing).

    Raises
    ------
    InputError
        When the file is not a netopt store or its schema is newer than this code's; the file
        is then left untouched (opened read-only).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        version = self._check_version() if self.path.exists() else SCHEMA_VERSION
        self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed result survives a power cut too, not only a killed process
        self.db.execute("PRAGMA synchronous=FULL")
        if version < SCHEMA_VERSION:
            self._migrate(version)
        with self.db:
            self.db.executescript(_SCHEMA)
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def _migrate(self, version: int) -> None:
        """Bring an older store up to this version, in one transaction (all steps or none)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for v in range(version, SCHEMA_VERSION):
                self.db.execute(_MIGRATIONS[v])
            self.db.execute(
                "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
            )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _check_version(self) -> int:
        con, version = connect_readonly(self.path)
        con.close()
        return version

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------- instances
    def instance(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT path, ground_truth FROM instances WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        return {"path": row[0], "ground_truth": json.loads(row[1] or "{}")}

    def add_instance(
        self, key: str, family: str, params: dict, idx: int, path: str, gt: dict
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?)",
                (key, family, json.dumps(params), idx, path, json.dumps(gt, default=str)),
            )

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        if key == "schema_version":
            raise ValueError("schema_version is the store's own")
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ---------------------------------------------------------------- tasks
    def add_tasks(self, rows: list[tuple]) -> None:
        """Insert ``(key, instance, method, formulation, options, seed, time_limit)`` rows;
        existing keys are kept as they are (that is what makes a rerun resume)."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO tasks (key, instance, method, formulation, options, seed, "
                "time_limit) VALUES (?,?,?,?,?,?,?)",
                rows,
            )

    def reset_running(self) -> int:
        """Make the ``running`` tasks of a dead run ``pending`` again; returns how many."""
        with self.db:
            cur = self.db.execute("UPDATE tasks SET status='pending' WHERE status='running'")
            self.db.execute("UPDATE attempts SET outcome='lost' WHERE outcome IS NULL")
        return cur.rowcount

    def retry(self) -> int:
        """Make failed, timed-out and crashed tasks pending again; returns how many."""
        with self.db:
            cur = self.db.execute(
                "UPDATE tasks SET status='pending' WHERE status IN ('failed','timeout','crashed')"
            )
        return cur.rowcount

    def pending(self, keys: list[str]) -> list[str]:
        """The keys among ``keys`` still to run, in the given order."""
        st = dict(self.db.execute("SELECT key, status FROM tasks"))
        return [k for k in keys if st.get(k) == "pending"]

    def start(self, key: str) -> int:
        """Mark ``key`` running and log an attempt; returns the attempt id."""
        now = time.time()
        with self.db:
            self.db.execute(
                "UPDATE tasks SET status='running', attempts=attempts+1, updated=? WHERE key=?",
                (now, key),
            )
            cur = self.db.execute("INSERT INTO attempts (task, started) VALUES (?, ?)", (key, now))
        return int(cur.lastrowid)

    def finish(self, key: str, attempt: int, status: str, result: dict, seconds: float) -> None:
        """Record a task's outcome and its attempt's, in one transaction."""
        if status not in FINAL:
            raise ValueError(f"not a final status: {status}")
        with self.db:
            self.db.execute(
                "UPDATE tasks SET status=?, result=?, seconds=?, updated=? WHERE key=?",
                (status, json.dumps(result, default=str), seconds, time.time(), key),
            )
            self.db.execute(
                "UPDATE attempts SET outcome=?, seconds=? WHERE id=?", (status, seconds, attempt)
            )

    def counts(self) -> dict[str, int]:
        """Tasks per status (every status present, 0 when none)."""
        c = dict.fromkeys(STATUSES, 0)
        c.update(dict(self.db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")))
        return c

    def results(self) -> list[dict[str, Any]]:
        """Every task row as a dict (``result`` parsed)."""
        cur = self.db.execute("SELECT * FROM tasks ORDER BY key")
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur:
            d = dict(zip(cols, row, strict=True))
            d["result"] = json.loads(d["result"]) if d["result"] else None
            out.append(d)
        return out

    def update_result(self, key: str, result: dict) -> None:
        with self.db:
            self.db.execute("UPDATE tasks SET result=? WHERE key=?", (json.dumps(result), key))

    # ---------------------------------------------------------- ground truth
    def ground_truth(self, instance: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM ground_truth WHERE instance=?", (instance,))
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    def set_ground_truth(
        self,
        instance: str,
        optimum: float | None,
        bound: float | None,
        status: str,
        source: str,
        seconds: float | None = None,
        incumbent: float | None = None,
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO ground_truth (instance, optimum, bound, status, source, "
                "seconds, incumbent) VALUES (?,?,?,?,?,?,?)",
                (instance, optimum, bound, status, source, seconds, incumbent),
            )
