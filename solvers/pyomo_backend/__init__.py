"""Pyomo: a readable algebraic model of a :class:`~netopt.model.LinearModel`, and any MILP solver.

:func:`to_pyomo` turns the model's arrays into a Pyomo ``ConcreteModel`` whose blocks carry the IR's
names, so a user can read it, add constraints of their own, and solve it with any solver Pyomo
knows. :class:`PyomoBackend` (registered as ``"pyomo"``) does the same and solves it with one of
the solvers of :data:`SOLVERS` (HiGHS by default; SCIP from PyPI; CBC and GLPK from Debian
packages).

Modules: ``specs`` (the :class:`SolverSpec` table and the status map), ``model`` (:func:`to_pyomo`),
``runners`` (the APPSI, ``pyomo.contrib.solver`` and executable interfaces) and ``backend``
(:class:`PyomoBackend`). Pyomo itself is imported only when a model is built or solved.
"""

from __future__ import annotations

from netopt.solvers.pyomo_backend.backend import PyomoBackend
from netopt.solvers.pyomo_backend.model import to_pyomo
from netopt.solvers.pyomo_backend.specs import ALIASES, SOLVERS, SolverSpec

__all__ = ["ALIASES", "PyomoBackend", "SOLVERS", "SolverSpec", "to_pyomo"]
