"""The results store: one SQLite file (WAL mode) with a versioned schema.

An older store is migrated in place when opened (``_MIGRATIONS``, one transaction); a newer one
is refused untouched.

Tables: ``meta`` (``schema_version``), ``instances`` (generated instance files),
``tasks`` (key, status, result JSON, seconds, attempts), ``attempts`` (an append-only log of
every attempt and its outcome) and ``ground_truth`` (one cached optimum per instance).

Each state change is one transaction, so a SIGKILL leaves a task either ``done`` (its result
committed) or re-runnable: :meth:`Store.reset_running` turns the ``running`` rows of a dead run
back into ``pending``.

A store is its file, not the name it was reached by: :func:`store_file` resolves symlinks,
``..`` and the working directory, and SQLite is always opened through that resolved path,
because SQLite names its write-ahead log and shared-memory files (``FILE-wal``, ``FILE-shm``)
after the path it is given. Two names for one file would give it two logs, and the second
writer would corrupt it, so a file with more than one hard link is refused.

Damage is told apart from foreign files: a file that is not SQLite is "not a netopt results
database"; an SQLite file that fails ``PRAGMA integrity_check`` is "damaged" (refused, never
written to, with how to recover what is left); a row whose values cannot be read back (text
that is not UTF-8 or not JSON, an unknown status, a NULL result) is found by
:meth:`Store.repair` (a run puts it back to pending, with a warning naming it) and by the
report (shown as unreadable).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from netopt.bench.rows import (
    _GT_COLUMNS,
    DESCRIPTION,
    FINAL,
    STATUSES,
    NotUtf8,
    _show,
    _text,
    description_problems,
    ground_truth_problems,
    number_problem,
    parse_json_object,
    task_name,
    task_problem,
)
from netopt.errors import InputError

__all__ = ["Store", "SCHEMA_VERSION", "STATUSES", "FINAL", "connect_readonly", "store_file"]
__all__ += ["NotUtf8", "parse_json_object", "task_problem", "number_problem"]
__all__ += ["ground_truth_problems", "task_name", "description_problems", "DESCRIPTION"]

SCHEMA_VERSION = 2
#: how an older store is brought to this version, step by step (``version -> SQL``)
_MIGRATIONS = {
    # v2: the ground-truth MILP's incumbent, kept also when it did not prove optimality
    1: "ALTER TABLE ground_truth ADD COLUMN incumbent REAL",
}

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


#: the first 16 bytes of every SQLite database file
_MAGIC = b"SQLite format 3\x00"
#: problems quoted from ``PRAGMA integrity_check`` in a message
_INTEGRITY_LINES = 3


def store_file(path: str | os.PathLike) -> Path:
    """The store's file itself: ``path`` with symlinks, ``..`` and the working directory
    resolved, so that every name of one file is one store.

    Raises
    ------
    InputError
        A path that cannot be resolved (a symlink loop), a folder, or a file with more than one
        hard link: SQLite keeps a write-ahead log beside each name it is given, so two names
        would write two logs into one file and corrupt it.
    """
    shown = Path(path)
    try:
        real = shown.resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Python < 3.13)
        raise InputError(f"{shown}: cannot resolve the results database's path ({e})") from None
    if real.is_dir():
        raise InputError(f"{shown}: is a folder, not a results database; give a file name")
    try:
        links = real.stat().st_nlink
    except FileNotFoundError:
        return real
    if links > 1:
        raise InputError(
            f"{shown}: the results database has {links} names (hard links to one file). SQLite "
            "keeps its write-ahead log beside the name it opens (NAME-wal), so runs through two "
            "names write two logs into one file and corrupt it. Give the store a file of its "
            f"own: copy it (cp {shown} NEW.sqlite) and use the copy, or remove the other names "
            f"(find / -xdev -samefile {shown} lists them)"
        )
    return real


def _truncation(real: Path) -> str:
    """A hint when the file is shorter than its SQLite header says (cut short)."""
    try:
        with open(real, "rb") as fh:
            head = fh.read(100)
        size = real.stat().st_size
    except OSError:
        return ""
    if len(head) < 100 or not head.startswith(_MAGIC):
        return ""
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    # the header's page count is valid only when its two change counters agree
    if head[24:28] != head[92:96] or size >= page * pages:
        return ""
    return f"; the file is {size} bytes, its header records {pages * page}: it was cut short"


def _damaged(shown: Path, real: Path, detail: str) -> InputError:
    return InputError(
        f"{shown}: the results database is damaged (SQLite: {detail}){_truncation(real)}. "
        "netopt neither reads nor writes a damaged store. Recover what SQLite can still read "
        f"into a new file and use that one: sqlite3 {shown} .recover | sqlite3 recovered.sqlite "
        "(.dump where .recover fails); netopt bench on the new file runs again the tasks it lost"
    )


def _sqlite_error(shown: Path, real: Path, e: sqlite3.Error) -> InputError:
    """A netopt error for an SQLite error on the store (what it means, what to do)."""
    code = getattr(e, "sqlite_errorname", "") or ""  # Python >= 3.11
    text = str(e)
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(
        w in text for w in ("malformed", "not a database")
    ):
        return _damaged(shown, real, text)
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return InputError(
            f"{shown}: the results database stayed locked by another program ({text}); close "
            "what else has it open (an sqlite3 shell, a database browser) and run again"
        )
    return InputError(
        f"{shown}: cannot use the results database ({text}); check that the file and its "
        "folder exist and are writable, and that the disk has room"
    )


def _check_integrity(con: sqlite3.Connection, shown: Path, real: Path) -> None:
    """Refuse a damaged file before anything is read from it or written to it.

    ``integrity_check`` rather than ``quick_check``: damaged bytes in a key leave the row and
    its index disagreeing, which only the full check sees (the row would be found by one
    lookup and missed by another).
    """
    try:
        # one line each: an entry may hold several ("*** in database main ***\nPage 14: ...")
        lines = [
            " ".join(str(r[0]).split())
            for r in con.execute(f"PRAGMA integrity_check({_INTEGRITY_LINES})")
        ]
    except sqlite3.DatabaseError as e:  # damaged beyond checking (the schema itself, a cut)
        raise _sqlite_error(shown, real, e) from None
    if lines != ["ok"]:
        raise _damaged(shown, real, "; ".join(lines))


def connect_readonly(
    path: str | os.PathLike, *, name: str | os.PathLike | None = None
) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to a netopt store and its schema version, having checked both.

    Checking must never write: without a WAL file beside it, "immutable" keeps SQLite from
    creating one (plain read-only mode would add -wal and -shm files). The WAL is looked for
    beside the file itself (:func:`store_file`): through a symlink, the one beside the link's
    name would never exist, and the report would miss every result still in the log.

    ``name``: how messages call the store (default: ``path`` as given).

    Raises
    ------
    InputError
        A missing file, a file that is not a netopt store, a damaged one, one with several
        names, or a newer schema (the file is left as it was).
    """
    shown = Path(path if name is None else name)
    real = store_file(path)
    if not real.is_file():
        raise InputError(f"{shown}: no such results database")
    try:
        with open(real, "rb") as fh:
            head = fh.read(len(_MAGIC))
    except OSError as e:
        raise InputError(f"{shown}: cannot read the results database ({e.strerror})") from None
    if not head:
        raise InputError(f"{shown}: not a netopt results database (an empty file)")
    if head != _MAGIC:
        raise InputError(f"{shown}: not a netopt results database (not an SQLite file)")
    wal = real.with_name(real.name + "-wal").exists()
    uri = f"{real.as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.DatabaseError as e:
        raise _sqlite_error(shown, real, e) from None
    con.text_factory = _text
    try:
        _check_integrity(con, shown, real)
        row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None and isinstance(row[0], NotUtf8):
            raise _damaged(shown, real, f"the schema version {_show(row[0])} is not text")
        if row is None or not str(row[0]).isdigit():
            raise InputError(f"{shown}: not a netopt results database (no schema_version)")
        if int(row[0]) > SCHEMA_VERSION:
            raise InputError(
                f"{shown}: results database schema version {row[0]} is newer than this "
                f"netopt's ({SCHEMA_VERSION}); upgrade netopt or use another database. "
                "The file was not modified."
            )
    except sqlite3.DatabaseError as e:
        con.close()
        if "no such table" in str(e):
            raise InputError(f"{shown}: not a netopt results database ({e})") from None
        raise _sqlite_error(shown, real, e) from None
    except InputError:
        con.close()
        raise
    return con, int(row[0])


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(method: _F) -> _F:
    """An SQLite error inside a :class:`Store` method becomes a netopt error naming the file
    and saying what to do, never a raw ``sqlite3`` traceback; a misuse of the API (a closed
    store: ``ProgrammingError``) is a bug and passes as it is."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.ProgrammingError:
            raise
        except sqlite3.DatabaseError as e:
            raise _sqlite_error(self.path, self.file, e) from None

    return wrapper  # type: ignore[return-value]


class Store:
    """A results database (created when missing).

    ``path`` may be any name of the file (a symlink, a relative path); SQLite is opened through
    the resolved one (:func:`store_file`), where its -wal and -shm files live.

    Raises
    ------
    InputError
        When the file is not a netopt store, is damaged, has several names, or its schema is
        newer than this code's; the file is then left untouched (opened read-only).
    """

    @_guarded
    def __init__(self, path: str | os.PathLike, *, name: str | os.PathLike | None = None):
        #: the name messages give the store: ``name``, else ``path`` as given
        self.path = Path(path if name is None else name)
        #: the file itself (what SQLite opens)
        self.file = store_file(path)
        version = self._check_version() if self.file.exists() else SCHEMA_VERSION
        self.db = sqlite3.connect(str(self.file), timeout=30, isolation_level=None)
        self.db.text_factory = _text
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
        con, version = connect_readonly(self.file, name=self.path)
        con.close()
        return version

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------- instances
    @_guarded
    def instance(self, key: str) -> dict[str, Any] | None:
        """``{"path", "ground_truth", "problem"}`` of instance ``key`` (None when absent).

        ``problem`` says why the row cannot be used (``None`` when it can): a path, family,
        index, params or ground truth that cannot be read back, or an optimum that is not a
        number. The instance is then to be generated again (generation is seeded, and
        :meth:`add_instance` rewrites the whole row), not guessed at.
        """
        row = self.db.execute(
            "SELECT path, ground_truth, params, family, idx FROM instances WHERE key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        path, text, params, family, idx = row
        gt, gt_why = parse_json_object(text)
        why = [] if gt_why is None else [f"its ground_truth {gt_why}"]
        if gt is not None and number_problem(gt.get("optimum")) is not None:
            why.append(f"its ground truth's optimum {number_problem(gt.get('optimum'))}")
        for col, v in (("path", path), ("family", family)):
            if isinstance(v, NotUtf8) or not isinstance(v, str) or not v:
                why.append(f"its {col} {_show(v)} cannot be read")
        params_why = parse_json_object(params)[1]
        if params_why is not None:
            why.append(f"its params {params_why}")
        if not isinstance(idx, int) or isinstance(idx, bool):
            why.append(f"its index {_show(idx)} is not an integer")
        problem = "; ".join(why) if why else None
        return {"path": path, "ground_truth": gt or {}, "problem": problem}

    @_guarded
    def add_instance(
        self, key: str, family: str, params: dict, idx: int, path: str, gt: dict
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?)",
                (key, family, json.dumps(params), idx, path, json.dumps(gt, default=str)),
            )

    @_guarded
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    @_guarded
    def set_meta(self, key: str, value: str) -> None:
        if key == "schema_version":
            raise ValueError("schema_version is the store's own")
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ---------------------------------------------------------------- tasks
    @_guarded
    def add_tasks(self, rows: list[tuple]) -> None:
        """Insert ``(key, instance, method, formulation, options, seed, time_limit)`` rows;
        existing keys are kept as they are (that is what makes a rerun resume)."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO tasks (key, instance, method, formulation, options, seed, "
                "time_limit) VALUES (?,?,?,?,?,?,?)",
                rows,
            )

    @_guarded
    def repair(self, suite_rows: list[tuple] | None = None) -> list[str]:
        """Put back in order the rows that cannot be read as they stand; returns one line per
        row saying which and what was done (for the caller to warn with).

        Nothing is thrown away that could still be read, and nothing is kept that would be
        taken for what it is not:

        * a task with an unknown status, or a final status without a readable result
          (:func:`task_problem`), goes back to ``pending``: its outcome is lost, and running it
          again is the only way to get it back (keeping it would either skip it silently or
          count a result nobody can read). Its row and attempts log stay as they were until
          the rerun writes over the result;
        * a task whose description cannot be read (:func:`description_problems`) gets it
          written again from ``suite_rows`` (the ``(key, instance, method, formulation,
          options, seed, time_limit)`` rows of :meth:`add_tasks`): the key is a digest of the
          description, so the suite's task with that key has the very values that were lost.
          A task the suite does not hold is left as it is (the report shows it unreadable);
        * a ground-truth row with a value that is not a number (or unreadable text) is deleted:
          the run computes it again (the MILP, or the optimum copied from the instance), where
          keeping it would make every gap on that instance wrong or missing.

        Instance rows are checked where the run reads them (:meth:`instance`).
        """
        fixes: list[str] = []
        tasks: list[int] = []
        described: list[tuple] = []
        suite = {r[0]: r for r in suite_rows or []}
        cur = self.db.execute(
            "SELECT rowid, key, status, result, " + ", ".join(DESCRIPTION) + " FROM tasks "
            "ORDER BY key"
        )
        for rowid, key, status, result, *desc in cur:
            d = dict(zip(DESCRIPTION, desc, strict=True))
            name = task_name(key, d["method"], d["instance"], d["seed"], d["time_limit"])
            bad = description_problems(d)
            if bad and key in suite:
                described.append((*suite[key][1:], rowid))
                fixes.append(f"{name}: {'; '.join(bad)}; written again from the suite")
            elif bad:
                fixes.append(f"{name}: {'; '.join(bad)}; not in this suite, left as it is")
            why = task_problem(status, result)
            if why is not None:
                tasks.append(rowid)
                fixes.append(f"{name}: {why}; set back to pending, it runs again")
        gts: list[int] = []
        for rowid, instance, *values in self.db.execute(
            "SELECT rowid, instance, optimum, bound, seconds, incumbent, status, source "
            "FROM ground_truth ORDER BY instance"
        ):
            why = ground_truth_problems(dict(zip(_GT_COLUMNS, values, strict=True)))
            if why:
                gts.append(rowid)
                fixes.append(
                    f"ground truth of instance {instance}: {'; '.join(why)}; removed, it is "
                    "computed again"
                )
        if tasks or gts or described:
            with self.db:  # one transaction: a kill leaves all of it or none
                self.db.executemany(
                    "UPDATE tasks SET status='pending' WHERE rowid=?", [(r,) for r in tasks]
                )
                self.db.executemany(
                    "UPDATE tasks SET instance=?, method=?, formulation=?, options=?, seed=?, "
                    "time_limit=? WHERE rowid=?",
                    described,
                )
                self.db.executemany("DELETE FROM ground_truth WHERE rowid=?", [(r,) for r in gts])
        return fixes

    @_guarded
    def reset_running(self) -> int:
        """Make the ``running`` tasks of a dead run ``pending`` again; returns how many."""
        with self.db:
            cur = self.db.execute("UPDATE tasks SET status='pending' WHERE status='running'")
            self.db.execute("UPDATE attempts SET outcome='lost' WHERE outcome IS NULL")
        return cur.rowcount

    @_guarded
    def retry(self) -> int:
        """Make failed, timed-out and crashed tasks pending again; returns how many."""
        with self.db:
            cur = self.db.execute(
                "UPDATE tasks SET status='pending' WHERE status IN ('failed','timeout','crashed')"
            )
        return cur.rowcount

    @_guarded
    def pending(self, keys: list[str]) -> list[str]:
        """The keys among ``keys`` still to run, in the given order."""
        st = dict(self.db.execute("SELECT key, status FROM tasks"))
        return [k for k in keys if st.get(k) == "pending"]

    @_guarded
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

    @_guarded
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

    @_guarded
    def counts(self) -> dict[str, int]:
        """Tasks per status (every status present, 0 when none)."""
        c = dict.fromkeys(STATUSES, 0)
        c.update(dict(self.db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")))
        return c

    @_guarded
    def results(self) -> list[dict[str, Any]]:
        """Every task row as a dict (``result`` parsed; ``None`` when there is none or it
        cannot be read: :meth:`repair` names those)."""
        cur = self.db.execute("SELECT * FROM tasks ORDER BY key")
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur:
            d = dict(zip(cols, row, strict=True))
            d["result"] = parse_json_object(d["result"])[0]
            out.append(d)
        return out

    @_guarded
    def update_result(self, key: str, result: dict) -> None:
        with self.db:
            self.db.execute("UPDATE tasks SET result=? WHERE key=?", (json.dumps(result), key))

    # ---------------------------------------------------------- ground truth
    @_guarded
    def ground_truth(self, instance: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM ground_truth WHERE instance=?", (instance,))
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    @_guarded
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
