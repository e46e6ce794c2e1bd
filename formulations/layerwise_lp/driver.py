r"""The layer-wise LP inversion's driver: the eps schedule of each layer over a backend session.

The network is inverted backwards, one layer at a time (§3.5 of ``ALGORITHMS.md``):

.. code-block:: text

    current <- x_observed ; eps <- eps0
    for layer i = d, ..., 1:
        z_i <- LP_i(M_i, current, eps)     # eps grows by alpha until the LP is feasible
        current <- z_i                     # the LP solution is the next layer's target
    return current

There is no re-projection and no joint refinement between layers; the final estimate is re-checked
by the float64 reference interpreter and scored by the problem's objective. The LPs themselves are
written in :mod:`netopt.formulations.layerwise_lp.lp`.

Each layer's LP is passed to HiGHS **once**; every later tolerance only changes row bounds, column
bounds and costs (``changeRowsBounds``/``changeColsBounds``/``changeColsCost``) and the model is
re-solved from the previous basis (dual simplex hot start). ``warm=False`` rebuilds the model for
every LP instead (the baseline of ``benchmarks/papers/lei_noise.py``). ``backend="cvxpy"`` solves
the same LPs through cvxpy (rebuilt for each LP).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from netopt import solvers
from netopt.control import interrupted
from netopt.errors import InputError, SolveError, SolverUnavailableError
from netopt.formulations.layerwise_lp.exact import exact_layer
from netopt.formulations.layerwise_lp.lp import METHODS, Layer, LayerLP, layers_of
from netopt.model import LinearModel
from netopt.network import Network
from netopt.problems import Inversion
from netopt.result import Outcome
from netopt.solvers._base import RebuildSession

if TYPE_CHECKING:  # pragma: no cover
    from netopt.solvers._base import Session

log = logging.getLogger("netopt")

__all__ = ["layerwise_outcome", "invert_layer", "LayerSolution", "as_problem"]

_BACKENDS = ("highs", "cvxpy")


# ------------------------------------------------------------------------------------ sessions
def _session(backend: str, warm: bool, model: LinearModel, options: dict[str, Any]) -> Session:
    """The backend's session on a layer's LP (:meth:`netopt.solvers._base.Backend.open`).

    ``highs``: one warm HiGHS model re-solved from its basis (``warm=False``: the baseline, a
    fresh HiGHS model for every LP, presolve off as in the warm one); ``cvxpy``: the LP rebuilt
    in cvxpy for every solve (``cvxpy_solver`` picks its LP solver).
    """
    verbose = bool(options.get("verbose", False))
    if backend == "highs":
        opts = {"verbose": verbose, "options": dict(options.get("options") or {})}
        if warm:
            return solvers.get("highs")().open(model, **opts)
        opts["options"] = {"presolve": "off", **opts["options"]}
        return RebuildSession(solvers.get("highs")(), model, opts)
    if backend == "cvxpy":
        B = solvers.get("cvxpy")
        ok, why = B.available()
        if not ok:
            raise SolverUnavailableError(
                f"layer-wise LP: backend 'cvxpy' needs cvxpy ({why}; pip install cvxpy, or pip "
                "install 'netopt[cvxpy]'); backend='highs' needs nothing extra"
            )
        solver = options.get("cvxpy_solver")
        return B().open(
            model, verbose=verbose, options={} if solver is None else {"solver": solver}
        )
    raise InputError(f"backend must be one of {_BACKENDS}, got {backend!r}")


# ------------------------------------------------------------------------------- one layer
@dataclass
class LayerSolution:
    """The outcome of inverting one layer.

    Attributes
    ----------
    z : ndarray or None
        The layer's input estimate (None when the layer failed).
    eps : float
        The tolerance the returned ``z`` was found at (carried to the next layer).
    status : str
        ``"ok"``, ``"infeasible_at_cap"``, ``"rank_deficient"`` (exact: the active rows do not
        determine ``z``) or ``"solver_error"``.
    info : dict
        Diagnostics: ``eps_start``, ``eps``, ``lps`` (LPs solved), ``active_rows`` (rows with
        :math:`x_i > \\varepsilon` at the returned tolerance, or the rows of the exact system),
        ``lp_objective``, ``residual_inf`` and ``residual_l1`` (:math:`\\phi(Mz + b) - x`),
        ``iterations`` (simplex), ``build_seconds``, ``solve_seconds``.
    """

    z: np.ndarray | None
    eps: float
    status: str
    info: dict[str, Any] = field(default_factory=dict)


def _layer_from_matrix(W: Any, b: Any, activation: str, slope: float | None) -> Layer:
    M = np.asarray(W, dtype=np.float64)
    if M.ndim != 2:
        raise InputError(f"W must be a matrix (n, k), got shape {M.shape}")
    bb = np.zeros(M.shape[0]) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
    if bb.shape != (M.shape[0],):
        raise InputError(f"b has shape {bb.shape}; expected ({M.shape[0]},)")
    if activation == "relu":
        c = 0.0
    elif activation == "leaky_relu":
        c = 0.1 if slope is None else float(slope)
        if not 0.0 < c < 1.0:
            raise InputError(f"the LeakyReLU slope must lie in (0, 1), got {c}")
    elif activation == "linear":
        c = 1.0
    else:
        raise InputError(f"activation must be relu, leaky_relu or linear, got {activation!r}")
    return Layer(0, M, bb, activation, c, "z", "x")


def invert_layer(
    layer: Layer | Any,
    target: Any,
    *,
    method: str = "linf",
    eps0: float = 1e-6,
    alpha: float = 1.2,
    eps_cap: float | None = None,
    bias: Any = None,
    activation: str = "relu",
    slope: float | None = None,
    z_lo: Any = None,
    z_hi: Any = None,
    backend: str = "highs",
    warm: bool = True,
    max_lps: int = 1000,
    **options: Any,
) -> LayerSolution:
    r"""Invert one layer :math:`x \approx \phi(M z + b)`.

    Parameters
    ----------
    layer : Layer or array (n, k)
        A :class:`~netopt.formulations.layerwise_lp.lp.Layer`, or the matrix :math:`M` (then
        ``bias``, ``activation`` and ``slope`` describe the rest).
    target : array (n,)
        :math:`x`.
    method : {"linf", "l1", "relax", "exact"}
        **linf** (Algorithm 1): solve the :math:`\ell_\infty` LP at :math:`\varepsilon`; while it
        is infeasible, :math:`\varepsilon \leftarrow \alpha\varepsilon`. **l1** (Algorithm 2) and
        **relax** (LP (8)): solve at the first feasible :math:`\varepsilon`, then keep growing it
        while :math:`\|\phi(Mz+b) - x\|_1` decreases, and return the last improving :math:`z`.
        **exact** (Theorem 2): the linear system on the active rows :math:`x_i > \varepsilon_0`.
        The LPs are stated in :class:`~netopt.formulations.layerwise_lp.lp.LayerLP`.
    eps0 : float
        The starting tolerance (the noise level, if known).
    alpha : float
        Growth factor of :math:`\varepsilon` (> 1; 1.2 in the paper).
    eps_cap : float, optional
        The largest tolerance tried. Default :math:`\|x\|_\infty + \|b\|_\infty`, at which
        :math:`z = 0` satisfies the :math:`\ell_\infty` LP whenever 0 lies in the layer's input
        domain, so the growth always ends.
    z_lo, z_hi : arrays (k,), optional
        Bounds on :math:`z` (a hidden layer's :math:`z \ge 0` is added from the graph).
    backend : {"highs", "cvxpy"}
    warm : bool
        Keep one HiGHS model per layer and re-solve it from its basis (default) or rebuild it
        for every LP.
    max_lps : int
        A safety bound on the number of LPs per layer.
    **options
        ``verbose``, ``options`` (HiGHS options by name), ``cvxpy_solver``.

    Returns
    -------
    LayerSolution
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if not alpha > 1.0:
        raise InputError(f"alpha must be > 1, got {alpha}")
    if not (np.isfinite(eps0) and eps0 >= 0):
        raise InputError(f"eps0 must be finite and >= 0, got {eps0}")
    if not hasattr(layer, "matrix"):
        layer = _layer_from_matrix(layer, bias, activation, slope)
    x = np.asarray(target, dtype=np.float64).reshape(-1)
    if x.shape != (layer.shape[0],):
        raise InputError(
            f"{layer.where}: target has {x.size} entries; the layer has {layer.shape[0]}"
        )
    if not np.all(np.isfinite(x)):
        raise InputError(f"{layer.where}: the target contains NaN or inf")
    info: dict[str, Any] = {"eps_start": float(eps0), "method": method}

    def residuals(z: np.ndarray) -> tuple[float, float]:
        r = layer.forward(z) - x
        return float(np.max(np.abs(r), initial=0.0)), float(np.sum(np.abs(r)))

    if method == "exact":
        t0 = time.perf_counter()
        ex = exact_layer(layer, x, tol=eps0)
        rinf, r1 = residuals(ex.z)
        info.update(
            eps=float(eps0),
            lps=0,
            active_rows=ex.rows,
            rank=ex.rank,
            lp_objective=ex.residual,
            residual_inf=rinf,
            residual_l1=r1,
            iterations=0,
            build_seconds=0.0,
            solve_seconds=time.perf_counter() - t0,
        )
        return LayerSolution(ex.z, float(eps0), "ok" if ex.unique else "rank_deficient", info)

    t0 = time.perf_counter()
    lp = LayerLP(layer, x, method, z_lo, z_hi)
    cap = (
        float(eps_cap)
        if eps_cap is not None
        else max(float(eps0), float(np.max(np.abs(x), initial=0.0) + np.max(np.abs(layer.bias))))
    )
    eps = min(float(eps0), cap)
    sess = _session(backend, warm, lp.model(eps), options)
    info["build_seconds"] = time.perf_counter() - t0
    info["solver_version"] = sess.version
    n_lps, its, t_solve = 0, 0, 0.0

    def run(e: float) -> tuple[str, np.ndarray | None]:
        nonlocal n_lps, its, t_solve
        if n_lps >= max_lps:
            raise SolveError(
                f"layer-wise LP: {layer.where} needed more than max_lps={max_lps} LPs; raise "
                "max_lps, alpha or eps0"
            )
        p = lp.params(e)
        sess.update(row_lo=p.row_lo, row_hi=p.row_hi, col_lo=p.col_lo, col_hi=p.col_hi, cost=p.cost)
        t = time.perf_counter()
        raw = sess.solve()
        t_solve += time.perf_counter() - t
        n_lps += 1
        its += int(raw.extra.get("iterations", 0))
        if raw.status == "optimal" or (raw.status == "unknown" and raw.x is not None):
            # an inaccurate LP point only costs accuracy: it is the next layer's target, and the
            # final estimate is re-checked in float64
            return "optimal", raw.x
        # every layer LP has a bounded objective, so "unbounded or infeasible" means infeasible;
        # an inaccurate infeasibility only makes eps grow (no claim rests on it)
        if (
            raw.status in ("infeasible", "unbounded_or_infeasible")
            or raw.extra.get("cvxpy_status") == "infeasible_inaccurate"
        ):
            return "infeasible", None
        return f"error: {raw.message or raw.status}", None

    def finish(status: str, z: np.ndarray | None, v: np.ndarray | None, e: float) -> LayerSolution:
        info.update(lps=n_lps, iterations=its, solve_seconds=t_solve, eps=float(e))
        if z is not None:
            rinf, r1 = residuals(z)
            info.update(
                active_rows=int(lp.active(e).sum()),
                lp_objective=lp.lp_value(v, e),
                residual_inf=rinf,
                residual_l1=r1,
            )
        return LayerSolution(z, float(e), status, info)

    # grow eps until the LP is feasible (Algorithm 1; also the start of the other two)
    while True:
        if interrupted():  # Ctrl-C between two LPs
            info["message"] = "interrupted"
            return finish("interrupted", None, None, eps)
        st, v = run(eps)
        if st == "optimal":
            break
        if st != "infeasible":
            info["message"] = st
            return finish("solver_error", None, None, eps)
        if eps >= cap:
            info["message"] = f"the {method} LP is infeasible at the cap eps = {cap:.3g}"
            return finish("infeasible_at_cap", None, None, eps)
        eps = min(eps * alpha if eps > 0 else 1e-12 * max(1.0, float(np.max(np.abs(x)))), cap)
    z = lp.z(v)
    if method == "linf":
        return finish("ok", z, v, eps)
    # Algorithm 2 / (8): keep growing eps while the l1 residual decreases
    err = residuals(z)[1]
    while eps < cap:
        e_new = min(eps * alpha if eps > 0 else 1e-12 * max(1.0, float(np.max(np.abs(x)))), cap)
        if method == "l1" and np.array_equal(lp.active(e_new), lp.active(eps)):
            # the same active set is the same LP: the residual cannot decrease, so Algorithm 2
            # would stop here; skip the identical solve
            break
        st, v_new = run(e_new)
        if st != "optimal":
            break
        z_new = lp.z(v_new)
        err_new = residuals(z_new)[1]
        if err_new >= err:
            break
        z, v, err, eps = z_new, v_new, err_new, e_new
    return finish("ok", z, v, eps)


# ----------------------------------------------------------------------------- the network
def as_problem(
    net_or_problem: Network | Inversion,
    target: Any = None,
    method: str = "linf",
    norm: Any = None,
    box: Any = None,
) -> Inversion:
    """The :class:`~netopt.problems.Inversion` the method solves.

    An Inversion is taken as is (then no separate ``target``, ``norm`` or ``box``); a network
    with a ``target`` becomes one, scored by ``norm`` (default: inf for linf and exact, 1 for l1
    and relax) over the input ``box``.
    """
    if isinstance(net_or_problem, Inversion):
        if target is not None or box is not None or norm is not None:
            raise InputError("with an Inversion problem, give no separate target, norm or box")
        return net_or_problem
    if isinstance(net_or_problem, Network):
        if target is None:
            raise InputError("invert_layerwise(net, target): the target is required")
        default_norm = "inf" if method in ("linf", "exact") else 1
        return Inversion(
            net_or_problem, target, norm=default_norm if norm is None else norm, box=box
        )
    raise InputError(
        f"invert_layerwise takes a Network or an Inversion, got {type(net_or_problem).__name__}"
    )


#: the keyword options passed through to the LP sessions
_OPTIONS = {"verbose", "options", "cvxpy_solver"}


def layerwise_outcome(
    net_or_problem: Network | Inversion,
    target: Any = None,
    *,
    method: str = "linf",
    eps0: float = 1e-6,
    alpha: float = 1.2,
    eps_cap: float | None = None,
    carry_eps: bool = True,
    backend: str = "highs",
    warm: bool = True,
    norm: Any = None,
    box: Any = None,
    max_lps: int = 1000,
    **options: Any,
) -> tuple[Inversion, Outcome]:
    r"""Invert a ReLU/LeakyReLU network backwards, one layer at a time, by LPs: the method.

    Returns the problem and the method's :class:`~netopt.result.Outcome` (its estimate, not yet
    re-checked); :func:`invert_layerwise` and ``prob.solve("layerwise_lp")`` re-check it.

    The network must be a chain of layers :math:`x_i = \phi_i(M_i x_{i-1} + b_i)`: ``affine``
    (or stride-1 ``conv2d``, ``scale``, reshapes, composed into :math:`M_i`) followed by
    ``relu``, ``leaky_relu`` (slope in [0, 1)) or nothing. From the target down, each layer is
    inverted by :func:`invert_layer` and its estimate becomes the next layer's target.

    Parameters
    ----------
    net_or_problem : Network or Inversion
        The network (then ``target`` is required), or an :class:`~netopt.problems.Inversion`
        whose target, norm and input box are used.
    target : array, optional
        The observation :math:`x` (the network's output shape).
    method : {"linf", "l1", "relax", "exact"}
        See :func:`invert_layer`.
    eps0, alpha, eps_cap :
        The tolerance schedule (see :func:`invert_layer`); ``eps_cap`` applies to every layer.
    carry_eps : bool
        Start each layer at the tolerance the previous one ended with (the authors' code; eps
        only grows) rather than at ``eps0``.
    backend : {"highs", "cvxpy"}
    warm : bool
        Persistent HiGHS model per layer, re-solved from its basis (default), or a fresh build
        per LP.
    norm : 1, 2 or inf, optional
        The norm of the objective the result is scored by when a network is given (default:
        inf for linf and exact, 1 for l1 and relax).
    box : (lo, hi), optional
        An input box (with a network); imposed on the latent's LP.
    **options
        ``verbose``, ``options`` (HiGHS options by name), ``cvxpy_solver``.

    Returns
    -------
    (Inversion, Outcome)
        The problem and the method's outcome. Re-checked (:func:`netopt.result.assemble`), it
        is a Result of status ``feasible`` (a point, no proven bound); ``x`` the latent estimate,
        ``y`` and ``objective`` recomputed in float64 by the reference interpreter;
        ``extra["layerwise"]`` holds ``method``, ``eps_final`` and one dict per layer (output
        first) with the diagnostics of :class:`LayerSolution` plus the layer's ops. When a layer
        LP is still infeasible at ``eps_cap`` the status is ``unknown``, ``x`` is None, and
        ``extra["layerwise"]["failed_layer"]`` and the message name the layer.

    Raises
    ------
    FormulationError
        The network has an op the method cannot invert (max-pool, strided conv, smooth
        activations, branches), naming every such op and its ONNX node.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InputError(
            f"invert_layerwise: unknown option(s) {unknown}; it takes {sorted(_OPTIONS)} besides "
            "its named parameters (method, eps0, alpha, eps_cap, carry_eps, backend, warm, ...)"
        )
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if backend not in _BACKENDS:
        raise InputError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    problem = as_problem(net_or_problem, target, method, norm, box)
    net = problem.net
    t_all = time.perf_counter()
    layers = layers_of(net.graph, f" of {net.source.name}")
    dom = problem.domain
    if dom.A is not None or dom.integer is not None:
        raise InputError(
            "the layer-wise LP imposes only an input box on the latent; this domain also has "
            "linear constraints or integer coordinates"
        )
    current = problem.target.reshape(-1)
    eps = float(eps0)
    reports: list[dict[str, Any]] = []
    out = Outcome(formulation=f"layerwise_lp ({method})")
    out.solver = backend if method != "exact" else "numpy.linalg.lstsq"
    failed = None
    notes = []
    for layer in reversed(layers):
        if interrupted():  # Ctrl-C: the layers below are not inverted, so no input yet
            failed = layer
            break
        first = layer.index == 0
        sol = invert_layer(
            layer,
            current,
            method=method,
            eps0=eps if carry_eps else float(eps0),
            alpha=alpha,
            eps_cap=eps_cap,
            z_lo=dom.lo.reshape(-1) if first and np.isfinite(dom.lo).any() else None,
            z_hi=dom.hi.reshape(-1) if first and np.isfinite(dom.hi).any() else None,
            backend=backend,
            warm=warm,
            max_lps=max_lps,
            **options,
        )
        ops = [o.id for o in layer.ops]
        rep = {
            "layer": layer.index,
            "ops": ops,
            "where": layer.where,
            "activation": layer.activation,
            "shape": list(layer.shape),
            "status": sol.status,
            **sol.info,
        }
        reports.append(rep)
        if "solver_version" in sol.info:
            out.solver_version = sol.info["solver_version"]
        if sol.z is None:
            failed = layer
            break
        if sol.status == "rank_deficient":
            notes.append(
                f"{layer.where}: the {sol.info['active_rows']} active rows have rank "
                f"{sol.info['rank']} < {layer.shape[1]}; the minimum-norm solution was kept"
            )
        current = sol.z
        eps = max(eps, sol.eps) if carry_eps else float(eps0)
    lw: dict[str, Any] = {
        "method": method,
        "alpha": alpha,
        "eps0": float(eps0),
        "eps_final": eps,
        "carry_eps": carry_eps,
        "warm": warm,
        "layers": reports,
        "lps": int(sum(r.get("lps", 0) for r in reports)),
    }
    out.extra["layerwise"] = lw
    out.timings = {
        "build": float(sum(r.get("build_seconds", 0.0) for r in reports)),
        "solve": float(sum(r.get("solve_seconds", 0.0) for r in reports)),
    }
    if failed is not None and interrupted():
        out.claim = "interrupted"
        out.message = f"layer-wise LP ({method}): interrupted at {failed.where}; no input yet"
        out.timings["total"] = time.perf_counter() - t_all
        return problem, out
    if failed is not None:
        rep = reports[-1]
        lw["failed_layer"] = {"layer": failed.index, "ops": rep["ops"], "where": failed.where}
        out.message = (
            f"layer-wise LP ({method}): {failed.where} failed ({rep['status']}): "
            f"{rep.get('message', '')}. Raise eps_cap, or try method='l1' or 'relax'."
        )
        out.timings["total"] = time.perf_counter() - t_all
        return problem, out  # no point: status unknown
    # the estimate is projected and re-checked in float64 (with any input term of the objective)
    out.candidates = [current]
    out.message = "; ".join(notes)
    out.model_size = {"layers": len(layers), "lps": lw["lps"]}
    out.timings["total"] = time.perf_counter() - t_all
    return problem, out
