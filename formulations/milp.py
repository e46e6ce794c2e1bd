"""The exact big-M MILP formulation of a piecewise-linear network.

Every IR value gets a variable block (index remaps alias their input's columns); linear ops become
equality rows ``y - sum_i M_i x_i = b`` built from :func:`netopt.ir.ops.linear_map` in one sparse
operation each; ReLU, LeakyReLU and max-pool units get the big-M encodings below with the tightest
bounds available, and units whose bounds prove them stable get no binary at all. A smooth op is
refused by :meth:`MILP.check_support` before anything is built.

:func:`lp_context` lends this model (solved on HiGHS) to the LP bound tightening and the local
search where no exact solve constructs them one (a bound computation of its own, a test).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from netopt.bounds import Bounds
from netopt.errors import FormulationError, MissingBoundsError
from netopt.formulations import register
from netopt.formulations._model import ModelFormulation
from netopt.ir import Graph, Op
from netopt.ir.interpret import interpret
from netopt.ir.ops import linear_map, window_index
from netopt.model import LinearModel, LPContext, ModelBuilder
from netopt.problems import Problem

__all__ = ["MILP", "lp_context"]


class _Ctx:
    """Build state shared by the rules."""

    def __init__(self, graph: Graph, bounds: Bounds, builder: ModelBuilder) -> None:
        self.graph = graph
        self.bounds = bounds
        self.b = builder
        self.cols: dict[str, np.ndarray] = {}  # value id -> column indices (value's shape)
        # start rules: (columns, function of the forward values env -> values of those columns)
        self.start_rules: list[tuple[np.ndarray, Any]] = []
        self.binaries: dict[str, int] = {}

    def flat(self, vid: str) -> np.ndarray:
        return self.cols[vid].reshape(-1)

    def finite(self, op: Op, vid: str) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.bounds[vid]
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise MissingBoundsError(
                f"MILP formulation: {op.where} reads value '{vid}', which has no finite bounds; "
                "a big-M needs them. Give the input a box (box=(lo, hi)); netopt never invents a big-M."
            )
        return lo, hi


@register("milp")
class MILP(ModelFormulation):
    """Big-M mixed-integer linear program (exact for piecewise-linear networks)."""

    name = "milp"
    model_type = "LinearModel"

    def __init__(self) -> None:
        self._ctx: _Ctx | None = None
        self._obj_start: Any = None

    # ----------------------------------------------------------------- build
    def build(self, problem: Problem, bounds: Bounds) -> LinearModel:
        """Compile ``problem`` with ``bounds`` into a :class:`LinearModel`.

        Raises
        ------
        FormulationError
            An op without a rule (listing every one), or a rule failing (naming the node).
        MissingBoundsError
            A value feeding a ReLU/max-pool/objective has an infinite bound.
        """
        graph = problem.net.graph
        self.require_support(graph, f" of {problem.net.source.name}")
        b = ModelBuilder()
        ctx = _Ctx(graph, bounds, b)
        self._ctx = ctx
        dom = problem.domain
        (inp,) = graph.inputs if len(graph.inputs) == 1 else (None,)
        if inp is None:
            raise FormulationError(
                "MILP formulation: networks with several inputs are not supported yet"
            )
        if not dom.bounded:
            raise MissingBoundsError(
                "MILP formulation: the input has no finite box; pass box=(lo, hi) (or an l_inf "
                "ball) so every ReLU gets finite big-M constants"
            )
        ctx.cols[inp] = b.add_vars(
            dom.shape,
            dom.lo,
            dom.hi,
            integer=dom.integer if dom.integer is not None else False,
            name=inp,
        )
        if dom.A is not None:
            b.add_matrix_rows(
                sp.csr_matrix(dom.A), ctx.flat(inp), -np.inf, dom.b, name="input_constraints"
            )
        for op in graph.ops:
            rule = self.rules[op.op]
            try:
                out = rule(ctx, op)
            except (MissingBoundsError, FormulationError):
                raise
            except Exception as e:  # re-raise with the node's context
                raise FormulationError(
                    f"MILP formulation: rule '{op.op}' failed at {op.where}: {e}"
                ) from e
            ctx.cols[op.outputs[0]] = np.asarray(out).reshape(graph.value(op.outputs[0]).shape)
            if op.outputs[0] not in b.blocks:
                b.blocks[op.outputs[0]] = ctx.cols[op.outputs[0]]
        c, c0, Q = self._objective(ctx, problem)
        meta = {
            "formulation": self.name,
            "bound_method": bounds.method,
            "binaries": dict(ctx.binaries),
            "input": inp,
            "output": graph.outputs[0],
        }
        return b.build(c, c0, Q, meta)

    def _objective(self, ctx: _Ctx, problem: Problem):
        b = ctx.b
        spec = problem.spec()
        out = problem.net.graph.outputs[0]
        y = ctx.flat(out)
        lo, hi = ctx.bounds[out]
        n = len(y)
        kind = spec["kind"]
        c = np.zeros(0)
        Q = None
        c0 = 0.0
        if kind == "norm":
            t, w, p = spec["target"], spec["weights"], spec["p"]
            if p == 2:
                # squared 2-norm: sum w^2 (y - t)^2 = y^T diag(w^2) y - 2 (w^2 t)^T y + |w t|^2
                n_all = b.n_vars
                w2 = w**2
                Q = sp.csr_matrix((w2, (y, y)), shape=(n_all, n_all))
                c = np.zeros(n_all)
                np.add.at(c, y, -2 * w2 * t)
                c0 = float(np.sum(w2 * t**2))
                self._obj_start = None
                return c, c0, Q
            wy = w > 0
            dev = np.maximum(np.abs(lo - t), np.abs(hi - t)) * w
            if p == 1:
                tv = b.add_vars(
                    n, 0.0, np.where(np.isfinite(dev), dev, np.inf), name="objective_abs"
                )
                rows = np.arange(n)[wy]
                # t_j >= w_j (y_j - target_j) and t_j >= -w_j (y_j - target_j)
                b.add_rows(
                    np.r_[np.arange(len(rows)), np.arange(len(rows))],
                    np.r_[tv[rows], y[rows]],
                    np.r_[np.ones(len(rows)), -w[rows]],
                    -w[rows] * t[rows],
                    np.inf,
                    len(rows),
                    "objective",
                )
                b.add_rows(
                    np.r_[np.arange(len(rows)), np.arange(len(rows))],
                    np.r_[tv[rows], y[rows]],
                    np.r_[np.ones(len(rows)), w[rows]],
                    w[rows] * t[rows],
                    np.inf,
                    len(rows),
                    "objective",
                )
                b.tighten(tv[~wy], ub=np.zeros(int((~wy).sum())))
                c = np.zeros(b.n_vars)
                c[tv] = 1.0
                self._obj_start = ("abs", tv, w, t)
            else:
                s = b.add_vars(
                    1,
                    0.0,
                    float(np.max(dev)) if np.all(np.isfinite(dev)) else np.inf,
                    name="objective_max",
                )
                rows = np.arange(n)[wy]
                k = len(rows)
                b.add_rows(
                    np.r_[np.arange(k), np.arange(k)],
                    np.r_[np.repeat(s, k), y[rows]],
                    np.r_[np.ones(k), -w[rows]],
                    -w[rows] * t[rows],
                    np.inf,
                    k,
                    "objective",
                )
                b.add_rows(
                    np.r_[np.arange(k), np.arange(k)],
                    np.r_[np.repeat(s, k), y[rows]],
                    np.r_[np.ones(k), w[rows]],
                    w[rows] * t[rows],
                    np.inf,
                    k,
                    "objective",
                )
                c = np.zeros(b.n_vars)
                c[s] = 1.0
                self._obj_start = ("max", s, w, t)
            return c, c0, Q
        c = np.zeros(b.n_vars)
        self._obj_start = None
        if kind == "linear":
            sign = 1.0 if spec["sense"] == "min" else -1.0
            np.add.at(c, y, sign * spec["c"])
            return c, sign * spec["c0"], None
        if kind == "feasibility":
            C, d = spec["C"], spec["d"]
            b.add_matrix_rows(sp.csr_matrix(C), y, -np.inf, d, name="output_constraints")
            return c, 0.0, None
        raise FormulationError(f"MILP formulation: unknown objective kind {kind!r}")

    # ------------------------------------------------------------- start point
    def start_vector(self, model: LinearModel, problem: Problem, x: np.ndarray) -> np.ndarray:
        """The full variable vector of the model at input ``x`` (a MIP start)."""
        ctx = self._ctx
        if ctx is None:
            raise FormulationError("start_vector called before build")
        graph = problem.net.graph
        env = interpret(
            graph,
            {
                graph.inputs[0]: np.asarray(x, dtype=np.float64).reshape(
                    1, *graph.value(graph.inputs[0]).shape
                )
            },
            keep=True,
        )
        v = np.zeros(model.n_vars)
        for vid, cols in ctx.cols.items():
            v[cols.reshape(-1)] = env[vid].reshape(-1)
        for cols, fn in ctx.start_rules:
            vals = fn(env)
            if vals is not None:
                v[cols.reshape(-1)] = vals
        # constants
        fixed = model.lb == model.ub
        v[fixed] = model.lb[fixed]
        if self._obj_start is not None:
            kind, cols, w, t = self._obj_start
            y = env[graph.outputs[0]].reshape(-1)
            dev = w * np.abs(y - t)
            if kind == "abs":
                v[cols] = dev
            else:
                v[cols] = dev.max() if len(dev) else 0.0
        return np.clip(v, model.lb, model.ub)


# --------------------------------------------------------------------- rules
@MILP.rule("reshape", "identity")
def _alias(ctx: _Ctx, op: Op) -> np.ndarray:
    """Index remap: the output reuses the input's columns (no variables, no rows)."""
    return ctx.cols[op.inputs[0]].reshape(ctx.graph.value(op.outputs[0]).shape)


@MILP.rule("transpose")
def _transpose(ctx: _Ctx, op: Op) -> np.ndarray:
    """Index remap: ``y = x.transpose(perm)`` on the column indices."""
    return ctx.cols[op.inputs[0]].transpose(op.attrs["perm"])


@MILP.rule("select")
def _select(ctx: _Ctx, op: Op) -> np.ndarray:
    """Index remap: ``y.flat[k]`` is the column of ``x.flat[index.flat[k]]``."""
    idx = np.asarray(op.attrs["index"])
    return ctx.flat(op.inputs[0])[idx.reshape(-1)].reshape(idx.shape)


@MILP.rule("concat")
def _concat(ctx: _Ctx, op: Op) -> np.ndarray:
    """Index remap: concatenation of the inputs' column blocks."""
    return np.concatenate([ctx.cols[i] for i in op.inputs], axis=int(op.attrs["axis"]))


@MILP.rule("pad")
def _pad(ctx: _Ctx, op: Op) -> np.ndarray:
    """Index remap plus one fixed column holding the pad value."""
    x = ctx.cols[op.inputs[0]]
    r = x.ndim
    p = [int(t) for t in op.attrs["pads"]]
    return np.pad(
        x, [(p[i], p[i + r]) for i in range(r)], constant_values=ctx.b.constant(op.attrs["value"])
    )


@MILP.rule("affine", "scale", "conv2d", "avgpool2d", "add")
def _linear(ctx: _Ctx, op: Op) -> np.ndarray:
    r"""Linear op: new variables ``y`` with ``y - \sum_i M_i x_i = b`` (one sparse block)."""
    shapes = [ctx.graph.value(i).shape for i in op.inputs]
    mats, bias = linear_map(op, shapes)
    out = op.outputs[0]
    lo, hi = ctx.bounds[out]
    y = ctx.b.add_vars(ctx.graph.value(out).shape, lo, hi, name=out)
    n = y.size
    blocks = [sp.identity(n, format="csr")] + [-m for m in mats]
    cols = np.concatenate([y.reshape(-1)] + [ctx.flat(i) for i in op.inputs])
    ctx.b.add_matrix_rows(sp.hstack(blocks, format="csr"), cols, bias, bias, name=op.id)
    return y


@MILP.rule("relu", "leaky_relu")
def _relu(ctx: _Ctx, op: Op) -> np.ndarray:
    r"""Big-M (leaky) ReLU with pre-activation bounds :math:`l < 0 < u` and a binary :math:`z`:

    .. math:: y \ge x,\ y \ge \alpha x,\ y \le x - (1-\alpha) l (1 - z),\
              y \le \alpha x + (1-\alpha) u z

    (:math:`\alpha = 0` for ReLU, where :math:`y \ge 0` is the variable's bound). Stable units
    (:math:`u \le 0`: :math:`y = \alpha x`; :math:`l \ge 0`: :math:`y = x`) get no binary.
    """
    b = ctx.b
    x = ctx.flat(op.inputs[0])
    l, u = ctx.finite(op, op.inputs[0])  # noqa: E741 (the papers' names)
    alpha = float(op.attrs.get("alpha", 0.0))
    if not 0.0 <= alpha <= 1.0:
        raise FormulationError(
            f"MILP formulation: {op.where} has alpha={alpha}; the big-M model needs 0 <= alpha <= 1"
        )
    n = len(x)
    act, dead = l >= 0, u <= 0
    unst = ~act & ~dead
    out = np.empty(n, dtype=np.int64)
    out[act] = x[act]
    if dead.any():
        if alpha == 0.0:
            out[dead] = b.constant(0.0)
        else:
            k = int(dead.sum())
            yd = b.add_vars(k, alpha * l[dead], alpha * u[dead])
            b.add_rows(
                np.r_[np.arange(k), np.arange(k)],
                np.r_[yd, x[dead]],
                np.r_[np.ones(k), -alpha * np.ones(k)],
                0.0,
                0.0,
                k,
                op.id,
            )
            out[dead] = yd
    k = int(unst.sum())
    ctx.binaries[op.id] = k
    if k:
        lu, uu, xu = l[unst], u[unst], x[unst]
        y = b.add_vars(k, alpha * lu, uu)
        z = b.add_vars(k, 0.0, 1.0, integer=True, name=f"{op.id}.z")
        r = np.arange(k)
        # y - x >= 0
        b.add_rows(np.r_[r, r], np.r_[y, xu], np.r_[np.ones(k), -np.ones(k)], 0.0, np.inf, k, op.id)
        if alpha > 0:  # y - alpha x >= 0 (for ReLU it is the bound y >= 0)
            b.add_rows(
                np.r_[r, r],
                np.r_[y, xu],
                np.r_[np.ones(k), -alpha * np.ones(k)],
                0.0,
                np.inf,
                k,
                op.id,
            )
        # y - x - (1-alpha) l z <= -(1-alpha) l
        b.add_rows(
            np.r_[r, r, r],
            np.r_[y, xu, z],
            np.r_[np.ones(k), -np.ones(k), -(1 - alpha) * lu],
            -np.inf,
            -(1 - alpha) * lu,
            k,
            op.id,
        )
        # y - alpha x - (1-alpha) u z <= 0
        b.add_rows(
            np.r_[r, r, r],
            np.r_[y, xu, z],
            np.r_[np.ones(k), -alpha * np.ones(k), -(1 - alpha) * uu],
            -np.inf,
            0.0,
            k,
            op.id,
        )
        out[unst] = y
        src = op.inputs[0]
        ctx.start_rules.append(
            (z, lambda env, src=src, unst=unst: (env[src].reshape(-1)[unst] > 0).astype(float))
        )
    return out


@MILP.rule("maxpool2d")
def _maxpool(ctx: _Ctx, op: Op) -> np.ndarray:
    r"""Max over each window with one binary per candidate cell :math:`i` (:math:`\sum_i z_i = 1`):

    .. math:: y \ge x_i,\qquad y \le x_i + (U - l_i)(1 - z_i),\qquad U = \max_i u_i.

    Cells with :math:`u_i < \max_j l_j` can never be the maximum and are dropped; a window left
    with one candidate is that cell (no binary).
    """
    b = ctx.b
    src = op.inputs[0]
    x = ctx.flat(src)
    l, u = ctx.finite(op, src)  # noqa: E741
    k = int(np.prod(op.attrs["kernel"]))
    idx = window_index(ctx.graph.value(src).shape, op.attrs).reshape(-1, k)
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    wl = np.where(valid, l[safe], -np.inf)
    wu = np.where(valid, u[safe], -np.inf)
    cand = valid & (wu >= wl.max(axis=1, keepdims=True))
    ncand = cand.sum(axis=1)
    n_out = len(idx)
    out = np.empty(n_out, dtype=np.int64)
    single = ncand == 1
    out[single] = x[idx[single, cand[single].argmax(axis=1)]]
    multi = np.nonzero(~single)[0]
    ctx.binaries[op.id] = int(cand[multi].sum())
    if len(multi):
        m = len(multi)
        y = b.add_vars(m, wl[multi].max(axis=1), wu[multi].max(axis=1))
        out[multi] = y
        cell, pos = np.nonzero(cand[multi])  # ragged candidate list
        q = len(cell)
        z = b.add_vars(q, 0.0, 1.0, integer=True, name=f"{op.id}.z")
        xi = x[idx[multi][cell, pos]]
        li = wl[multi][cell, pos]
        U = wu[multi].max(axis=1)[cell]
        r = np.arange(q)
        b.add_rows(
            np.r_[r, r], np.r_[y[cell], xi], np.r_[np.ones(q), -np.ones(q)], 0.0, np.inf, q, op.id
        )
        b.add_rows(
            np.r_[r, r, r],
            np.r_[y[cell], xi, z],
            np.r_[np.ones(q), -np.ones(q), U - li],
            -np.inf,
            U - li,
            q,
            op.id,
        )
        b.add_rows(cell, z, np.ones(q), 1.0, 1.0, m, op.id)

        def start(env, src=src, multi=multi, cell=cell, pos=pos):
            vals = np.where(valid[multi], env[src].reshape(-1)[safe[multi]], -np.inf)
            vals = np.where(cand[multi], vals, -np.inf)
            best = vals.argmax(axis=1)
            return (pos == best[cell]).astype(float)

        ctx.start_rules.append((z, start))
    return out


def lp_context(backend: str = "highs", *, threads: int | None = None) -> LPContext:
    """The big-M model's LPs on ``backend``: :meth:`ModelFormulation.lp_context` of :class:`MILP`.

    For :func:`netopt.bounds.lp.tighten_lp` and :func:`netopt.heuristics.local_search` outside an
    exact solve (which constructs its own).

    ``threads`` (None or 0: the solver's default) goes to every LP; pass the count of the exact
    solve that follows, so HiGHS's process-wide scheduler is not restarted in between.
    """
    return MILP.lp_context(backend, threads=threads)
