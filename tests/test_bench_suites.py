"""netopt bench: suite grammar (grids, per-method families, [success]), the families' ground
truth against independent references, the CLI, retries, traces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.bench import ground_truth, session_members, statuses, task_rows

from netopt.bench.store import Store
from netopt.bench.suite import load_suite, parse_suite
from netopt.cli import main
from netopt.errors import InputError

GRID = """\
name = "grid"
[[family]]
kind = "sat3"
label = "s"
n = [5, 6]
ratio = [3.0, 4.0, 5.0]
[[family]]
kind = "mlp"
widths = [[3, 5, 2], [4, 6, 2]]
box = [0, 1]
[[method]]
name = "milp"
[[method]]
name = "adam"
families = ["mlp"]
[success]
objective_tol = 0.01
criterion = "either"
"""


def test_grid_and_method_families():
    s = parse_suite(GRID)
    fams = [(f.label, f.params.get("n"), f.params.get("ratio")) for f in s.families]
    assert fams[:6] == [("s", n, r) for n in (5, 6) for r in (3.0, 4.0, 5.0)]
    assert [f.params["widths"] for f in s.families[6:]] == [[3, 5, 2], [4, 6, 2]]
    assert all(f.params["box"] == [0, 1] for f in s.families[6:])
    tasks = s.tasks()
    # milp on all 8 families, adam only on the two mlp ones
    assert sorted((t.method.name, t.family.kind) for t in tasks).count(("adam", "sat3")) == 0
    assert len(tasks) == 8 + 2
    assert s.success == {
        "objective_tol": 0.01,
        "x_star_tol": 1e-2,
        "criterion": "either",
        "reference": "certified",
    }
    # restricting a method does not change the other tasks' keys (a rerun still resumes)
    keys = {t.key for t in tasks if t.method.name == "milp"}
    s2 = parse_suite(GRID.replace('families = ["mlp"]\n', ""))
    assert keys == {t.key for t in s2.tasks() if t.method.name == "milp"}


@pytest.mark.parametrize(
    "old, new, line, words",
    [
        ("objective_tol = 0.01", "objective_tol = 0.01\nrtol = 1", 18, "unknown key 'rtol' of"),
        ('criterion = "either"', 'criterion = "both"', 18, "criterion must be one of"),
        ('criterion = "either"', 'criterion = "either"\nreference = "maybe"', 19, "reference must"),
        ('families = ["mlp"]', 'families = ["mpl"]', 15, "match no family"),
        ('name = "adam"', 'name = "adam"\nformulation = "os.path:nope"', 15, "has no 'nope'"),
        ('name = "adam"', 'name = "adam"\nformulation = "no_such_mod:f"', 15, "cannot import"),
        ("box = [0, 1]", "box = []", 10, "box must be a list"),
        ("ratio = [3.0, 4.0, 5.0]", "ratio = []", 6, "empty list"),
        ('name = "grid"', 'name = "grid"\nseeds = [0, "a"]', 2, "seeds must be"),
        ('name = "grid"', 'name = "grid"\ntime_limit = -1', 2, "time_limit must be"),
        ('name = "grid"', 'name = "grid"\ngrace = "long"', 2, "grace must be"),
    ],
)
def test_suite_errors_name_the_line(old, new, line, words):
    with pytest.raises(InputError, match=rf"g.toml, line {line}: .*{words}"):
        parse_suite(GRID.replace(old, new), "g.toml")


def test_empty_folder_family_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    text = '[[family]]\nkind = "folder"\npath = "empty"\n[[method]]\nname = "milp"\n'
    with pytest.raises(InputError, match=r"f.toml, line 3: folder .*empty holds no instance"):
        parse_suite(text, "f.toml", base=tmp_path)


def test_shipped_suites_parse():
    folder = Path(__file__).resolve().parents[1] / "benchmarks" / "suites"
    names = sorted(p.stem for p in folder.glob("*.toml"))
    assert "quick" in names and len(names) >= 4
    for p in folder.glob("*.toml"):
        assert load_suite(p).tasks()


def test_sat3_ground_truth_matches_sat_solver(tmp_path):
    """The cached MILP optimum is 0 exactly for satisfiable formulas and >= 1 otherwise
    (the reduction's gap), as python-sat decides them."""
    pytest.importorskip("pysat")
    from netopt.bench.runner import make_instance, run_suite
    from netopt.instances import load_instance, sat_solve

    text = """\
time_limit = 30
[[family]]
kind = "sat3"
n = 6
ratio = [2.0, 7.0]
count = 2
[[method]]
name = "gd"
options = { max_iter = 50 }
"""
    db = tmp_path / "r.sqlite"
    run_suite(text, db, workers=2)
    gt = ground_truth(db)
    s = Store(db)
    try:
        paths = {k: s.instance(k)["path"] for k in gt}
    finally:
        s.close()
    assert len(gt) == 4
    verdicts = []
    for ik, g in gt.items():
        inst = load_instance(paths[ik])
        sat = sat_solve(inst.cnf)[0] if hasattr(inst, "cnf") else inst.ground_truth["satisfiable"]
        verdicts.append(sat)
        assert g["optimum"] is not None
        if sat:
            assert g["optimum"] == 0.0
        else:
            assert g["optimum"] >= 1.0 - 1e-6 and g["source"] == "milp"
    assert True in verdicts and False in verdicts  # ratio 2 and 7 give both kinds
    assert make_instance  # the generator the runner used is importable for regeneration


def test_folder_family_and_planted_distance(tmp_path):
    from netopt.bench.runner import run_suite
    from netopt.instances import mlp_instance

    folder = tmp_path / "inst"
    for seed in (3, 4):
        mlp_instance([3, 8, 2], seed, name=f"m{seed}").save(folder)
    text = f"""\
time_limit = 20
[[family]]
kind = "folder"
path = "{folder}"
[[method]]
name = "milp"
[[method]]
name = "adam"
options = {{ max_iter = 200 }}
"""
    db = tmp_path / "r.sqlite"
    run_suite(text, db, workers=2)
    rows = task_rows(db)
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    for r in rows:
        res = r["result"]
        assert np.isfinite(res["dist_to_planted"]) and res["dist_to_planted"] >= 0
        assert res["gap_to_optimum"] == pytest.approx(res["objective"])  # optimum 0 is planted
        if r["method"] == "adam":  # first-order: a trace of the best objective over time
            t = np.array(res["trace"])
            assert t.shape[1] == 2 and len(t) > 5
            assert np.all(np.diff(t[:, 0]) >= 0) and np.all(np.diff(t[:, 1]) <= 0)
            assert t[-1, 0] <= res["seconds"] + 1e-6
            assert t[-1, 1] == pytest.approx(res["objective"], rel=1e-3, abs=1e-5)
        else:
            assert "trace" not in res


def test_cli_bench_report_and_retry(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "s.toml"
    suite.write_text(
        """\
time_limit = 10
grace = 3
[[family]]
kind = "mlp"
widths = [3, 6, 2]
target = ["realizable", "outside"]
[[method]]
name = "milp"
[[method]]
name = "broken"
formulation = "netopt.bench.methods:load_callable"
"""
    )
    assert main(["bench", str(suite), "--workers", "2"]) == 0
    out = capsys.readouterr()
    assert "2 done, 2 failed" in out.out and "netopt report s.sqlite" in out.out
    assert "done 2/4  failed 2  running 0  pending 0" in out.err  # the last progress line
    rows = {(r["method"], r["instance"]): r for r in task_rows(tmp_path / "s.sqlite")}
    assert {r["status"] for (m, _), r in rows.items() if m == "broken"} == {"failed"}
    # a rerun repeats nothing; --retry-failed runs the failed tasks once more
    assert main(["bench", str(suite)]) == 0
    assert {r["attempts"] for r in task_rows(tmp_path / "s.sqlite")} == {1}
    assert main(["bench", str(suite), "--retry-failed"]) == 0
    att = {r["method"]: r["attempts"] for r in task_rows(tmp_path / "s.sqlite")}
    assert att == {"milp": 1, "broken": 2}
    capsys.readouterr()
    assert main(["report", "s.sqlite"]) == 0
    listed = capsys.readouterr().out.split()
    rep = tmp_path / "s_report"
    assert "s_report/report.md" in listed and (rep / "tasks.csv").exists()
    md = (rep / "report.md").read_text()
    assert "milp" in md and "broken" in md
    csv = (rep / "tasks.csv").read_text().splitlines()
    assert len(csv) == 1 + 4
    assert any(p.endswith(".png") for p in listed)


def test_cli_errors(tmp_path, capsys):
    bad = tmp_path / "b.toml"
    bad.write_text('[[family]]\nkind = "mlp"\nwidths = [2, 2]\n[[method]]\nname = "adamm"\n')
    assert main(["bench", str(bad), "--db", str(tmp_path / "x.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "b.toml, line 5: unknown method 'adamm'" in err
    assert not (tmp_path / "x.sqlite").exists()
    assert main(["report", str(tmp_path / "nope.sqlite")]) == 2
    assert "nope.sqlite" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "missing.toml")]) == 2
    assert "no such suite file" in capsys.readouterr().err
    ok = tmp_path / "ok.toml"
    ok.write_text('[[family]]\nkind = "mlp"\nwidths = [2, 2]\n[[method]]\nname = "milp"\n')
    assert main(["bench", str(ok), "--scheduler", "tcp://x:1"]) == 2
    assert "--executor dask" in capsys.readouterr().err
    # a generator's own check, with the family named
    assert main(["bench", str(ok), "--db", str(tmp_path / "ok.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "family mlp" in err and "hidden layer" in err


def test_generator_family_surfing_and_shipped_files(tmp_path):
    """A generator family trains once; Surfing gets the checkpoints through ``instance=``; a job
    shipped as files (as to a Dask worker) finds them in its own folder."""
    pytest.importorskip("sklearn")
    from netopt.bench.executors import _with_files, run_job
    from netopt.bench.runner import run_suite
    from netopt.instances import load_instance

    text = """\
time_limit = 60
ground_truth = "known"
[[family]]
kind = "generator"
latent = 2
hidden = 8
epochs = 1
checkpoints = 3
count = 2
[[method]]
name = "surf"
formulation = "netopt.instances.digits_generator:surfing_method"
options = { steps_per_stage = 30 }
[[method]]
name = "adam"
options = { max_iter = 90 }
[success]
criterion = "x_star"
"""
    db = tmp_path / "r.sqlite"
    run_suite(text, db, workers=2)
    rows = task_rows(db)
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows), rows
    gens = list((tmp_path / "r_instances" / "generators").iterdir())
    assert len(gens) == 1 and len(list(gens[0].glob("theta_*.onnx"))) == 3  # trained once
    s = Store(db)
    try:
        path = s.instance(rows[0]["instance"])["path"]
    finally:
        s.close()
    inst = load_instance(path)
    z = np.asarray(inst.ground_truth["x_star"])
    assert np.allclose(inst.net.forward(z[None]).ravel(), inst.target)  # z* is a preimage
    for r in rows:
        assert r["result"]["dist_to_planted"] >= 0 and r["result"]["objective"] >= 0
    # the same surfing task, shipped as bytes into a fresh folder, gives the same result
    job = {
        "instance": path,
        "formulation": "netopt.instances.digits_generator:surfing_method",
        "options": {"steps_per_stage": 30},
        "seed": 0,
        "time_limit": 60,
    }
    shipped = _with_files(job)
    assert len(shipped["files"]) == 2 + 3  # JSON, model, three checkpoints
    outcome, out = run_job(shipped, grace=10, start="subprocess")
    mine = next(
        r["result"] for r in rows if r["method"] == "surf" and r["instance"] == rows[0]["instance"]
    )
    assert outcome == "done" and out["objective"] == mine["objective"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_running_tasks_and_resume_reruns_them(tmp_path, sig):
    """SIGINT (Ctrl-C) or SIGTERM ends `netopt bench` at once, kills its tasks' processes, and
    leaves them to be run again: nothing finished is lost, nothing is left running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    suite = tmp_path / "s.toml"
    suite.write_text(
        """\
time_limit = 300
ground_truth = "known"
[[family]]
kind = "mlp"
widths = [3, 6, 2]
[[method]]
name = "hang"
formulation = "test_bench:hang"
[[method]]
name = "milp"
"""
    )
    db = tmp_path / "s.sqlite"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    cmd = [sys.executable, "-m", "netopt.cli", "bench", str(suite), "--db", str(db)]
    # a shell that starts a job in the background (as CI may run these tests) leaves SIGINT
    # ignored, and Python keeps an ignored SIGINT ignored: give the runner the default back
    p = subprocess.Popen(
        cmd,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60 and statuses(db).count("done") < 1:
        time.sleep(0.2)
    time.sleep(1.0)  # the hanging task is surely running
    assert sorted(statuses(db)) == ["done", "running"]
    if sig == "SIGTERM":  # meanwhile, a second run on the same database is refused
        from netopt.bench.runner import run_suite

        before = statuses(db)
        with pytest.raises(InputError, match="another netopt bench run is using"):
            run_suite(suite, db)
        assert statuses(db) == before  # and it reset nothing
    os.kill(p.pid, getattr(signal, sig))
    t_int = time.monotonic()
    try:
        rc = p.wait(timeout=60)  # the hanging task alone would take 300 s
    finally:
        os.killpg(p.pid, signal.SIGKILL) if p.poll() is None else None
    err = p.stderr.read()
    assert rc == 130, err
    assert "interrupted" in err and time.monotonic() - t_int < 60
    # no task process outlives the run (the fork server winds down on its own, promptly)
    for _ in range(50):
        left = session_members(p.pid)
        if not left:
            break
        time.sleep(0.1)
    assert left == []
    st = {r["method"]: r["status"] for r in task_rows(db)}
    assert st == {"milp": "done", "hang": "running"}  # reset to pending by the next run
    s = Store(db)
    try:
        assert s.reset_running() == 1
    finally:
        s.close()


def test_user_family_through_imports(tmp_path):
    from netopt.bench.runner import run_suite

    text = """\
imports = ["helpers.bench_user_family"]
time_limit = 20
[[family]]
kind = "user_chain"
width = [4, 8]
[[method]]
name = "milp"
"""
    db = tmp_path / "r.sqlite"
    assert run_suite(text, db, workers=2)["done"] == 2
    s = Store(db)
    try:
        widths = sorted(
            json.loads(r[0])["width"] for r in s.db.execute("SELECT params FROM instances")
        )
    finally:
        s.close()
    assert widths == [4, 8]
    bad = text.replace("helpers.bench_user_family", "no_such_family_module")
    with pytest.raises(InputError, match=r"u.toml, line 1: cannot import module"):
        parse_suite(bad, "u.toml")
    with pytest.raises(InputError, match=r"u.toml, line 4: unknown family kind 'user_chian'"):
        parse_suite(text.replace('kind = "user_chain"', 'kind = "user_chian"'), "u.toml")
