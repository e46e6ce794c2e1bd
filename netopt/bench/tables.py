"""The report's tables: per method, per family x method, per instance (ground truth).

Rows come from :func:`netopt.bench.report.evaluate` (one per task) or straight from the
database (:func:`netopt.bench.report.read_database`).
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

from netopt.bench.figures import FINISHED
from netopt.bench.store import STATUSES

__all__ = ["status_table", "success_table", "ground_truth_table", "instance_rows"]
__all__ += ["INSTANCE_COLUMNS"]


def _fmt_value(v: Any) -> str:
    # widths as "20-100-500": a readable label and a safe file name; a list with a negative
    # or fractional entry (a box) as "[-1, 1]", where dashes would be ambiguous
    if isinstance(v, list | tuple):
        if all(isinstance(x, int) and x >= 0 for x in v):
            return "-".join(str(x) for x in v)
        return "[" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "]"
    return str(v)


def _params_str(params: dict[str, Any], keys: list[str] | None = None) -> str:
    keys = sorted(params) if keys is None else keys
    return " ".join(f"{k}={_fmt_value(params[k])}" for k in keys if k in params)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _median(vals: list[float | None]) -> float | None:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    return statistics.median(v) if v else None


def _natural(text: str) -> list:
    """Sort key reading digit runs as numbers: "widths=30-..." before "widths=110-..."."""

    return [
        (0, float(t), "") if t[0].isdigit() else (1, 0.0, t)
        for t in re.findall(r"\d+\.?\d*|\D+", text)
    ]


def status_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: the count of tasks in each status."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        d = out.setdefault(r["method"], {"method": r["method"], **dict.fromkeys(STATUSES, 0)})
        d[r["status"]] = d.get(r["status"], 0) + 1
    return [out[m] for m in sorted(out)]


def success_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (family, method): tasks, judged (finished, with ground truth), successes, success
    rate (successes / judged), no-ground-truth count, median gap to optimum, median seconds,
    median time to target over successes (``None`` where there is nothing to take a median of)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["family"], r["method"]), []).append(r)
    out = []
    for (fam, m), rs in sorted(groups.items(), key=lambda kv: (_natural(kv[0][0]), kv[0][1])):
        fin = [r for r in rs if r["status"] in FINISHED]
        judged = [r for r in fin if not r["no_ground_truth"]]
        wins = [r for r in judged if r["success"]]
        out.append(
            {
                "family": fam,
                "method": m,
                "tasks": len(rs),
                "judged": len(judged),
                "successes": len(wins),
                "success_rate": len(wins) / len(judged) if judged else None,
                "no_ground_truth": sum(r["no_ground_truth"] for r in rs),
                "median_gap": _median([r["gap_to_optimum"] for r in fin]),
                "median_seconds": _median([r["seconds"] for r in fin]),
                "median_ttt": _median([r["time_to_target"] for r in wins]),
            }
        )
    return out


def ground_truth_table(db: dict[str, Any]) -> list[dict[str, Any]]:
    """Per family kind: instances, those with a known optimum (by source), unknown, median
    seconds of the ground-truth MILPs."""
    out: dict[str, dict[str, Any]] = {}
    for key, inst in sorted(db["instances"].items()):
        d = out.setdefault(
            inst["family"],
            {"kind": inst["family"], "instances": 0, "known": 0, "unknown": 0, "sources": {}},
        )
        d.setdefault("milp_seconds", [])
        g = db["ground_truth"].get(key)
        d["instances"] += 1
        if g is not None and g["optimum"] is not None:
            d["known"] += 1
            d["sources"][g["source"] or "?"] = d["sources"].get(g["source"] or "?", 0) + 1
        else:
            d["unknown"] += 1
        if g is not None and g["source"] == "milp" and g["seconds"] is not None:
            d["milp_seconds"].append(float(g["seconds"]))
    for d in out.values():
        d["median_milp_seconds"] = _median(d.pop("milp_seconds"))
        d["sources"] = ", ".join(f"{k}: {v}" for k, v in sorted(d["sources"].items()))
    return [out[k] for k in sorted(out)]


INSTANCE_COLUMNS = ("instance", "family", "params", "optimum", "incumbent", "bound", "gap")
INSTANCE_COLUMNS += ("status", "source", "seconds")


def instance_rows(db: dict[str, Any]) -> list[dict[str, Any]]:
    """Per instance, its ground truth: the optimum (known or certified), and for a ground-truth
    MILP its incumbent, its proven bound (solver-attested), their gap ``|incumbent - bound| /
    max(1, |incumbent|)``, status and seconds (a store of schema 1 has no incumbent)."""
    out = []
    for key, inst in sorted(db["instances"].items(), key=lambda kv: _natural(kv[0])):
        g = db["ground_truth"].get(key) or {}
        inc, bound = _num(g.get("incumbent")), _num(g.get("bound"))
        if inc is None and g.get("status") == "optimal":
            inc = _num(g.get("optimum"))
        gap = (
            abs(inc - bound) / max(1.0, abs(inc)) if inc is not None and bound is not None else None
        )
        out.append(
            {
                "instance": key,
                "family": inst["family"],
                "params": _params_str(inst["params"]),
                "optimum": _num(g.get("optimum")),
                "incumbent": inc,
                "bound": bound,
                "gap": gap,
                "status": g.get("status", "none"),
                "source": g.get("source", ""),
                "seconds": _num(g.get("seconds")),
            }
        )
    return out
