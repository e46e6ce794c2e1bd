"""S-expressions of VNN-LIB 1.0 text: the tokenizer and the reader of nested lists.

The reader is iterative (no recursion limit) and refuses nesting deeper than :data:`MAX_DEPTH`
at the line of the ``(`` that passes it, because evaluating the formulas
(:mod:`netopt.vnnlib.compile`) recurses once per level.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from netopt.errors import InputError

#: The deepest nesting of parentheses read. The reader recurses once per level (two Python
#: frames) and Python's default recursion limit is 1000 frames: this leaves room for the caller.
MAX_DEPTH = 256

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
# SMT-LIB ends lines (and comments) at a line feed; str.splitlines() would also end them at a
# form feed, \x1c-\x1e, \x85 or \u2028, turning the rest of a comment into code
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


# (NamedTuples, not dataclasses: a 75 kB MNIST property has ~20 000 tokens, and they build faster)
class _Atom(NamedTuple):
    """A token: a symbol or number, with the line it is on."""

    text: str
    line: int


class _List(NamedTuple):
    """A parenthesized expression, with the line of its opening parenthesis."""

    items: tuple[_Atom | _List, ...]
    line: int


_Node = _Atom | _List


def _render(node: _Node, limit: int = 80) -> str:
    """The expression as text, shortened to ``limit`` characters for error messages.

    Iterative, and it stops once past ``limit``: the expression may be nested thousands of levels
    deep or hold a million items, and an error message must not fail on it.
    """
    out: list[str] = []
    size = 0
    # (items of an open list, index of the next one); the root is a pseudo-list of one item
    stack: list[tuple[tuple[_Node, ...], int]] = [((node,), 0)]
    while stack and size <= limit:
        items, k = stack[-1]
        if k == len(items):
            stack.pop()
            if not stack:
                break
            piece = ")"
        else:
            stack[-1] = (items, k + 1)
            child = items[k]
            sep = " " if k and len(stack) > 1 else ""
            if isinstance(child, _Atom):
                piece = sep + child.text
            else:
                piece = sep + "("
                stack.append((child.items, 0))
        out.append(piece)
        size += len(piece)
    s = "".join(out)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _read_sexprs(text: str, source: str) -> list[_Node]:
    """Tokenize and read the top-level s-expressions (iteratively: no recursion limit).

    Nesting deeper than :data:`MAX_DEPTH` is refused here, at the line of the ``(`` that passes
    it, because evaluating the formulas recurses once per level.
    """
    stack: list[tuple[int, list[_Node]]] = [(0, [])]
    new = tuple.__new__  # builds a NamedTuple twice as fast as its generated __new__
    for lineno, line in enumerate(_LINE_BREAK.split(text), start=1):
        code = line.split(";", 1)[0]
        for tok in _TOKEN.findall(code):
            if tok == "(":
                if len(stack) > MAX_DEPTH:
                    raise InputError(
                        f"{source}:{lineno}: expressions nested too deeply: this '(' opens level "
                        f"{len(stack)}, more than the {MAX_DEPTH} netopt reads; flatten the "
                        "nesting ((and a (and b c)) is (and a b c), (+ (+ a b) c) is (+ a b c))"
                    )
                stack.append((lineno, []))
            elif tok == ")":
                if len(stack) == 1:
                    raise InputError(
                        f"{source}:{lineno}: unbalanced parentheses: ')' closes nothing; "
                        "remove it or add the missing '('"
                    )
                start, items = stack.pop()
                stack[-1][1].append(new(_List, (tuple(items), start)))
            else:
                stack[-1][1].append(new(_Atom, (tok, lineno)))
    if len(stack) > 1:
        start, items = stack[-1]
        head = _render(_List(tuple(items), start), 60).removesuffix(")")
        raise InputError(
            f"{source}:{start}: unbalanced parentheses: the '(' opened on line {start} "
            f"(it starts {head} ...) is never closed; add the missing ')'"
        )
    return stack[0][1]
