"""The netopt error hierarchy.

Every error a user can cause is one of these classes. Each also subclasses the
matching builtin, so ``except ValueError`` keeps working for callers that do not
know netopt. Messages say *what* (file, node, op, value), *where* (frontend,
pass, formulation, backend) and *what to do*.
"""

from __future__ import annotations


class NetoptError(Exception):
    """Base class of every error netopt raises on purpose."""


class OnnxImportError(NetoptError, ValueError):
    """The ONNX file or model cannot be read or turned into the IR."""


class UnsupportedOpError(NetoptError, NotImplementedError):
    """One or more ONNX ops (or IR ops, for a formulation) are not supported.

    Attributes
    ----------
    unsupported : list of tuple
        ``(node name, op type, reason)`` for every offending node, so callers can
        report all of them at once.
    """

    def __init__(self, message: str, unsupported: list[tuple[str, str, str]] | None = None):
        super().__init__(message)
        self.unsupported = list(unsupported or [])


class MissingBoundsError(NetoptError, ValueError):
    """A value has no finite bound where a formulation needs one (never invent a big-M)."""


class FormulationError(NetoptError, RuntimeError):
    """A formulation failed while compiling a graph and problem into a model."""


class IncompatibleBackendError(NetoptError, ValueError):
    """The chosen backend cannot solve this kind of model."""


class SolverUnavailableError(NetoptError, ImportError):
    """The backend's package or licence is missing."""


class SolveError(NetoptError, RuntimeError):
    """The solver failed in a way that yields no usable result."""


class InputError(NetoptError, ValueError):
    """A value passed by the user (an input array, a shape, an option) is malformed."""


class OptionError(InputError):
    """An option is unknown (the message lists the valid names) or its value is invalid (a
    negative or NaN time limit, a non-integer thread count)."""


class UnknownNameError(NetoptError, KeyError):
    """A name no registry holds (a method, a backend, an instance family); lists what is there."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this is a sentence
        return str(self.args[0]) if self.args else ""


__all__ = [
    "NetoptError",
    "OnnxImportError",
    "UnsupportedOpError",
    "MissingBoundsError",
    "FormulationError",
    "IncompatibleBackendError",
    "SolverUnavailableError",
    "SolveError",
    "InputError",
    "OptionError",
    "UnknownNameError",
]
