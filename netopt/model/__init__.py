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

from netopt.model.context import LPContext, LPSession, LPSolution
from netopt.model.convex import ConvexBlock, grad_operator
from netopt.model.linear import LinearModel, LPParams, ModelBuilder

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
