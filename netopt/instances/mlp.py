r"""Random ReLU MLPs with realizable, outside-image and provably unreachable targets.

The network: :math:`f(x) = W_L h_{L-1} + b_L`, :math:`h_l = \mathrm{ReLU}(W_l h_{l-1} + b_l)`,
:math:`(W_l)_{ij} \sim \mathcal{N}(0, 2/n_{l-1})` (He), :math:`b_l \sim \mathcal{N}(0, 0.1^2)`,
inputs in the box :math:`[lo, hi]^{n_0}`. Target kinds:

``realizable``
    :math:`y = f(x^*)` with :math:`x^*` uniform in the box: optimum 0 at :math:`x^*`.
``outside``
    :math:`y = f(x^\circ)` for a point :math:`x^\circ` *outside* the box (the box centre plus
    2.5 times the box radius along a random direction): :math:`y` is in the image of
    :math:`\mathbb{R}^{n_0}` but usually not of the box; the optimum is unknown until an exact
    solver certifies it (``certify=True`` runs netopt's MILP and records its certified
    optimum).
``unreachable``
    :math:`y = f(x^*)` except :math:`y_0 = u_0 + \max(1, (u_0 - l_0)/2)`, beyond the interval
    upper bound :math:`u_0` of :math:`f_0` over the box: no input reaches it, and CROWN's bounds
    :math:`[l^C, u^C] \subseteq [l, u]` give the certified lower bound
    :math:`\|\mathrm{dist}(y, [l^C, u^C])\|_p` on the optimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from netopt.errors import InputError
from netopt.instances._onnx import mlp_onnx
from netopt.instances.expansive import _widths
from netopt.instances.instance import Instance

__all__ = ["TARGET_KINDS", "mlp_instance"]

TARGET_KINDS = ("realizable", "outside", "unreachable")


def _inf_dist_lower(lb: float, norm: float, n_out: int) -> float:
    """A lower bound on ``||r||_inf`` from one on ``||r||_p``."""
    if math.isinf(norm):
        return lb
    return lb / (n_out ** (1.0 / norm))


def mlp_instance(
    widths: Sequence[int] = (10, 32, 32, 2),
    seed: int = 0,
    *,
    target: str = "realizable",
    box: tuple[float, float] = (-1.0, 1.0),
    norm: float = 1.0,
    region_tol: float = 1e-3,
    dtype: type = np.float32,
    certify: bool = False,
    time_limit: float = 60.0,
    name: str | None = None,
) -> Instance:
    """A random MLP and a target of the given kind (see the module docstring).

    Parameters
    ----------
    widths : sequence of int
        ``n_0, n_1, ..., n_L`` (input first, output last; at least one hidden layer).
    target : {"realizable", "outside", "unreachable"}
    box : (lo, hi)
        The input box, the same for every coordinate.
    region_tol : float
        Half-width of the VNN-LIB target region.
    certify : bool
        Run netopt's MILP (HiGHS, ``time_limit`` seconds) and record the certified optimum and
        bound in the ground truth (``source`` says so).
    """
    w = _widths(widths)
    if len(w) < 3:
        raise InputError(f"an MLP instance needs at least one hidden layer: widths {widths!r}")
    if target not in TARGET_KINDS:
        raise InputError(f"target must be one of {TARGET_KINDS}, got {target!r}")
    lo, hi = float(box[0]), float(box[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"box must be finite with lo < hi, got {box!r}")
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(size=(o, i)) * math.sqrt(2.0 / i) for i, o in zip(w[:-1], w[1:], strict=True)]
    bs = [rng.normal(scale=0.1, size=o) for o in w[1:]]
    acts: list[str | None] = ["relu"] * (len(Ws) - 1) + [None]
    model = mlp_onnx(Ws, bs, acts, dtype=dtype, name="mlp")
    inst = Instance(
        name=name or f"mlp_{'-'.join(map(str, w))}_{target}_s{seed}",
        family="mlp",
        model=model,
        target=np.zeros(w[-1]),
        lo=np.full(w[0], lo),
        hi=np.full(w[0], hi),
        norm=float(norm),
        region_tol=float(region_tol),
    )
    net = inst.net
    x_star = rng.uniform(lo, hi, size=w[0])
    gt: dict[str, Any]
    if target == "realizable":
        inst.target = net.forward(x_star[None]).reshape(-1)
        gt = {
            "reachable": True,
            "optimum": 0.0,
            "optimum_lower_bound": 0.0,
            "optimum_upper_bound": 0.0,
            "x_star": x_star.tolist(),
            "source": "planted x* (f(x*) is the target)",
        }
    elif target == "outside":
        c, r = (lo + hi) / 2, (hi - lo) / 2
        d = rng.normal(size=w[0])
        x_out = c + 2.5 * r * d / np.abs(d).max()
        inst.target = net.forward(x_out[None]).reshape(-1)
        gt = {
            "reachable": None,
            "optimum": None,
            "optimum_lower_bound": 0.0,
            "optimum_upper_bound": None,
            "x_star": None,
            "x_outside": x_out.tolist(),
            "source": "target is the image of a point outside the box; optimum unknown",
        }
    else:
        from netopt.bounds import compute_bounds

        g = net.graph
        out = g.outputs[0]
        ia = compute_bounds(g, inst.lo, inst.hi, "interval")
        cr = compute_bounds(g, inst.lo, inst.hi, "crown")
        l_ia, u_ia = ia[out]
        l_c, u_c = cr[out]
        y = net.forward(x_star[None]).reshape(-1)
        y[0] = u_ia[0] + max(1.0, (u_ia[0] - l_ia[0]) / 2)
        inst.target = y
        dist = np.maximum(0.0, np.maximum(l_c - y, y - u_c))
        lb = float(np.linalg.norm(dist, ord=float(norm)))
        gt = {
            "reachable": False if _inf_dist_lower(lb, norm, w[-1]) > region_tol else None,
            "optimum": None,
            "optimum_lower_bound": lb,
            "optimum_upper_bound": float(
                np.linalg.norm(y - net.forward(x_star[None]).reshape(-1), ord=float(norm))
            ),
            "x_star": x_star.tolist(),
            "source": "lower bound: distance of the target to CROWN's output bounds over the box; "
            "upper bound: the objective at x*",
        }
    if certify:
        r = inst.problem.solve("milp", time_limit=time_limit)
        gt["milp"] = {"status": str(r.status), "objective": r.objective, "bound": r.bound}
        if r.bound is not None:
            gt["optimum_lower_bound"] = max(gt.get("optimum_lower_bound") or 0.0, float(r.bound))
        if r.objective is not None:
            ub = gt.get("optimum_upper_bound")
            gt["optimum_upper_bound"] = (
                float(r.objective) if ub is None else min(ub, float(r.objective))
            )
            if gt.get("x_star") is None and r.x is not None:
                gt["x_star"] = np.asarray(r.x, dtype=np.float64).reshape(-1).tolist()
        if str(r.status) == "optimal":
            gt["optimum"] = float(r.objective)
        lb = gt["optimum_lower_bound"]
        if gt.get("reachable") is None:
            if _inf_dist_lower(lb, norm, w[-1]) > region_tol:
                gt["reachable"] = False
            elif gt["optimum_upper_bound"] is not None and gt["optimum_upper_bound"] <= region_tol:
                gt["reachable"] = True
        gt["source"] += (
            "; certified by netopt's MILP (HiGHS): bound attested by the solver, objective re-checked in float64"
        )
    inst.ground_truth = gt
    inst.params = {
        "generator": "netopt.instances.mlp.mlp_instance",
        "widths": w,
        "target": target,
        "box": [lo, hi],
        "norm": norm,
        "seed": seed,
        "dtype": np.dtype(dtype).name,
    }
    return inst
