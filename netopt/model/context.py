"""What LP-based bounds and heuristics need from a method and a backend: :class:`LPContext`.

The LP bound tightening minimizes and maximizes single units over the relaxation of a problem's
exact model; the pattern heuristic solves the exact model over one linear region of the network.
Both need *the model* (built by a method) and *a solver* (a backend), and both sit below the
methods and the backends. So the method hands them an :class:`LPContext`: three callables that
build the exact model of a problem over given bounds, solve a model once, and open a warm session
on a model. Bounds and heuristics use only this object; the method decides which model and which
backend (and with which options) stand behind it.

The protocols below state the little that the callers read from a backend's answer
(:class:`LPSolution`) and session (:class:`LPSession`); a backend's ``RawSolution`` and
``Session`` satisfy them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from netopt.model.linear import LinearModel

if TYPE_CHECKING:  # pragma: no cover
    from netopt.problems import Problem

__all__ = ["LPContext", "LPSession", "LPSolution"]


class LPSolution(Protocol):
    """A solver's answer for one LP.

    ``status`` is ``"optimal"``, ``"infeasible"``, ``"unbounded"``, ``"unknown"``,
    ``"time_limit"`` or ``"error"``; ``x`` (all columns) and ``objective`` (of the minimization,
    ``c^T v + c_0``) are set when it is optimal; ``message`` says why a run failed.
    """

    status: str
    x: np.ndarray | None
    objective: float | None
    message: str


class LPSession(Protocol):
    """A model held by a solver: change its row and column bounds and its cost, re-solve."""

    def update(
        self,
        *,
        row_lo: np.ndarray | None = None,
        row_hi: np.ndarray | None = None,
        col_lo: np.ndarray | None = None,
        col_hi: np.ndarray | None = None,
        cost: np.ndarray | None = None,
    ) -> None: ...

    def solve(self, time_limit: float | None = None) -> LPSolution: ...


@dataclass(frozen=True)
class LPContext:
    """The LPs available to bounds and heuristics: a model builder and a solver.

    Attributes
    ----------
    build : callable ``(problem, bounds) -> LinearModel``
        The exact model of ``problem`` whose nonlinear units are encoded with ``bounds`` (a
        :class:`netopt.bounds.Bounds`; sound bounds on every value). Its LP relaxation
        (:meth:`LinearModel.relaxed`) is a sound relaxation of the network on the bounded set.
        A unit whose bounds fix its side (``lo >= 0`` or ``hi <= 0`` before a ReLU) is encoded
        without a binary, so fixing every unit's side leaves an LP.
    solve : callable ``(model, time_limit=None) -> LPSolution``
        Solve ``model`` once, within ``time_limit`` seconds when given (a run stopped by it
        proves nothing: its status is not ``optimal``).
    open : callable ``(model) -> LPSession``
        A session on ``model`` for many re-solves with changed costs and bounds (warm where the
        backend can keep its basis).
    name : str
        The backend behind ``solve`` and ``open``, for messages.
    """

    build: Callable[[Problem, Any], LinearModel]
    solve: Callable[..., LPSolution]
    open: Callable[[LinearModel], LPSession]
    name: str = ""
