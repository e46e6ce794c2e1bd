"""The layering of netopt's modules, checked by reading their imports (no module is imported).

Each module belongs to a layer; a module may import (at module level or inside a function) only
modules of its own layer or below. The layers, bottom up::

    base          errors, options, registry, control, rounding
    core          ir, frontend, network, problems, model, result, torch_export, torch_utils,
                  vnnlib's reader (everything in netopt.vnnlib but its check)
    bounds        bounds, heuristics, attack
    methods       formulations (the registered methods)
    pipeline      solve, certificate, vnnlib.check
    front         cli, bench, instances, the package facade ``netopt/__init__``

Backends (``netopt.solvers``) stand beside the methods and depend only on ``model``, ``options``,
``errors`` and ``control``; methods reach them through the registry (``netopt.solvers``, never a
backend module), and nothing below the methods imports them. This is what keeps a change in one
method or backend from rippling through the core, and an import of the core cheap.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: source folders and the package each one is installed as
SOURCES = {"netopt": "netopt", "formulations": "netopt.formulations", "solvers": "netopt.solvers"}
LAYERS = ("base", "core", "bounds", "methods", "pipeline", "front")
#: the first matching prefix decides a module's layer
PREFIX_LAYER = (
    ("netopt.errors", "base"),
    ("netopt.options", "base"),
    ("netopt.registry", "base"),
    ("netopt.control", "base"),
    ("netopt.rounding", "base"),
    ("netopt.vnnlib.check", "pipeline"),
    ("netopt.vnnlib", "core"),
    ("netopt.ir", "core"),
    ("netopt.frontend", "core"),
    ("netopt.network", "core"),
    ("netopt.problems", "core"),
    ("netopt.model", "core"),
    ("netopt.result", "core"),
    ("netopt.torch_export", "core"),
    ("netopt.torch_utils", "core"),
    ("netopt.bounds", "bounds"),
    ("netopt.heuristics", "bounds"),
    ("netopt.attack", "bounds"),
    ("netopt.formulations", "methods"),
    ("netopt.solve", "pipeline"),
    ("netopt.certificate", "pipeline"),
    ("netopt.cli", "front"),
    ("netopt.bench", "front"),
    ("netopt.instances", "front"),
)
#: the package facade and ``python -m netopt``: exactly these names (a new module needs a layer)
FACADE = ("netopt", "netopt.__main__")
#: what a backend may import
BACKEND_MAY_IMPORT = (
    "netopt.model",
    "netopt.options",
    "netopt.errors",
    "netopt.control",
    "netopt.registry",
)
#: upward imports inside a function, each for a reason (importer, imported): why
ALLOWED = {
    ("netopt.problems.base", "netopt.solve"): "Problem.solve is the API's entry: it delegates to "
    "the pipeline",
    ("netopt.result", "netopt.certificate"): "Result.certificate and Result.save: a result "
    "offers its own certificate",
}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in SOURCES.items():
        for p in sorted((ROOT / folder).rglob("*.py")):
            rel = p.relative_to(ROOT / folder).with_suffix("")
            parts = [pkg, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


MODULES = _modules()


def layer(mod: str) -> str | None:
    if mod in FACADE:
        return "front"
    if mod.startswith("netopt.solvers"):
        return "backends"
    for prefix, lay in PREFIX_LAYER:
        if mod == prefix or mod.startswith(prefix + "."):
            return lay
    return None


def _imports(mod: str, path: Path) -> list[tuple[str, int]]:
    """Every netopt module named by an import statement in ``path`` (absolute or relative)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("netopt")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(
                    base[: len(base) - node.level + 1] + ([node.module] if node.module else [])
                )
            else:
                target = node.module or ""
            if not target.startswith("netopt"):
                continue
            # `from netopt import solvers` names a module; `from netopt.x import f` the module x
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found += [(s, node.lineno) for s in subs] or [(target, node.lineno)]
    return found


def _violations() -> list[str]:
    bad = []
    for mod, path in MODULES.items():
        lay = layer(mod)
        assert lay is not None, f"{mod} has no layer: add it to PREFIX_LAYER"
        for imp, line in _imports(mod, path):
            if imp == mod or imp.startswith(mod + "."):
                continue  # a package importing its own parts
            if (mod, imp) in ALLOWED:
                continue
            il = layer(imp)
            where = f"{path.relative_to(ROOT)}:{line}: {mod} ({lay}) imports {imp} ({il})"
            if lay == "backends":
                if not (imp.startswith("netopt.solvers") or imp.startswith(BACKEND_MAY_IMPORT)):
                    bad.append(where)
            elif il == "backends":
                # the registry is the methods' door to backends; a backend module is nobody's
                if imp != "netopt.solvers" and not imp.startswith("netopt.solvers._base"):
                    if lay != "front":
                        bad.append(where)
                elif LAYERS.index(lay) < LAYERS.index("methods"):
                    bad.append(where)
            elif il is not None and LAYERS.index(il) > LAYERS.index(lay):
                bad.append(where)
    return bad


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer(m) is None]
    assert not missing


def test_layering():
    bad = _violations()
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("mod", ["netopt.formulations", "netopt.solvers"])
def test_registries_load_no_implementation(mod):
    """The registries' ``__init__`` modules import no method or backend module themselves."""
    imps = [i for i, _ in _imports(mod, MODULES[mod])]
    assert all(not i.startswith(mod + ".") or i.split(".")[-1].startswith("_") for i in imps), imps


def _walk_import_time(node: ast.AST):
    """The nodes executed when the module is imported: not function bodies, not ``if
    TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        yield child
        yield from _walk_import_time(child)


def _module_level_imports(mod: str, path: Path) -> set[str]:
    """Netopt modules that importing ``mod`` imports (by the statements run at import time)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    found: set[str] = set()
    for node in _walk_import_time(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(
                    base[: len(base) - node.level + 1] + ([node.module] if node.module else [])
                )
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES}
            found |= subs or ({target} if target in MODULES else set())
    return found - {mod}


def import_cycles() -> list[list[str]]:
    """The strongly connected components (of more than one module) of the import-time graph."""
    import networkx as nx

    g = nx.DiGraph()
    for mod, path in MODULES.items():
        g.add_node(mod)
        g.add_edges_from((mod, imp) for imp in _module_level_imports(mod, path))
    return [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]


def test_no_import_cycle_beyond_the_facade():
    """Import-time imports form no cycle, except the package facade with its two registries
    (``import netopt`` binds ``netopt.formulations`` and ``netopt.solvers``, which import the
    core through ``netopt``)."""
    allowed = {"netopt", "netopt.formulations", "netopt.solvers"}
    bad = [c for c in import_cycles() if not set(c) <= allowed]
    assert not bad, f"import cycles among modules: {bad}"


def _all_imports_graph():
    """Every import (inside functions too, not ``if TYPE_CHECKING``) between library modules,
    less the :data:`ALLOWED` upward edges."""
    import networkx as nx

    g = nx.DiGraph()
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            s.lineno
            for n in ast.walk(tree)
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
            for s in ast.walk(n)
            if hasattr(s, "lineno")
        }
        g.add_node(mod)
        for imp, line in _imports(mod, path):
            if imp in MODULES and imp != mod and line not in typing_only:
                if (mod, imp) not in ALLOWED:
                    g.add_edge(mod, imp)
    return g


def test_no_cycle_even_through_function_level_imports():
    """Apart from the facade and the documented upward edges (:data:`ALLOWED`), no module
    reaches itself through imports, whether at import time or inside a function; a package whose
    ``__init__`` registers its parts may import them and be imported back by them."""
    import networkx as nx

    bad = []
    for c in nx.strongly_connected_components(_all_imports_graph()):
        if len(c) < 2 or set(c) <= {"netopt", "netopt.formulations", "netopt.solvers"}:
            continue
        pkg = min(c, key=len)
        if all(m == pkg or m.startswith(pkg + ".") for m in c):
            continue  # a package and its own modules (registration on import)
        bad.append(sorted(c))
    assert not bad, f"import cycles: {bad}"
