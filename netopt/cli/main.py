"""The ``netopt`` command: parser assembly, error handling and exit statuses.

Every command has ``--help``. Errors a user can cause are printed as one
``netopt: error: ...`` line (no traceback) with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from netopt.cli import bench, check, gen, info, invert, verify
from netopt.cli.args import _Parser
from netopt.errors import NetoptError

__all__ = ["build_parser", "main"]


def _is_negative_number(token: str) -> bool:
    """Whether ``token`` is a negative number or a list of numbers led by one (``-1e-3``,
    ``-0.5,0.2``): a value, since netopt has no option that looks like a number."""
    if not token.startswith("-") or token.startswith("--") or len(token) < 2:
        return False
    parts = token.replace(",", " ").split()
    try:
        [float(t) for t in parts]
    except ValueError:
        return False
    return bool(parts)


def _protect_negative_numbers(argv: Sequence[str]) -> list[str]:
    """Let values that start with a minus sign through argparse as typed.

    argparse takes ``-0.5,0.2`` or ``-1e-3`` for an option (only ``-1``-like tokens pass), so
    ``--target -0.5,0.2`` and ``--box -1e-3 1`` failed. A leading space makes argparse read the
    token as a value, and every number parser here ignores it. ``--box=LO,HI`` is split into
    ``--box LO HI`` so the two-value option also has an ``=`` form.
    """
    out: list[str] = []
    for tok in argv:
        if tok.startswith("--box=") and len(tok[6:].split(",")) == 2:
            out += ["--box", *(" " + v for v in tok[6:].split(","))]
        elif _is_negative_number(tok):
            out.append(" " + tok)
        else:
            out.append(tok)
    return out


# the positional arguments that name a file to read, per command: a folder there is refused
# before any work, with the file kind expected
_INPUT_FILES = {
    "info": (("model", "an .onnx file"),),
    "invert": (("model", "an .onnx file or an instance .json"),),
    "check": (
        ("model", "an .onnx file"),
        ("property", "a .vnnlib file"),
        ("instances", "an instances .csv file"),
    ),
    "verify": (("certificate", "a certificate .json"), ("model", "an .onnx file")),
    "bench": (("suite", "a suite .toml file"),),
    "report": (("db", "a results database file"),),
    "gen": (("formula", "a DIMACS .cnf file"),),
}


def _check_input_files(args: argparse.Namespace) -> None:
    """Refuse a folder where a command reads a file (else an ``IsADirectoryError`` later)."""
    for attr, kind in _INPUT_FILES.get(args.command, ()):
        v = getattr(args, attr, None)
        if v and Path(v).is_dir():
            raise NetoptError(f"{v} is a folder; netopt {args.command} expects {kind} here")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="netopt",
        description="Optimization over the inputs of trained neural networks.",
    )
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    info.add_parser(sub)
    invert.add_parser(sub)
    check.add_parser(sub)
    verify.add_parser(sub)
    info.add_ops_parser(sub)
    gen.add_parser(sub)
    bench.add_parser(sub)
    return p


def _version() -> str:
    from netopt import __version__

    return f"netopt {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netopt`` command; returns the exit status."""
    argv = _protect_negative_numbers(sys.argv[1:] if argv is None else list(argv))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        # --help, --version and argument errors (already printed): the status, returned like
        # every other outcome, so callers in-process see 2 for a bad argument, not an exception
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="netopt: %(levelname)s: %(message)s",
    )
    try:
        _check_input_files(args)
        return int(args.func(args) or 0)
    except NetoptError as e:
        print(f"netopt: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader has gone (`netopt ... | head`): nothing to tell it, and Python's flush of
        # stdout at exit must not fail again, so stdout goes to the null device
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # no real file descriptor (in-process capture)
            pass
        return 1
    except OSError as e:
        # the last resort for a file the checks above could not foresee (a disk that fills,
        # a file removed meanwhile): still one line naming the file, never a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"netopt: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netopt: interrupted", file=sys.stderr)
        return 130
