"""Benchmark suites: a TOML file of instance families x methods x seeds x time limits.

A suite file::

    name = "small"
    seeds = [0, 1]
    time_limit = 30          # seconds; a number or a list (one task per value)
    grace = 10               # extra wall-clock seconds before a task is killed
    memory_limit_mb = 4000   # optional, per task: address space, ~0.7 GB of it the imported libraries

    [[family]]
    kind = "mlp"             # sat3 | expansive | mlp | generator | folder (or registered)
    widths = [3, 6, 2]
    target = "realizable"
    count = 2

    [[family]]
    kind = "sat3"
    n = [10, 20]             # a list makes a grid: one family per value (widths: a list of lists)
    ratio = [3.0, 4.26]

    [[method]]
    name = "adam_short"      # the label in results
    formulation = "adam"     # default: the name; or "package.module:function" (see below)
    options = { max_iter = 50 }
    families = ["sat3"]      # optional: the family labels (or kinds) it runs on

    [success]                # how `netopt report` judges a result (it can override these)
    objective_tol = 1e-4     # objective <= optimum + tol * max(1, |optimum|)
    x_star_tol = 1e-2        # ||x - x*|| / ||x*|| <= tol, x* the planted input
    criterion = "objective"  # objective | x_star | either

A method's ``formulation`` may name a function ``f(problem, seed=..., time_limit=..., **options)
-> Result`` as ``"package.module:function"``: a method of the user's own, run like the others;
a function with an ``instance`` parameter also receives the task's
:class:`~netopt.instances.Instance` (its files and ground truth), e.g. Surfing's
``"netopt.instances.digits_generator:surfing_method"`` on a ``generator`` family.
Top-level ``ground_truth = "milp"`` (default) solves each instance's MILP once, within
``ground_truth_time_limit`` seconds, when its optimum is not known by construction; ``"bab"``
solves it by branch and bound instead (its bound proven by a tree ``netopt verify`` re-checks;
on few inputs it certifies optima the MILP leaves open, benchmarks/RESULTS.md); ``"known"``
uses only what the generator knows.

Every error names the file and the line of the offending key: the TOML parser keeps no
positions, so the key is located in the raw text (:func:`_line_of`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netopt.bench.families import FAMILIES, folder_files
from netopt.bench.methods import _callable_options, load_callable, method_options
from netopt.errors import InputError

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["Suite", "Family", "Method", "Task", "load_suite", "parse_suite", "method_options"]
__all__ += ["load_callable", "SUCCESS_DEFAULTS"]

_TOP_KEYS = {"name", "seeds", "time_limit", "grace", "memory_limit_mb", "ground_truth_time_limit"}
_TOP_KEYS |= {"family", "method", "success", "ground_truth", "imports"}
#: the [success] table: name -> default
SUCCESS_DEFAULTS: dict[str, Any] = {
    "objective_tol": 1e-4,
    "x_star_tol": 1e-2,
    "criterion": "objective",
    "reference": "certified",  # or "best": uncertified instances judged by the best found
}
_CRITERIA = ("objective", "x_star", "either")
_METHOD_KEYS = {"name", "formulation", "options", "families"}


@dataclass(frozen=True)
class Family:
    """One ``[[family]]`` table: a generator and its parameters (defaults filled in)."""

    kind: str
    params: dict[str, Any]
    label: str

    def digest(self) -> str:
        """A short hash of the kind and parameters: the family's identity in task keys."""
        return _digest({"kind": self.kind, "params": self.params})[:10]


@dataclass(frozen=True)
class Method:
    """One ``[[method]]`` table: a label, the formulation it runs and its options."""

    name: str
    formulation: str
    options: dict[str, Any]
    #: family labels or kinds this method runs on (None: every family)
    families: tuple[str, ...] | None = None

    def runs_on(self, fam: Family) -> bool:
        return self.families is None or fam.label in self.families or fam.kind in self.families


@dataclass(frozen=True)
class Task:
    """One (instance, method, seed, time limit); ``key`` is stable across runs and edits."""

    key: str
    family: Family
    index: int
    method: Method
    seed: int
    time_limit: float

    @property
    def instance_key(self) -> str:
        return f"{self.family.label}-{self.family.digest()}-{self.index}"


@dataclass
class Suite:
    """A parsed suite (see the module docstring)."""

    name: str
    families: list[Family]
    methods: list[Method]
    seeds: list[int]
    time_limits: list[float]
    grace: float = 10.0
    memory_limit_mb: float | None = None
    ground_truth_time_limit: float | None = None
    ground_truth: str = "milp"
    success: dict[str, Any] = field(default_factory=lambda: dict(SUCCESS_DEFAULTS))
    path: str | None = None
    _counts: dict[int, int] = field(default_factory=dict, repr=False)

    def instance_count(self, fam: Family) -> int:
        """How many instances ``fam`` yields (a folder: its instance JSON files)."""
        return FAMILIES.get(fam.kind).instance_count(fam.params)

    def tasks(self) -> list[Task]:
        """Every task, in a deterministic order: family, instance, method, seed, time limit."""
        out = []
        for fam in self.families:
            for i in range(self.instance_count(fam)):
                for m in self.methods:
                    if not m.runs_on(fam):
                        continue
                    for s in self.seeds:
                        for tl in self.time_limits:
                            key = _digest(
                                {
                                    "family": fam.kind,
                                    "params": fam.params,
                                    "index": i,
                                    "method": m.name,
                                    "formulation": m.formulation,
                                    "options": m.options,
                                    "seed": s,
                                    "time_limit": tl,
                                }
                            )
                            out.append(Task(key, fam, i, m, s, tl))
        return out


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _line_of(text: str, key: str, occurrence: int = 0, after: int = 0) -> int | None:
    """The 1-based line where ``key`` is assigned (or a ``[[key]]`` table opens).

    ``occurrence`` counts ``[[table]]`` headers (the n-th family); ``after`` starts the search
    at that line, so a key is looked up inside its own table.
    """
    lines = text.splitlines()
    pat = re.compile(rf"^\s*(\[\[?\s*{re.escape(key)}\s*\]\]?|\"?{re.escape(key)}\"?\s*=)")
    inline = re.compile(rf"[{{,]\s*\"?{re.escape(key)}\"?\s*=")
    seen = 0
    for n, line in enumerate(lines[after:], start=after + 1):
        if pat.search(line) or inline.search(line):
            if seen == occurrence:
                return n
            seen += 1
    return None


class _Ctx:
    """Where errors point: the file name and its text."""

    def __init__(self, text: str, where: str):
        self.text, self.where = text, where

    def fail(self, msg: str, key: str, table: str | None = None, occurrence: int = 0) -> InputError:
        start = 0
        if table is not None:
            start = (_line_of(self.text, table, occurrence) or 1) - 1
        line = _line_of(self.text, key, 0, start)
        loc = f"{self.where}, line {line}" if line else self.where
        return InputError(f"{loc}: {msg}")


def load_suite(path: str | os.PathLike, extra_methods: dict[str, Any] | None = None) -> Suite:
    """Read and check a suite file (see :func:`parse_suite`)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputError(f"{p}: no such suite file") from None
    s = parse_suite(text, str(p), extra_methods, base=p.parent)
    s.path = str(p)
    return s


def parse_suite(
    text: str,
    where: str = "<suite>",
    extra_methods: dict[str, Any] | None = None,
    base: Path | None = None,
) -> Suite:
    """Parse and check a suite's TOML text.

    Parameters
    ----------
    text : str
    where : str
        The file name used in error messages.
    extra_methods : dict, optional
        ``{name: callable(problem, seed=..., time_limit=..., **options) -> Result}``: methods
        beyond the registered formulations (accepted with any options).
    base : Path, optional
        Folder that relative ``folder`` paths are resolved against.

    Raises
    ------
    InputError
        For malformed TOML, an unknown key, family, method or option; the message names the line.
    """
    from netopt import formulations

    ctx = _Ctx(text, where)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{where}: not valid TOML ({e})") from None
    for k in data:
        if k not in _TOP_KEYS:
            raise ctx.fail(f"unknown key '{k}'; known: {sorted(_TOP_KEYS)}", k)
    imports = data.get("imports", [])
    if isinstance(imports, str) or not isinstance(imports, list):
        raise ctx.fail("imports must be a list of module names", "imports")
    for mod in imports:
        # modules that register the suite's own families (netopt.bench.families.family)
        # or formulations, before anything is looked up
        try:
            importlib.import_module(str(mod))
        except ImportError as e:
            raise ctx.fail(f"cannot import module {mod!r} ({e})", "imports") from None
    extra = dict(extra_methods or {})
    fams = []
    for j, f in enumerate(data.get("family", [])):
        kind = f.get("kind")
        if kind not in FAMILIES:
            raise ctx.fail(
                f"unknown family kind {kind!r}; known: {FAMILIES.names()}",
                "kind",
                "family",
                j,
            )
        fspec = FAMILIES.get(kind)
        spec = fspec.params
        params = {}
        for k, v in f.items():
            if k in ("kind", "label"):
                continue
            if k not in spec:
                raise ctx.fail(
                    f"unknown parameter '{k}' of family '{kind}'; known: {sorted(spec)}",
                    k,
                    "family",
                    j,
                )
            params[k] = v
        for k, default in spec.items():
            if k not in params:
                if default is None:
                    raise ctx.fail(f"family '{kind}' needs '{k}'", "kind", "family", j)
                params[k] = default
        fail = lambda k, m, j=j: ctx.fail(m, k, "family", j)  # noqa: E731
        for grid_point in _grid(params, fspec.list_params, fail):
            if kind == "folder":
                fp = Path(grid_point["path"])
                grid_point["path"] = str(fp if fp.is_absolute() or base is None else base / fp)
                if not folder_files(grid_point):  # else the family would silently add nothing
                    raise fail(
                        "path",
                        f"folder {grid_point['path']} holds no instance JSON files; write "
                        "some with `netopt gen` or Instance.save",
                    )
            fams.append(Family(kind, grid_point, str(f.get("label", kind))))
    methods = []
    known = sorted(set(formulations.available()) | set(extra))
    for j, m in enumerate(data.get("method", [])):
        for k in m:
            if k not in _METHOD_KEYS:
                raise ctx.fail(
                    f"unknown key '{k}' of a method; known: {sorted(_METHOD_KEYS)}",
                    k,
                    "method",
                    j,
                )
        if "name" not in m:
            raise ctx.fail("a method needs a 'name'", "method", None, j)
        form = m.get("formulation", m["name"])
        key = "formulation" if "formulation" in m else "name"
        if ":" in str(form):  # the user's own method, imported by name
            try:
                allowed = _callable_options(str(form))
            except InputError as e:
                raise ctx.fail(str(e), key, "method", j) from None
        elif form not in known:
            raise ctx.fail(f"unknown method {form!r}; known: {known}", key, "method", j)
        else:
            allowed = None if form in extra else method_options(form)
        if not isinstance(m.get("options", {}), dict):
            raise ctx.fail(
                "'options' must be a table, e.g. { max_iter = 50 }", "options", "method", j
            )
        opts = dict(m.get("options", {}))
        if allowed is not None:
            for k in opts:
                if k not in allowed or k in ("time_limit", "seed"):
                    # the suite's own time_limit and seeds set these two
                    raise ctx.fail(
                        f"unknown option '{k}' of method '{m['name']}' ({form}); "
                        f"known: {sorted(set(allowed) - {'time_limit', 'seed'})}",
                        k,
                        "method",
                        j,
                    )
        only = m.get("families")
        if only is not None:
            only = [only] if isinstance(only, str) else only
            labels = {f.label for f in fams} | {f.kind for f in fams}
            bad = [x for x in only if x not in labels]
            if not isinstance(only, list) or bad:
                raise ctx.fail(
                    f"method '{m['name']}': families {bad or only!r} match no family label or "
                    f"kind; the suite has {sorted(labels)}",
                    "families",
                    "method",
                    j,
                )
            only = tuple(str(x) for x in only)
        methods.append(Method(str(m["name"]), form, opts, only))
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise InputError(f"{where}: method names must be unique, got {names}")
    if not fams or not methods:
        raise InputError(f"{where}: a suite needs at least one [[family]] and one [[method]]")
    success = dict(SUCCESS_DEFAULTS)
    sdata = data.get("success", {})
    if not isinstance(sdata, dict):
        raise ctx.fail("'success' must be a table: [success]", "success")
    for k, v in sdata.items():
        if k not in SUCCESS_DEFAULTS:
            raise ctx.fail(
                f"unknown key '{k}' of [success]; known: {sorted(SUCCESS_DEFAULTS)}", k, "success"
            )
        if k == "criterion" and v not in _CRITERIA:
            raise ctx.fail(f"criterion must be one of {list(_CRITERIA)}, got {v!r}", k, "success")
        if k == "reference" and v not in ("certified", "best"):
            raise ctx.fail(f"reference must be 'certified' or 'best', got {v!r}", k, "success")
        if k not in ("criterion", "reference") and not (isinstance(v, int | float) and v >= 0):
            raise ctx.fail(f"{k} must be a number >= 0, got {v!r}", k, "success")
        success[k] = v
    gt = data.get("ground_truth", "milp")
    if gt not in ("milp", "bab", "known"):
        raise ctx.fail(f"ground_truth must be 'milp', 'bab' or 'known', got {gt!r}", "ground_truth")
    seeds = data.get("seeds", [0])
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not isinstance(seeds, list) or not seeds or not all(_is_int(x) for x in seeds):
        raise ctx.fail(f"seeds must be an integer or a list of integers, got {seeds!r}", "seeds")
    tl = data.get("time_limit", 60.0)
    tls = tl if isinstance(tl, list) else [tl]
    if not tls or not all(_is_positive(t) for t in tls):
        raise ctx.fail(
            f"time_limit must be seconds > 0 or a list of them, got {tl!r}", "time_limit"
        )
    for k in ("grace", "memory_limit_mb", "ground_truth_time_limit"):
        if k in data and not _is_positive(data[k]):
            raise ctx.fail(f"{k} must be a number > 0, got {data[k]!r}", k)
    return Suite(
        name=str(data.get("name", Path(where).stem)),
        families=fams,
        methods=methods,
        seeds=[int(s) for s in seeds],
        time_limits=[float(t) for t in tls],
        grace=float(data.get("grace", 10.0)),
        memory_limit_mb=data.get("memory_limit_mb"),
        ground_truth_time_limit=data.get("ground_truth_time_limit"),
        ground_truth=gt,
        success=success,
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < float("inf")


def _grid(params: dict[str, Any], list_params: tuple[str, ...], fail) -> list[dict[str, Any]]:
    """Expand list-valued parameters into their Cartesian product (in the order written).

    A family's list parameters (``widths``, ``box``) are themselves lists: a list of lists is
    their grid. Every other parameter is a scalar, so any list is a grid.
    """
    import itertools

    axes = []
    for k, v in params.items():
        if k in list_params:
            if isinstance(v, list) and v and all(isinstance(w, list) for w in v):
                axes.append([(k, list(w)) for w in v])
            elif isinstance(v, list) and v and all(isinstance(w, int | float) for w in v):
                axes.append([(k, v)])
            else:
                raise fail(k, f"{k} must be a list of numbers or a list of such lists, got {v!r}")
        elif isinstance(v, list):
            if not v:
                raise fail(k, f"'{k}' is an empty list: give at least one value")
            axes.append([(k, x) for x in v])
        else:
            axes.append([(k, v)])
    return [dict(point) for point in itertools.product(*axes)]
