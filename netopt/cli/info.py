"""``netopt info MODEL`` (a model's IR, shapes and unsupported ops) and ``netopt ops``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from netopt.errors import NetoptError, UnsupportedOpError

__all__ = ["add_ops_parser", "add_parser", "cmd_info", "cmd_ops", "ops_table_markdown"]


def _parse_shapes(items: Sequence[str] | None) -> dict[str, tuple[int, ...]] | None:
    if not items:
        return None
    out = {}
    for it in items:
        name, sep, dims = it.rpartition("=")
        if not sep or not name:
            raise NetoptError(
                f"--input-shape '{it}': expected NAME=D1,D2,... (per-sample, no batch)"
            )
        try:
            out[name] = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise NetoptError(f"--input-shape '{it}': dimensions must be integers") from None
        if any(d < 1 for d in out[name]):
            raise NetoptError(f"--input-shape '{it}': dimensions must be positive integers")
    return out


def _fmt_shape(s: Sequence[int]) -> str:
    return str(tuple(int(d) for d in s))


def cmd_info(args: argparse.Namespace) -> int:
    import netopt

    t0 = time.perf_counter()
    try:
        net = netopt.load(args.model, input_shapes=_parse_shapes(args.input_shape))
    except UnsupportedOpError as e:
        if args.json:
            print(
                json.dumps(
                    {
                        "file": args.model,
                        "unsupported": [
                            {"node": n, "op_type": t, "reason": r} for n, t, r in e.unsupported
                        ],
                    },
                    indent=2,
                )
            )
        else:
            print(f"{args.model}: cannot be imported completely.", file=sys.stderr)
            print(str(e), file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    g = net.graph
    info = {
        "file": net.source.name,
        "sha256": net.source.sha256,
        "producer": net.source.producer,
        "opsets": {d or "ai.onnx": v for d, v in net.source.opsets},
        "inputs": {g.value(i).onnx_name or i: list(g.value(i).shape) for i in g.inputs},
        "outputs": {g.value(o).onnx_name or o: list(g.value(o).shape) for o in g.outputs},
        "parameters": net.n_params,
        "relus": net.n_relus,
        "smooth_ops": net.smooth_ops(),
        "ir_ops": g.op_counts(),
        "layers": [
            {**r, "inputs": [list(s) for s in r["inputs"]], "output": list(r["output"])}
            for r in net.layers()
        ],
        "load_seconds": round(dt, 4),
        "unsupported": [],
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"file       {info['file']}")
    print(f"sha256     {info['sha256']}")
    print(f"producer   {info['producer'] or '-'}   opsets {info['opsets']}")
    for k in ("inputs", "outputs"):
        print(f"{k:<10} " + ", ".join(f"{n} {_fmt_shape(s)}" for n, s in info[k].items()))
    print()
    rows = [("#", "IR op", "output shape", "params", "from ONNX")]
    for k, r in enumerate(net.layers()):
        rows.append((str(k), r["op"], _fmt_shape(r["output"]), str(r["params"]), r["origin"]))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print()
    print(f"parameters {info['parameters']}")
    print(f"ReLUs      {info['relus']}")
    if info["smooth_ops"]:
        print(
            f"smooth     {', '.join(info['smooth_ops'])} (no exact MILP: use a first-order method)"
        )
    print("unsupported none")
    print(f"loaded in  {dt * 1e3:.1f} ms")
    return 0


def ops_table_markdown() -> str:
    """The README's table of supported ONNX ops, generated from the converter registry."""
    from netopt.frontend import supported_ops

    lines = [
        "| ONNX op | since-versions handled | IR ops | notes |",
        "| --- | --- | --- | --- |",
    ]
    for r in supported_ops():
        lines.append(
            f"| {r['op_type']} | {', '.join(map(str, r['since']))} | "
            f"{', '.join(r['ir_ops']) or '(constant)'} | {r['doc'].replace('|', '/')} |"
        )
    lines.append(
        "| *any op whose inputs are all constants* | all | (folded) | evaluated at import by "
        "`onnx.reference` (Constant, Shape, Gather, ConstantOfShape, ...) |"
    )
    return "\n".join(lines)


def cmd_ops(args: argparse.Namespace) -> int:
    print(ops_table_markdown())
    return 0


def add_parser(sub: Any) -> None:
    """Register ``netopt info``."""
    info = sub.add_parser(
        "info",
        help="show a model's layers, shapes, parameters, ReLUs and unsupported ops",
        description="Import an ONNX model and describe its IR: layers, shapes, parameter "
        "count, ReLU count, smooth ops, and every op netopt cannot import.",
    )
    info.add_argument("model", help="path of an .onnx file")
    info.add_argument(
        "--input-shape",
        action="append",
        metavar="NAME=D1,D2,...",
        help="per-sample shape of an input whose shape the file leaves symbolic (repeatable)",
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=cmd_info)


def add_ops_parser(sub: Any) -> None:
    """Register ``netopt ops``."""
    ops = sub.add_parser(
        "ops",
        help="print the table of supported ONNX ops (markdown)",
        description="Print the supported ONNX ops, generated from the converter registry.",
    )
    ops.set_defaults(func=cmd_ops)
