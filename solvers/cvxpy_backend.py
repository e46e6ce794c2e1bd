r"""Backend ``"cvxpy"``: the exact solution of one convex block of the lifted Bregman objective.

The model is a :class:`netopt.formulations.lifted_bregman.BregmanSubproblem`,

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
from typing import Any

import numpy as np

from netopt.solvers import register
from netopt.solvers._base import Backend, RawSolution, check_options


@register("cvxpy")
class CvxpyBackend(Backend):
    """Exact convex subproblems of the lifted Bregman method through cvxpy (Clarabel, SCS)."""

    name = "cvxpy"
    model_types = ("BregmanSubproblem",)
    features = frozenset({"quadratic"})
    packages = ("cvxpy",)
    pip = "pip install 'netopt[cvxpy]'"

    @staticmethod
    def _problem(model: Any) -> tuple[Any, Any]:
        import cvxpy as cp

        from netopt.formulations.lifted_bregman import grad_operator

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

        Returns
        -------
        RawSolution
            ``objective`` is cvxpy's optimal value (the block's objective at the solver's point);
            ``extra["solver"]`` names the conic solver that answered.
        """
        check_options(self.name, opts)
        self.require()
        self.check_model(model)
        import cvxpy as cp

        t0 = time.perf_counter()
        prob, u = self._problem(model)
        extra_opts = dict(opts.get("options") or {})
        first = extra_opts.pop("solver", None)
        installed = cp.installed_solvers()
        order = [first] if first else [s for s in ("CLARABEL", "SCS") if s in installed]
        if not order:
            return RawSolution(
                "error", message=f"cvxpy has neither Clarabel nor SCS (installed: {installed})"
            )
        verbose = bool(opts.get("verbose", False))
        msg = ""
        for name in order:
            kw = dict(extra_opts)
            if name == "SCS":
                # SCS is first-order: ask for tight tolerances, a certificate needs them
                kw.setdefault("eps_abs", 1e-9)
                kw.setdefault("eps_rel", 1e-9)
                kw.setdefault("max_iters", 200000)
            if opts.get("time_limit") is not None and name == "CLARABEL":
                kw.setdefault("time_limit", float(opts["time_limit"]))
            try:
                prob.solve(solver=name, verbose=verbose, **kw)
            except cp.error.SolverError as e:  # fall back to the next solver
                msg += f"{name}: {e}; "
                continue
            if prob.status in ("optimal", "optimal_inaccurate") and u.value is not None:
                return RawSolution(
                    "optimal",
                    x=np.asarray(u.value, dtype=np.float64),
                    objective=float(prob.value),
                    seconds=time.perf_counter() - t0,
                    message=msg + f"{name}: {prob.status}",
                    solver_version=cp.__version__,
                    extra={"solver": name, "cvxpy_status": prob.status},
                )
            msg += f"{name}: status {prob.status}; "
        return RawSolution(
            "error", seconds=time.perf_counter() - t0, message=msg, solver_version=cp.__version__
        )
