"""What covers what: IR ops x core rules, and formulations x problem kinds.

Both matrices are printed (``pytest -s``) and asserted: every op of the exact (piecewise-linear)
vocabulary has every core rule that applies to it, every smooth op the rules first-order methods
and bounds need, and each registered formulation accepts exactly the problem kinds of the table
below, so that a change of coverage shows up in review as a change of this file.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from helpers.nets import make_model
from onnx import helper

import netopt
import netopt.formulations as F
from netopt.ir.ops import OPS

CORE_RULES = ("infer", "forward", "vjp", "linear_map", "interval", "relax", "torch")
#: the vocabulary every exact method (MILP, bounds, branch and bound) covers
EXACT = (
    "affine",
    "conv2d",
    "scale",
    "add",
    "concat",
    "pad",
    "reshape",
    "transpose",
    "select",
    "identity",
    "avgpool2d",
    "maxpool2d",
    "relu",
    "leaky_relu",
)
SMOOTH = ("sigmoid", "tanh", "softmax", "log_softmax")
SMOOTH_RULES = ("infer", "forward", "vjp", "interval", "torch")
HAS_TORCH = importlib.util.find_spec("torch") is not None

KINDS = (
    "Inversion l1",
    "Inversion l2",
    "Inversion linf",
    "OutputObjective",
    "Feasibility",
    "CrossEntropy",
)
Y, N = True, False
#: formulation -> does accepts() take each of KINDS (in that order)
ACCEPTS = {
    "adam": (Y, Y, Y, Y, Y, Y),
    "admm": (Y, Y, Y, Y, Y, Y),
    "adr_gd": (Y, Y, Y, Y, Y, Y),
    "auto": (Y, Y, Y, Y, Y, N),
    "bab": (Y, Y, Y, Y, Y, N),
    "gd": (Y, Y, Y, Y, Y, Y),
    "gradient": (Y, Y, Y, Y, Y, Y),
    "layerwise_lp": (Y, Y, Y, Y, Y, Y),
    "lifted_bregman": (Y, Y, Y, Y, Y, Y),
    "milp": (Y, Y, Y, Y, Y, N),
    "pgd": (Y, Y, Y, Y, Y, Y),
    "sign_pgd": (Y, Y, Y, Y, Y, Y),
    "surfing": (Y, Y, Y, N, N, N),
}


def _op_rules() -> dict[str, set[str]]:
    torch_rules: set[str] = set()
    if HAS_TORCH:
        from netopt.ir.torch_module import TORCH_RULES

        torch_rules = set(TORCH_RULES)
    out = {}
    order = [*EXACT, *SMOOTH]
    # the table's rows in the order above, ops it does not know yet last
    for name in sorted(OPS, key=lambda n: order.index(n) if n in order else len(order)):
        have = set(OPS[name].rules())
        if name in torch_rules:
            have.add("torch")
        out[name] = have
    return out


def _table(rows: dict[str, list[str]], cols: tuple[str, ...], title: str) -> str:
    w = max(len(r) for r in rows) + 2
    cw = max(len(c) for c in cols) + 1
    lines = [title, " " * w + "".join(c.rjust(cw) for c in cols)]
    lines += [r.ljust(w) + "".join(v.rjust(cw) for v in vals) for r, vals in rows.items()]
    return "\n".join(lines)


def test_ops_x_core_rules():
    rules = _op_rules()
    rows = {name: ["x" if r in have else "." for r in CORE_RULES] for name, have in rules.items()}
    print("\n" + _table(rows, CORE_RULES, "IR ops x core rules (x: has the rule)"))
    assert set(OPS) == set(EXACT) | set(SMOOTH), "a new op: add it to EXACT or SMOOTH here"
    checked = CORE_RULES if HAS_TORCH else CORE_RULES[:-1]
    for name in EXACT:
        # linear_map is the rule of linear ops only; the others are relaxed, not mapped
        need = {r for r in checked if r != "linear_map" or OPS[name].kind == "linear"}
        assert need <= rules[name], f"{name} lacks {sorted(need - rules[name])}"
        assert ("linear_map" in rules[name]) == (OPS[name].kind == "linear")
    for name in SMOOTH:
        need = {r for r in SMOOTH_RULES if r != "torch" or HAS_TORCH}
        assert need <= rules[name], f"{name} lacks {sorted(need - rules[name])}"


@pytest.fixture(scope="module")
def problems():
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    w = np.array([[1.0, -1.0], [0.5, 2.0]])
    net = netopt.load(make_model(nodes, [1, 2], [1, 2], {"w": w, "b": np.zeros(2)}))
    box = (-np.ones(2), np.ones(2))
    return {
        "Inversion l1": netopt.Inversion(net, np.zeros(2), norm=1, box=box),
        "Inversion l2": netopt.Inversion(net, np.zeros(2), norm=2, box=box),
        "Inversion linf": netopt.Inversion(net, np.zeros(2), norm="inf", box=box),
        "OutputObjective": netopt.OutputObjective(net, np.ones(2), box=box),
        "Feasibility": netopt.Feasibility(net, np.zeros(2), tol=0.1, box=box),
        "CrossEntropy": netopt.CrossEntropy(net, 0, box=box),
    }


def test_formulations_x_problem_kinds(problems):
    found = {}
    for name in F.available():
        cls = F.get(name)
        method = cls() if isinstance(cls, type) else cls
        found[name] = tuple(not method.accepts(problems[k]) for k in KINDS)
    rows = {n: ["x" if a else "." for a in acc] for n, acc in found.items()}
    print("\n" + _table(rows, KINDS, "formulations x problem kinds (x: accepts)"))
    assert found == ACCEPTS
