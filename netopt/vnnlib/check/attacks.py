"""Candidate counterexamples of a VNN-LIB check: box vertices and the falsifier's attacks.

:func:`_vertices` adds the input box's vertices to the sampled points; :func:`_attack` (one
disjunct) and :func:`_attack_all` (every disjunct in one batch) run :mod:`netopt.attack`, and
:func:`_attackable` says whether a property is made of what the attack projects on. Each returns
candidates only: the driver (:mod:`netopt.vnnlib.check.decide`) confirms a point in onnxruntime
(:mod:`netopt.vnnlib.check.evidence`) before it claims "sat". The attack is imported when it runs,
so that a check which never attacks never loads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netopt.control import interrupted
from netopt.errors import SolverUnavailableError, UnsupportedOpError
from netopt.network import Network
from netopt.problems import Domain
from netopt.vnnlib.property import VnnlibProperty


def _vertices(dom: Domain, n: int, rng: np.random.Generator) -> np.ndarray:
    """Vertices of the input box: all of them up to 2**10, else ``n`` random ones.

    Where the output saturates (a softmax of large logits) a property often holds only in a thin
    sliver along a face of the box, which uniform samples miss and vertices hit. Rows violating
    ``A x <= b`` are dropped.
    """
    lo, hi = dom.lo.reshape(-1), dom.hi.reshape(-1)
    m = lo.size
    if m <= 10:
        bits = (np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1
    else:
        bits = rng.integers(0, 2, (n, m))
    V = np.where(bits == 1, hi, lo).reshape(-1, *dom.shape)
    if dom.A is not None:
        V = V[np.all(V.reshape(len(V), -1) @ dom.A.T <= dom.b, axis=1)]
    return V


def _engine_device(net: Network, device: Any) -> Any:
    """The device the attack is given: None (its default, the numpy engine on a chain of
    affine maps and ReLUs: no torch start-up) where ``device`` is a CPU and that engine takes
    the network, else ``device``."""
    from netopt.attack.engines import _NumpyChain

    if device is not None and str(device).split(":")[0] == "cpu":
        return None if _NumpyChain.build(net) is not None else device
    return device


def _attack(
    net: Network, dj: Any, budget: float, seed: int, device: Any = None
) -> np.ndarray | None:
    """A counterexample of one disjunct by :func:`netopt.attack.falsify` (on ``device``), or
    None.

    None also where the attack cannot run: torch is not installed, or an op has no torch rule
    (the later phases decide those networks).
    """
    if budget <= 0:
        return None
    try:
        from netopt.attack import falsify

        dev = _engine_device(net, device)
        r = falsify(net, dj.lo, dj.hi, dj.C, dj.d, time_limit=budget, seed=seed, device=dev)
    except (ImportError, UnsupportedOpError, SolverUnavailableError):
        return None
    return r.x


def _attackable(prop: VnnlibProperty) -> bool:
    """Whether every disjunct is a finite box without input constraints (what PGD projects on)."""
    return all(
        len(dj.A_in) == 0 and bool(np.all(np.isfinite(dj.lo)) and np.all(np.isfinite(dj.hi)))
        for dj in prop.disjuncts
    )


def _attack_all(
    net: Network,
    prop: VnnlibProperty,
    budget: float,
    seed: int,
    restarts: int | None = None,
    skip: np.ndarray | None = None,
    device: Any = None,
) -> tuple[int, np.ndarray | None] | None:
    """Every disjunct (but those ``skip`` marks) attacked in one batch
    (:func:`netopt.attack.falsify_disjuncts`, on ``device``).

    ``(k, x)`` for a counterexample ``x`` of disjunct ``k``; ``(-1, None)`` when the attack ran
    and found none; None where it could not run (no time, no torch, an op without a torch rule,
    or Ctrl-C), so that each disjunct gets its own attack later.
    """
    ks = [k for k in range(len(prop.disjuncts)) if skip is None or not skip[k]]
    if budget <= 0 or not ks:
        return None
    try:
        from netopt.attack import falsify_disjuncts

        rs = falsify_disjuncts(
            net,
            [(dj.lo, dj.hi, dj.C, dj.d) for dj in (prop.disjuncts[k] for k in ks)],
            time_limit=budget,
            seed=seed,
            restarts=restarts,
            # two rounds: the MNIST counterexamples fall in the first; where the bounds prove
            # every disjunct, more rounds would only delay the proof
            rounds=2,
            device=_engine_device(net, device),
        )
    except (ImportError, UnsupportedOpError, SolverUnavailableError):
        return None
    for k, r in zip(ks, rs, strict=True):
        if r.x is not None:
            return k, r.x
    return None if interrupted() else (-1, None)
