"""Rendering of a report: Markdown and HTML from one list of blocks, CSV of the task rows."""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path
from typing import Any

__all__ = ["cell", "render", "write_csv"]


def cell(v: Any, kind: str = "") -> str:
    if v is None:
        return "—"
    if kind == "pct":
        return f"{100 * v:.0f}%"
    if kind == "gap":
        return f"{v:.2e}"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return repr(v)  # full precision; inf reads back as float("inf")
    return v


def write_csv(
    rows: list[dict[str, Any]], path: Path, columns: tuple[str, ...], plain: bool = False
) -> None:
    """One line per row: its ``columns``. Task rows (``plain=False``) write their kind as
    ``family`` and their readable parameter string as ``params``."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            row = r if plain else dict(r, family=r["kind"], params=r["params_str"])
            w.writerow([_csv_value(row[c]) for c in columns])


def _md(text: str) -> str:
    # "||x - x*||" or a method named "a_b_c" must not turn into emphasis, "|" into a column
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)


def render(blocks: list[tuple], fmt: str) -> str:
    """Markdown or HTML from ``("h1"|"h2"|"p", text)``, ``("table", header, rows)`` and
    ``("img", relative path, caption)`` blocks (one structure, so both reports agree)."""
    out = []
    for b in blocks:
        if fmt == "md":
            if b[0] in ("h1", "h2"):
                out.append(("# " if b[0] == "h1" else "## ") + _md(b[1]))
            elif b[0] == "p":  # an optional third item: code (a path), shown verbatim
                out.append(_md(b[1]) + "".join(f" `{c}`" for c in b[2:]))
            elif b[0] == "table":
                esc = [[_md(str(c)) for c in row] for row in [b[1], *b[2]]]
                out.append("| " + " | ".join(esc[0]) + " |")
                out.append("|" + "---|" * len(b[1]))
                out.extend("| " + " | ".join(row) + " |" for row in esc[1:])
            else:
                out.append(f"![{b[2]}]({b[1]})")
            out.append("")
            continue
        e = html.escape
        if b[0] in ("h1", "h2", "p"):
            code = "".join(f" <code>{e(c)}</code>" for c in b[2:])
            out.append(f"<{b[0]}>{e(b[1])}{code}</{b[0]}>")
        elif b[0] == "table":
            head = "".join(f"<th>{e(str(c))}</th>" for c in b[1])
            body = "".join(
                "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b[2]
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            src, cap = e(b[1], quote=True), e(b[2])
            out.append(
                f'<figure><img src="{src}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'
            )
    if fmt == "md":
        return "\n".join(out)
    css = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th{background:#f2f2f2}td:first-child,td:nth-child(2){text-align:left}"
        "img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#555;font-size:13px}"
    )
    title = html.escape(blocks[0][1]) if blocks else "report"
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{css}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )
