"""What a suite's method may be, and which options it takes.

A method is a registered formulation (its options: its class's ``option_names()``), or a
function ``"package.module:function"`` (its options: its signature's, when it has no
``**kwargs``).
"""

from __future__ import annotations

import inspect

from netopt.errors import InputError

__all__ = ["method_options", "load_callable"]


def method_options(formulation: str) -> tuple[str, ...] | None:
    """The option names ``formulation`` accepts through ``Problem.solve`` (``None``: any)."""
    from netopt import formulations

    F = formulations.get(formulation)
    names = F.option_names()
    if names is None:
        return None
    # the batched first-order methods run their own torch iterations and refuse a solver
    return tuple(names) + (() if F.batched else ("solver",))


def _callable_options(spec: str) -> tuple[str, ...] | None:
    """Import ``"package.module:function"`` and return its option names (``None``: any)."""
    fn = load_callable(spec)
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    # "instance" is the runner's to pass (the task's Instance), not an option
    return tuple(k for k in list(sig.parameters)[1:] if k != "instance")


def load_callable(spec: str):
    """The function named ``"package.module:function"`` (an :class:`InputError` if missing)."""
    import importlib

    mod, _, name = spec.partition(":")
    try:
        obj = importlib.import_module(mod)
    except ImportError as e:
        raise InputError(f"method {spec!r}: cannot import module '{mod}' ({e})") from None
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise InputError(f"method {spec!r}: module '{mod}' has no '{name}'")
    if not callable(obj):
        raise InputError(f"method {spec!r}: '{name}' is not callable")
    return obj
