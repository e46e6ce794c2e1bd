"""The solvers netopt drives through Pyomo, and how Pyomo's answers map to netopt's statuses.

:data:`SOLVERS` holds one :class:`SolverSpec` per solver (HiGHS by default; SCIP from PyPI; CBC and
GLPK from Debian packages); :data:`ALIASES` the other names users may know them by.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from netopt.errors import SolverUnavailableError

__all__ = ["ALIASES", "PIP", "SOLVERS", "SolverSpec"]

PIP = 'pip install "netopt[pyomo]"  (pyomo>=6.10, highspy, pyscipopt)'


@dataclass(frozen=True)
class SolverSpec:
    """How netopt drives one solver through Pyomo.

    Attributes
    ----------
    name : str
        netopt's key (``options={"solver": name}``).
    api : {"appsi", "v2", "shell"}
        Pyomo's persistent APPSI interface, its newer ``pyomo.contrib.solver`` interface, or the
        classic interface that writes a file and runs an executable.
    pyomo_name : str
        The solver's name in that interface's factory.
    features : frozenset of str
        As :attr:`Backend.features`: integer, quadratic, quadratic_integer, dual_bound, start.
    install : str
        The command that makes it available.
    package, executable : str
        The Python package to import, or the executable to find on PATH (one of the two).
    option_names : dict
        netopt's common option -> the solver's own option name.
    """

    name: str
    api: str
    pyomo_name: str
    features: frozenset[str]
    install: str
    package: str = ""
    executable: str = ""
    option_names: dict[str, str] = field(default_factory=dict)


#: the solvers netopt drives through Pyomo (``options={"solver": key}``)
SOLVERS: dict[str, SolverSpec] = {
    "highs": SolverSpec(
        "highs",
        "appsi",
        "appsi_highs",
        # APPSI's HiGHS interface takes a MIP start; Pyomo's newer 'highs' interface does not
        frozenset({"integer", "dual_bound", "start"}),
        "pip install highspy",
        package="highspy",
        option_names={
            "time_limit": "time_limit",
            "gap": "mip_rel_gap",
            "abs_gap": "mip_abs_gap",
            "threads": "threads",
            "seed": "random_seed",
        },
    ),
    "scip": SolverSpec(
        "scip",
        "v2",
        "scip_direct",
        frozenset({"integer", "quadratic", "quadratic_integer", "dual_bound", "start"}),
        'pip install "pyscipopt>=5.5" "pyomo>=6.10"',
        package="pyscipopt",
        option_names={
            "time_limit": "limits/time",
            "gap": "limits/gap",
            "abs_gap": "limits/absgap",
            "threads": "lp/threads",
            "seed": "randomization/randomseedshift",
        },
    ),
    "cbc": SolverSpec(
        "cbc",
        "shell",
        "cbc",
        frozenset({"integer", "dual_bound", "start"}),
        "apt-get install -y coinor-cbc",
        executable="cbc",
        option_names={
            "time_limit": "sec",
            "gap": "ratioGap",
            "abs_gap": "allowableGap",
            "threads": "threads",
            "seed": "randomCbcSeed",
        },
    ),
    "glpk": SolverSpec(
        "glpk",
        "shell",
        "glpk",
        # Pyomo reads GLPK's bound only at optimality (none when a limit stops it), and glpsol
        # takes no MIP start
        frozenset({"integer"}),
        "apt-get install -y glpk-utils",
        executable="glpsol",
        option_names={"time_limit": "tmlim", "gap": "mipgap", "seed": "seed"},
    ),
}
#: other names users may know a solver by
ALIASES = {"appsi_highs": "highs", "scip_direct": "scip", "glpsol": "glpk"}

# Pyomo's termination conditions (all three interfaces, by enum member name) -> netopt status.
# Every member of the three enums (Pyomo 6.10) is listed; a name missing here is read as "error".
# Only "optimal" and "time_limit" may carry a bound (see PyomoBackend.solve_pyomo); limits map to
# "time_limit" as in the HiGHS backend, with an incumbent and the solver's bound if it has them.
_STATUS = {
    # proven optimal (within the gap)
    "optimal": "optimal",
    "globallyOptimal": "optimal",
    "convergenceCriteriaSatisfied": "optimal",
    # proven infeasible / unbounded
    "infeasible": "infeasible",
    "provenInfeasible": "infeasible",
    "unbounded": "unbounded",
    # a limit stopped a run that was going well
    "maxTimeLimit": "time_limit",
    "maxIterations": "time_limit",
    "iterationLimit": "time_limit",
    "maxEvaluations": "time_limit",
    "objectiveLimit": "time_limit",
    "interrupted": "time_limit",
    "userInterrupt": "time_limit",
    # GLPK (classic interface) stopped by its time limit with a solution in hand
    "feasible": "time_limit",
    # no claim: a point, if any, is kept for netopt's float64 re-check, never a bound
    "locallyOptimal": "unknown",
    "locallyInfeasible": "unknown",  # not a proof of infeasibility
    "infeasibleOrUnbounded": "unknown",  # "infeasible" when every variable is bounded (_status)
    "minStepLength": "unknown",
    "minFunctionValue": "unknown",
    "intermediateNonInteger": "unknown",
    "noSolution": "unknown",
    "other": "unknown",
    "resourceInterrupt": "unknown",  # out of memory or similar: nothing it reports is trusted
    # failed or undetermined runs: nothing they report is used
    "unknown": "error",
    "error": "error",
    "solverFailure": "error",
    "internalSolverError": "error",
    "licensingProblems": "error",
    "invalidProblem": "error",
    "invalidSolverConfiguration": "error",
    "emptyModel": "error",
}
# The solver's own status where Pyomo reports "unknown" but the solver stopped at a limit of its
# own (SCIP's dual bound and incumbent stay valid at these; HiGHS's interrupt is a limit as in the
# HiGHS backend). Applied only when Pyomo's condition is "unknown".
_RAW_LIMITS = {
    ("scip", "memlimit"),
    ("scip", "sollimit"),
    ("scip", "bestsollimit"),
    ("scip", "restartlimit"),
    ("scip", "terminate"),
    ("highs", "kInterrupt"),
    ("highs", "kHighsInterrupt"),
}
#: statuses that keep the solver's point (re-checked in float64 by netopt.solve)
_KEEPS_POINT = frozenset({"optimal", "time_limit", "unknown", "unbounded"})
#: a variable bound at least this large is infinite to the solvers (HiGHS, Gurobi, SCIP: 1e20)
_SOLVER_INF = 1e20


def _pyomo() -> Any:
    """``pyomo.environ``, or a :class:`SolverUnavailableError` that says how to install it."""
    try:
        return importlib.import_module("pyomo.environ")
    except ImportError as e:
        raise SolverUnavailableError(
            f"backend 'pyomo': Pyomo is not installed ({e}); {PIP}, or use solver='highs'"
        ) from e
