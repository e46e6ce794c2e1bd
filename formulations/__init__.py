"""Formulations: IR + problem (+ bounds) -> solver-neutral model.

Installed as ``netopt.formulations`` (setuptools ``package-dir``). One module per
formulation; the module stem is the registry key (``milp.py`` -> ``"milp"``).
A formulation class registers with :func:`register` and declares what it cannot
handle in ``check_support(graph)`` before anything is built.
"""

from __future__ import annotations

if __name__ != "netopt.formulations":  # guard 2 of the layout: one import name only
    raise ImportError(
        f"the formulations package must be imported as 'netopt.formulations', not '{__name__}' "
        "(install netopt with `pip install -e .`)"
    )

from netopt.registry import Registry

#: name -> formulation class
FORMULATIONS: Registry = Registry("formulation")
register = FORMULATIONS.register


def available() -> list[str]:
    """Names of the registered formulations."""
    FORMULATIONS.discover(__name__, __path__)
    return FORMULATIONS.names()


def get(name: str):
    """The formulation class registered as ``name``."""
    FORMULATIONS.discover(__name__, __path__)
    return FORMULATIONS.get(name)


__all__ = ["FORMULATIONS", "register", "available", "get"]
