"""Backends: solver-neutral model -> raw solution.

Installed as ``netopt.solvers`` (setuptools ``package-dir``). One module per
backend (``highs_backend.py``, ``cvxpy_backend.py``, ...): the suffix keeps
``netopt.solvers.cvxpy`` from shadowing the real cvxpy. Backends declare the
model types and features they accept and import their packages lazily.
"""

from __future__ import annotations

if __name__ != "netopt.solvers":  # guard 2 of the layout: one import name only
    raise ImportError(
        f"the solvers package must be imported as 'netopt.solvers', not '{__name__}' "
        "(install netopt with `pip install -e .`)"
    )

from netopt.registry import Registry

#: name -> backend class
BACKENDS: Registry = Registry("backend")
register = BACKENDS.register


def available() -> list[str]:
    """Names of the registered backends."""
    BACKENDS.discover(__name__, __path__)
    return BACKENDS.names()


def get(name: str):
    """The backend class registered as ``name``."""
    BACKENDS.discover(__name__, __path__)
    return BACKENDS.get(name)


def backends_with(model_type: str, features: set[str]) -> list[str]:
    """Registered backends that accept ``model_type`` with ``features``."""
    BACKENDS.discover(__name__, __path__)
    return [
        n
        for n in BACKENDS.names()
        if model_type in BACKENDS.get(n).model_types and set(features) <= BACKENDS.get(n).features
    ]


def available_for(model_type: str) -> list[str]:
    """Registered backends for ``model_type`` whose packages are installed."""
    return [n for n in backends_with(model_type, set()) if BACKENDS.get(n).available()[0]]


__all__ = ["BACKENDS", "register", "available", "get", "backends_with", "available_for"]
