"""netopt bench: suite parsing, task keys, the store's schema guard, a killed and resumed run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.bench import ground_truth, statuses, task_rows

from netopt.bench.store import SCHEMA_VERSION, Store
from netopt.bench.suite import parse_suite
from netopt.errors import InputError

SUITE = """\
name = "tiny"
seeds = [0, 1]
time_limit = 20

[[family]]
kind = "mlp"
widths = [3, 6, 2]
count = 2

[[method]]
name = "adam"
options = { max_iter = 50 }

[[method]]
name = "milp"
"""


def test_parse_and_expand_deterministic():
    a, b = parse_suite(SUITE).tasks(), parse_suite(SUITE).tasks()
    assert len(a) == 2 * 2 * 2
    assert [t.key for t in a] == [t.key for t in b]
    assert len({t.key for t in a}) == len(a)
    # a changed option is a different task; an unrelated family keeps the keys of the others
    c = parse_suite(SUITE.replace("max_iter = 50", "max_iter = 60")).tasks()
    assert {t.key for t in c if t.method.name == "milp"} == {
        t.key for t in a if t.method.name == "milp"
    }
    assert {t.key for t in c if t.method.name == "adam"}.isdisjoint(t.key for t in a)


@pytest.mark.parametrize(
    "old, new, line, words",
    [
        ('kind = "mlp"', 'kind = "mlq"', 6, "unknown family kind 'mlq'"),
        ('name = "milp"', 'name = "milq"', 15, "unknown method 'milq'"),
        ("max_iter = 50", "max_iter = 50, lrate = 1", 12, "unknown option 'lrate'"),
        ("count = 2", "count = 2\ncolor = 1", 9, "unknown parameter 'color'"),
    ],
)
def test_errors_name_the_line(old, new, line, words):
    with pytest.raises(InputError, match=rf"suite.toml, line {line}: {words}"):
        parse_suite(SUITE.replace(old, new), "suite.toml")


def test_newer_schema_refused_untouched(tmp_path):
    db = tmp_path / "r.sqlite"
    Store(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    before, mtime = db.read_bytes(), db.stat().st_mtime_ns
    files = sorted(os.listdir(tmp_path))
    with pytest.raises(InputError, match="newer than this netopt"):
        Store(db)
    assert db.read_bytes() == before and db.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(tmp_path)) == files


def test_sigkill_midway_then_resume(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)
    db = tmp_path / "r.sqlite"
    code = (
        "from netopt.bench.runner import run_suite; "
        f"run_suite({str(suite)!r}, {str(db)!r}, workers=2)"
    )
    # a new session: the kill takes the runner and its children down together, as a crash would
    p = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    t0 = time.monotonic()
    while statuses(db).count("done") < 3 and p.poll() is None and time.monotonic() - t0 < 40:
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    killed_done = statuses(db).count("done")
    assert 0 < killed_done < 8, "the kill should land midway"
    first = {r["key"]: r for r in task_rows(db) if r["status"] == "done"}

    seen = []
    from netopt.bench.runner import run_suite

    counts = run_suite(suite, db, workers=2, progress=seen.append)
    assert counts["done"] == 8 and sum(counts.values()) == 8
    rows = task_rows(db)
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8
    for r in rows:
        assert r["status"] == "done" and r["attempts"] >= 1
        assert r["result"]["gap_to_optimum"] is not None  # the planted optimum 0 is known
        if r["key"] in first:  # finished before the kill: not run again
            assert r["attempts"] == first[r["key"]]["attempts"]
            assert r["result"] == first[r["key"]]["result"]
    con = sqlite3.connect(db)
    done_per_task = con.execute(
        "SELECT task, COUNT(*) FROM attempts WHERE outcome='done' GROUP BY task"
    ).fetchall()
    con.close()
    assert len(done_per_task) == 8 and all(n == 1 for _, n in done_per_task)
    assert seen[-1]["done"] == 8 and seen[-1]["pending"] == 0 and seen[-1]["running"] == 0
    # a third run has nothing left to do
    assert run_suite(suite, db)["done"] == 8


# test-only methods: module level, so the spawned child imports them by name
def hang(problem, seed=0, time_limit=None, **options):
    time.sleep(600)


def abort(problem, seed=0, time_limit=None, **options):
    os.abort()


def hog(problem, seed=0, time_limit=None, **options):
    return bytearray(8 * 2**30)


def test_hang_and_crash_recorded_run_goes_on(tmp_path):
    from netopt.bench.runner import run_suite

    text = """\
time_limit = 1
grace = 4
memory_limit_mb = 3000
[[family]]
kind = "mlp"
widths = [3, 6, 2]
[[method]]
name = "hang"
[[method]]
name = "abort"
[[method]]
name = "hog"
[[method]]
name = "adam"
options = { max_iter = 20 }
"""
    extra = {"hang": hang, "abort": abort, "hog": hog}
    counts = run_suite(
        parse_suite(text, extra_methods=extra), tmp_path / "r.sqlite", extra_methods=extra
    )
    by = {r["method"]: r for r in task_rows(tmp_path / "r.sqlite")}
    assert by["hang"]["status"] == "timeout"
    assert by["abort"]["status"] == "crashed" and "exit code" in by["abort"]["result"]["reason"]
    assert by["hog"]["status"] == "crashed" and "Memory" in by["hog"]["result"]["reason"]
    assert by["adam"]["status"] == "done"
    assert counts["done"] == 1


SMALL = """\
name = "small"
seeds = [0, 1]
time_limit = 20
[[family]]
kind = "mlp"
widths = [3, 6, 2]
target = ["realizable", "outside"]
[[method]]
name = "adam"
options = { max_iter = 60, restarts = 2 }
[[method]]
name = "milp"
"""


def _table(db: Path) -> list[tuple]:
    """The results that must not depend on where a task ran (no times, no attempt counts)."""
    out = []
    for r in task_rows(db):
        res = r["result"]
        keep = ("status", "objective", "bound", "gap_to_optimum", "dist_to_planted")
        out.append((r["key"], r["status"]) + tuple(res.get(k) for k in keep))
    return sorted(out)


def test_local_and_dask_executors_same_table(tmp_path):
    pytest.importorskip("distributed")
    from netopt.bench.runner import run_suite

    a, b = tmp_path / "local.sqlite", tmp_path / "dask.sqlite"
    run_suite(SMALL, a, workers=2)
    run_suite(SMALL, b, workers=2, executor="dask")
    ta, tb = _table(a), _table(b)
    assert len(ta) == 8 and all(row[1] == "done" for row in ta)
    assert ta == tb
    gt = ground_truth(a)
    # the realizable target's optimum is known (0, planted); the other's is the MILP's
    assert len(gt) == 2 and sorted(g["status"] for g in gt.values()) == ["known", "optimal"]
    assert sorted(g["optimum"] > 0 for g in gt.values()) == [False, True]


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE instances (key TEXT PRIMARY KEY, family TEXT NOT NULL, params TEXT NOT NULL,
    idx INTEGER NOT NULL, path TEXT NOT NULL, ground_truth TEXT);
CREATE TABLE tasks (key TEXT PRIMARY KEY, instance TEXT NOT NULL, method TEXT NOT NULL,
    formulation TEXT NOT NULL, options TEXT NOT NULL, seed INTEGER NOT NULL,
    time_limit REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', result TEXT,
    seconds REAL, attempts INTEGER NOT NULL DEFAULT 0, updated REAL);
CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL,
    started REAL NOT NULL, outcome TEXT, seconds REAL);
CREATE TABLE ground_truth (instance TEXT PRIMARY KEY, optimum REAL, bound REAL,
    status TEXT NOT NULL, source TEXT NOT NULL, seconds REAL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO ground_truth VALUES ('i0', 1.5, 1.5, 'optimal', 'milp', 2.0);
"""


def test_schema_1_store_is_migrated_in_place(tmp_path):
    """A store written by schema 1 (no incumbent column) opens, is upgraded, keeps its rows;
    the report reads a schema-1 file without upgrading it."""
    from netopt.bench.report import instance_rows, read_database

    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(V1_SCHEMA)
    con.commit()
    con.close()
    con = sqlite3.connect(db)
    con.execute("INSERT INTO instances VALUES ('i0', 'mlp', '{}', 0, 'x.json', '{}')")
    con.commit()
    con.close()
    rows = instance_rows(read_database(db))  # read-only: still schema 1 afterwards
    assert rows[0]["optimum"] == 1.5 and rows[0]["incumbent"] == 1.5 and rows[0]["gap"] == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta").fetchone()[0] == "1"
    con.close()
    s = Store(db)
    try:
        g = s.ground_truth("i0")
        assert g["optimum"] == 1.5 and g["incumbent"] is None  # kept, and the new column
        s.set_ground_truth("i1", None, 0.5, "time_limit", "milp", 60.0, incumbent=2.0)
        assert s.ground_truth("i1")["incumbent"] == 2.0
        assert s.meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        s.close()


def test_ground_truth_by_branch_and_bound_matches_the_milp(tmp_path):
    # ground_truth = "bab": the same certified optimum as the MILP's, recorded with its source
    from netopt.bench.runner import run_suite

    bab = SMALL.replace('name = "small"', 'name = "small"\nground_truth = "bab"')
    (tmp_path / "bab.toml").write_text(bab)
    (tmp_path / "milp.toml").write_text(SMALL)
    run_suite(tmp_path / "bab.toml", tmp_path / "bab.sqlite", workers=2)
    run_suite(tmp_path / "milp.toml", tmp_path / "milp.sqlite", workers=2)
    gb, gm = ground_truth(tmp_path / "bab.sqlite"), ground_truth(tmp_path / "milp.sqlite")
    solved = {k: g for k, g in gb.items() if g["status"] == "optimal"}
    assert len(solved) == 1 and all(g["source"] == "bab" for g in solved.values())
    for k, g in solved.items():
        assert gm[k]["status"] == "optimal" and gm[k]["source"] == "milp"
        assert g["optimum"] == pytest.approx(gm[k]["optimum"], rel=1e-5, abs=1e-7)
