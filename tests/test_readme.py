"""The README stays true: its generated op table, and its examples, which run as written.

Every ```python, ```bash, ```sh and ```console block of README.md runs: a Python block in a fresh
interpreter, a shell block line by line (``$ `` lines only in a console block) with the
``netopt`` of this interpreter's environment. The README's paths are relative to the repository
root, so both run in a sandbox folder holding links to ``examples/`` and ``benchmarks/``: what
the examples write lands there, and the test checks that nothing new appears in the repository
root. A block the README marks ``<!-- not run: REASON -->`` (on the line before its fence) is
reported as skipped with that reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.nets import ROOT

from netopt.cli import ops_table_markdown

_BLOCK = re.compile(
    r"^(?:<!-- not run: (?P<why>[^\n]*?) -->\n)?```(?P<lang>python|bash|sh|console)\n(?P<body>.*?)^```",
    re.S | re.M,
)
# the folders the README's commands read from, relative to the repository root
_LINKED = ("examples", "benchmarks")
_TIMEOUT = 600


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README: its language, text, first line and not-run reason."""

    lang: str
    body: str
    line: int
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.lang}-L{self.line}"


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def readme_blocks() -> list[Block]:
    text = _readme()
    return [
        Block(m["lang"], m["body"], text.count("\n", 0, m.start("body")) + 1, m["why"] or None)
        for m in _BLOCK.finditer(text)
    ]


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block: continuation lines joined, blank and comment lines dropped;
    in a console block only the ``$ `` lines (the rest is output)."""
    commands: list[str] = []
    pending = ""
    for raw in block.body.splitlines():
        line = raw.rstrip()
        if block.lang == "console" and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line)
    return commands


@pytest.fixture
def sandbox(tmp_path: Path):
    """A working folder that sees the README's input files; the repository root stays as it was."""
    for name in _LINKED:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    before = set(os.listdir(ROOT))
    yield tmp_path
    new = sorted(set(os.listdir(ROOT)) - before)
    assert not new, f"a README example left {new} in the repository root"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the `netopt` console script of the environment running the tests
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _exit_statuses(cmd: str) -> set[int]:
    """The exit statuses of success: ``netopt check`` follows the SAT-solver convention (10 sat,
    20 unsat, 0 unknown); every other command exits 0."""
    return {0, 10, 20} if cmd.split()[:2] == ["netopt", "check"] else {0}


def _check(proc: subprocess.CompletedProcess, what: str, ok: set[int] = frozenset({0})) -> None:
    assert proc.returncode in ok, (
        f"{what} exits {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-4000:]}"
    )


BLOCKS = readme_blocks()


def test_readme_has_runnable_examples():
    langs = {b.lang for b in BLOCKS if b.not_run is None}
    assert {"python", "bash"} <= langs, "the README lost its Python or shell examples"
    markers = _readme().count("<!-- not run:")
    assert markers == sum(b.not_run is not None for b in BLOCKS), (
        "a `<!-- not run: ... -->` marker is not on the line just before a code block's fence"
    )


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs(block: Block, sandbox: Path):
    if block.not_run is not None:
        pytest.skip(f"README line {block.line}: not run: {block.not_run}")
    if block.lang == "python":
        proc = subprocess.run(
            [sys.executable, "-c", block.body],
            cwd=sandbox,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
        )
        _check(proc, f"the Python block at README line {block.line}")
        return
    commands = shell_commands(block)
    assert commands, f"the shell block at README line {block.line} has no command"
    for cmd in commands:
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", cmd],
            cwd=sandbox,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
        )
        _check(proc, f"`{cmd}` (README line {block.line})", _exit_statuses(cmd))


def test_quickstart_is_the_readme_example():
    """examples/quickstart.py is the README's Python example, so running either runs both."""
    (first,) = [b for b in BLOCKS if b.lang == "python"][:1]
    assert first.body.strip() in (ROOT / "examples" / "quickstart.py").read_text(), (
        "examples/quickstart.py and the README's Python example differ: copy the block over"
    )


def test_ops_table_matches_registry():
    m = re.search(r"<!-- ops-table:start -->\n(.*?)\n?<!-- ops-table:end -->", _readme(), re.S)
    assert m, "the README lost its ops-table markers"
    assert m.group(1).strip() == ops_table_markdown().strip(), (
        "README's op table is stale: run `python -m netopt.cli ops` and paste it between the markers"
    )


def test_ci_runs_the_readme_commands():
    blocks = re.findall(r"```bash\n(.*?)```", _readme(), re.S)
    assert len(blocks) >= 2
    ci = (ROOT / ".ci" / "run").read_text()
    for b in blocks[:2]:
        for line in b.strip().splitlines():
            assert line in ci, f"README command not run by .ci/run: {line}"
