"""Solver-neutral models: what a formulation hands to a backend.

* :class:`LinearModel` (LP / MILP / MIQP as sparse arrays), built with :class:`ModelBuilder`;
  :class:`LPParams` are the arrays a backend session changes between re-solves
  (:mod:`netopt.model.linear`);
* :class:`ConvexBlock`, one convex block of the lifted Bregman objective, with the closed forms
  that evaluate it (:mod:`netopt.model.convex`);
* :class:`LPContext`, the LPs a method lends to bounds and heuristics: build a problem's exact
  model over given bounds, solve a model, open a warm session (:mod:`netopt.model.context`).

A backend imports its model types from here and nothing from the formulations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netopt.model.context import LPContext, LPSession, LPSolution
    from netopt.model.convex import ConvexBlock, grad_operator
    from netopt.model.linear import LinearModel, LPParams, ModelBuilder

# Each name is imported from its module on first use (PEP 562): the package holds the
# scipy.sparse models and the small dense LPs (netopt.model.highs_lp) side by side, and a
# search that needs only the latter should not pay scipy.sparse's import (0.15 s).
_WHERE = {
    "LinearModel": "linear",
    "ModelBuilder": "linear",
    "LPParams": "linear",
    "ConvexBlock": "convex",
    "grad_operator": "convex",
    "LPContext": "context",
    "LPSession": "context",
    "LPSolution": "context",
}

__all__ = [
    "LinearModel",
    "ModelBuilder",
    "LPParams",
    "ConvexBlock",
    "grad_operator",
    "LPContext",
    "LPSession",
    "LPSolution",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
