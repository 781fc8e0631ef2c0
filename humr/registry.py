"""Name -> component registries, so that every ablation row is a configuration.

A registry fills itself on demand: ``names()``, ``get()`` and ``build()`` first import the
package that owns the built-in components (``humr.flows`` for :data:`FLOWS`, ...), so
``import humr`` stays light. Each component has a configuration dataclass (its keyword
arguments, used by :mod:`humr.config`): the one given with ``register(name, config=...)``, or
one derived from the constructor's signature (see :meth:`Registry.config`).

Example:
    >>> from humr.registry import Registry
    >>> R = Registry("toy")
    >>> @R.register("double")
    ... class Double:
    ...     def __init__(self, k: int = 2):
    ...         self.k = k
    >>> R.build("double", k=3).k
    3
    >>> R.names(), R.config("double")().k
    (['double'], 2)
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["BACKBONES", "CONDITIONS", "FLOWS", "LOSSES", "METRICS", "Registry", "config_dataclass"]

# Types a configuration field may have (OmegaConf's primitive types and containers of them).
_PRIMITIVES = (int, float, bool, str)


class Registry:
    """A named table of constructors (classes or factory functions).

    Args:
        kind: what the components are (``"flow"``), used in error messages.
        package: module imported before the first lookup (it registers the built-ins).
        context_args: constructor arguments the caller fills (e.g. a flow's ``dim`` and
            ``context_dim``); they are left out of the derived configuration dataclass.
    """

    def __init__(self, kind: str, package: str | None = None,
                 context_args: Sequence[str] = ()) -> None:
        self.kind = kind
        self.package = package
        self.context_args = tuple(context_args)
        self._table: dict[str, Callable[..., Any]] = {}
        self._configs: dict[str, type] = {}
        self._loaded = package is None

    # ----------------------------------------------------------------- registration
    def register(self, name: str, config: type | None = None
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator that stores ``obj`` under ``name`` (a second use of a name is an error),
        with an optional configuration dataclass ``config`` (its fields are the keyword
        arguments the configuration passes to ``obj``)."""
        if config is not None and not dataclasses.is_dataclass(config):
            raise TypeError(f"config of {self.kind} '{name}' must be a dataclass, got {config!r}")

        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._table and self._table[name] is not obj:
                raise KeyError(f"{self.kind} '{name}' is already registered")
            self._table[name] = obj
            if config is not None:
                self._configs[name] = config
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. before re-registering an edited user component)."""
        self.get(name)                       # unknown names raise, listing the known ones
        self._table.pop(name)
        self._configs.pop(name, None)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self.package)

    # ----------------------------------------------------------------- lookup
    def get(self, name: str) -> Callable[..., Any]:
        """The constructor registered as ``name``; an unknown name lists the known ones."""
        if name not in self._table:
            self._load()
        try:
            return self._table[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} '{name}'; known {self.kind}s: {', '.join(self.names()) or '(none)'}"
                " (user components: humr --import MODULE, see docs/extending.md)"
            ) from None

    def build(self, name: str, **kwargs: Any) -> Any:
        """Construct the component ``name`` with keyword arguments."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """Sorted registered names (the built-ins included)."""
        self._load()
        return sorted(self._table)

    def config(self, name: str) -> type:
        """The configuration dataclass of ``name``.

        Without an explicit one, it is derived from the constructor's keyword parameters that
        have a default and a configurable annotation (int, float, bool, str, ``X | None``,
        lists / tuples / dicts of those; ``Sequence`` becomes ``list``); ``context_args``,
        ``*args`` / ``**kwargs`` and other types (tensors, modules) are left out.
        """
        obj = self.get(name)
        if name not in self._configs:
            self._configs[name] = config_dataclass(f"{self.kind}:{name}", obj, self.context_args)
        return self._configs[name]

    def __contains__(self, name: object) -> bool:
        if name not in self._table:
            self._load()
        return name in self._table

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._table)})"


def _config_type(hint: Any) -> Any:
    """``hint`` as an OmegaConf field type, or None when it is not configurable."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _PRIMITIVES or hint is Any:
        return hint
    if hint is Path:
        return str
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        kinds = {_config_type(a) for a in inner}
        if len(kinds) == 1 and None not in kinds:
            kind = kinds.pop()
            return kind | None if type(None) in args else kind
        return None
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        inner = [_config_type(a) for a in args]
        return None if None in inner or not inner else tuple[tuple(inner)]
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        inner = _config_type(args[0]) if args else Any
        return None if inner is None else list[inner]
    if origin in (dict, Mapping) or hint is dict:
        inner = _config_type(args[1]) if args else Any
        return None if inner is None else dict[str, inner]
    return None


def config_dataclass(name: str, obj: Callable[..., Any], skip: Sequence[str] = ()) -> type:
    """A dataclass of ``obj``'s configurable keyword parameters (see :meth:`Registry.config`),
    leaving out the parameters named in ``skip``."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):         # unresolvable annotations: fall back to Any
        hints = {}
    fields = []
    for param in inspect.signature(obj).parameters.values():
        if (param.name in skip or param.default is inspect.Parameter.empty
                or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD)):
            continue
        kind = _config_type(hints.get(param.name, Any))
        if kind is None:
            continue
        default = param.default
        if isinstance(default, (list, dict, tuple)):
            value = list(default) if typing.get_origin(kind) is list else default
            fields.append((param.name, kind, dataclasses.field(default_factory=lambda v=value: copy.deepcopy(v))))
        else:
            fields.append((param.name, kind, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(name.replace(":", "_"), fields)


FLOWS = Registry("flow", "humr.flows", context_args=("dim", "context_dim"))
CONDITIONS = Registry("condition", "humr.conditions")
BACKBONES = Registry("backbone", "humr.conditions")
LOSSES = Registry("loss", "humr.losses")
METRICS = Registry("metric", "humr.metrics")
