"""netopt bench reports: success rules, time to target, the performance profile, the files.

Databases are built directly with the Store API (no solver runs), so this file stays fast.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import sys

import numpy as np
import pytest

from netopt.bench.report import (
    Criterion,
    build_report,
    evaluate,
    performance_profile,
    profile_costs,
    read_database,
    success_table,
    time_to_target,
)
from netopt.bench.store import SCHEMA_VERSION, Store
from netopt.errors import InputError

MLP = {"widths": [3, 6, 2], "target": "realizable", "count": 3, "seed": 0}


def make_db(path, instances, tasks, suite=None):
    """``instances``: ``{key: (kind, params, optimum or None, gt source)}``; ``tasks``:
    ``(instance, method, seed, time_limit, status, result)``."""
    s = Store(path)
    try:
        if suite is not None:
            s.db.execute("INSERT OR REPLACE INTO meta VALUES ('suite', ?)", (json.dumps(suite),))
        for i, (key, (kind, params, opt, source)) in enumerate(instances.items()):
            s.add_instance(key, kind, params, i, f"/nowhere/{key}.json", {})
            status = "optimal" if opt is not None else "time_limit"
            s.set_ground_truth(key, opt, None, status, source, 2.0 if source == "milp" else None)
        for j, (inst, method, seed, tl, status, result) in enumerate(tasks):
            key = f"t{j:03d}"
            s.add_tasks([(key, inst, method, method, "{}", seed, tl)])
            if status == "pending":
                continue
            attempt = s.start(key)
            s.finish(key, attempt, status, result, result.get("seconds", 1.0))
    finally:
        s.close()
    return path


def done(objective, seconds=1.0, **extra):
    return {"status": "feasible", "objective": objective, "seconds": seconds, **extra}


# instance A: optimum 2 (target 2 + 1e-4 * 2 = 2.0002); B: optimum 0.5 (target 0.5001);
# C: unknown optimum (the MILP timed out)
INSTANCES = {
    "mlp-aaa-0": ("mlp", MLP, 2.0, "milp"),
    "mlp-aaa-1": ("mlp", MLP, 0.5, "known"),
    "mlp-aaa-2": ("mlp", MLP, None, "milp"),
}
TASKS = [
    ("mlp-aaa-0", "m1", 0, 10.0, "done", done(2.0001, 1.5)),  # success
    ("mlp-aaa-0", "m1", 1, 10.0, "timeout", {"reason": "killed", "seconds": 20.0}),
    ("mlp-aaa-0", "m2", 0, 10.0, "done", done(2.001, 3.0)),  # 2.001 > 2.0002
    ("mlp-aaa-1", "m1", 0, 10.0, "done", done(0.50011, 0.5)),  # 0.50011 > 0.5001
    ("mlp-aaa-1", "m2", 0, 10.0, "done", done(0.5, 2.0)),  # success
    ("mlp-aaa-2", "m1", 0, 10.0, "done", done(0.0)),  # no ground truth
    ("mlp-aaa-2", "m2", 0, 10.0, "failed", {"reason": "SolveError: x", "seconds": 0.1}),
    ("mlp-aaa-1", "m2", 1, 10.0, "pending", {}),
]


def rows_of(db, **crit):
    return evaluate(read_database(db), Criterion(**crit))


def by_method(table):
    return {d["method"]: d for d in table}


def test_success_rates_with_tolerance(tmp_path):
    db = make_db(tmp_path / "r.sqlite", INSTANCES, TASKS)
    rows = rows_of(db)
    assert [r["success"] for r in rows] == [True, False, False, False, True, False, False, False]
    assert [r["no_ground_truth"] for r in rows] == [False] * 5 + [True, True, False]
    t = by_method(success_table(rows))
    # m1: judged = A s0 (ok), A s1 (timeout), B (over the target); C has no ground truth
    assert (t["m1"]["successes"], t["m1"]["judged"], t["m1"]["no_ground_truth"]) == (1, 3, 1)
    assert t["m1"]["success_rate"] == pytest.approx(1 / 3)
    # m2: A over, B ok; the failed task on C is not judged; the pending one is not finished
    assert (t["m2"]["successes"], t["m2"]["judged"], t["m2"]["tasks"]) == (1, 2, 4)
    assert t["m2"]["median_gap"] == pytest.approx((0.0005 + 0.0) / 2)  # A: (2.001 - 2) / 2
    assert t["m2"]["median_ttt"] == 2.0 and t["m1"]["median_ttt"] == 1.5
    # a looser tolerance: 2.001 <= 2 + 1e-3 * 2 and 0.50011 <= 0.5 + 1e-3
    loose = by_method(success_table(rows_of(db, objective_tol=1e-3)))
    assert loose["m1"]["successes"] == 2 and loose["m2"]["successes"] == 2


def test_criterion_from_suite_meta_and_override(tmp_path):
    suite = {"name": "s", "success": {"objective_tol": 1e-3, "x_star_tol": None}}
    db = make_db(tmp_path / "r.sqlite", INSTANCES, TASKS, suite=suite)
    build_report(db, tmp_path / "a", formats=("csv",))
    with open(tmp_path / "a" / "tasks.csv") as fh:
        assert sum(int(r["success"]) for r in csv.DictReader(fh)) == 4  # the meta's 1e-3
    build_report(db, tmp_path / "b", formats=("csv",), objective_tol=1e-4)
    with open(tmp_path / "b" / "tasks.csv") as fh:
        assert sum(int(r["success"]) for r in csv.DictReader(fh)) == 2  # the argument wins
    with pytest.raises(InputError, match="criterion"):
        build_report(db, tmp_path / "c", criterion="fastest")
    with pytest.raises(InputError, match="format"):
        build_report(db, tmp_path / "c", formats=("pdf",))


def test_x_star_and_either(tmp_path):
    inst = {"exp-b-0": ("expansive", {"widths": [2, 8]}, None, "milp"), **INSTANCES}
    tasks = [
        ("exp-b-0", "m1", 0, 5.0, "done", done(0.3, dist_to_planted=0.005)),
        ("exp-b-0", "m2", 0, 5.0, "done", done(0.3, dist_to_planted=0.05)),
        ("mlp-aaa-0", "m1", 0, 5.0, "done", done(2.0, dist_to_planted=0.5)),
        ("mlp-aaa-1", "m1", 0, 5.0, "done", done(0.9)),  # no distance: no planted input
    ]
    db = make_db(tmp_path / "r.sqlite", inst, tasks)
    x = rows_of(db, criterion="x_star")
    assert [r["success"] for r in x] == [True, False, False, False]
    assert [r["no_ground_truth"] for r in x] == [False, False, False, True]
    e = rows_of(db, criterion="either", x_star_tol=0.1)
    assert [r["success"] for r in e] == [True, True, True, False]
    assert not any(r["no_ground_truth"] for r in e)
    # a success by x_star alone has no trace point at a known target: its seconds count
    assert e[0]["time_to_target"] == 1.0


def test_time_to_target():
    trace = [[0.1, 5.0], [0.5, 1e-3], ["bad"], [0.9, 1e-6], [1.2, 0.0]]
    assert time_to_target(True, 2.0, trace, target=1e-4) == 0.9
    assert time_to_target(True, 2.0, trace, target=1e-2) == 0.5
    assert time_to_target(True, 2.0, None, target=1e-2) == 2.0
    assert time_to_target(True, 2.0, trace, target=None) == 2.0
    assert time_to_target(True, 2.0, [[0.1, 5.0]], target=1e-2) == 2.0  # no point reaches it
    assert time_to_target(False, 2.0, trace, target=1e-2) == math.inf


def test_time_to_target_from_a_stored_trace(tmp_path):
    trace = [[0.2, 3.0], [0.7, 2.00015], [1.1, 2.0]]  # target of instance A: 2.0002
    tasks = [("mlp-aaa-0", "m1", 0, 10.0, "done", done(2.0, 1.5, trace=trace))]
    (r,) = rows_of(make_db(tmp_path / "r.sqlite", INSTANCES, tasks))
    assert r["success"] and r["time_to_target"] == 0.7


def test_performance_profile_by_hand():
    costs = {"m1": np.array([1.0, 3.0, np.inf]), "m2": np.array([2.0, 1.0, np.inf])}
    # ratios: m1 [1, 3, inf], m2 [2, 1, inf]; the third problem stays in the denominator
    taus, rho = performance_profile(costs, taus=np.array([1.0, 2.0, 3.0, 100.0]))
    np.testing.assert_allclose(rho["m1"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho["m2"], [1 / 3, 2 / 3, 2 / 3, 2 / 3])
    taus, rho = performance_profile(costs)  # default grid: the breakpoints
    np.testing.assert_allclose(taus, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(rho["m1"], [1 / 3, 1 / 3, 2 / 3])
    # a zero time does not make 0/0
    _, rho = performance_profile({"a": np.array([0.0]), "b": np.array([1.0])}, np.array([1.0]))
    assert rho["a"][0] == 1.0 and rho["b"][0] == 0.0
    with pytest.raises(ValueError):
        performance_profile({"a": np.array([1.0]), "b": np.array([1.0, 2.0])})


def test_profile_costs_groups_instance_seed_time_limit(tmp_path):
    rows = rows_of(make_db(tmp_path / "r.sqlite", INSTANCES, TASKS))
    costs = profile_costs([r for r in rows if not r["no_ground_truth"]])
    # problems: (A,0,10), (A,1,10), (B,0,10), (B,1,10: only a pending m2 task)
    np.testing.assert_array_equal(costs["m1"], [1.5, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(costs["m2"], [np.inf, np.inf, 2.0, np.inf])


def test_build_report_files_and_database_untouched(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    inst = {
        f"sat3-x{n}-{i}": ("sat3", {"n": n, "ratio": 4.26, "kind": "sat"}, 0.0, "milp")
        for n in (10, 20)
        for i in range(2)
    }
    tasks = []
    for k in inst:
        for m, secs in (("adam", 0.2), ("milp <b>", 1.0)):  # a name that needs escaping
            for seed in (0, 1):
                obj = 0.0 if (seed == 0 or m == "adam") else 0.5
                trace = [[0.05, 1.0], [0.1, 0.0]] if m == "adam" else None
                res = done(obj, secs, **({"trace": trace} if trace else {}))
                tasks.append((k, m, seed, 5.0, "done", res))
    tasks.append(("sat3-x10-0", "adam", 2, 5.0, "crashed", {"reason": "MemoryError"}))
    db = make_db(tmp_path / "r.sqlite", inst, tasks, suite={"name": "quick & dirty"})
    before, listing = db.read_bytes(), sorted(os.listdir(tmp_path))
    out = build_report(db, tmp_path / "rep")
    assert db.read_bytes() == before and sorted(os.listdir(tmp_path)) == listing + ["rep"]
    assert set(out) == {"md", "html", "csv", "instances_csv", "figures"}
    with open(out["instances_csv"]) as fh:
        gt = list(csv.DictReader(fh))
    # one row per instance, its certified optimum (make_db: optimum 0 by the MILP, 2 s)
    assert [r["instance"] for r in gt] == sorted(inst)
    assert {(r["optimum"], r["status"], r["source"], r["seconds"]) for r in gt} == {
        ("0.0", "optimal", "milp", "2.0")
    }
    with open(out["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(tasks)
    wins = {(r["method"], r["seed"], r["status"]): r["success"] for r in rows}
    assert wins[("adam", "0", "done")] == "1" and wins[("milp <b>", "1", "done")] == "0"
    assert wins[("adam", "2", "crashed")] == "0"
    adam = [r for r in rows if r["method"] == "adam" and r["status"] == "done"]
    assert {float(r["time_to_target"]) for r in adam} == {0.1}  # from the trace
    assert rows[0]["family"] == "sat3" and rows[0]["params"] == "kind=sat n=10 ratio=4.26"
    names = {p.name for p in out["figures"]}
    assert {"success_sat3_n.png", "performance_profile.png", "gap_cdf.png", "time_cdf.png"} <= names
    for p in out["figures"]:
        img = imread(p)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    md, page = out["md"].read_text(), out["html"].read_text()
    assert "# Benchmark report: quick & dirty" in md and f"`{db.resolve()}`" in md
    assert "](figures/performance_profile.png)" in md
    assert "quick &amp; dirty" in page and "milp &lt;b&gt;" in page and "<b>" not in page
    assert '<img src="figures/gap_cdf.png"' in page
    # per (family, method): adam on n=10 4/5 (the crash counts), on n=20 4/4; milp 2/4 on both
    for page_text in (md, page):
        assert page_text.count("80% (4/5)") == 1 and page_text.count("100% (4/4)") == 1
        assert page_text.count("50% (2/4)") == 2


def test_no_figure_data_is_said(tmp_path):
    pytest.importorskip("matplotlib")
    tasks = [("mlp-aaa-2", "m1", 0, 10.0, "done", done(0.0))]  # unknown optimum only
    out = build_report(make_db(tmp_path / "r.sqlite", INSTANCES, tasks), tmp_path / "rep")
    assert out["figures"] == []
    assert "no finished task has ground truth" in out["md"].read_text()


def test_formats_subset(tmp_path):
    db = make_db(tmp_path / "r.sqlite", INSTANCES, TASKS)
    out = build_report(db, tmp_path / "rep", formats=("csv", "md"))
    assert set(out) == {"csv", "instances_csv", "md"}
    assert sorted(os.listdir(tmp_path / "rep")) == ["instances.csv", "report.md", "tasks.csv"]


def test_png_without_matplotlib(tmp_path, monkeypatch):
    db = make_db(tmp_path / "r.sqlite", INSTANCES, TASKS)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(InputError, match="pip install matplotlib"):
        build_report(db, tmp_path / "rep")
    assert not (tmp_path / "rep").exists()


def test_missing_foreign_and_newer_databases(tmp_path):
    missing = tmp_path / "none.sqlite"
    with pytest.raises(InputError, match="none.sqlite: no such results database"):
        build_report(missing, tmp_path / "rep")
    assert not missing.exists()
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, not a database " * 100)
    with pytest.raises(InputError, match="notes.sqlite: not a netopt results database"):
        build_report(text, tmp_path / "rep")
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.close()
    with pytest.raises(InputError, match="other.sqlite: not a netopt results database"):
        build_report(other, tmp_path / "rep")
    db = make_db(tmp_path / "r.sqlite", INSTANCES, TASKS)
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(InputError, match="r.sqlite: .*newer than this netopt"):
        build_report(db, tmp_path / "rep")
    assert db.read_bytes() == before and not (tmp_path / "rep").exists()


def test_best_known_reference_for_uncertified_instances(tmp_path):
    """reference="best": an instance the MILP did not certify is judged against the least
    objective found on it (the MILP's incumbent or a task's), labelled as such."""
    inst = dict(INSTANCES)
    tasks = TASKS + [("mlp-aaa-2", "m2", 1, 10.0, "done", done(0.3))]
    db = make_db(tmp_path / "r.sqlite", inst, tasks)
    s = Store(db)
    try:  # the timed-out MILP's incumbent on C: 0.2, better than any task
        s.set_ground_truth("mlp-aaa-2", None, 0.0, "time_limit", "milp", 60.0, incumbent=0.2)
    finally:
        s.close()
    certified = {(r["instance"], r["method"], r["seed"]): r for r in rows_of(db)}
    best = {(r["instance"], r["method"], r["seed"]): r for r in rows_of(db, reference="best")}
    c1, c2 = ("mlp-aaa-2", "m1", 0), ("mlp-aaa-2", "m2", 1)
    assert certified[c1]["no_ground_truth"] and certified[c1]["reference"] is None
    # C's reference is min(0.2 incumbent, 0.0 of m1, 0.3 of m2) = 0.0
    assert best[c1]["optimum"] == 0.0 and best[c1]["reference"] == "best known"
    assert best[c1]["success"] and not best[c1]["no_ground_truth"]
    assert not best[c2]["success"] and best[c2]["gap_to_optimum"] == pytest.approx(0.3)
    # certified instances are judged as before
    for k, r in certified.items():
        if k[0] != "mlp-aaa-2":
            assert best[k]["success"] == r["success"] and best[k]["reference"] == "certified"
    with pytest.raises(InputError, match="unknown reference"):
        rows_of(db, reference="guess")
    # the incumbent alone sets the reference when no task did better
    tasks2 = [t for t in TASKS if t[0] != "mlp-aaa-2"] + [("mlp-aaa-2", "m1", 0, 10.0, "done",
              done(0.25))]  # fmt: skip
    db2 = make_db(tmp_path / "r2.sqlite", inst, tasks2)
    s = Store(db2)
    try:
        s.set_ground_truth("mlp-aaa-2", None, 0.0, "time_limit", "milp", 60.0, incumbent=0.2)
    finally:
        s.close()
    (r,) = [r for r in rows_of(db2, reference="best", objective_tol=0.01) if r["instance"] ==
            "mlp-aaa-2"]  # fmt: skip
    assert r["optimum"] == 0.2 and not r["success"]  # 0.25 > 0.2 + 0.01
