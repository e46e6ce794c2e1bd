"""The report's figures (matplotlib, Agg backend, PNG) and the pure computations behind them.

:func:`performance_profile`, :func:`profile_costs` and :func:`varying_params` need numpy only;
matplotlib is optional (the ``examples`` extra) and imported only when a figure is drawn. The
definitions are in :mod:`netopt.bench.report`; every function takes its flat task rows
(:func:`netopt.bench.report.evaluate`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.errors import InputError

if TYPE_CHECKING:
    from netopt.bench.report import Criterion

__all__ = ["require_matplotlib", "draw_all", "performance_profile", "profile_costs"]

FINISHED = ("done", "failed", "timeout", "crashed")
#: generator parameters that are not properties of an instance (never an x axis)
NOT_AXES = ("count", "seed", "path")
#: floor of a time to target in the profile: a cost of 0 would make the ratio 0/0
MIN_COST = 1e-6

DPI = 120
#: gaps below this are drawn at it (a log axis has no 0)
GAP_FLOOR = 1e-10
MARKERS = "osD^vP*Xh<>"
DASHES = ("-", "--", "-.", ":")
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.constrained_layout.use": True,
}


def varying_params(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``{kind: [parameter keys whose value differs between that kind's tasks]}``."""
    seen: dict[str, dict[str, set[str]]] = {}
    for r in rows:
        keys = seen.setdefault(r["kind"], {})
        for k, v in r["params"].items():
            if k not in NOT_AXES:
                keys.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    return {kind: sorted(k for k, vals in d.items() if len(vals) > 1) for kind, d in seen.items()}


def performance_profile(
    costs: dict[str, np.ndarray], taus: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dolan–Moré performance profile of nonnegative costs (``inf``: not solved).

    Parameters
    ----------
    costs : dict
        ``{method: costs over the same problems, in the same order}``.
    taus : array, optional
        Where to evaluate :math:`\\rho_m`; default: 1 and every finite ratio (the breakpoints
        of the step functions), sorted.

    Returns
    -------
    taus : ndarray
    rho : dict
        ``{method: fraction of problems with r_{p,m} <= tau, for each tau}``.
    """
    methods = list(costs)
    arrays = [np.asarray(costs[m], dtype=float).ravel() for m in methods]
    if len({a.size for a in arrays}) > 1:
        raise ValueError("every method needs one cost per problem")
    t = np.vstack(arrays) if arrays else np.zeros((0, 0))
    if np.isnan(t).any() or (t < 0).any():
        raise ValueError("costs must be >= 0 or inf")
    t = np.maximum(t, MIN_COST)
    n = t.shape[1]
    if t.size:
        with np.errstate(invalid="ignore"):
            r = t / t.min(axis=0)  # inf / inf = nan: a problem nobody solved
        r[~np.isfinite(r)] = np.inf
    else:
        r = t
    if taus is None:
        taus = np.unique(np.concatenate([[1.0], r[np.isfinite(r)]]))
    taus = np.asarray(taus, dtype=float)
    rho = {
        m: (r[i][None, :] <= taus[:, None]).sum(axis=1) / max(n, 1) for i, m in enumerate(methods)
    }
    return taus, rho


def profile_costs(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Time-to-target costs per method over the (instance, seed, time limit) problems."""
    methods = sorted({r["method"] for r in rows})
    problems = sorted({(r["instance"], r["seed"], r["time_limit"]) for r in rows})
    index = {p: i for i, p in enumerate(problems)}
    costs = {m: np.full(len(problems), np.inf) for m in methods}
    for r in rows:
        i = index[(r["instance"], r["seed"], r["time_limit"])]
        costs[r["method"]][i] = min(costs[r["method"]][i], r["time_to_target"])
    return costs


def require_matplotlib():
    """The ``matplotlib`` module; InputError when it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise InputError(
            "the report's PNG figures need matplotlib: pip install matplotlib "
            "(or leave 'png' out of the formats)"
        ) from None
    return matplotlib


def _style(methods: list[str]) -> dict[str, dict[str, Any]]:
    # one color, marker and dash per method, the same in every figure: equal curves stay visible
    return {
        m: {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)], "ls": DASHES[i % 4]}
        for i, m in enumerate(methods)
    }


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)


def _sort_key(v: Any) -> tuple:
    # lists (widths) compare element-wise, numbers numerically, then everything else as text
    if isinstance(v, bool):
        return (2, str(v))
    if isinstance(v, int | float):
        return (0, (float(v),))
    if isinstance(v, list | tuple) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in v
    ):
        return (1, tuple(float(x) for x in v))
    return (2, str(v))


def _label(v: Any) -> str:
    if isinstance(v, list | tuple):
        if all(isinstance(x, int) and x >= 0 for x in v):  # widths: "20-100-500"
            return "-".join(str(x) for x in v)
        return "[" + ", ".join(_label(x) for x in v) + "]"  # a box: "[-1, 1]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _mantissa(v: float) -> int:
    """The leading digit of ``v`` > 0 (2 for 0.2, 20, 2000)."""
    return int(round(v / 10 ** np.floor(np.log10(v)), 6)) if v > 0 else 0


def _rate_lines(ax, rows, key_of, methods, style, stat: str = "success") -> None:
    """Success rate (over the judged tasks) against ``key_of(row)``, one line per method;
    ``stat="seconds"``: the median wall time of the tasks instead (a hardness curve)."""
    values = {json.dumps(key_of(r), sort_keys=True): key_of(r) for r in rows}
    ordered = sorted(values.values(), key=_sort_key)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in ordered)
    xs = np.array([float(v) for v in ordered] if numeric else range(len(ordered)), dtype=float)
    pos = {json.dumps(v, sort_keys=True): i for i, v in enumerate(ordered)}
    log = numeric and xs.min() > 0 and xs.max() / xs.min() >= 20
    # methods with equal rates would hide each other's markers: shift each a little sideways
    span = np.log10(xs.max() / xs.min()) if log else (xs.max() - xs.min()) or 1.0
    for j, m in enumerate(methods):
        acc: dict[int, list[bool]] = {}
        for r in rows:
            if r["method"] == m:
                v = r["success"] if stat == "success" else r["seconds"]
                if v is not None:
                    acc.setdefault(pos[json.dumps(key_of(r), sort_keys=True)], []).append(v)
        if not acc:
            continue
        idx = sorted(acc)
        shift = (j - (len(methods) - 1) / 2) * 0.012 * span
        x = xs[idx] * 10**shift if log else xs[idx] + shift
        if stat == "success":
            y = [sum(acc[i]) / len(acc[i]) for i in idx]
        else:
            y = [float(np.median(acc[i])) for i in idx]
        ax.plot(x, y, label=m, lw=1.8, ms=7, alpha=0.85, **style[m])
    if log:
        ax.set_xscale("log")
    if len(xs) <= 12 or not numeric:
        ax.set_xticks(xs, [_label(v) for v in ordered], rotation=20 if len(xs) > 6 else 0)
        ax.minorticks_off()
    if not numeric:
        ax.set_xlim(-0.5, len(xs) - 0.5)
    if stat == "success":
        ax.set_ylim(-0.04, 1.04)
        ax.set_ylabel("success rate")
    else:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        lo, hi = ax.get_ylim()
        # within two decades a major tick or two is all there is: label 2, 3 and 5 times a power
        # of ten as well (plainly, not as 2 x 10^0)
        wide = hi > 100 * lo
        ax.yaxis.set_minor_formatter(
            FuncFormatter(lambda v, _: "" if wide or _mantissa(v) not in (2, 3, 5) else f"{v:g}")
        )
        ax.set_ylabel("median time per task (s)")
    ax.legend(title="method")


def _ecdf(ax, values: np.ndarray, n: int, lo: float, hi: float, **kw) -> None:
    """Step plot of ``#{values <= x} / n`` on ``[lo, hi]`` (``inf`` values never count)."""
    v = np.sort(values[np.isfinite(values)])
    x = np.concatenate([[lo], v, [hi]])
    y = np.concatenate([[0.0], np.arange(1, v.size + 1) / n, [v.size / n]])
    kw.pop("marker", None)
    ax.step(x, y, where="post", lw=1.8, **kw)


def draw_all(
    rows: list[dict[str, Any]], fig_dir: Path, crit: Criterion
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Draw every figure the data allows into ``fig_dir``.

    Returns
    -------
    figures : list of (Path, caption)
    skipped : list of str
        One sentence per figure left out, saying why.
    """
    mpl = require_matplotlib()
    # Figure objects, not pyplot: no global backend switch and no figure registry to leak;
    # PNGs are written by the Agg canvas
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    def new(width: float = 6.4):
        fig = Figure(figsize=(width, 4.2))
        return fig, fig.subplots()

    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    # success rates and times only where success can be judged (module docstring of report)
    fin = [r for r in rows if r["status"] in FINISHED and not r["no_ground_truth"]]
    methods = sorted({r["method"] for r in rows})
    style = _style(methods)
    out: list[tuple[Path, str]] = []
    skipped: list[str] = []

    def save(fig, name: str, caption: str) -> None:
        path = fig_dir / f"{_safe(name)}.png"
        fig.savefig(path, dpi=DPI)
        out.append((path, caption))

    if not fin:
        return [], ["No figures: no finished task has ground truth to be judged against."]
    with mpl.rc_context(STYLE):
        # 1. success rate against each varying parameter of each family kind
        vary = varying_params(fin)
        flat = []
        for kind in sorted(vary):
            sub = [r for r in fin if r["kind"] == kind]
            for key in vary[kind]:
                fig, ax = new()
                _rate_lines(ax, [r for r in sub if key in r["params"]],
                            lambda r, k=key: r["params"][k], methods, style)  # fmt: skip
                ax.set_xlabel(key)
                ax.set_title(f"{kind}: success rate vs {key} ({len(sub)} tasks)")
                save(fig, f"success_{kind}_{key}", f"{kind}: success rate vs {key}")
                fig, ax = new()
                _rate_lines(ax, [r for r in sub if key in r["params"]],
                            lambda r, k=key: r["params"][k], methods, style, "seconds")  # fmt: skip
                ax.set_xlabel(key)
                ax.set_title(f"{kind}: median time vs {key} ({len(sub)} tasks)")
                save(fig, f"time_{kind}_{key}", f"{kind}: median wall time per task vs {key}")
            if not vary[kind]:
                flat.append(kind)
        if len({r["time_limit"] for r in fin}) > 1:
            fig, ax = new()
            _rate_lines(ax, fin, lambda r: r["time_limit"], methods, style)
            ax.set_xlabel("time limit (s)")
            ax.set_title(f"Success rate vs time limit ({len(fin)} tasks)")
            save(fig, "success_time_limit", "success rate vs time limit")
        if flat:  # families where nothing varies: one bar per method and family
            fams = sorted({r["family"] for r in fin if r["kind"] in flat})
            width = min(14.0, max(6.4, 1.5 + 0.4 * len(fams) * len(methods)))
            fig, ax = new(width)
            w = min(0.8 / max(1, len(methods)), 0.2)  # one family: no bars a third of a page wide
            for j, m in enumerate(methods):
                rates = []
                for f in fams:
                    s = [r["success"] for r in fin if r["family"] == f and r["method"] == m]
                    rates.append(sum(s) / len(s) if s else np.nan)
                bars = ax.bar(np.arange(len(fams)) + (j - (len(methods) - 1) / 2) * w, rates, w,
                              label=m, color=style[m]["color"])  # fmt: skip
                ax.bar_label(bars, fmt=lambda v: f"{100 * v:.0f}%", fontsize=8, padding=2)
            tilt = {"rotation": 20, "ha": "right"} if len(fams) > 3 else {}
            ax.set_xticks(np.arange(len(fams)), fams, **tilt)
            ax.set_ylim(0, 1.1)
            ax.set_xlim(-0.6, len(fams) - 0.4)
            ax.grid(axis="x", visible=False)
            ax.set_xlabel("family")
            ax.set_ylabel("success rate")
            ax.set_title("Success rate per family (families with no varying parameter)")
            ax.legend(title="method")
            save(fig, "success_bars", "success rate per family and method")

        # 2. performance profile over (instance, seed, time limit) problems
        costs = profile_costs(fin)
        taus, rho = performance_profile(costs)
        n_prob = len(next(iter(costs.values())))
        if not any(np.isfinite(c).any() for c in costs.values()):
            skipped.append(
                "Performance profile skipped: no method reached the target on any problem."
            )
        else:
            # end on a power of 2 past the largest ratio: the flat tail shows rho(inf)
            tau_max = max(4.0, 2.0 ** math.ceil(math.log2(float(taus[-1]) * 1.25)))
            fig, ax = new()
            for m in methods:
                x = np.append(taus, tau_max)
                ax.step(x, np.append(rho[m], rho[m][-1]), where="post", lw=1.8, label=m,
                        color=style[m]["color"], ls=style[m]["ls"])  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlim(1, tau_max)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("τ  (time to target / best method's time to target)")
            ax.set_ylabel("fraction of problems with ratio ≤ τ")
            ax.set_title(f"Performance profile ({n_prob} problems: instance × seed × time limit)")
            ax.legend(title="method", loc="best", framealpha=0.9)
            save(fig, "performance_profile", "Dolan–Moré performance profile on time to target")

        # 3. distribution of the gap to a known optimum (failures never reach any gap)
        known = [r for r in rows if r["status"] in FINISHED and r["optimum"] is not None]
        gaps = {
            m: np.array([
                max(r["gap_to_optimum"], GAP_FLOOR) if r["gap_to_optimum"] is not None else math.inf
                for r in known if r["method"] == m
            ])
            for m in methods
        }  # fmt: skip
        finite = np.concatenate([g[np.isfinite(g)] for g in gaps.values()])
        if finite.size == 0:
            skipped.append("Gap distribution skipped: no finished task has a known optimum.")
        else:
            lo, hi = GAP_FLOOR / 2, max(float(finite.max()) * 2, 10 * crit.objective_tol, 1.0)
            fig, ax = new()
            for m in methods:
                if gaps[m].size:
                    _ecdf(ax, gaps[m], gaps[m].size, lo, hi, label=m, **style[m])
            if crit.criterion != "x_star":
                ax.axvline(crit.objective_tol, color="k", ls="--", lw=1,
                           label=f"objective_tol = {crit.objective_tol:g}")  # fmt: skip
            ax.set_xscale("log")
            ax.set_xlim(lo, hi)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel(f"gap to optimum (values < {GAP_FLOOR:g} drawn at {GAP_FLOOR:g})")
            ax.set_ylabel("fraction of tasks with gap ≤ x")
            ax.set_title(f"Gap to optimum, ECDF ({len(known)} finished tasks, known optimum)")
            ax.legend(loc="best", framealpha=0.9)
            save(fig, "gap_cdf", "empirical CDF of the gap to optimum (failed tasks never count)")

        # 4. fraction of tasks solved within t seconds
        ttt = {m: np.array([r["time_to_target"] for r in fin if r["method"] == m]) for m in methods}
        solved = np.concatenate([t[np.isfinite(t)] for t in ttt.values()])
        if solved.size == 0:
            skipped.append("Time-to-target CDF skipped: no task succeeded.")
        else:
            lo = max(float(solved.min()) / 2, 1e-4)
            hi = max(float(solved.max()) * 2, max(r["time_limit"] for r in fin))
            fig, ax = new()
            for m in methods:
                if ttt[m].size:
                    _ecdf(ax, np.maximum(ttt[m], lo), ttt[m].size, lo, hi, label=m, **style[m])
            ax.set_xscale("log")
            ax.set_xlim(lo, hi)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("time to target t (s)")
            ax.set_ylabel("fraction of tasks solved within t")
            ax.set_title(f"Time to target, CDF ({len(fin)} tasks)")
            ax.legend(title="method", loc="upper left")
            save(fig, "time_cdf", "fraction of tasks solved (success) within t seconds")
    return out, skipped
