"""netopt: optimization over the inputs of trained neural networks.

``import netopt`` needs only numpy, scipy, networkx and onnx; torch, cvxpy,
pyomo, gurobipy and onnxruntime are imported lazily by the parts that use them.
"""

from __future__ import annotations

from typing import Any

# the registries, as DESIGN and the README present them: netopt.formulations.available() and
# netopt.solvers.available() (importing them loads no formulation or backend module yet)
from netopt import formulations, solvers
from netopt.certificate import Certificate
from netopt.errors import (
    FormulationError,
    IncompatibleBackendError,
    InputError,
    MissingBoundsError,
    NetoptError,
    OnnxImportError,
    OptionError,
    SolveError,
    SolverUnavailableError,
    UnknownNameError,
    UnsupportedOpError,
)
from netopt.network import Network, load
from netopt.problems import CrossEntropy, Domain, Feasibility, Inversion, OutputObjective
from netopt.result import Result, Status

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "formulations",
    "solvers",
    "load",
    "from_torch",
    "Network",
    "Inversion",
    "OutputObjective",
    "Feasibility",
    "CrossEntropy",
    "Domain",
    "solve_many",
    "Result",
    "Status",
    "Certificate",
    "load_vnnlib",
    "check",
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


def solve_many(problems: Any, formulation: str = "adam", solver: Any = None, **options: Any) -> Any:
    """Solve several problems on one network as one batch (see :func:`netopt.solve.solve_many`)."""
    from netopt.solve import solve_many as _many

    return _many(problems, formulation, solver, **options)


def load_vnnlib(path: Any, n_inputs: int | None = None, n_outputs: int | None = None) -> Any:
    """Read a VNN-LIB property (see :func:`netopt.vnnlib.load_vnnlib`)."""
    from netopt.vnnlib import load_vnnlib as _load

    return _load(path, n_inputs=n_inputs, n_outputs=n_outputs)


def check(net: Network, prop: Any, **kw: Any) -> Any:
    """Decide a VNN-LIB property on ``net`` (see :func:`netopt.vnnlib.check.check`)."""
    from netopt.vnnlib.check import check as _check

    return _check(net, prop, **kw)


def from_torch(module: Any, example_input: Any, **kwargs: Any) -> Network:
    """Import a ``torch.nn.Module`` through ONNX export (see :func:`netopt.torch_export.from_torch`)."""
    from netopt.torch_export import from_torch as _from_torch

    return _from_torch(module, example_input, **kwargs)
