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

from netopt.errors import IncompatibleBackendError, SolveError, SolverUnavailableError
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
# Limits map to "time_limit" as in the HiGHS backend: an incumbent and a bound may come back.
_STATUS = {
    "optimal": "optimal",
    "globallyOptimal": "optimal",
    "convergenceCriteriaSatisfied": "optimal",
    "infeasible": "infeasible",
    "provenInfeasible": "infeasible",
    "unbounded": "unbounded",
    "maxTimeLimit": "time_limit",
    "maxIterations": "time_limit",
    "iterationLimit": "time_limit",
    "maxEvaluations": "time_limit",
    "objectiveLimit": "time_limit",
    "interrupted": "time_limit",
    "userInterrupt": "time_limit",
    "resourceInterrupt": "time_limit",
    "error": "error",
    "solverFailure": "error",
    "internalSolverError": "error",
    "licensingProblems": "error",
    # GLPK (classic interface) stopped by its time limit with a solution in hand
    "feasible": "time_limit",
    "invalidProblem": "error",
}


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
        s = self.spec((opts.get("options") or {}).get("solver", "highs"))
        ok, why = self.solver_available(s.name)
        if not ok:
            raise SolverUnavailableError(f"backend 'pyomo': {why}")
        self._check_solver(s, model)
        self._validate(s, {k: v for k, v in (opts.get("options") or {}).items() if k != "solver"})
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
            ``x`` is the full vector in ``model``'s column order.
        """
        check_options(self.name, opts)
        extra = dict(opts.get("options") or {})
        s = self.spec(extra.pop("solver", "highs"))
        ok, why = self.solver_available(s.name)
        if not ok:
            raise SolverUnavailableError(f"backend 'pyomo': {why}")
        self._validate(s, extra)
        native = self._native_options(s, opts, extra)
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
        status = _STATUS.get(out["tc"], "unknown")
        if out["tc"] == "infeasibleOrUnbounded":
            # with every variable bounded the objective cannot be unbounded
            status = (
                "infeasible" if np.all(np.isfinite(model.lb) & np.isfinite(model.ub)) else "unknown"
            )
        x = obj = None
        if out["has_x"]:
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
        bound = out["bound"]
        if bound is not None and not np.isfinite(bound):
            bound = None
        if not model.is_mip:
            # an LP's optimum is its bound (duality); a limited LP's incumbent bounds nothing
            bound = obj if status == "optimal" else None
        elif status == "infeasible":
            bound = None
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
        msg = f"{s.name} via Pyomo: {out['tc']}" + (
            f" ({out['message']})" if out.get("message") else ""
        )
        raw = RawSolution(
            status, x, obj, bound, out["nodes"], dt, msg, f"{s.name} {out['version']}"
        )
        raw.extra["pyomo_solver"] = s.name
        return raw

    @staticmethod
    def _native_options(
        s: SolverSpec, opts: dict[str, Any], extra: dict[str, Any]
    ) -> dict[str, Any]:
        """The solver's own option names and values: common options translated, ``extra`` as is."""
        common = {k: opts.get(k) for k in ("time_limit", "gap", "abs_gap", "threads", "seed")}
        if common["gap"] is None:
            common["gap"] = 1e-6  # as the HiGHS backend: results agree across backends to ~1e-6
        native: dict[str, Any] = {}
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
        native.update(extra)
        return native

    @staticmethod
    def _validate(s: SolverSpec, extra: dict[str, Any]) -> None:
        """Refuse an option the solver does not know before building anything (where it can tell)."""
        if not extra:
            return
        bad: list[str] = []
        if s.name == "highs":
            import highspy

            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
            for k, v in extra.items():
                try:
                    st = h.setOptionValue(k, v)
                except Exception:  # highspy raises on a wrong value type
                    st = None
                if st != highspy.HighsStatus.kOk:
                    bad.append(f"{k}={v!r}")
        elif s.name == "scip":
            import pyscipopt

            sm = pyscipopt.Model()
            sm.hideOutput()
            for k, v in extra.items():
                try:
                    sm.setParam(k, v)
                except Exception:
                    bad.append(f"{k}={v!r}")
        if bad:
            raise IncompatibleBackendError(
                f"backend 'pyomo': solver '{s.name}' rejects option(s) {', '.join(bad)} "
                "(unknown name or wrong value); see the solver's option list"
            )

    # ----------------------------------------------------------------- the three APIs
    @staticmethod
    def _run_appsi(s: SolverSpec, pm: Any, native: dict, verbose: bool, warm: bool) -> dict:
        from pyomo.contrib.appsi.solvers import Highs

        opt = Highs()
        opt.config.load_solution = False
        opt.config.stream_solver = verbose
        opt.config.warmstart = warm
        opt.highs_options = native
        res = opt.solve(pm)
        has_x = res.best_feasible_objective is not None
        if has_x:
            res.solution_loader.load_vars()
        nodes = None
        try:  # APPSI keeps the highspy object; its info has the node count
            nodes = int(opt._solver_model.getInfo().mip_node_count)
        except Exception:
            pass
        return {
            "tc": res.termination_condition.name,
            "has_x": has_x,
            "objective": res.best_feasible_objective,
            "bound": res.best_objective_bound,
            "nodes": nodes if nodes is None or nodes >= 0 else None,
            "version": ".".join(map(str, opt.version())),
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
        return {
            "tc": res.termination_condition.name,
            "has_x": has_x,
            "objective": res.incumbent_objective,
            "bound": res.objective_bound,
            "nodes": nodes,
            "version": ".".join(map(str, opt.version())),
        }

    @staticmethod
    def _run_shell(s: SolverSpec, pm: Any, native: dict, verbose: bool, warm: bool) -> dict:
        pyo = _pyomo()
        opt = pyo.SolverFactory(s.pyomo_name)
        kw: dict[str, Any] = {"load_solutions": False, "tee": verbose, "options": native}
        if warm and opt.warm_start_capable():
            kw["warmstart"] = True
        res = opt.solve(pm, **kw)
        tc = res.solver.termination_condition.name
        has_x = len(res.solution) > 0 and _STATUS.get(tc) != "infeasible"
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
        return {
            "tc": tc,
            "has_x": has_x,
            "objective": None,
            "bound": None if bound is None else float(bound),
            "nodes": nodes,
            "version": ".".join(map(str, opt.version() or ())),
            # an unset message is Pyomo's UndefinedData, not a str
            "message": res.solver.message if isinstance(res.solver.message, str) else "",
        }
