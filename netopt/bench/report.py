r"""Reports of a results database: a CSV of every task, Markdown and HTML summaries, figures.

:func:`build_report` opens the store read-only (the file is never modified, nor created when
missing) and writes ``tasks.csv``, ``report.md``, ``report.html`` and ``figures/*.png``.

Definitions
-----------
Every instance is a minimization with a nonnegative objective. Let :math:`f` be a task's
objective, :math:`f^*` the instance's optimum (``ground_truth`` table), :math:`x` the task's
input and :math:`x^*` the planted input.

*Target.* :math:`T = f^* + \varepsilon_f \max(1, |f^*|)` with :math:`\varepsilon_f` =
``objective_tol``; equivalently ``gap_to_optimum`` :math:`= (f - f^*)/\max(1, |f^*|) \le
\varepsilon_f`.

*Success* (only a task of status ``done`` can succeed):

* criterion ``"objective"``: :math:`f \le T` (never, when :math:`f^*` is unknown);
* criterion ``"x_star"``: ``dist_to_planted`` :math:`= \|x - x^*\|_2 / \max(\|x^*\|_2,
  10^{-12}) \le \varepsilon_x` (``x_star_tol``; never, without a distance);
* criterion ``"either"``: one of the two holds.

*Reference* :math:`f^*`. With ``reference="certified"`` (default): the optimum known by
construction or certified by the MILP. With ``reference="best"``, an instance whose optimum is
not certified (its MILP ran out of time) is judged against the best objective found on it, by
its MILP (incumbent) or any task: a *best known* value, not a certificate, so the best method
on such an instance succeeds by definition. The ``reference`` column says which applied.

*No ground truth.* A task whose instance lacks the reference its criterion needs (a known
:math:`f^*` for ``"objective"``; a planted :math:`x^*` for ``"x_star"``, which the store does not
hold, so an instance has one when any of its tasks reports ``dist_to_planted``; neither for
``"either"``) cannot succeed; it is counted apart, outside the success rates.

*Time to target* :math:`t`: :math:`\infty` for a task that is not a success; otherwise the first
time of the task's trace (``[[seconds, best objective so far], ...]``) whose objective is
:math:`\le T`, and the task's seconds when there is no trace, no known :math:`T` or no trace
point reaches it (e.g. a success by ``x_star`` alone).

*Success rate* of a group: successes / its finished tasks with ground truth (``pending`` and
``running`` tasks are left out, so a partial run is not penalized for what has not run yet).

*Performance profile* (Dolan and Moré, 2002). Problems :math:`p` are the (instance, seed,
time limit) groups with ground truth, :math:`t_{p,m}` is the time to target of method :math:`m`
on :math:`p` (:math:`\infty` when it is not a success or did not run),

.. math::

    r_{p,m} = \frac{t_{p,m}}{\min_{m'} t_{p,m'}}, \qquad
    \rho_m(\tau) = \frac{|\{p : r_{p,m} \le \tau\}|}{|P|},

where a problem no method solved has :math:`r_{p,m} = \infty` for every :math:`m`: it stays in
:math:`|P|` and never counts. :math:`\rho_m(1)` is the fraction of problems on which :math:`m`
is fastest, :math:`\rho_m(\infty)` the fraction it solves at all.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# the pure computations behind the figures live with them (numpy only, no matplotlib)
from netopt.bench.figures import performance_profile, profile_costs, varying_params
from netopt.bench.render import cell, render, write_csv
from netopt.bench.store import (
    STATUSES,
    connect_readonly,
    description_problems,
    ground_truth_problems,
    number_problem,
    parse_json_object,
    task_name,
    task_problem,
)
from netopt.bench.tables import (
    INSTANCE_COLUMNS,
    _num,
    _params_str,
    ground_truth_table,
    instance_rows,
    status_table,
    success_table,
)
from netopt.errors import InputError

__all__ = [
    "UNREADABLE",
    "Criterion",
    "build_report",
    "read_database",
    "evaluate",
    "is_success",
    "time_to_target",
    "performance_profile",
    "profile_costs",
    "status_table",
    "success_table",
    "ground_truth_table",
    "instance_rows",
    "varying_params",
]

log = logging.getLogger("netopt")

FORMATS = ("md", "html", "csv", "png")
#: the status a report gives a task whose row cannot be read (never one the store writes)
UNREADABLE = "unreadable"
#: rows that cannot be read named in warnings (the report's own list has them all)
_WARN_LINES = 20
DEFAULTS = {
    "objective_tol": 1e-4,
    "x_star_tol": 1e-2,
    "criterion": "objective",
    "reference": "certified",
}
REFERENCES = ("certified", "best")
CRITERIA = ("objective", "x_star", "either")
CSV_COLUMNS = (
    "family", "params", "instance", "method", "formulation", "seed", "time_limit", "status",
    "solver_status", "objective", "optimum", "reference", "gap_to_optimum", "dist_to_planted",
    "seconds", "success", "time_to_target", "reason", "no_ground_truth",
)  # fmt: skip


@dataclass(frozen=True)
class Criterion:
    """What counts as a success (see the module docstring)."""

    objective_tol: float = 1e-4
    x_star_tol: float = 1e-2
    criterion: str = "objective"
    reference: str = "certified"

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise InputError(f"unknown success criterion {self.criterion!r}; known: {CRITERIA}")
        if self.reference not in REFERENCES:
            raise InputError(f"unknown reference {self.reference!r}; known: {REFERENCES}")
        for k in ("objective_tol", "x_star_tol"):
            v = getattr(self, k)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise InputError(f"{k} must be a finite number >= 0, got {v!r}")

    def target(self, optimum: float | None) -> float | None:
        """The objective a success must reach: ``optimum + tol * max(1, |optimum|)``."""
        if optimum is None:
            return None
        return optimum + self.objective_tol * max(1.0, abs(optimum))

    def words(self) -> str:
        obj = f"objective <= optimum + {self.objective_tol:g} * max(1, |optimum|)"
        x = f"||x - x*|| / max(||x*||, 1e-12) <= {self.x_star_tol:g}"
        rule = {"objective": obj, "x_star": x, "either": f"{obj}, or {x}"}[self.criterion]
        ref = ""
        if self.reference == "best" and self.criterion != "x_star":
            ref = (
                "; where the MILP certified no optimum, the optimum is the best objective found "
                "on the instance (best known, not certified)"
            )
        return (
            f"a task succeeds when its status is done and {rule} (criterion "
            f"'{self.criterion}'){ref}"
        )


def _select(con: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur]


def read_database(db_path: str | os.PathLike) -> dict[str, Any]:
    """The raw rows of a store, read without modifying it.

    A row that cannot be read back is reported, not fatal, and never taken for what it is not
    (each is named in a warning, and listed under ``problems``): a task with an unknown status,
    a final status without a readable result, or a description that cannot be read gets the
    status :data:`UNREADABLE` (outside every success rate; ``netopt bench`` with its suite on
    the database repairs it); an instance's params or ground truth that cannot be read, or a
    ground-truth value that is not a number, is left out (the optimum then counts as unknown).
    The warnings stop after :data:`_WARN_LINES` lines; the report lists every row.

    Returns
    -------
    dict
        ``meta`` (key -> value), ``instances`` (key -> row with ``params`` parsed), ``tasks``
        (rows with ``result`` parsed), ``ground_truth`` (instance -> row) and ``problems``
        (one line per row that could not be read).

    Raises
    ------
    InputError
        A missing file, a file that is not a netopt store, a damaged one, or a newer schema.
    """
    path = Path(db_path)
    con, _ = connect_readonly(path)
    try:
        meta = {r["key"]: r["value"] for r in _select(con, "SELECT * FROM meta")}
        instances = {r["key"]: r for r in _select(con, "SELECT * FROM instances")}
        tasks = _select(con, "SELECT * FROM tasks ORDER BY key")
        gt = {r["instance"]: r for r in _select(con, "SELECT * FROM ground_truth")}
    except sqlite3.DatabaseError as e:
        raise InputError(f"{path}: unreadable results database ({e})") from None
    finally:
        con.close()
    problems: list[str] = []
    for key, r in instances.items():
        params, why = parse_json_object(r["params"])
        if why is not None:
            problems.append(f"instance {key}: its params {why}; shown without them")
        r["params"] = params or {}
        g, why = parse_json_object(r["ground_truth"])
        if g is not None and number_problem(g.get("optimum")) is not None:
            g, why = None, f"optimum {number_problem(g.get('optimum'))}"
        if why is not None:
            problems.append(
                f"instance {key}: its ground_truth {why}; its planted optimum is left out"
            )
        r["ground_truth"] = g or {}
    for key, g in gt.items():
        bad = ground_truth_problems(g)
        for col in ("optimum", "bound", "seconds", "incumbent"):
            if number_problem(g.get(col)) is not None:
                g[col] = None  # an unknown value, not a wrong one
        if bad:
            problems.append(f"ground truth of instance {key}: {'; '.join(bad)}; left out")
    for t in tasks:
        _check_task(t, problems)
    for line in problems[:_WARN_LINES]:
        log.warning("%s: %s", path, line)
    if len(problems) > _WARN_LINES:  # a flood would hide everything else on the terminal
        log.warning(
            "%s: ... and %d more rows that cannot be read (the report lists them)",
            path,
            len(problems) - _WARN_LINES,
        )
    return {
        "meta": meta,
        "instances": instances,
        "tasks": tasks,
        "ground_truth": gt,
        "problems": problems,
    }


def _check_task(t: dict[str, Any], problems: list[str]) -> None:
    """Parse a task row's result in place; a row that cannot be read becomes
    :data:`UNREADABLE`, its ``reason`` saying why, and a line in ``problems``."""
    name = task_name(t["key"], t["method"], t["instance"], t["seed"], t["time_limit"])
    res, res_why = parse_json_object(t["result"])
    status_why = task_problem(t["status"], t["result"], (res, res_why))
    why = ([] if status_why is None else [status_why]) + description_problems(t)
    if status_why is None and res_why is not None and t["result"] is not None:
        # a pending or running task's leftover result is no outcome, and the rerun writes over
        # it; ignored, but named: damaged bytes are worth knowing of
        problems.append(f"{name}: status {t['status']}, its result {res_why}; ignored")
    if not why:
        t["result"] = res or {}
        return
    problems.append(
        f"{name}: {'; '.join(why)}; reported as {UNREADABLE} (a netopt bench run of its "
        "suite on this database repairs it)"
    )
    # kept where they can be shown; what cannot, shown as unknown (never as another value)
    for col in ("instance", "method", "formulation", "options"):
        if any(w.startswith(f"{col} ") for w in why):
            t[col] = "?"
    if any(w.startswith("seed ") for w in why):
        t["seed"] = None
    if any(w.startswith("time_limit ") for w in why):
        t["time_limit"] = None
    t["status"] = UNREADABLE
    t["result"] = {"reason": f"{UNREADABLE}: {'; '.join(why)}"}


def is_success(
    status: str,
    objective: float | None,
    optimum: float | None,
    dist: float | None,
    crit: Criterion,
) -> bool:
    """Whether a task succeeds under ``crit`` (see the module docstring)."""
    if status != "done":
        return False
    target = crit.target(optimum)
    obj_ok = objective is not None and target is not None and float(objective) <= target
    x_ok = dist is not None and float(dist) <= crit.x_star_tol
    return {"objective": obj_ok, "x_star": x_ok, "either": obj_ok or x_ok}[crit.criterion]


def time_to_target(
    success: bool, seconds: float | None, trace: Any = None, target: float | None = None
) -> float:
    """Seconds until the objective first reached ``target`` (``inf`` when not a success).

    ``trace`` is ``[[seconds, best objective so far], ...]`` in ascending time; malformed
    points are skipped. Without a usable trace point the task's ``seconds`` is the time.
    """
    if not success:
        return math.inf
    if target is not None and isinstance(trace, list):
        for point in trace:
            try:
                t, f = float(point[0]), float(point[1])
            except (TypeError, ValueError, IndexError):
                continue
            if f <= target:
                return t
    return math.inf if seconds is None else float(seconds)


def evaluate(db: dict[str, Any], crit: Criterion) -> list[dict[str, Any]]:
    """One flat row per task: the CSV columns plus ``kind``, ``params`` (dict), ``label``,
    ``success`` (bool), ``no_ground_truth`` (bool) and ``time_to_target`` (float)."""
    rows = []
    best = _best_known(db)
    for t in db["tasks"]:
        inst = db["instances"].get(t["instance"], {})
        res = t["result"] or {}
        g = db["ground_truth"].get(t["instance"])
        optimum = _num(g["optimum"]) if g is not None else None
        if optimum is None:  # a planted optimum the runner has not copied (yet)
            optimum = _num(inst.get("ground_truth", {}).get("optimum"))
        reference = "certified" if optimum is not None else None
        if optimum is None and crit.reference == "best" and best.get(t["instance"]) is not None:
            optimum, reference = best[t["instance"]], "best known"
        objective, dist = _num(res.get("objective")), _num(res.get("dist_to_planted"))
        gap = None  # recomputed: a stored gap may predate the optimum, or lack one
        if objective is not None and optimum is not None:
            gap = (objective - optimum) / max(1.0, abs(optimum))
        seconds = _num(t["seconds"]) if t["seconds"] is not None else _num(res.get("seconds"))
        ok = is_success(t["status"], objective, optimum, dist, crit)
        rows.append(
            {
                "kind": inst.get("family", "?"),
                "label": t["instance"].rsplit("-", 2)[0],
                "params": inst.get("params", {}),
                "family": inst.get("family", "?"),
                "params_str": _params_str(inst.get("params", {})),
                "instance": t["instance"],
                "method": t["method"],
                "formulation": t["formulation"],
                "seed": t["seed"],
                "time_limit": _num(t["time_limit"]),
                "status": t["status"],
                "solver_status": res.get("status") if t["status"] == "done" else None,
                "objective": objective,
                "optimum": optimum,
                "reference": reference,
                "gap_to_optimum": gap,
                "dist_to_planted": dist,
                "seconds": seconds,
                "success": ok,
                "time_to_target": time_to_target(
                    ok, seconds, res.get("trace"), crit.target(optimum)
                ),
                "reason": res.get("reason"),
            }
        )
    planted = {r["instance"] for r in rows if r["dist_to_planted"] is not None}
    for r in rows:
        no_f, no_x = r["optimum"] is None, r["instance"] not in planted
        r["no_ground_truth"] = {"objective": no_f, "x_star": no_x, "either": no_f and no_x}[
            crit.criterion
        ]
    # the family shown in tables: the suite's label and the parameters that tell it apart
    vary = varying_params(rows)
    for r in rows:
        r["family"] = f"{r['label']} {_params_str(r['params'], vary.get(r['kind']))}".strip()
    return rows


def _best_known(db: dict[str, Any]) -> dict[str, float]:
    """Per instance, the least objective found on it: its MILP's incumbent or any task's."""
    best: dict[str, float] = {}

    def offer(key: str, v: Any) -> None:
        v = _num(v)
        if v is not None and (key not in best or v < best[key]):
            best[key] = v

    for key, g in db["ground_truth"].items():
        offer(key, g.get("incumbent"))
    for t in db["tasks"]:
        if t["status"] == "done":
            offer(t["instance"], (t["result"] or {}).get("objective"))
    return best


def _suite_meta(meta: dict[str, str]) -> dict[str, Any]:
    try:
        suite = json.loads(meta.get("suite") or "{}")
    except json.JSONDecodeError:
        return {}
    return suite if isinstance(suite, dict) else {}


def _criterion(meta: dict[str, str], **given: Any) -> Criterion:
    # explicit arguments win, then the suite's success table, then the defaults
    success = _suite_meta(meta).get("success") or {}
    vals: dict[str, Any] = {}
    for k, default in DEFAULTS.items():
        v = given.get(k)
        v = v if v is not None else success.get(k) if success.get(k) is not None else default
        try:
            vals[k] = str(v) if k in ("criterion", "reference") else float(v)
        except (TypeError, ValueError):
            raise InputError(f"{k} must be a number, got {v!r}") from None
    return Criterion(**vals)


def _document(db, rows, crit, db_path, figs, skipped, png) -> list[tuple]:
    """The report's blocks (see :func:`_render`)."""
    name = _suite_meta(db["meta"]).get("name") or Path(db_path).stem
    rule = (
        f"Success: {crit.words()}. Success rates are over the finished tasks whose instance has "
        "the ground truth the criterion needs; the others are counted under no ground truth."
    )
    # an unreadable task is shown as such, not left out of the counts
    shown = [*STATUSES, *([UNREADABLE] if any(r["status"] == UNREADABLE for r in rows) else [])]
    st = [[d["method"], *(d.get(s, 0) for s in shown)] for d in status_table(rows)]
    head = ["family", "method", "tasks", "success rate", "no ground truth", "median gap",
            "median s", "median time to target (successes)"]  # fmt: skip
    body = [
        [d["family"], d["method"], d["tasks"], f"{cell(d['success_rate'], 'pct')} "
         f"({d['successes']}/{d['judged']})", d["no_ground_truth"], cell(d["median_gap"], "gap"),
         cell(d["median_seconds"]), cell(d["median_ttt"])]
        for d in success_table(rows)
    ]  # fmt: skip
    gt_head = ["kind", "instances", "known optimum", "sources", "unknown optimum", "median MILP s"]
    gt = [
        [d["kind"], d["instances"], d["known"], d["sources"] or "—", d["unknown"],
         cell(d["median_milp_seconds"])]
        for d in ground_truth_table(db)
    ]  # fmt: skip
    blocks: list[tuple] = [
        ("h1", f"Benchmark report: {name}"),
        ("p", f"{len(rows)} tasks from the results database", str(Path(db_path).resolve())),
        ("p", rule),
        *_problem_blocks(db.get("problems", [])),
        ("h2", "Task status per method"),
        ("table", ["method", *shown], st),
        ("h2", "Success per family and method"),
        ("table", head, body),
        ("h2", "Ground truth"),
        ("table", gt_head, gt),
    ]
    if png:
        blocks += [("h2", "Figures"), *(("p", s) for s in skipped)]
        blocks += [("img", f"figures/{p.name}", cap) for p, cap in figs]
    return blocks


def _problem_blocks(problems: list[str]) -> list[tuple]:
    """A note on the rows that could not be read (none when all could)."""
    if not problems:
        return []
    n = sum(f"reported as {UNREADABLE}" in p for p in problems)
    head = f"{len(problems)} row(s) of the database could not be read as they stand"
    if n:
        head += (
            f"; {n} task(s) are counted as {UNREADABLE}, outside every success rate (a netopt "
            "bench run of the suite on this database repairs them)"
        )
    return [("h2", "Unreadable rows"), ("p", head + ":"), *(("p", p) for p in problems)]


def build_report(
    db_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    objective_tol: float | None = None,
    x_star_tol: float | None = None,
    criterion: str | None = None,
    formats: tuple[str, ...] | list[str] = FORMATS,
    reference: str | None = None,
) -> dict[str, Any]:
    """Write the report of a results database into ``out_dir``.

    Parameters
    ----------
    db_path : path
        The store, opened read-only.
    out_dir : path
        Created when missing; figures go into ``out_dir/figures``.
    objective_tol, x_star_tol, criterion, reference : optional
        The success criterion (module docstring); ``None``: the suite's ``success`` table
        stored in the database's meta, else ``1e-4``, ``1e-2``, ``"objective"``,
        ``"certified"``.
    formats : tuple of str
        Among ``"md"``, ``"html"``, ``"csv"``, ``"png"``.

    Returns
    -------
    dict
        ``{"md": Path, "html": Path, "csv": Path, "instances_csv": Path, "figures": [Path, ...]}``
        for what was written (``csv`` also writes ``instances.csv``: each instance's ground
        truth).

    Raises
    ------
    InputError
        A missing, foreign or newer database, a bad criterion or format, or ``"png"`` without
        matplotlib; nothing is written then.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(f"unknown report format(s) {bad}; known: {list(FORMATS)}")
    db = read_database(db_path)
    given = {"objective_tol": objective_tol, "x_star_tol": x_star_tol, "criterion": criterion}
    given["reference"] = reference
    crit = _criterion(db["meta"], **given)
    png = "png" in formats
    if png:
        from netopt.bench import figures

        figures.require_matplotlib()  # fail before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = evaluate(db, crit)
    written: dict[str, Any] = {}
    if "csv" in formats:
        written["csv"] = out / "tasks.csv"
        write_csv(rows, written["csv"], CSV_COLUMNS)
        written["instances_csv"] = out / "instances.csv"
        write_csv(instance_rows(db), written["instances_csv"], INSTANCE_COLUMNS, plain=True)
    figs: list[tuple[Path, str]] = []
    skipped: list[str] = []
    if png:
        # an unreadable task has no outcome to draw (nor, maybe, a seed or time limit)
        readable = [r for r in rows if r["status"] != UNREADABLE]
        figs, skipped = figures.draw_all(readable, out / "figures", crit)
        written["figures"] = [p for p, _ in figs]
    blocks = _document(db, rows, crit, db_path, figs, skipped, png)
    for fmt in ("md", "html"):
        if fmt in formats:
            written[fmt] = out / f"report.{fmt}"
            written[fmt].write_text(render(blocks, fmt), encoding="utf-8")
    return written
