"""Pyomo: a readable algebraic model of a :class:`~netopt.model.LinearModel`, and any MILP solver.

:func:`to_pyomo` turns the model's arrays into a Pyomo ``ConcreteModel`` whose blocks carry the IR's
names, so a user can read it, add constraints of their own, and solve it with any solver Pyomo
knows. :class:`PyomoBackend` does the same and solves it with one of the solvers of
:data:`SOLVERS` (HiGHS by default; SCIP from PyPI; CBC and GLPK from Debian packages).
"""

from __future__ import annotations

import importlib
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.errors import (
    IncompatibleBackendError,
    OptionError,
    SolveError,
    SolverUnavailableError,
)
from netopt.model import LinearModel
from netopt.solvers import register
from netopt.solvers._base import Backend, RawSolution, check_options

if TYPE_CHECKING:  # pragma: no cover
    import pyomo.environ as pyo

log = logging.getLogger("netopt")

__all__ = ["PyomoBackend", "SOLVERS", "to_pyomo"]

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


def _inf_to_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _same_value(requested: Any, stored: Any) -> bool:
    """Whether a solver stored an option as asked (``nan`` kept as nan, or ``1.5`` truncated, is not)."""
    if isinstance(stored, str) or isinstance(requested, str):
        return str(requested) == str(stored)
    try:
        return float(requested) == float(stored)
    except (TypeError, ValueError):
        return requested == stored


def _scan_vars(pm: Any) -> tuple[bool, bool]:
    """``(any integer variable, every variable finitely bounded)`` over the active variables of ``pm``.

    "Finitely" in the solvers' sense: a bound of magnitude ``_SOLVER_INF`` (1e20) or more is
    infinite to HiGHS, SCIP and Gurobi, so a model bounded only that loosely may be unbounded to
    them. A fixed variable counts as bounded.
    """
    pyo = _pyomo()
    any_int, bounded = False, True
    for v in pm.component_data_objects(pyo.Var, active=True, descend_into=True):
        if not v.is_continuous():
            any_int = True
        if bounded and not v.fixed:
            lo, hi = v.lb, v.ub
            if lo is None or hi is None or not (abs(lo) < _SOLVER_INF and abs(hi) < _SOLVER_INF):
                bounded = False
        if any_int and not bounded:
            break
    return any_int, bounded


def _free_name(block: Any, name: str, suffix: str) -> str:
    """``name``, or ``name + suffix`` (repeated) when a component or attribute has that name.

    Attributes count: a value id such as ``items`` or ``name`` would shadow a Block method.
    """
    while block.component(name) is not None or hasattr(block, name):
        name += suffix
    return name


# ------------------------------------------------------------------------------ model building
def to_pyomo(model: LinearModel) -> pyo.ConcreteModel:
    """A readable Pyomo model of ``model``, with one block per named variable and row block.

    Layout (``pm`` is the returned ``ConcreteModel``):

    - ``pm.component(vid)``: a ``Block`` per entry of ``model.blocks`` (an IR value id such as the
      input ``"x"`` or a layer's output, a ReLU's binaries ``"<op>.z"``, ``"objective_abs"``),
      holding an indexed component named after it too, indexed ``0..k-1`` in the value's flattened
      (C) order: a ``Var`` (domain Binary, Integers or Reals, bounds from the model) when the value
      owns all its columns, else a ``Reference`` to the ``Var`` data that own them — a ReLU's
      active units *are* its input's columns, so they appear once, in the block that comes first
      — with the value's fresh columns in a ``Var`` ``"<vid>_own"`` of the same block.
    - ``pm.aux``: columns in no named block (constant columns, for one), ``Var`` over ``range(k)``.
    - ``pm.component(name)``: a ``Block`` per entry of ``model.row_blocks`` (an op id, ``"objective"``,
      ``"input_constraints"``, ...; suffixed ``"_rows"`` if a variable block has that name) holding
      an indexed ``Constraint`` of the same name, ``lo <= a.v <= hi`` (``==`` for equalities), in
      row order; rows of no block are in ``pm.rows``.
    - ``pm.obj``: the minimized objective ``c.v + c0 + v.Q.v``.
    - ``pm.netopt_values``: ``dict`` value id -> that indexed Var (or Reference); ``pm.netopt_columns``:
      a numpy object array, column ``j`` of the model -> its ``VarData``; ``pm.netopt_rows``: ``dict``
      row-block component name -> the model's row indices it holds. (Not ``pm.values``: that would
      shadow ``Block.values()``, which Pyomo itself calls.)

    Examples
    --------
    Add a constraint on the network's input and solve the model yourself::

        import pyomo.environ as pyo
        from netopt.solvers.pyomo_backend import PyomoBackend, to_pyomo

        pm = to_pyomo(model)
        x = pm.netopt_values[model.meta["input"]]      # indexed Var, flattened input order
        pm.mine = pyo.Constraint(expr=x[0] + x[1] >= 0.5)
        pyo.SolverFactory("appsi_highs").solve(pm)
        v = [d.value for d in pm.netopt_columns]       # the full vector in model column order
        # or let netopt solve it and read back a RawSolution:
        raw = PyomoBackend().solve_pyomo(pm, model, time_limit=60)

    Notes
    -----
    Rows are built as ``LinearExpression`` objects straight from the CSR arrays (no operator
    overloading per coefficient): about 2.5 µs per nonzero, 0.19 s for a 73k-nonzero model
    (a 10-256-256-2 MLP), 0.014 s for 7k nonzeros. Pyomo's own translation for the solver costs
    more (about 2.5 s for the 73k-nonzero model through APPSI's HiGHS interface).

    A name that is taken, or that is an attribute of Pyomo's ``Block`` (``items``, ``name``, ...),
    gets a suffix (``"_vars"`` / ``"_rows"`` at the top, ``"_"`` inside a block); ``netopt_values``
    always has the unsuffixed value ids.
    """
    pyo = _pyomo()
    from pyomo.core.expr.numeric_expr import LinearExpression

    n = model.n_vars
    pm = pyo.ConcreteModel(name=str(model.meta.get("formulation", "netopt")))
    columns = np.empty(n, dtype=object)
    owned = np.zeros(n, dtype=bool)
    lb, ub, integer = model.lb, model.ub, model.integer

    def make_var(cols: np.ndarray, index: list[int]) -> Any:
        """A Var over ``index`` whose entry ``index[t]`` is column ``cols[t]``."""
        lo, hi, it = lb[cols], ub[cols], integer[cols]
        binary = it & (lo >= 0) & (hi <= 1)
        dom = {
            i: (pyo.Binary if b else pyo.Integers if t else pyo.Reals)
            for i, b, t in zip(index, binary.tolist(), it.tolist(), strict=True)
        }
        bnd = {
            i: (_inf_to_none(a), _inf_to_none(b))
            for i, a, b in zip(index, lo.tolist(), hi.tolist(), strict=True)
        }
        return pyo.Var(index, domain=dom, bounds=bnd, dense=True)

    values: dict[str, Any] = {}
    for vid, idx in model.blocks.items():
        flat = np.asarray(idx, dtype=np.int64).reshape(-1)
        blk = pyo.Block(concrete=True)
        pm.add_component(_free_name(pm, vid, "_vars"), blk)
        inner = _free_name(blk, vid, "_")
        # positions of this block whose column nobody owns yet (first occurrence only)
        uniq, first = np.unique(flat, return_index=True)
        fresh = first[~owned[uniq]]
        fresh.sort()
        if len(fresh) == len(flat):
            var = make_var(flat, list(range(len(flat))))
            blk.add_component(inner, var)
            columns[flat] = [var[i] for i in range(len(flat))]
            owned[flat] = True
            values[vid] = var
            continue
        if len(fresh):
            own = make_var(flat[fresh], fresh.tolist())
            blk.add_component(_free_name(blk, f"{vid}_own", "_"), own)
            columns[flat[fresh]] = [own[i] for i in fresh.tolist()]
            owned[flat[fresh]] = True
        pending = {i: int(c) for i, c in enumerate(flat.tolist())}
        # columns first owned later (by "aux") are resolved once every column has its VarData
        values[vid] = (blk, inner, pending)
    rest = np.nonzero(~owned)[0]
    if len(rest):
        blk = pyo.Block(concrete=True)
        pm.add_component(_free_name(pm, "aux", "_vars"), blk)
        var = make_var(rest, list(range(len(rest))))
        blk.add_component(_free_name(blk, "aux", "_"), var)
        columns[rest] = [var[i] for i in range(len(rest))]
    for vid, v in list(values.items()):
        if isinstance(v, tuple):
            blk, inner, pending = v
            ref = pyo.Reference({i: columns[c] for i, c in pending.items()})
            blk.add_component(inner, ref)
            values[vid] = ref

    # rows: each row belongs to the smallest row block holding it (row blocks may nest when a
    # name was reused), the others to "rows"
    A = model.A.tocsr()
    A.sort_indices()
    m = model.n_rows
    owner = np.full(m, -1, dtype=np.int64)
    names = list(model.row_blocks)
    order = sorted(
        range(len(names)),
        key=lambda k: model.row_blocks[names[k]][1] - model.row_blocks[names[k]][0],
    )
    for k in order:
        s, e = model.row_blocks[names[k]]
        seg = owner[s:e]
        seg[seg < 0] = k
    groups = [(names[k], np.nonzero(owner == k)[0]) for k in range(len(names))]
    groups.append(("rows", np.nonzero(owner < 0)[0]))
    indptr, indices, data = A.indptr, A.indices, A.data
    lo_all, hi_all = model.row_lo, model.row_hi
    rows_of: dict[str, np.ndarray] = {}
    for name, rows in groups:
        if not len(rows):
            continue

        def rule(_b: Any, i: int, rows: np.ndarray = rows) -> Any:
            r = int(rows[i])
            lo, hi = float(lo_all[r]), float(hi_all[r])
            if not (np.isfinite(lo) or np.isfinite(hi)):
                return pyo.Constraint.Skip  # a free row constrains nothing
            s, e = indptr[r], indptr[r + 1]
            expr = LinearExpression(
                constant=0.0,
                linear_coefs=data[s:e].tolist(),
                linear_vars=columns[indices[s:e]].tolist(),
            )
            if lo == hi:
                return expr == lo
            return (_inf_to_none(lo), expr, _inf_to_none(hi))

        cname = _free_name(pm, name, "_rows")
        blk = pyo.Block(concrete=True)
        pm.add_component(cname, blk)
        blk.add_component(_free_name(blk, name, "_"), pyo.Constraint(range(len(rows)), rule=rule))
        rows_of[cname] = rows

    nz = np.nonzero(model.c)[0]
    expr = LinearExpression(
        constant=float(model.c0),
        linear_coefs=model.c[nz].tolist(),
        linear_vars=columns[nz].tolist(),
    )
    if model.is_quadratic:
        Q = model.Q.tocoo()
        expr = expr + pyo.quicksum(
            q * columns[i] * columns[j]
            for q, i, j in zip(Q.data.tolist(), Q.row.tolist(), Q.col.tolist(), strict=True)
            if q != 0.0
        )
    objective = pyo.Objective(expr=expr, sense=pyo.minimize)
    pm.add_component(_free_name(pm, "obj", "_"), objective)
    pm.netopt_values = values
    pm.netopt_columns = columns
    pm.netopt_rows = rows_of
    return pm


class _ListHandler(logging.Handler):
    """Keeps the records' messages in a list (a solver's log, read back on failure)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if len(self.lines) > 2000:  # a long MIP log: keep its head and its tail
            del self.lines[100:1100]


# ------------------------------------------------------------------------------------ backend
@register("pyomo")
class PyomoBackend(Backend):
    """Any MILP solver through Pyomo, on a readable model (see :func:`to_pyomo`).

    Options: ``time_limit`` (s), ``gap`` (relative MIP gap, default 1e-6 as the HiGHS backend),
    ``abs_gap``, ``threads``, ``seed``, ``verbose`` (the solver's log), ``progress`` (called once
    after the solve with incumbent, bound, gap, nodes and time: Pyomo exposes no solver callback),
    ``options``: ``{"solver": key}`` picks a solver of :data:`SOLVERS` (``"highs"`` by default,
    ``"scip"``, ``"cbc"``, ``"glpk"``; aliases ``"appsi_highs"``, ``"scip_direct"``), every other
    entry is passed to that solver under its own name (e.g. ``{"solver": "scip",
    "limits/nodes": 100}``). The common options are translated to each solver's names (see
    ``SolverSpec.option_names``). A model start (``model.start``) is handed over as a MIP start
    when the solver takes one.

    The class declares the union of its solvers' features; :meth:`solve` refuses a model that the
    chosen solver cannot take (a MIQP on HiGHS, for one) with an
    :class:`~netopt.errors.IncompatibleBackendError` naming the solvers that can.

    Raises
    ------
    SolverUnavailableError
        Pyomo, or the chosen solver's package or executable, is missing, or the solver name is
        unknown; the message gives the install command.
    IncompatibleBackendError
        An option name the chosen solver does not know (HiGHS and SCIP are asked before the
        model is built).
    OptionError
        An invalid common option, or a value HiGHS or SCIP rejects or would not store as given
        (``seed=-1``, ``nan``, ``1.5`` for an integer option), before the model is built.
    SolveError
        The solver raised inside Pyomo.

    Notes
    -----
    What comes back is only what the solver attests: see :meth:`solve_pyomo`. For HiGHS (through
    APPSI, which ignores the status HiGHS's ``run()`` returns) the run is checked here: a failed
    run (``kError`` or an unset model status) is status "error" with HiGHS's log lines. Before
    handing HiGHS to Pyomo, its banner is kept off stdout and its process-wide scheduler is made
    to accept the ``threads`` asked for (:mod:`netopt.solvers.highs_session`).
    """

    name = "pyomo"
    features = frozenset({"integer", "quadratic", "quadratic_integer", "dual_bound", "start"})
    packages = ("pyomo",)
    pip = PIP

    # ----------------------------------------------------------------- solver choice
    @staticmethod
    def spec(solver: str) -> SolverSpec:
        """The :class:`SolverSpec` of ``solver`` (or an alias of it)."""
        key = ALIASES.get(str(solver).lower(), str(solver).lower())
        if key not in SOLVERS:
            raise SolverUnavailableError(
                f"backend 'pyomo': unknown solver {solver!r}; netopt drives "
                f"{', '.join(sorted(SOLVERS))} through Pyomo ({', '.join(f'{k}: {s.install}' for k, s in SOLVERS.items())}). "
                "For another Pyomo solver, build the model with netopt.solvers.pyomo_backend.to_pyomo "
                "and call pyomo's SolverFactory yourself."
            )
        return SOLVERS[key]

    @classmethod
    def solver_available(cls, solver: str) -> tuple[bool, str]:
        """Whether ``solver`` can run through Pyomo here (and, if not, why and how to fix it)."""
        try:
            s = cls.spec(solver)
        except SolverUnavailableError as e:
            return False, str(e)
        ok, why = cls.available()
        if not ok:
            return False, why
        if s.package:
            try:
                importlib.import_module(s.package)
            except ImportError as e:
                return (
                    False,
                    f"solver '{s.name}' needs the Python package {s.package} ({e}): {s.install}",
                )
        if s.executable and shutil.which(s.executable) is None:
            return (
                False,
                f"solver '{s.name}' needs the executable '{s.executable}' on PATH: {s.install}",
            )
        if s.api == "v2":
            _pyomo()  # importing pyomo.environ registers the solver plugins
            from pyomo.contrib.solver.common.factory import SolverFactory

            if s.pyomo_name not in SolverFactory:
                import pyomo

                return False, (
                    f"solver '{s.name}' needs Pyomo's '{s.pyomo_name}' interface, which Pyomo "
                    f"{pyomo.version.version} lacks: {s.install}"
                )
            avail = SolverFactory(s.pyomo_name).available()
        elif s.api == "appsi":
            from pyomo.contrib.appsi.solvers import Highs

            avail = Highs().available()
        else:
            avail = True
        if not avail:  # e.g. a package too old for Pyomo's interface (BadVersion)
            return (
                False,
                f"Pyomo reports solver '{s.name}' as {avail}: {s.install} (a recent version)",
            )
        return True, ""

    @classmethod
    def installed_solvers(cls) -> list[str]:
        """Keys of :data:`SOLVERS` that can run here."""
        return [k for k in SOLVERS if cls.solver_available(k)[0]]

    def _check_solver(self, s: SolverSpec, model: LinearModel) -> None:
        need = set()
        if model.is_mip:
            need.add("integer")
        if model.is_quadratic:
            need.add("quadratic_integer" if model.is_mip else "quadratic")
        missing = need - s.features
        if missing:
            able = [k for k, o in SOLVERS.items() if need <= o.features]
            raise IncompatibleBackendError(
                f"backend 'pyomo': solver '{s.name}' cannot solve a model with "
                f"{', '.join(sorted(missing))}; Pyomo solvers that can: "
                f"{', '.join(able) or 'none'} (options={{'solver': ...}}), or solver='gurobi'"
            )

    # ------------------------------------------------------------------------ solve
    def solve(self, model: LinearModel, **opts: Any) -> RawSolution:
        """Build :func:`to_pyomo` of ``model`` and solve it (see the class docstring)."""
        check_options(self.name, opts)
        self.require()
        self.check_model(model)
        extra = dict(opts.get("options") or {})
        s = self.spec(extra.pop("solver", "highs"))
        ok, why = self.solver_available(s.name)
        if not ok:
            raise SolverUnavailableError(f"backend 'pyomo': {why}")
        self._check_solver(s, model)
        # every option the solver will get, checked before the (possibly long) build
        self._validate(s, *self._native_options(s, opts, extra))
        t0 = time.perf_counter()
        pm = to_pyomo(model)
        build = time.perf_counter() - t0
        log.debug("pyomo: built the model in %.3f s", build)
        raw = self.solve_pyomo(pm, model, **opts)
        raw.extra["build_seconds"] = build
        return raw

    def solve_pyomo(self, pm: Any, model: LinearModel, **opts: Any) -> RawSolution:
        """Solve a model made by :func:`to_pyomo` (possibly with constraints of the user's).

        Parameters
        ----------
        pm : pyomo ConcreteModel
            ``to_pyomo(model)``, with anything added.
        model : LinearModel
            The model it came from (for the column order, integrality and the start).
        **opts
            As :meth:`solve`.

        Returns
        -------
        RawSolution
            ``x`` is the full vector in ``model``'s column order. The status comes from the
            solver's termination condition (see ``_STATUS``): a bound only from a run that ended
            optimal or at a limit and whose solver reports one; a failed or undetermined run
            ("error", "unknown", "solverFailure", ...) gives status "error" with the condition and
            no point, bound or claim; ``infeasibleOrUnbounded`` is "infeasible" only when every
            variable of ``pm`` has finite bounds, else "unknown".
        """
        check_options(self.name, opts)
        extra = dict(opts.get("options") or {})
        s = self.spec(extra.pop("solver", "highs"))
        ok, why = self.solver_available(s.name)
        if not ok:
            raise SolverUnavailableError(f"backend 'pyomo': {why}")
        native, origin = self._native_options(s, opts, extra)
        self._validate(s, native, origin)
        verbose = bool(opts.get("verbose", False))
        columns = pm.netopt_columns
        warm = model.start is not None and model.is_mip and "start" in s.features
        if warm:
            for v, x0 in zip(
                columns, np.asarray(model.start, dtype=np.float64).tolist(), strict=True
            ):
                v.set_value(x0, skip_validation=True)
        t0 = time.perf_counter()
        run = {"appsi": self._run_appsi, "v2": self._run_v2, "shell": self._run_shell}[s.api]
        try:
            out = run(s, pm, native, verbose, warm)
        except (SolverUnavailableError, IncompatibleBackendError, SolveError):
            raise
        except Exception as e:  # a solver failing inside Pyomo: say which and how
            raise SolveError(
                f"backend 'pyomo': solver '{s.name}' failed ({type(e).__name__}: {e}); "
                "rerun with verbose=True to see its log"
            ) from e
        dt = time.perf_counter() - t0
        tc = out["tc"]
        status, note = self._status(s, out, pm)
        x = obj = bound = None
        if out["has_x"] and status in _KEEPS_POINT:
            vals = [v.value for v in columns]
            # a column in no row and not in the objective is not sent to some solvers: any value
            # within its bounds is optimal, take the one nearest 0
            miss = [j for j, v in enumerate(vals) if v is None]
            x = np.asarray([0.0 if v is None else v for v in vals], dtype=np.float64)
            if miss:
                x[miss] = np.clip(0.0, model.lb[miss], model.ub[miss])
                it = model.integer[miss]
                x[np.asarray(miss)[it]] = np.ceil(x[np.asarray(miss)[it]])
            obj = out["objective"]
            if obj is None or not np.isfinite(obj):
                pyo = _pyomo()
                active = next(pm.component_data_objects(pyo.Objective, active=True))
                obj = float(pyo.value(active))
            if not (np.isfinite(obj) and np.all(np.isfinite(x))):
                x = obj = None
        if status in ("optimal", "time_limit"):
            # the user may have added integer variables to pm: judge the model the solver saw
            if model.is_mip or _scan_vars(pm)[0]:
                b = out["bound"]
                bound = float(b) if b is not None and np.isfinite(b) else None
            elif status == "optimal" and obj is not None:
                # an LP's optimum is its bound (duality); a limited LP's incumbent bounds nothing
                # (APPSI reports it as the bound then)
                bound = obj
        progress = opts.get("progress")
        if progress is not None:
            gap = (
                abs(obj - bound) / max(1.0, abs(obj))
                if obj is not None and bound is not None
                else None
            )
            progress(
                {"incumbent": obj, "bound": bound, "gap": gap, "nodes": out["nodes"], "time": dt}
            )
        msg = f"{s.name} via Pyomo: {tc}"
        if out.get("raw") and status != "optimal":
            msg += f" ({s.name} status {out['raw']})"
        if note:
            msg += f"; {note}"
        if out.get("message"):
            msg += f" ({out['message']})"
        if status == "error" and out.get("log_tail"):
            msg += f" (log: {out['log_tail']})"
        if status == "error":
            log.warning("backend 'pyomo': %s", msg)
        raw = RawSolution(
            status, x, obj, bound, out["nodes"], dt, msg, f"{s.name} {out['version']}"
        )
        raw.extra["pyomo_solver"] = s.name
        raw.extra["termination_condition"] = tc
        if out.get("tolerances"):
            raw.extra["tolerances"] = out["tolerances"]
        return raw

    @staticmethod
    def _status(s: SolverSpec, out: dict[str, Any], pm: Any) -> tuple[str, str]:
        """netopt's status of a finished run, and a note on how it was decided."""
        tc = out["tc"]
        if out.get("failed"):
            return "error", "the solver's run failed: nothing it reports is used"
        status = _STATUS.get(tc, "error")
        if tc == "unknown" and (s.name, out.get("raw")) in _RAW_LIMITS:
            return "time_limit", f"stopped by the solver's {out['raw']} limit"
        if tc == "infeasibleOrUnbounded":
            # with every variable bounded (finitely, in the solver's sense) the objective cannot
            # be unbounded, so the model is infeasible; otherwise nothing is known
            if _scan_vars(pm)[1]:
                return "infeasible", "every variable is bounded, so it is infeasible"
            return "unknown", "infeasible or unbounded, undecided (a variable is unbounded)"
        if status == "error":
            return status, "the run failed or ended undetermined: nothing it reports is used"
        return status, ""

    @staticmethod
    def _native_options(
        s: SolverSpec, opts: dict[str, Any], extra: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The solver's own option names and values (common options translated, ``extra`` as is),
        and, for each translated one, the common option it came from."""
        common = {k: opts.get(k) for k in ("time_limit", "gap", "abs_gap", "threads", "seed")}
        if common["gap"] is None:
            common["gap"] = 1e-6  # as the HiGHS backend: results agree across backends to ~1e-6
        native: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for k, v in common.items():
            if v is None:
                continue
            if k not in s.option_names:
                log.warning("pyomo: solver '%s' has no option for %s; ignored", s.name, k)
                continue
            if k == "time_limit" and s.name == "glpk":
                v = max(1, int(np.ceil(float(v))))  # glpsol --tmlim takes whole seconds
            elif k in ("threads", "seed"):
                v = int(v)
            else:
                v = float(v)
            native[s.option_names[k]] = v
            origin[s.option_names[k]] = k
        native.update(extra)
        for k in extra:
            origin.pop(k, None)
        return native, origin

    @staticmethod
    def _validate(
        s: SolverSpec, native: dict[str, Any], origin: dict[str, str] | None = None
    ) -> None:
        """Refuse an option the solver does not know or will not take, before building anything.

        HiGHS and SCIP are asked directly (on a scratch instance), and the value they store is
        read back: HiGHS's ``setOptionValue`` only returns an error for ``time_limit=-5`` (which
        APPSI ignores, leaving no limit), SCIP truncates ``1.5`` for an integer parameter. CBC and
        GLPK run as executables and cannot be asked; their common options are checked by
        :func:`~netopt.solvers._base.check_options`.

        Raises
        ------
        IncompatibleBackendError
            An option name the solver does not know.
        OptionError
            A value it refuses or would not store as given; the message names the option (and
            the common option it was translated from).
        """
        if not native:
            return
        origin = origin or {}
        unknown: list[str] = []
        bad: list[str] = []

        def what(k: str, v: Any, why: str) -> str:
            src = f" (from {origin[k]}={v!r})" if k in origin else ""
            return f"{k}={v!r}{src}: {why}"

        if s.name == "highs":
            import highspy

            from netopt.solvers.highs_session import new_highs

            h = new_highs()
            kok = highspy.HighsStatus.kOk
            for k, v in native.items():
                got = h.getOptionValue(k)
                if not isinstance(got, tuple) or got[0] != kok:
                    unknown.append(f"{k}={v!r}")
                    continue
                try:
                    st = h.setOptionValue(k, v)
                except Exception as e:  # highspy raises on a wrong value type
                    bad.append(what(k, v, f"{type(e).__name__}: {e}"))
                    continue
                if st != kok:
                    bad.append(what(k, v, "HiGHS rejects the value (out of range)"))
                    continue
                stored = h.getOptionValue(k)[1]
                if not _same_value(v, stored):
                    bad.append(what(k, v, f"HiGHS stores {stored!r} instead"))
        elif s.name == "scip":
            import pyscipopt

            sm = pyscipopt.Model()
            sm.hideOutput()
            for k, v in native.items():
                try:
                    sm.getParam(k)
                except Exception:
                    unknown.append(f"{k}={v!r}")
                    continue
                try:
                    sm.setParam(k, v)
                except Exception as e:
                    bad.append(what(k, v, f"SCIP rejects the value ({e})"))
                    continue
                stored = sm.getParam(k)
                if not _same_value(v, stored):
                    bad.append(what(k, v, f"SCIP stores {stored!r} instead"))
        if unknown:
            raise OptionError(
                f"backend 'pyomo': solver '{s.name}' rejects option(s) {', '.join(unknown)} "
                "(unknown name); see the solver's option list"
            )
        if bad:
            raise OptionError(
                f"backend 'pyomo': solver '{s.name}' rejects option value(s) {'; '.join(bad)}; "
                "see the solver's option list for the ranges"
            )

    # ----------------------------------------------------------------- the three APIs
    @staticmethod
    def _run_appsi(s: SolverSpec, pm: Any, native: dict, verbose: bool, warm: bool) -> dict:
        import highspy
        from pyomo.contrib.appsi.solvers import Highs

        from netopt.solvers import highs_session

        # APPSI creates its own highspy objects: the first of the process must not print
        # highspy's banner on stdout, and HiGHS's process-wide scheduler must accept the thread
        # count asked for (it keeps the count of its first run otherwise, and fails the run)
        highs_session.quiet_banner()
        threads = int(native.get("threads") or 0)
        highs_session.prepare_threads(threads or None)
        opt = Highs()
        opt.config.load_solution = False
        opt.config.stream_solver = verbose
        opt.config.warmstart = warm
        lines: list[str] = []
        capture = _ListHandler(lines)
        logger = logging.getLogger("netopt.pyomo.highs")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(capture)
        opt.config.solver_output_logger = logger
        opt.config.log_level = logging.INFO
        opt.highs_options = native
        ran: list[Any] = []
        try:
            # APPSI ignores the status run() returns (and every setOptionValue's): build the
            # instance first, then wrap its run() to see that status
            opt.set_instance(pm)
            h = opt._solver_model
            orig = h.run

            def checked_run() -> Any:
                st = orig()
                if highs_session.run_failed(h, st) and threads:
                    # another library started HiGHS's scheduler with another count: reset it
                    # (HiGHS's documented remedy) and run once more
                    highs_session.restart_scheduler(threads)
                    st = orig()
                ran.append(st)
                return st

            h.run = checked_run
            for key in opt.update_config:  # nothing changed since set_instance: skip the rescan
                if key != "treat_fixed_vars_as_params":
                    setattr(opt.update_config, key, False)
            res = opt.solve(pm)
        finally:
            logger.removeHandler(capture)
        model_status = h.getModelStatus()
        failed = not ran or highs_session.run_failed(h, ran[-1])
        has_x = res.best_feasible_objective is not None and not failed
        if has_x:
            res.solution_loader.load_vars()
        nodes = None
        try:  # APPSI keeps the highspy object; its info has the node count
            nodes = int(h.getInfo().mip_node_count)
        except Exception:
            pass
        message = ""
        if failed:
            errs = [ln.strip() for ln in lines if "error" in ln.lower()]
            message = " ".join(errs[-3:]) or (
                f"run() returned {ran[-1].name if ran else 'nothing'}, "
                f"model status {model_status.name}"
            )
        tol = {}
        for key in (
            "mip_rel_gap",
            "mip_abs_gap",
            "mip_feasibility_tolerance",
            "primal_feasibility_tolerance",
        ):
            st, v = h.getOptionValue(key)
            if st == highspy.HighsStatus.kOk:
                tol[key] = float(v)
        return {
            "tc": res.termination_condition.name,
            "raw": model_status.name,
            "failed": failed,
            "has_x": has_x,
            "objective": res.best_feasible_objective,
            "bound": res.best_objective_bound,
            "nodes": nodes if nodes is None or nodes >= 0 else None,
            "version": ".".join(map(str, opt.version())),
            "message": message,
            "tolerances": tol,
        }

    @staticmethod
    def _run_v2(s: SolverSpec, pm: Any, native: dict, verbose: bool, warm: bool) -> dict:
        from pyomo.contrib.solver.common.factory import SolverFactory
        from pyomo.contrib.solver.common.results import SolutionStatus

        opt = SolverFactory(s.pyomo_name)
        kw: dict[str, Any] = {
            "load_solutions": False,
            "raise_exception_on_nonoptimal_result": False,
            "tee": verbose,
            "solver_options": native,
        }
        if warm:
            kw["warmstart_discrete_vars"] = True
        res = opt.solve(pm, **kw)
        has_x = res.solution_status in (SolutionStatus.feasible, SolutionStatus.optimal)
        if has_x:
            res.solution_loader.load_vars()
        try:  # scip_direct reports its node count in extra_info
            nodes = int(res.extra_info["NNodes"])
        except Exception:
            nodes = None
        raw = None
        tol: dict[str, float] = {}
        sm = getattr(opt, "_solver_model", None)
        if s.name == "scip" and sm is not None:
            # Pyomo folds several of SCIP's limits into "unknown": keep SCIP's own status
            try:
                raw = str(sm.getStatus())
                for key, par in (
                    ("mip_rel_gap", "limits/gap"),
                    ("mip_abs_gap", "limits/absgap"),
                    ("mip_feasibility_tolerance", "numerics/feastol"),
                    ("primal_feasibility_tolerance", "numerics/feastol"),
                ):
                    tol[key] = float(sm.getParam(par))
            except Exception:
                pass
        log_text = getattr(res, "solver_log", None)
        tail = ""
        if isinstance(log_text, str) and log_text.strip():
            tail = " ".join(log_text.strip().splitlines()[-3:])
        return {
            "tc": res.termination_condition.name,
            "raw": raw,
            "has_x": has_x,
            "objective": res.incumbent_objective,
            "bound": res.objective_bound,
            "nodes": nodes,
            "version": ".".join(map(str, opt.version())),
            "log_tail": tail,  # the solver's last words, shown when the run failed
            "tolerances": tol,
        }

    @staticmethod
    def _run_shell(s: SolverSpec, pm: Any, native: dict, verbose: bool, warm: bool) -> dict:
        pyo = _pyomo()
        from pyomo.opt import SolverStatus

        opt = pyo.SolverFactory(s.pyomo_name)
        kw: dict[str, Any] = {"load_solutions": False, "tee": verbose, "options": native}
        if warm and opt.warm_start_capable():
            kw["warmstart"] = True
        res = opt.solve(pm, **kw)
        tc = res.solver.termination_condition.name
        solver_status = res.solver.status
        # the executable's own verdict: after an error nothing parsed from its output is trusted,
        # whatever termination condition Pyomo read
        failed = solver_status == SolverStatus.error
        has_x = len(res.solution) > 0 and _STATUS.get(tc, "error") in _KEEPS_POINT and not failed
        if has_x:
            # a limit-stopped run loads fine; Pyomo's warning about the 'aborted' status is noise
            quiet = logging.getLogger("pyomo.core")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                pm.solutions.load_from(res)
            finally:
                quiet.setLevel(level)
        nodes = None
        try:
            nodes = int(res.solver.statistics.branch_and_bound.number_of_bounded_subproblems)
        except Exception:
            pass
        bound = res.problem.lower_bound
        try:
            bound = None if bound is None else float(bound)
        except (TypeError, ValueError):  # an unset bound is Pyomo's UndefinedData
            bound = None
        # an unset message is Pyomo's UndefinedData, not a str
        message = res.solver.message if isinstance(res.solver.message, str) else ""
        return {
            "tc": tc,
            "raw": getattr(solver_status, "name", str(solver_status)),
            "failed": failed,
            "has_x": has_x,
            "objective": None,
            "bound": bound,
            "nodes": nodes,
            "version": ".".join(map(str, opt.version() or ())),
            "message": message,
        }
