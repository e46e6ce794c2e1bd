"""A readable Pyomo model of a :class:`~netopt.model.LinearModel` (:func:`to_pyomo`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt.model import LinearModel
from netopt.solvers.pyomo_backend.specs import _SOLVER_INF, _pyomo

if TYPE_CHECKING:  # pragma: no cover
    import pyomo.environ as pyo

__all__ = ["to_pyomo"]


def _inf_to_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


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
