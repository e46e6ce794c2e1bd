"""Argument types and file checks shared by the commands of ``netopt``.

Every number, norm and vector a user types is checked where it is parsed, and every output file
before any work is done, so that a mistake costs one ``netopt: error: ...`` line, never a solve.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from netopt.errors import NetoptError

__all__ = [
    "EXIT_SAT",
    "EXIT_UNSAT",
    "EXIT_UNKNOWN",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
]

#: exit statuses of the commands that decide a question (SAT-solver convention)
EXIT_SAT = 10
EXIT_UNSAT = 20
EXIT_UNKNOWN = 0
#: a usage or input error (argparse's own status too)
EXIT_USAGE = 2
#: the user interrupted the command (Ctrl-C), the shell's 128 + SIGINT
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with netopt's error format: one ``netopt: error: ...`` line, exit status 2.

    argparse's own format (the usage block, then ``netopt invert: error: ...``) is what every
    other error of netopt is not; the usage is one ``--help`` away, which the line names.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"netopt: error: {message} (see '{self.prog} --help')\n")


def _float_arg(what: str, *, lo: float | None = None, positive: bool = False):
    """An argparse ``type=``: a finite float, at least ``lo`` (or above 0 if ``positive``).

    Parameters
    ----------
    what : str
        What the number is, for the message ("a number of seconds").
    lo : float, optional
        The smallest value allowed.
    positive : bool
        Refuse 0 as well.
    """
    import math

    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = math.nan
        ok = math.isfinite(v) and (lo is None or v >= lo) and (not positive or v > 0)
        if not ok:
            rng = " > 0" if positive else "" if lo is None else f" >= {lo:g}"
            raise argparse.ArgumentTypeError(f"expected {what}{rng} (finite), got {s.strip()!r}")
        return v

    return parse


def _int_arg(what: str, lo: int):
    """An argparse ``type=``: an integer of at least ``lo``."""

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            v = lo - 1
        if v < lo:
            raise argparse.ArgumentTypeError(
                f"expected {what}, an integer >= {lo}, got {s.strip()!r}"
            )
        return v

    return parse


def _norm_arg(s: str) -> str:
    """An argparse ``type=`` for ``--norm``: 1, 2 or inf."""
    if s.strip() not in ("1", "2", "inf"):
        raise argparse.ArgumentTypeError(f"expected 1, 2 or inf, got {s.strip()!r}")
    return s.strip()


def _check_writable(path: str, flag: str) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    The file is opened for appending (an existing file is not changed) or created and removed
    again: the one test that also holds for root, read-only mounts and odd files.
    """
    import os

    p = Path(path)
    if p.is_dir():
        raise NetoptError(f"{flag} {path}: is a folder; give a file name (e.g. {p / 'out.json'})")
    parent = p.parent
    if parent.exists() and not parent.is_dir():
        raise NetoptError(f"{flag} {path}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise NetoptError(f"{flag} {path}: the folder {parent} does not exist; create it first")
    try:
        if p.exists():
            with open(p, "ab"):
                pass
        else:
            with open(p, "xb"):
                pass
            os.unlink(p)
    except OSError as e:
        raise NetoptError(f"{flag} {path}: cannot write here ({e.strerror})") from None


def _write_out(write: Callable[[], object], path: str, flag: str) -> str | None:
    """Run ``write`` (which writes ``path``); the error message if it fails, else None.

    The caller prints its result either way, then the message: the result is never lost.
    """
    try:
        write()
    except OSError as e:
        return f"{flag} {path}: cannot write the file ({e.strerror}); the result is printed above"
    return None


def _after_write(write_error: str | None, status: int) -> int:
    """The exit status once the result is printed: 2 with the error line if ``--out`` failed."""
    if write_error is None:
        return status
    print(f"netopt: error: {write_error}", file=sys.stderr)
    return 2


def _read_vector(spec: str, what: str):
    """Numbers from a .npy/.json/.txt file or a comma/space separated list.

    A .json file holds a list of numbers (nested lists for a shaped array) or an object with
    that list under the key ``what`` (``{"target": [...]}``, other keys ignored). Every number
    must be finite.

    Raises
    ------
    NetoptError
        Naming ``--what``, the file or value, and the form expected.
    """
    import json as _json
    from pathlib import Path

    import numpy as np

    spec = spec.strip()  # see _protect_negative_numbers
    p = Path(spec)
    flag = f"--{what} {spec!r}"
    if spec and p.is_dir():
        raise NetoptError(f"{flag}: is a folder; give numbers or a .npy/.json/.txt file")
    try:
        if p.suffix == ".npy" and p.is_file():
            v = np.load(p, allow_pickle=False)
        elif p.suffix == ".json" and p.is_file():
            v = _json.loads(p.read_text())
            if isinstance(v, dict):
                if what not in v:
                    raise NetoptError(
                        f'{flag}: a JSON object must hold the numbers under "{what}" '
                        f'(like {{"{what}": [0.5, 1.0]}}), or give a plain JSON list; '
                        + (f"this one has keys {sorted(v)[:5]}" if v else "this one is empty")
                    )
                v = v[what]
            if not _is_number_list(v):
                raise NetoptError(
                    f"{flag}: expected a JSON list of numbers (or nested lists), got "
                    f"{type(v).__name__} {str(v)[:60]}"
                )
        elif p.is_file():
            v = p.read_text().replace(",", " ").split()
        elif p.suffix in (".npy", ".json", ".txt"):
            raise NetoptError(f"{flag}: no such file")
        else:
            v = spec.replace(",", " ").split()
        a = np.asarray(v, dtype=np.float64)
    except (ValueError, TypeError, OverflowError, OSError, UnicodeDecodeError) as e:
        raise NetoptError(
            f"{flag}: not a list of numbers or a readable .npy/.json/.txt file ({e})"
        ) from None
    if a.size == 0:
        raise NetoptError(f"{flag}: no numbers given")
    if not np.all(np.isfinite(a)):
        raise NetoptError(f"{flag}: every number must be finite (found NaN or inf)")
    return a


def _is_number_list(v) -> bool:
    """Whether a parsed JSON value is a (nested) list of numbers, or one number."""
    if isinstance(v, list):
        return bool(v) and all(_is_number_list(t) for t in v)
    return isinstance(v, int | float) and not isinstance(v, bool)
