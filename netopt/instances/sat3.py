r"""3-SAT (any CNF) -> ReLU-network inversion, with a quantitative gap.

Construction
------------
Let :math:`\varphi = C_1 \wedge \dots \wedge C_m` be a CNF over :math:`x_1..x_n` in which every
clause is on distinct variables (:meth:`CNF.simplified` ensures it). For clause :math:`j` let
:math:`c_j \in \{-1,0,1\}^n` hold the literal signs and :math:`d_j` the number of negated
literals; for :math:`u \in [0,1]^n`,

.. math:: s_j(u) = c_j^\top u + d_j = \sum_{x_i \in C_j} u_i + \sum_{\lnot x_i \in C_j} (1 - u_i)

is the clause's *literal mass*: its number of true literals when :math:`u` is Boolean. The
network computes

.. math::

    F(u) = \underbrace{\sum_{i=1}^n \min(u_i, 1 - u_i)}_{D(u)}
         + \underbrace{\sum_{j=1}^m \max(0, 1 - s_j(u))}_{V(u)} ,

and the instance asks for an input reaching the target 0 (``box``, ``free``) or (0, 0) (``lei4``):

``box`` (input :math:`[0,1]^n`, one hidden layer of :math:`2n + m` ReLUs, scalar output)
    :math:`a_i = \mathrm{ReLU}(x_i)`, :math:`h_i = \mathrm{ReLU}(x_i - \tfrac12)`,
    :math:`v_j = \mathrm{ReLU}(1 - d_j - c_j^\top x)`, output :math:`\sum_i (a_i - 2h_i) + \sum_j v_j`;
    on the box :math:`a_i - 2h_i = \min(x_i, 1 - x_i)`, so the output is :math:`F(x)`.
``free`` (input :math:`\mathbb{R}^n`, two hidden layers of :math:`3n` and :math:`n + m` ReLUs)
    :math:`p_i = \mathrm{ReLU}(x_i)`, :math:`q_i = \mathrm{ReLU}(x_i - \tfrac12)`,
    :math:`r_i = \mathrm{ReLU}(x_i - 1)`; then :math:`u = p - r = \mathrm{clip}(x, 0, 1)` and
    :math:`p - 2q + r = \min(u, 1 - u)`; the second layer takes :math:`T_i = \mathrm{ReLU}(p_i -
    2q_i + r_i)` and :math:`v_j = \mathrm{ReLU}(1 - d_j - c_j^\top (p - r))`, the output their sum.
    The output is :math:`F(\mathrm{clip}(x, 0, 1))` for every real :math:`x`.
``lei4`` (the published shape: four layers, :math:`\mathbb{R}^n \to \mathbb{R}^2`, target a point)
    The two ``free`` layers, then :math:`A = \mathrm{ReLU}(\sum_i T_i + \sum_j v_j)`,
    :math:`B = \mathrm{ReLU}(\sum_j v_j)` (ReLUs of non-negative numbers: the identity) and a
    linear output layer: :math:`f(x) = (D + V, V)(\mathrm{clip}(x, 0, 1))`, target :math:`(0, 0)`.
    The first coordinate carries the gap, so it holds for every :math:`\ell_p` norm.

The networks are integer/half-integer (exact in float32), of size :math:`O(n + m)`, and built in
time :math:`O(n + m)`: a polynomial reduction. ``free`` and ``lei4`` are stated on
:math:`\mathbb{R}^n`; their instances use the box :math:`[-1, 2]^n`, which loses nothing because
the network is constant in :math:`x_i` outside :math:`[0, 1]`.

Theorem
-------
Let :math:`\rho(u) \in \{0,1\}^n` round :math:`u` (:math:`\rho_i = 1` iff :math:`u_i \ge 1/2`).

(i)   If :math:`\alpha \in \{0,1\}^n` satisfies :math:`\varphi`, then :math:`F(\alpha) = 0`.
(ii)  For every :math:`u \in [0,1]^n`: if :math:`\rho(u)` falsifies :math:`\varphi`, then
      :math:`F(u) \ge 1`. Equivalently, :math:`F(u) < 1 \Rightarrow \rho(u)` satisfies
      :math:`\varphi`: **any** input with loss below 1 decodes, by rounding, to a satisfying
      assignment (:func:`decode`).
(iii) (gap) If :math:`\varphi` is unsatisfiable, :math:`F(u) \ge 1` on all of :math:`[0,1]^n`.

Hence the target has a preimage iff :math:`\varphi` is satisfiable, and
:math:`\min_x |f(x) - y| \in \{0\} \cup [1, \infty)`: any solver that approximates the optimum
within an additive error below 1/2 decides SAT, and inversion is NP-hard.

*Proof.* (i) :math:`\min(\alpha_i, 1 - \alpha_i) = 0`, and :math:`s_j(\alpha) \ge 1` because
:math:`C_j` has a true literal, so every term vanishes.
(ii) Write :math:`\delta_i = |u_i - \rho_i| = \min(u_i, 1 - u_i)` and :math:`D = \sum_i
\delta_i`. Some clause :math:`C_j` is falsified by :math:`\rho`: :math:`s_j(\rho) = 0`. Moving
:math:`u_i` from :math:`\rho_i` changes the value of the literal :math:`x_i` or
:math:`\lnot x_i` by exactly :math:`\delta_i`; the variables of :math:`C_j` are distinct, so
:math:`s_j(u) \le s_j(\rho) + \sum_{i \in C_j} \delta_i \le D`. Hence
:math:`F(u) \ge D + \max(0, 1 - s_j(u)) \ge D + 1 - D = 1`.
(iii) If :math:`\varphi` is unsatisfiable, :math:`\rho(u)` falsifies it for every :math:`u`;
apply (ii). :math:`\square`

The ties :math:`u_i = 1/2` may round either way: (ii) holds for any rounding with
:math:`\delta_i = |u_i - \rho_i|`. The bound is tight: at a Boolean point, :math:`F` is the number
of falsified clauses, so the optimum of an unsatisfiable formula that one flip away from
satisfiable is exactly 1.

Function-preserving disguises
-----------------------------
The hidden layers output non-negative numbers, so for a hidden width-``k`` vector :math:`h \ge 0`:

* ``rescale``: :math:`\mathrm{ReLU}(a z) = a\,\mathrm{ReLU}(z)` for :math:`a > 0`: each hidden
  unit's row is scaled by a random :math:`a \in [1/2, 2]` and its outgoing column by :math:`1/a`;
* ``permute``: hidden units are shuffled (rows and the next layer's columns);
* ``identity_layers``: a layer :math:`h \mapsto \mathrm{ReLU}(M h) = M h` with a random
  non-negative invertible :math:`M` (a scaled permutation times :math:`I + N`, :math:`N \ge 0`
  sparse strictly upper triangular) is inserted, and the next layer's matrix becomes
  :math:`W M^{-1}`.

Each preserves the function exactly in real arithmetic, so the theorem holds for the disguised
network; float32 storage then perturbs the output by about :math:`10^{-7}` relative, far below
the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from netopt.errors import InputError, SolverUnavailableError
from netopt.instances._onnx import mlp_onnx
from netopt.instances.cnf import CNF, brute_force_sat, sat_solve
from netopt.instances.instance import Instance

__all__ = ["VARIANTS", "Layer", "sat_layers", "sat3_instance", "decode", "sat_loss"]

VARIANTS = ("box", "free", "lei4")

#: ``(W, b, activation)`` with ``W`` of shape ``(n_out, n_in)``.
Layer = tuple[np.ndarray, np.ndarray, str | None]


def _clause_matrix(cnf: CNF) -> tuple[np.ndarray, np.ndarray]:
    """``C`` (m x n signs) and ``d`` (negated-literal counts)."""
    C = np.zeros((cnf.m, cnf.n))
    d = np.zeros(cnf.m)
    for j, c in enumerate(cnf.clauses):
        for v in c:
            C[j, abs(v) - 1] = 1.0 if v > 0 else -1.0
            d[j] += v < 0
    return C, d


def sat_layers(cnf: CNF, variant: str = "box") -> list[Layer]:
    """The plain network of the reduction (see the module docstring) as float64 layers."""
    if variant not in VARIANTS:
        raise InputError(f"unknown 3SAT variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    f = cnf.simplified()
    n, m = f.n, f.m
    C, d = _clause_matrix(f)
    In, Z = np.eye(n), np.zeros((m, n))
    if variant == "box":
        W1 = np.vstack([In, In, -C])
        b1 = np.concatenate([np.zeros(n), np.full(n, -0.5), 1.0 - d])
        W2 = np.concatenate([np.ones(n), -2 * np.ones(n), np.ones(m)])[None, :]
        return [(W1, b1, "relu"), (W2, np.zeros(1), None)]
    W1 = np.vstack([In, In, In])
    b1 = np.concatenate([np.zeros(n), np.full(n, -0.5), np.full(n, -1.0)])
    W2 = np.block([[In, -2 * In, In], [-C, Z, C]])
    b2 = np.concatenate([np.zeros(n), 1.0 - d])
    if variant == "free":
        return [(W1, b1, "relu"), (W2, b2, "relu"), (np.ones((1, n + m)), np.zeros(1), None)]
    W3 = np.vstack([np.ones(n + m), np.concatenate([np.zeros(n), np.ones(m)])])
    return [
        (W1, b1, "relu"),
        (W2, b2, "relu"),
        (W3, np.zeros(2), "relu"),
        (np.eye(2), np.zeros(2), None),
    ]


def sat_loss(cnf: CNF, u: np.ndarray) -> np.ndarray:
    r"""The closed form :math:`F(\mathrm{clip}(u, 0, 1))` (batched ``(B, n)``), independent of the net."""
    f = cnf.simplified()
    C, d = _clause_matrix(f)
    u = np.clip(np.atleast_2d(np.asarray(u, dtype=np.float64)), 0.0, 1.0)
    D = np.minimum(u, 1.0 - u).sum(axis=1)
    return D + np.maximum(0.0, 1.0 - (u @ C.T + d)).sum(axis=1)


def decode(x: np.ndarray) -> tuple[bool, ...]:
    r"""The assignment :math:`\rho(\mathrm{clip}(x, 0, 1))`: :math:`x_i \ge 1/2` is true.

    By part (ii) of the theorem it satisfies the formula whenever the network's loss at ``x`` is
    below 1 (not only at an exact preimage); in floating point, below ``1 - 1e-6`` is a safe
    reading of "below 1" (float32 weights perturb the loss by about 1e-7).
    """
    return tuple(bool(v) for v in np.asarray(x, dtype=np.float64).reshape(-1) >= 0.5)


# --------------------------------------------------------------- disguises
def _hidden(layers: Sequence[Layer]) -> list[int]:
    """Indices of layers whose output feeds another layer through a ReLU."""
    return [i for i in range(len(layers) - 1) if layers[i][2] == "relu"]


def _rescale(layers: list[Layer], rng: np.random.Generator) -> list[Layer]:
    out = list(layers)
    for i in _hidden(out):
        W, b, act = out[i]
        a = np.exp(rng.uniform(np.log(0.5), np.log(2.0), size=W.shape[0]))
        out[i] = (W * a[:, None], b * a, act)
        Wn, bn, an = out[i + 1]
        out[i + 1] = (Wn / a[None, :], bn, an)
    return out


def _permute(layers: list[Layer], rng: np.random.Generator) -> list[Layer]:
    out = list(layers)
    for i in _hidden(out):
        W, b, act = out[i]
        p = rng.permutation(W.shape[0])
        out[i] = (W[p], b[p], act)
        Wn, bn, an = out[i + 1]
        out[i + 1] = (Wn[:, p], bn, an)
    return out


def _mixing(k: int, rng: np.random.Generator) -> np.ndarray:
    """A random non-negative invertible ``k x k`` matrix ``D P (I + N)``."""
    N = np.triu(rng.uniform(0.0, 0.5, (k, k)) * (rng.random((k, k)) < 1.0 / max(k, 1)), 1)
    P = np.eye(k)[rng.permutation(k)]
    return np.exp(rng.uniform(np.log(0.5), np.log(2.0), k))[:, None] * (P @ (np.eye(k) + N))


def _insert_identities(layers: list[Layer], count: int, rng: np.random.Generator) -> list[Layer]:
    out = list(layers)
    for _ in range(count):
        i = int(rng.choice(_hidden(out)))
        k = out[i][0].shape[0]
        M = _mixing(k, rng)
        Wn, bn, an = out[i + 1]
        # W_next M^{-1}, by a solve rather than an explicit inverse
        out[i + 1] = (np.linalg.solve(M.T, Wn.T).T, bn, an)
        out.insert(i + 1, (M, np.zeros(k), "relu"))
    return out


# ------------------------------------------------------------------ instance
@dataclass
class _Truth:
    satisfiable: bool | None
    assignment: tuple[bool, ...] | None
    source: str


def _ground_truth(cnf: CNF, given: tuple[bool, ...] | None) -> _Truth:
    if given is not None:
        if not cnf.satisfied_by(given):
            raise InputError("the given assignment does not satisfy the formula")
        return _Truth(True, tuple(given), "given assignment")
    try:
        a = sat_solve(cnf)
        return _Truth(a is not None, a, "python-sat (CaDiCaL)")
    except SolverUnavailableError:  # python-sat missing: enumerate where it is cheap
        if cnf.n <= 22:
            a = brute_force_sat(cnf)
            return _Truth(a is not None, a, "brute force over all assignments")
        return _Truth(None, None, "unknown (install python-sat for ground truth)")


def sat3_instance(
    cnf: CNF,
    variant: str = "box",
    *,
    rescale: bool = False,
    permute: bool = False,
    identity_layers: int = 0,
    seed: int = 0,
    dtype: type = np.float32,
    name: str | None = None,
    assignment: Sequence[bool] | None = None,
    ground_truth: bool = True,
    params: dict[str, Any] | None = None,
) -> Instance:
    """The inversion instance of a CNF formula (see the module docstring).

    Parameters
    ----------
    cnf : CNF
        Simplified first (repeated literals merged, tautological clauses dropped).
    variant : {"box", "free", "lei4"}
    rescale, permute : bool
        Function-preserving disguises of the hidden units.
    identity_layers : int
        Number of inserted mixing layers that compute the identity on their (non-negative) input.
    seed : int
        Seed of the disguises.
    dtype : float32 or float64
        Weight type of the ONNX file.
    assignment : sequence of bool, optional
        A known satisfying assignment (e.g. the planted one); otherwise python-sat decides.
    ground_truth : bool
        Decide satisfiability (python-sat, or brute force for ``n <= 22`` without it).
    params : dict, optional
        Generator parameters recorded in the JSON (formula source, n, m, seed ...).

    Returns
    -------
    Instance
        Target 0 (or (0, 0)), norm 1, region half-width 1/2; ``ground_truth`` has
        ``satisfiable``, ``reachable``, ``optimum`` (0 when satisfiable), ``optimum_lower_bound``
        (1 when unsatisfiable, by the theorem) and ``x_star`` (a satisfying assignment).
    """
    if (
        isinstance(identity_layers, bool)
        or not isinstance(identity_layers, int)
        or identity_layers < 0
    ):
        raise InputError(f"identity_layers must be a non-negative integer, got {identity_layers!r}")
    if not cnf.simplified().clauses:
        raise InputError(
            "the formula has no clauses left after dropping tautologies: every assignment "
            "satisfies it, so there is nothing to reduce"
        )
    layers = sat_layers(cnf, variant)
    rng = np.random.default_rng(seed)
    if identity_layers:
        layers = _insert_identities(layers, identity_layers, rng)
    if rescale:
        layers = _rescale(layers, rng)
    if permute:
        layers = _permute(layers, rng)
    model = mlp_onnx(
        [W for W, _, _ in layers],
        [b for _, b, _ in layers],
        [a for _, _, a in layers],
        dtype=dtype,
        name=f"sat3_{variant}",
    )
    n = cnf.n
    lo, hi = (np.zeros(n), np.ones(n)) if variant == "box" else (-np.ones(n), 2 * np.ones(n))
    target = np.zeros(2 if variant == "lei4" else 1)
    gt: dict[str, Any] = {}
    if ground_truth or assignment is not None:
        t = _ground_truth(cnf, None if assignment is None else tuple(bool(a) for a in assignment))
        gt = {
            "satisfiable": t.satisfiable,
            "reachable": t.satisfiable,
            "optimum": 0.0 if t.satisfiable else None,
            "optimum_lower_bound": None
            if t.satisfiable is None
            else (0.0 if t.satisfiable else 1.0),
            "optimum_upper_bound": 0.0 if t.satisfiable else None,
            "x_star": None if t.assignment is None else [float(a) for a in t.assignment],
            "source": t.source
            + ("; optimum 0 at the assignment (theorem (i))" if t.satisfiable else "")
            + ("; lower bound 1 by the gap theorem (iii)" if t.satisfiable is False else ""),
        }
    p = {
        "generator": "netopt.instances.sat3.sat3_instance",
        "variant": variant,
        "n": n,
        "m": cnf.m,
        "rescale": rescale,
        "permute": permute,
        "identity_layers": identity_layers,
        "seed": seed,
        "dtype": np.dtype(dtype).name,
    }
    p.update(params or {})
    return Instance(
        name=name or f"sat3_{variant}_n{n}_m{cnf.m}_s{seed}",
        family="sat3",
        model=model,
        target=target,
        lo=lo,
        hi=hi,
        norm=1.0,
        region_tol=0.5,
        ground_truth=gt,
        params=p,
        attachments={"cnf": cnf.to_dimacs([f"netopt sat3 instance, variant {variant}"])},
    )
