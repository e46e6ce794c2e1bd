"""A small named registry, one per extension point (formulations, backends)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any

from netopt.errors import UnknownNameError

__all__ = ["Registry"]


class Registry:
    """Name -> object, duplicates rejected, modules of a package discovered lazily.

    Parameters
    ----------
    kind : str
        What is registered ("formulation", "backend"), for messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: register the decorated object under ``name``."""

        def deco(obj: Any) -> Any:
            if name in self._items and self._items[name] is not obj:
                raise RuntimeError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def discover(self, package: str, path: Iterable[str]) -> None:
        """Import every module of ``package`` once, so that their decorators run."""
        if self._discovered:
            return
        for m in pkgutil.iter_modules(list(path)):
            importlib.import_module(f"{package}.{m.name}")
        self._discovered = True

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"no {self.kind} named '{name}'; available: {', '.join(self.names()) or 'none yet'}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._items
