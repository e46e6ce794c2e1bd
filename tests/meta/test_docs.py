"""The prose documentation names only things that exist.

README.md and CONTRIBUTING.md name modules and functions (``netopt.bounds.lp``,
``netopt.formulations.get``) and repository paths (``formulations/_base.py``,
``benchmarks/perf/``). Each is resolved here against the code, so that a module moved or renamed
fails this test instead of leaving the docs pointing at nothing:

* every dotted name ``netopt.a.b`` imports as a module, or is an attribute of the longest
  prefix that does;
* every path under a top-level folder of the repository exists (``<name>`` is a placeholder
  matching any one entry, ``{a,b}`` stands for each of ``a`` and ``b``);
* the README's layout tree resolves entry by entry (an indented name is relative to the folder
  above it), and names every package folder, every test area and every benchmark folder;
* every ``from netopt... import name`` of CONTRIBUTING.md's code sketches resolves.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "CONTRIBUTING.md")
#: the repository's top-level folders and files a path in the docs may start with
TOP_DIRS = ("netopt", "formulations", "solvers", "tests", "benchmarks", "examples", ".ci")
TOP_FILES = ("README.md", "CONTRIBUTING.md", "pyproject.toml", "constraints.txt")
#: source folder -> the package it is installed as
SOURCES = {"netopt": "netopt", "formulations": "netopt.formulations", "solvers": "netopt.solvers"}

_DOTTED = re.compile(r"(?<![\w./-])netopt(?:\.[A-Za-z_]\w*)+")
_PATH = re.compile(
    r"(?<![\w./<>{}-])(?:(?:"
    + "|".join(re.escape(d) for d in TOP_DIRS)
    + r")/[\w./<>{},*-]*|"
    + "|".join(re.escape(f) for f in TOP_FILES)
    + r")(?![\w-])"
)
_LAYOUT = re.compile(r"^## Layout\n.*?^```\n(?P<tree>.*?)^```", re.S | re.M)
_PYBLOCK = re.compile(r"^```python\n(?P<body>.*?)^```", re.S | re.M)
_BRACES = re.compile(r"\{([^{}]*)\}")


def _text(name: str) -> str:
    return (ROOT / name).read_text()


def resolve_dotted(name: str) -> Any:
    """The object ``name`` denotes: the longest importable module prefix, then attributes.

    Raises
    ------
    LookupError
        Naming the prefix that imports and the attribute it lacks.
    """
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        mod_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            # only "this very name is no module" moves on to a shorter prefix; a missing
            # dependency inside a real module is a real failure
            if e.name is None or not mod_name.startswith(e.name):
                raise
            continue
        for k, attr in enumerate(parts[i:], start=i):
            if not hasattr(obj, attr):
                raise LookupError(f"{'.'.join(parts[:k])} has no attribute {attr!r}")
            obj = getattr(obj, attr)
        return obj
    raise LookupError(f"no prefix of {name} imports")


def expand(pattern: str) -> list[str]:
    """``a/{b,c}/d`` -> ``[a/b/d, a/c/d]`` (nested braces unsupported, as in the docs)."""
    m = _BRACES.search(pattern)
    if m is None:
        return [pattern]
    head, tail = pattern[: m.start()], pattern[m.end() :]
    return [p for alt in m.group(1).split(",") for p in expand(head + alt.strip() + tail)]


def path_exists(path: str, base: Path = ROOT) -> bool:
    """Whether every expansion of ``path`` exists under ``base`` (``<x>`` matches any entry)."""
    for p in expand(path.rstrip(".,;:")):
        want_dir = p.endswith("/")
        glob = re.sub(r"<[^<>/]*>", "*", p.rstrip("/"))
        hits = list(base.glob(glob)) if "*" in glob else [base / glob]
        hits = [h for h in hits if h.exists() and (h.is_dir() or not want_dir)]
        if not hits:
            return False
    return True


def dotted_names(text: str) -> list[str]:
    return sorted(set(_DOTTED.findall(text)))


def repo_paths(text: str) -> list[str]:
    return sorted({m.rstrip(".,;:") for m in _PATH.findall(text)})


def layout_entries(readme: str) -> list[tuple[str, str]]:
    """``(path, line)`` for the README's layout tree.

    A line whose first word is a file (``name.ext``) or a folder (``name/``) is an entry,
    relative to the folder entry on the nearest less indented line above; any other line
    continues the description above it. A folder's own line may list ``name.py`` and ``name/``
    words, which are relative to that folder too.
    """
    m = _LAYOUT.search(readme)
    assert m, "README.md has no '## Layout' section with a tree in a code block"
    entries: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []  # (indent, folder path)
    described = ""  # the folder whose description the current line belongs to ("": a file's)
    for line in m["tree"].splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        word, _, rest = line.strip().partition(" ")
        if word.endswith("/") or re.fullmatch(r"\.?[\w-]+(?:\.\w+)+", word):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = (stack[-1][1] if stack else "") + word
            entries.append((path, line))
            described = path if word.endswith("/") else ""
            if described:
                stack.append((indent, path))
        else:
            rest = line  # a continuation of the description above
        if described:
            # file and folder names listed in a folder's description are relative to it
            for sub in re.findall(r"(?<![\w./])([\w-]+(?:\.py|\.md|/))(?!\w)", rest):
                entries.append((described + sub, line))
    return entries


@pytest.mark.parametrize("doc", DOCS)
def test_dotted_names_resolve(doc: str) -> None:
    text = _text(doc)
    names = dotted_names(text)
    assert names, f"{doc} names no netopt module"
    bad = []
    for name in names:
        try:
            resolve_dotted(name)
        except (LookupError, ImportError) as e:
            bad.append(f"{name}: {e}")
    assert not bad, f"{doc} names what does not exist:\n" + "\n".join(bad)


@pytest.mark.parametrize("doc", DOCS)
def test_repository_paths_exist(doc: str) -> None:
    paths = repo_paths(_text(doc))
    assert paths, f"{doc} names no repository path"
    bad = [p for p in paths if not path_exists(p)]
    assert not bad, f"{doc} names paths that do not exist: {bad}"


def test_layout_tree_resolves() -> None:
    entries = layout_entries(_text("README.md"))
    bad = [f"{p}   (line: {line.strip()!r})" for p, line in entries if not path_exists(p)]
    assert not bad, "README.md's layout names what does not exist:\n" + "\n".join(bad)


def _listed_folders() -> set[str]:
    listed = set()
    for p, _ in layout_entries(_text("README.md")):
        for e in expand(p):
            listed.add(e.rstrip("/"))
    return listed


def test_layout_names_every_folder() -> None:
    """A new package, test area or benchmark folder must be added to the README's layout."""
    need = set()
    for top in SOURCES:
        for init in (ROOT / top).rglob("__init__.py"):
            need.add(init.parent.relative_to(ROOT).as_posix())
    for top in ("tests", "benchmarks"):
        for d in (ROOT / top).iterdir():
            if d.is_dir() and not d.name.startswith((".", "_")):
                need.add(d.relative_to(ROOT).as_posix())
    missing = sorted(need - _listed_folders())
    assert not missing, f"README.md's layout does not name: {missing}"


def test_contributing_sketch_imports_resolve() -> None:
    text = _text("CONTRIBUTING.md")
    blocks = [m["body"] for m in _PYBLOCK.finditer(text)]
    assert blocks, "CONTRIBUTING.md has no code sketch"
    bad = []
    for body in blocks:
        for node in ast.walk(ast.parse(body)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("netopt"):
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    try:
                        resolve_dotted(name)
                    except (LookupError, ImportError) as e:
                        bad.append(f"{name}: {e}")
    assert not bad, "CONTRIBUTING.md's sketches import what does not exist:\n" + "\n".join(bad)


# the checker itself, on inputs whose answer is known


def test_checker_rejects_stale_names_and_paths() -> None:
    for stale in ("netopt.vnncheck", "netopt.bounds_lp", "netopt.ir.ops.no_such_rule"):
        with pytest.raises(LookupError):
            resolve_dotted(stale)
    assert resolve_dotted("netopt.bounds.lp").__name__ == "netopt.bounds.lp"
    assert resolve_dotted("netopt.ir.ops.OPS")["relu"].kind == "piecewise_linear"
    assert not path_exists("netopt/ops.py")
    assert not path_exists("benchmarks/{perf,no_such_folder}/")
    assert path_exists("benchmarks/{perf,papers}/")
    assert path_exists("formulations/<method>/__init__.py")
    assert not path_exists("netopt/control.py/")  # a file is no folder


def test_extractors_find_what_the_docs_write() -> None:
    text = "see `netopt.bounds.crown`, netopt/ir/ops/ and (benchmarks/perf/import_time.py)."
    assert dotted_names(text) == ["netopt.bounds.crown"]
    assert repo_paths(text) == ["benchmarks/perf/import_time.py", "netopt/ir/ops/"]
    readme = (
        "## Layout\n\n```\nnetopt/   core\n  ir/     graph.py, ops/\n          and passes.py\n"
        "    ops/  linear.py\n  x.py    see y.py\n```\n"
    )
    assert [p for p, _ in layout_entries(readme)] == [
        "netopt/",
        "netopt/ir/",
        "netopt/ir/graph.py",
        "netopt/ir/ops/",
        "netopt/ir/passes.py",
        "netopt/ir/ops/",
        "netopt/ir/ops/linear.py",
        "netopt/x.py",
    ]
