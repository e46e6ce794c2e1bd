r"""The lifted Bregman inversion of a network (Wang & Benning, 2023).

An activation that is a proximal map, :math:`\sigma = \mathrm{prox}_\Psi`, comes with a penalty
:math:`B_\Psi(y, z) \ge \tfrac12\|y - \sigma(z)\|^2`, zero exactly on the graph
:math:`y = \sigma(z)` and convex in each argument
(:mod:`~netopt.formulations.lifted_bregman.penalty`). Lifting every hidden value to a variable
makes each block of the objective convex (:mod:`~netopt.formulations.lifted_bregman.blocks`,
:class:`netopt.model.ConvexBlock`). The first-order methods run on it:

* **one layer**: :func:`~netopt.formulations.lifted_bregman.pdhg.pdhg`, the primal-dual hybrid
  gradient method of Chambolle & Pock;
* **several layers**: :func:`~netopt.formulations.lifted_bregman.descent.coordinate_descent` over
  :math:`(u, z_1, \dots, z_{L-1})`;
* :func:`~netopt.formulations.lifted_bregman.landweber.landweber`: the baseline,
  :math:`u \leftarrow u - \omega W^\top(\sigma(W u + b) - f)` stopped by the discrepancy
  principle;
* the discrepancy principle for :math:`\alpha`: bisection on :math:`\log\alpha` until
  :math:`\|\sigma(W u_\alpha + b) - f^\delta\|_2 \approx \tau_{dp}\,\delta\sqrt{m}`.

``certify=True`` solves the same convex block(s) exactly with the ``"cvxpy"`` backend and reports
the relative objective gap of the first-order point in ``Result.extra["bregman"]``.
:class:`LiftedBregman` is registered as ``"lifted_bregman"``; :func:`invert_bregman` is the same
method from a network and a target.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import InputError
from netopt.formulations import register
from netopt.formulations._base import (
    Formulation,
    array_like,
    grid_shape,
    keyword_options,
    mapping,
    number_pair,
    pair_of_arrays,
    verbosity,
)
from netopt.formulations.lifted_bregman.blocks import (
    ACTIVATIONS,
    LINEAR_OK,
    BregmanLayer,
    as_problem,
    block,
    bregman_layers,
    certify_block,
    check_support,
    lifted_objective,
    outcome,
    setup,
)
from netopt.formulations.lifted_bregman.descent import coordinate_descent
from netopt.formulations.lifted_bregman.pdhg import pdhg
from netopt.ir import Graph
from netopt.model.convex import REGULARIZERS, ConvexBlock, activation
from netopt.options import Schema, choice, integer, number
from netopt.problems import Inversion
from netopt.result import Outcome, Result

log = logging.getLogger("netopt")

__all__ = [
    "LiftedBregman",
    "BregmanLayer",
    "bregman_layers",
    "bregman_outcome",
    "certify_block",
    "coordinate_descent",
    "invert_bregman",
    "lifted_objective",
    "pdhg",
]


@register("lifted_bregman")
class LiftedBregman(Formulation):
    """The lifted Bregman inversion: its support check, run by :func:`bregman_outcome`.

    ``Problem.solve("lifted_bregman", ...)`` (an :class:`~netopt.problems.Inversion`) calls
    :func:`bregman_outcome`, which runs PDHG (one layer) or coordinate descent over the lifted
    variables (several), and certifies the blocks with the ``"cvxpy"`` backend.
    """

    name = "lifted_bregman"
    model_type = "ConvexBlock"
    rules = {k: None for k in (*LINEAR_OK, *ACTIVATIONS)}  # type: ignore[dict-item]

    @classmethod
    def check_support(cls, graph: Graph) -> list[tuple[str, str, str]]:
        """``(op id, IR op, reason)`` for every op outside the method's scope."""
        return check_support(graph)

    @classmethod
    def options(cls) -> Schema:
        return keyword_options(
            cls.name,
            bregman_outcome,
            _OPTIONS,
            checks={
                "regularizer": choice(*REGULARIZERS),
                "image_shape": grid_shape,
                "box": pair_of_arrays,
                "noise": number(low=0),
                "alpha_range": number_pair,
                "method": choice("auto", "pdhg", "cd"),
                "max_iter": integer(low=0),
                "tol": number(low=0),
                "x0": array_like,
                "backend": choice(None, "cvxpy"),
                "inner_iter": integer(low=1),
                "lam": number(),
                "options": mapping,
                "ratio": number(low=0, strict=True),
                "time_limit": number(low=0, strict=True),
                "verbose": verbosity,
            },
        )

    def run(self, problem: Any, solver: str | None = None, **options: Any) -> Outcome:
        if solver is not None:
            options.setdefault("backend", solver)  # the certifying backend
        return bregman_outcome(problem, **options)[1]


def _image_shape(problem: Inversion, image_shape: Any) -> tuple[int, int] | None:
    if image_shape is not None:
        return (int(image_shape[0]), int(image_shape[1]))
    s = [d for d in problem.net.input_shape]
    if len(s) >= 2 and s[-1] > 1 and s[-2] > 1:
        return (int(s[-2]), int(s[-1]))
    return None


_OPTIONS = {"verbose", "time_limit", "options", "backend", "ratio", "inner_iter", "lam"}


def bregman_outcome(
    problem_or_net: Any,
    target: Any = None,
    *,
    regularizer: str = "tv",
    alpha: float = 1e-2,
    image_shape: tuple[int, int] | None = None,
    box: tuple[Any, Any] | None = None,
    noise: float | None = None,
    discrepancy: bool = False,
    tau_dp: float = 1.0,
    alpha_range: tuple[float, float] | None = None,
    dp_rtol: float = 0.02,
    method: str = "auto",
    max_iter: int | None = None,
    tol: float | None = None,
    certify: bool = True,
    x0: Any = None,
    **options: Any,
) -> tuple[Inversion, Outcome]:
    r"""Invert a network by the lifted Bregman method (``Problem.solve("lifted_bregman")``).

    Returns the problem and the method's :class:`~netopt.result.Outcome` (its point, not yet
    re-checked); :func:`invert_bregman` re-checks it.

    Parameters
    ----------
    problem_or_net : Inversion, Network, or an ONNX model/path
        A chain of affine layers with ReLU/LeakyReLU (a linear last layer is allowed).
    target : array, optional
        :math:`f^\delta` when a network is given. For a ReLU output it is clipped at 0 (the data
        must lie in :math:`\mathrm{dom}\,\Psi`), as in the paper.
    regularizer : {"tv", "l1", "l2", "box", "none"}
        :math:`J`: isotropic TV, :math:`\|u\|_1`, :math:`\tfrac12\|u\|^2`, only the box, nothing.
    alpha : float
        :math:`\alpha` (the start of the search if ``discrepancy``).
    image_shape : (H, W), optional
        The pixel grid for TV (default: the input's last two axes if both exceed 1).
    box : (lo, hi), optional
        A box on :math:`u` in addition to the problem's domain.
    noise : float, optional
        :math:`\delta`, the noise standard deviation per output entry.
    discrepancy : bool
        Choose :math:`\alpha` by bisection on :math:`\log\alpha` (within ``alpha_range``, default
        ``alpha`` times [1e-3, 1e3]) until :math:`\|N(u_\alpha) - f^\delta\|_2` is within
        ``dp_rtol`` of :math:`\tau_{dp}\delta\sqrt m`.
    method : {"auto", "pdhg", "cd"}
        ``auto``: PDHG for one layer, coordinate descent for several.
    max_iter, tol : optional
        PDHG iterations (default 10000, tol 1e-6) or CD sweeps (default 500, tol 1e-8).
    certify : bool
        Solve the same convex block(s) exactly with cvxpy and report the relative gap.
    **options
        ``ratio`` (PDHG :math:`\tau/\sigma` balance), ``inner_iter`` (CD's TV block), ``lam``
        (:math:`\lambda` of a linear output), ``options`` (cvxpy solve options, e.g.
        ``{"solver": "SCS"}``), ``backend`` (the certifying backend: only ``"cvxpy"``).

    Returns
    -------
    Result
        Status ``feasible``; ``x`` re-checked by the float64 interpreter and scored by the problem
        (:math:`\|N(x) - f\|`); ``extra["bregman"]`` holds the lifted objective, its history,
        step sizes, the chosen :math:`\alpha` and the certification.
    """
    t0 = time.perf_counter()
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InputError(f"lifted_bregman: unknown option(s) {unknown}; known: {sorted(_OPTIONS)}")
    backend = options.get("backend") or "cvxpy"
    if backend != "cvxpy":
        raise InputError(f"lifted_bregman certifies with backend 'cvxpy', got {backend!r}")
    if regularizer not in REGULARIZERS:
        raise InputError(f"regularizer must be one of {REGULARIZERS}, got {regularizer!r}")
    if not alpha >= 0:
        raise InputError(f"alpha must be >= 0, got {alpha!r}")
    if discrepancy and (noise is None or noise <= 0):
        raise InputError("discrepancy=True needs the noise level: pass noise=<std per output>")
    problem, layers, f = setup(problem_or_net, target)
    if method == "auto":
        method = "pdhg" if len(layers) == 1 else "cd"
    if method not in ("pdhg", "cd"):
        raise InputError(f"method must be 'auto', 'pdhg' or 'cd', got {method!r}")
    if method == "pdhg" and len(layers) != 1:
        raise InputError(
            f"method 'pdhg' inverts one layer; this network has {len(layers)} "
            f"({', '.join(L.where for L in layers)}): use method='cd'"
        )
    clipped = 0
    if layers[-1].slope == 0.0:
        clipped = int(np.sum(f < 0))
        f = np.maximum(f, 0.0)
    shape = _image_shape(problem, image_shape)
    if regularizer == "tv" and shape is None:
        raise InputError(
            f"regularizer 'tv' needs image_shape=(H, W) for the input of shape "
            f"{tuple(problem.net.input_shape)}"
        )
    lo = problem.domain.lo.reshape(-1).copy()
    hi = problem.domain.hi.reshape(-1).copy()
    if box is not None:
        lo = np.maximum(lo, np.broadcast_to(np.asarray(box[0], dtype=np.float64), lo.shape))
        hi = np.minimum(hi, np.broadcast_to(np.asarray(box[1], dtype=np.float64), hi.shape))
    if regularizer == "box" and not (np.all(np.isfinite(lo)) or np.all(np.isfinite(hi))):
        raise InputError("regularizer 'box' needs a box: pass box=(lo, hi) or a problem domain")
    lo_ = lo if np.any(np.isfinite(lo)) else None
    hi_ = hi if np.any(np.isfinite(hi)) else None
    lam = float(options.get("lam", 1.0))
    u_init = None if x0 is None else np.asarray(x0, dtype=np.float64).reshape(-1)

    def run(a: float, u_start: Any, st: Any) -> tuple[np.ndarray, dict[str, Any], Any]:
        if method == "pdhg":
            L = layers[0]
            sub = ConvexBlock(
                L.W, L.b, f, L.slope, lam, None, 0.0, regularizer, a, shape, lo_, hi_, "u"
            )
            u, stt = pdhg(
                sub,
                u_start,
                st,
                max_iter=max_iter or 10000,
                tol=1e-6 if tol is None else tol,
                ratio=float(options.get("ratio", 1.0)),
            )
            return u, {**stt, "objective": sub.objective(u)}, [u]
        zs, info = coordinate_descent(
            layers,
            f,
            reg=regularizer,
            alpha=a,
            image_shape=shape,
            lo=lo_,
            hi=hi_,
            u0=u_start,
            lam=lam,
            max_iter=max_iter or 500,
            tol=1e-8 if tol is None else tol,
            inner_iter=int(options.get("inner_iter", 100)),
        )
        return zs[0], {**info, "objective": info["history"][-1]}, zs

    def residual(u: np.ndarray) -> float:
        z = u
        for L in layers:
            z = L.W @ z + L.b
            z = z if L.slope is None else activation(z, L.slope)
        return float(np.linalg.norm(z - f))

    dp_info: dict[str, Any] | None = None
    if discrepancy:
        goal = tau_dp * noise * np.sqrt(f.size)
        a_lo, a_hi = alpha_range or (alpha * 1e-3, alpha * 1e3)
        trials: list[tuple[float, float]] = []
        best = None
        st: Any = None
        u_prev = u_init
        lg_lo, lg_hi = np.log(a_lo), np.log(a_hi)
        for _ in range(30):
            a = float(np.exp(0.5 * (lg_lo + lg_hi)))
            u, info, zs = run(a, u_prev, st)
            st = info if method == "pdhg" else None
            u_prev = u
            r = residual(u)
            trials.append((a, r))
            if best is None or abs(r - goal) < abs(best[1] - goal):
                best = (a, r, u, info, zs)
            if abs(r / goal - 1.0) <= dp_rtol or interrupted():
                break
            # the residual grows with alpha: too small a residual means too little regularization
            if r < goal:
                lg_lo = np.log(a)
            else:
                lg_hi = np.log(a)
        alpha, r, u, info, zs = best
        dp_info = {"target": goal, "residual": r, "trials": trials, "tau_dp": tau_dp}
    else:
        u, info, zs = run(alpha, u_init, None)

    out: dict[str, Any] = {
        "method": method,
        "alpha": alpha,
        "regularizer": regularizer,
        "objective": info["objective"],
        "history": info["history"],
        "iterations": info["iterations"],
        "residual": residual(u),
        "clipped_targets": clipped,
        "discrepancy": dp_info,
    }
    for k in ("tau", "sigma", "norm_K", "converged", "steps", "rejected"):
        if k in info:
            out[k] = info[k]
    if certify:
        cert_opts = options.get("options") or {}
        blocks = [
            block(layers, f, zs, i, regularizer, alpha, shape, lo_, hi_, lam)
            for i in range(len(layers))
        ]
        certs = [certify_block(b, zs[i], cert_opts) for i, b in enumerate(blocks)]
        out["certificate"] = certs
        # a gap only when every block was solved accurately: one uncertified block leaves the
        # whole point uncertified
        out["certified"] = all(c["certified"] for c in certs)
        out["rel_gap"] = max(c["rel_gap"] for c in certs) if out["certified"] else None
        if not out["certified"]:
            log.warning(
                "lifted Bregman: %s", next(c["message"] for c in certs if not c["certified"])
            )
    o = outcome(problem, u, method, out, time.perf_counter() - t0)
    if interrupted():  # the iterations stopped at the user's request (Ctrl-C)
        o.claim = "interrupted"
    return problem, o


def invert_bregman(problem_or_net: Any, target: Any = None, **options: Any) -> Result:
    """The lifted Bregman method, its point re-checked in float64 (see :func:`bregman_outcome`).

    ``as_problem(problem_or_net, target).solve("lifted_bregman", **options)``.
    """
    return as_problem(problem_or_net, target).solve("lifted_bregman", **options)
