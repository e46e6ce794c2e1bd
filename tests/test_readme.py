"""The README's generated table and commands stay true."""

from __future__ import annotations

import re

from helpers.nets import ROOT

from netopt.cli import ops_table_markdown


def _readme() -> str:
    return (ROOT / "README.md").read_text()


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
