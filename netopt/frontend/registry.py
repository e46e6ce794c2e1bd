"""The ONNX converter registry.

A converter turns one ONNX node into IR ops. It is registered per (domain, op
type, since-version): ``@converter("Softmax", since=(1, 13))`` says the function
handles the op's schema versions 1 and 13 (and everything up to the next
registered version); the model's opset picks the entry with the largest
since-version not above it. Duplicate keys are rejected at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "converter",
    "CONVERTERS",
    "lookup",
    "Unsupported",
    "ConverterEntry",
    "MIN_OPSET",
    "MAX_OPSET",
]

#: The default-domain opsets netopt is tested on.
MIN_OPSET, MAX_OPSET = 7, 21


class Unsupported(Exception):
    """Raised by a converter for a node it cannot take; the loader collects them all."""


@dataclass(frozen=True)
class ConverterEntry:
    domain: str
    op_type: str
    since: int
    fn: Callable
    ir_ops: tuple[str, ...]


#: (domain, op_type) -> list of entries sorted by since-version
CONVERTERS: dict[tuple[str, str], list[ConverterEntry]] = {}


def converter(
    op_type: str, since: Iterable[int] = (1,), domain: str = "", ir_ops: Iterable[str] = ()
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the converter of ``op_type`` for the given schema versions.

    Parameters
    ----------
    op_type : str
        ONNX op type.
    since : iterable of int
        The schema since-versions the function handles.
    domain : str
        ONNX domain (``""`` is ``ai.onnx``).
    ir_ops : iterable of str
        The IR ops it can emit (documentation, the README's table).
    """

    def deco(fn: Callable) -> Callable:
        entries = CONVERTERS.setdefault((domain, op_type), [])
        for s in since:
            if any(e.since == s for e in entries):
                raise RuntimeError(
                    f"converter for {domain or 'ai.onnx'}::{op_type} v{s} registered twice"
                )
            entries.append(ConverterEntry(domain, op_type, s, fn, tuple(ir_ops)))
        entries.sort(key=lambda e: e.since)
        return fn

    return deco


def lookup(domain: str, op_type: str, opset: int) -> ConverterEntry | None:
    """The entry for ``op_type`` under ``opset``, or None if there is none."""
    domain = "" if domain == "ai.onnx" else domain
    best = None
    for e in CONVERTERS.get((domain, op_type), ()):
        if e.since <= opset:
            best = e
    return best
