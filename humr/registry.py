"""Name -> component registries, so that every ablation row is a configuration.

Example:
    >>> from humr.registry import Registry
    >>> R = Registry("toy")
    >>> @R.register("double")
    ... class Double:
    ...     def __init__(self, k=2):
    ...         self.k = k
    >>> R.build("double", k=3).k
    3
    >>> R.names()
    ['double']
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class Registry:
    """A named table of constructors (classes or factory functions).

    ``module``: optional package whose import registers the built-in entries; it is imported
    on the first lookup, so ``import humr`` stays light.
    """

    def __init__(self, kind: str, module: str | None = None):
        self.kind = kind
        self.module = module
        self._table: dict[str, Callable[..., Any]] = {}

    def _load(self) -> None:
        if self.module is not None:
            module, self.module = self.module, None
            importlib.import_module(module)

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator that stores ``obj`` under ``name``; a second use of a name is an error."""

        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._table and self._table[name] is not obj:
                raise KeyError(f"{self.kind} '{name}' is already registered")
            self._table[name] = obj
            return obj

        return deco

    def get(self, name: str) -> Callable[..., Any]:
        """The constructor registered as ``name``; an unknown name lists the known ones."""
        self._load()
        try:
            return self._table[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} '{name}'; known {self.kind}s: {', '.join(self.names()) or '(none)'}"
            ) from None

    def build(self, name: str, **kwargs: Any) -> Any:
        """Construct the component ``name`` with keyword arguments."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """Sorted registered names."""
        self._load()
        return sorted(self._table)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._table

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


FLOWS = Registry("flow", "humr.flows")
CONDITIONS = Registry("condition", "humr.conditions")
BACKBONES = Registry("backbone", "humr.conditions")
LOSSES = Registry("loss", "humr.losses")
METRICS = Registry("metric", "humr.metrics")
