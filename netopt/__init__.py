"""netopt: optimization over the inputs of trained neural networks.

``import netopt`` needs only numpy, scipy, networkx and onnx; torch, cvxpy,
pyomo, gurobipy and onnxruntime are imported lazily by the parts that use them.
"""

from __future__ import annotations

from typing import Any

from netopt.errors import (
    FormulationError,
    IncompatibleBackendError,
    InputError,
    MissingBoundsError,
    NetoptError,
    OnnxImportError,
    SolveError,
    SolverUnavailableError,
    UnsupportedOpError,
)
from netopt.network import Network, load

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "load",
    "from_torch",
    "Network",
    "NetoptError",
    "OnnxImportError",
    "UnsupportedOpError",
    "MissingBoundsError",
    "FormulationError",
    "IncompatibleBackendError",
    "SolverUnavailableError",
    "SolveError",
    "InputError",
]


def from_torch(module: Any, example_input: Any, **kwargs: Any) -> Network:
    """Import a ``torch.nn.Module`` through ONNX export (see :func:`netopt.torch_export.from_torch`)."""
    from netopt.torch_export import from_torch as _from_torch

    return _from_torch(module, example_input, **kwargs)
