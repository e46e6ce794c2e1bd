"""What a suite's method may be, and which options it takes.

A method is a registered formulation (its options: the backend's for the exact path, the
first-order backend's, or a driver's named parameters plus its module's ``_OPTIONS``), or a
function ``"package.module:function"`` (its options: its signature's, when it has no
``**kwargs``).
"""

from __future__ import annotations

import inspect

from netopt.errors import InputError

__all__ = ["method_options", "load_callable"]

# what solve() itself takes on the exact path (besides the backend's common options)
_EXACT_KW = ("solver", "bounds", "tighten", "tighten_time", "relax", "heuristic")
_EXACT_KW += ("heuristic_time", "n_samples", "start", "seed")


def method_options(formulation: str) -> tuple[str, ...] | None:
    """The option names ``formulation`` accepts through ``Problem.solve`` (``None``: any)."""
    from netopt import formulations

    F = formulations.get(formulation)
    driver = getattr(F, "driver", None)
    if driver:
        import importlib

        mod, _, fn = driver.partition(":")
        module = importlib.import_module(mod)
        sig = inspect.signature(getattr(module, fn))
        named = tuple(p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            # a driver checks its **options against its module's _OPTIONS
            extra = getattr(module, "_OPTIONS", None)
            if extra is None:
                return None
            named += tuple(sorted(extra))
        return named + ("solver",)
    if getattr(F, "first_order", False):
        from netopt.solvers.torch_backend import OPTIONS

        kind = "SplitModel" if formulation == "admm" else "GradientModel"
        return OPTIONS[kind] + ("solver",)
    from netopt.solvers._base import COMMON_OPTIONS

    return tuple(COMMON_OPTIONS) + _EXACT_KW


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
