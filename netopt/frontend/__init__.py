"""The ONNX frontend: converters registered per op family, and the loader.

Importing this package imports every converter module (one per op family), so
adding an ONNX op that lowers to existing IR ops touches one file.
"""

from __future__ import annotations

import importlib
import pkgutil

from netopt.frontend.registry import CONVERTERS, MAX_OPSET, MIN_OPSET, converter, lookup

_SKIP = {"registry", "context", "helpers", "loader"}
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in _SKIP:
        importlib.import_module(f"{__name__}.{_m.name}")

from netopt.frontend.loader import convert_model, load_graph, read_model  # noqa: E402


def supported_ops() -> list[dict]:
    """One row per supported ONNX op: domain, op type, since-versions, IR ops emitted."""
    rows = []
    for (dom, op), entries in sorted(CONVERTERS.items(), key=lambda kv: kv[0][1]):
        rows.append(
            {
                "domain": dom or "ai.onnx",
                "op_type": op,
                "since": [e.since for e in entries],
                "ir_ops": sorted({o for e in entries for o in e.ir_ops}),
                "doc": " ".join((entries[0].fn.__doc__ or "").strip().split("\n\n")[0].split()),
            }
        )
    return rows


__all__ = [
    "converter",
    "lookup",
    "CONVERTERS",
    "load_graph",
    "read_model",
    "convert_model",
    "supported_ops",
    "MIN_OPSET",
    "MAX_OPSET",
]
