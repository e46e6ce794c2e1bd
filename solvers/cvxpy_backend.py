r"""Backend ``"cvxpy"``: the exact solution of one convex block of the lifted Bregman objective.

The model is a :class:`netopt.model.ConvexBlock`,

.. math::
    \min_{lo \le u \le hi}\ D(u) + B_{\Psi_{in}}(u, a) + \alpha J(u),

written in DCP form with the closed forms of the penalty halves (slope :math:`c`):
:math:`\phi^*(z) = \tfrac12\|\max(z,0)\|^2 + \tfrac c2\|\min(z,0)\|^2` and
:math:`\phi(y) = \tfrac12\|\max(y,0)\|^2 + \tfrac1{2c}\|\min(y,0)\|^2` (ReLU: :math:`\tfrac12\|y\|^2`
with :math:`y \ge 0`). Isotropic TV is a sum of second-order cones. Clarabel (interior point) is
the default; SCS is the fallback when Clarabel is missing or fails. cvxpy is imported only when a
model is solved.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from netopt.errors import OptionError, SolverUnavailableError
from netopt.model import ConvexBlock, grad_operator
from netopt.solvers import register
from netopt.solvers._base import Backend, RawSolution, RebuildSession, Session, check_options


@register("cvxpy")
class CvxpyBackend(Backend):
    """Exact convex subproblems of the lifted Bregman method through cvxpy (Clarabel, SCS)."""

    name = "cvxpy"
    model_types = ("ConvexBlock",)
    features = frozenset({"quadratic"})
    packages = ("cvxpy",)
    pip = "pip install 'netopt[cvxpy]'"

    @staticmethod
    def _problem(model: ConvexBlock) -> tuple[Any, Any]:
        import cvxpy as cp

        n = model.n
        u = cp.Variable(n)
        z = model.W @ u + model.b
        cons = []
        if model.out_slope is None:
            cost = 0.5 * model.lam * cp.sum_squares(z - model.f)
        else:
            # B(f, z) = phi(f) + phi*(z) - <f, z>; phi(f) is a constant, kept so that the optimal
            # value equals the block's objective
            c = float(model.out_slope)
            const = 0.5 * float(np.sum(np.maximum(model.f, 0) ** 2))
            if c > 0:
                const += 0.5 / c * float(np.sum(np.minimum(model.f, 0) ** 2))
            cost = 0.5 * cp.sum_squares(cp.pos(z)) - model.f @ z + const
            if c > 0:
                cost = cost + 0.5 * c * cp.sum_squares(cp.neg(z))
        if model.in_pre is not None:
            a = np.asarray(model.in_pre, dtype=np.float64)
            c = float(model.in_slope)
            const = 0.5 * float(np.sum(a * np.where(a >= 0, a, c * a)))
            if c == 0.0:
                cons.append(u >= 0)  # dom(Psi) of ReLU
                cost = cost + 0.5 * cp.sum_squares(u) - a @ u + const
            else:
                cost = (
                    cost
                    + 0.5 * cp.sum_squares(cp.pos(u))
                    + 0.5 / c * cp.sum_squares(cp.neg(u))
                    - a @ u
                    + const
                )
        if model.alpha > 0 and model.reg == "tv":
            D = grad_operator(model.image_shape)
            g = cp.reshape(D @ u, (2, n), order="C")
            cost = cost + model.alpha * cp.sum(cp.norm(g, 2, axis=0))
        elif model.alpha > 0 and model.reg == "l1":
            cost = cost + model.alpha * cp.norm1(u)
        elif model.alpha > 0 and model.reg == "l2":
            cost = cost + 0.5 * model.alpha * cp.sum_squares(u)
        if model.lo is not None and np.any(np.isfinite(model.lo)):
            idx = np.flatnonzero(np.isfinite(model.lo))
            cons.append(u[idx] >= np.asarray(model.lo)[idx])
        if model.hi is not None and np.any(np.isfinite(model.hi)):
            idx = np.flatnonzero(np.isfinite(model.hi))
            cons.append(u[idx] <= np.asarray(model.hi)[idx])
        return cp.Problem(cp.Minimize(cost), cons), u

    def solve(self, model: Any, **opts: Any) -> RawSolution:
        """Solve ``model`` exactly; ``options={"solver": "SCS", ...}`` picks the cvxpy solver.

        Options: ``time_limit`` (Clarabel's ``time_limit``, SCS's ``time_limit_secs``),
        ``verbose``, ``options`` (``"solver"``, then settings passed to the conic solver as is).
        The other common options are validated and have no effect here. Without ``"solver"``,
        Clarabel is tried first and SCS after it when Clarabel fails or is not accurate.

        Only cvxpy's status ``optimal`` (with a finite point and value) is an answer: ``optimal``
        comes back with cvxpy's value, ``infeasible`` / ``unbounded`` with nothing. When no
        solver is accurate, an ``optimal_inaccurate`` point comes back with status ``"unknown"``
        (no objective, no optimality claim; ``extra["solver_value"]`` is the solver's value), a
        ``user_limit`` stop as ``"time_limit"`` without point, and anything else
        (``infeasible_inaccurate`` — no proof of infeasibility —, a
        :class:`cvxpy.error.SolverError`, ...) as ``"error"`` with every solver's message. No
        bound is ever returned.

        Returns
        -------
        RawSolution
            ``objective`` is cvxpy's optimal value (the block's objective at the solver's point);
            ``extra["solver"]`` names the conic solver that answered, ``extra["cvxpy_status"]``
            its status.

        Raises
        ------
        OptionError
            An invalid common option, a ``"solver"`` that is not a string, or a setting the conic
            solver rejects (cvxpy raises ``TypeError`` / ``ValueError`` for those).
        SolverUnavailableError
            cvxpy is missing, or the ``"solver"`` asked for is not installed.
        """
        check_options(self.name, opts)
        self.require()
        self.check_model(model)
        import cvxpy as cp

        extra_opts = dict(opts.get("options") or {})
        first = extra_opts.pop("solver", None)
        installed = cp.installed_solvers()
        if first is not None:
            if not isinstance(first, str):
                raise OptionError(
                    f"backend 'cvxpy': options['solver'] must be a cvxpy solver name, got {first!r}"
                )
            if first.upper() not in installed:
                raise SolverUnavailableError(
                    f"backend 'cvxpy': cvxpy solver {first!r} is not installed (installed: "
                    f"{', '.join(installed)})"
                )
        order = [first.upper()] if first else [s for s in ("CLARABEL", "SCS") if s in installed]
        if not order:
            return RawSolution(
                "error", message=f"cvxpy has neither Clarabel nor SCS (installed: {installed})"
            )
        t0 = time.perf_counter()
        prob, u = self._problem(model)
        verbose = bool(opts.get("verbose", False))
        notes: list[str] = []
        kept: dict[str, Any] | None = None  # the first optimal_inaccurate point, for re-checking
        limited = False
        for name in order:
            kw = dict(extra_opts)
            if name == "SCS":
                # SCS is first-order: ask for tight tolerances, a certificate needs them
                kw.setdefault("eps_abs", 1e-9)
                kw.setdefault("eps_rel", 1e-9)
                kw.setdefault("max_iters", 200000)
            if opts.get("time_limit") is not None:
                if name == "CLARABEL":
                    kw.setdefault("time_limit", float(opts["time_limit"]))
                elif name == "SCS":
                    kw.setdefault("time_limit_secs", float(opts["time_limit"]))
            try:
                with warnings.catch_warnings():
                    # "Solution may be inaccurate": the status below says so and is acted on
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    prob.solve(solver=name, verbose=verbose, **kw)
            except cp.error.SolverError as e:  # the solver failed: fall back to the next one
                notes.append(f"{name}: {e}")
                continue
            except (TypeError, ValueError) as e:
                if not extra_opts:
                    raise
                # cvxpy hands unknown or ill-typed settings to the solver, which raises
                raise OptionError(
                    f"backend 'cvxpy': {name} rejects the settings {extra_opts!r} ({e})"
                ) from e
            st = prob.status
            x = None if u.value is None else np.asarray(u.value, dtype=np.float64).reshape(-1)
            val = prob.value
            finite = (
                x is not None
                and bool(np.all(np.isfinite(x)))
                and val is not None
                and bool(np.isfinite(val))
            )
            if st == cp.OPTIMAL and finite:
                return RawSolution(
                    "optimal",
                    x=x,
                    objective=float(val),
                    seconds=time.perf_counter() - t0,
                    message="; ".join([*notes, f"{name}: {st}"]),
                    solver_version=cp.__version__,
                    extra={"solver": name, "cvxpy_status": st},
                )
            if st in (cp.INFEASIBLE, cp.UNBOUNDED):
                # a certificate from the solver (the accurate statuses only)
                return RawSolution(
                    "infeasible" if st == cp.INFEASIBLE else "unbounded",
                    seconds=time.perf_counter() - t0,
                    message="; ".join([*notes, f"{name}: {st}"]),
                    solver_version=cp.__version__,
                    extra={"solver": name, "cvxpy_status": st},
                )
            notes.append(f"{name}: status {st}" + ("" if st != cp.OPTIMAL else " without a point"))
            if st == cp.OPTIMAL_INACCURATE and finite and kept is None:
                kept = {"solver": name, "cvxpy_status": st, "x": x, "solver_value": float(val)}
            if st == cp.USER_LIMIT:
                limited = True
                if opts.get("time_limit") is not None:
                    break  # the time is spent: the next solver would get as much again
        dt = time.perf_counter() - t0
        msg = "; ".join(notes)
        if kept is not None:
            # a point for netopt to re-check, never an optimal value or a bound
            x = kept.pop("x")
            return RawSolution(
                "unknown",
                x=x,
                seconds=dt,
                message=msg + " (no solver was accurate: the point is not certified)",
                solver_version=cp.__version__,
                extra=kept,
            )
        return RawSolution(
            "time_limit" if limited else "error",
            seconds=dt,
            message=msg,
            solver_version=cp.__version__,
        )

    def open(self, model: Any, **opts: Any) -> Session:
        """A session; a :class:`~netopt.model.LinearModel` LP is rebuilt in cvxpy for each solve.

        ``options={"solver": NAME}`` picks cvxpy's LP solver (default: cvxpy's choice).
        """
        if type(model).__name__ != "LinearModel":
            return super().open(model, **opts)
        check_options(self.name, opts)
        self.require()
        if model.is_mip or model.is_quadratic:
            from netopt.errors import IncompatibleBackendError

            raise IncompatibleBackendError(
                "backend 'cvxpy': a session takes a linear program (no integers, no quadratic "
                "objective); use backend 'highs' or 'gurobi' for a MILP"
            )
        return CvxpyLPSession(model, opts)


class CvxpyLPSession(RebuildSession):
    """An LP through cvxpy (any of its LP solvers), rebuilt for every solve.

    Statuses as :meth:`CvxpyBackend.solve`: only cvxpy's ``optimal`` is an answer; an
    ``optimal_inaccurate`` point comes back as ``"unknown"`` with the point, and
    ``extra["cvxpy_status"]`` keeps cvxpy's own status (``infeasible_inaccurate`` is ``"error"``:
    no proof of infeasibility).
    """

    def __init__(self, model: Any, opts: dict[str, Any]) -> None:
        import cvxpy as cp

        super().__init__(CvxpyBackend(), model, opts)
        extra = dict(opts.get("options") or {})
        self._solver = extra.pop("solver", None)
        if self._solver is not None and not isinstance(self._solver, str):
            raise OptionError(f"backend 'cvxpy': solver must be a name, got {self._solver!r}")
        self._settings = extra
        self._verbose = bool(opts.get("verbose", False))
        self.version = cp.__version__ + (f" ({self._solver})" if self._solver else "")

    def solve(self, time_limit: float | None = None) -> RawSolution:
        """One solve of the current LP (cvxpy's solvers take no common time limit: ignored)."""
        import cvxpy as cp

        m = self.model
        t0 = time.perf_counter()
        v = cp.Variable(m.n_vars)
        cons = []
        for lo_side, bound in ((True, m.row_lo), (False, m.row_hi)):
            fin = np.flatnonzero(np.isfinite(bound))
            if len(fin):
                Ar = m.A[fin]
                cons.append(Ar @ v >= bound[fin] if lo_side else Ar @ v <= bound[fin])
        for lo_side, bound in ((True, m.lb), (False, m.ub)):
            fin = np.flatnonzero(np.isfinite(bound))
            if len(fin):
                cons.append(v[fin] >= bound[fin] if lo_side else v[fin] <= bound[fin])
        prob = cp.Problem(cp.Minimize(m.c @ v + m.c0), cons)
        try:
            with warnings.catch_warnings():
                # "Solution may be inaccurate": the status below says so and is acted on
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                warnings.filterwarnings("ignore", message=r"\s*The problem is either infeasible")
                prob.solve(solver=self._solver, verbose=self._verbose, **self._settings)
        except cp.error.SolverError as e:
            return RawSolution("error", message=f"cvxpy: {e}", solver_version=self.version)
        dt = time.perf_counter() - t0
        st = prob.status
        ex = {"cvxpy_status": st, "iterations": 0}
        x = None if v.value is None else np.asarray(v.value, dtype=np.float64)
        if st == cp.OPTIMAL and x is not None and np.all(np.isfinite(x)):
            val = float(prob.value)
            return RawSolution("optimal", x, val, val, 0, dt, st, self.version, extra=ex)
        if st == cp.OPTIMAL_INACCURATE and x is not None and np.all(np.isfinite(x)):
            return RawSolution("unknown", x, None, None, 0, dt, st, self.version, extra=ex)
        if st == cp.INFEASIBLE:
            return RawSolution("infeasible", None, None, None, 0, dt, st, self.version, extra=ex)
        if st == "infeasible_or_unbounded":  # cvxpy.settings.INFEASIBLE_OR_UNBOUNDED
            # the solver's presolve could not tell which: no infeasibility claim
            return RawSolution(
                "unbounded_or_infeasible", None, None, None, 0, dt, st, self.version, extra=ex
            )
        return RawSolution(
            "error", None, None, None, 0, dt, f"cvxpy status {st}", self.version, extra=ex
        )
