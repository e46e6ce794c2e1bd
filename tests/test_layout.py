"""The package layout's three guards (DESIGN.md section 2) and the lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tomllib
from helpers.nets import ROOT


def test_every_package_folder_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    mapping = cfg["tool"]["setuptools"]["package-dir"]
    found = set()
    for top, name in (
        ("netopt", "netopt"),
        ("formulations", "netopt.formulations"),
        ("solvers", "netopt.solvers"),
    ):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found == listed
    assert mapping == {"netopt.formulations": "formulations", "netopt.solvers": "solvers"}


def test_no_shadowing_folders():
    assert not (ROOT / "netopt" / "formulations").exists()
    assert not (ROOT / "netopt" / "solvers").exists()


@pytest.mark.parametrize("pkg", ["formulations", "solvers"])
def test_mapped_packages_refuse_other_names(pkg):
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {pkg}"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0 and "netopt." in r.stderr


def test_registries_importable():
    import netopt.formulations as f
    import netopt.solvers as s

    assert isinstance(f.available(), list) and isinstance(s.available(), list)


def test_import_is_lazy():
    # scipy.sparse too: it doubles the import time, and only building a model or a bound needs it
    heavy = ["torch", "cvxpy", "pyomo", "gurobipy", "onnxruntime", "highspy", "scipy.sparse"]
    code = (
        f"import sys, netopt; heavy = {heavy!r}; "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == ""
