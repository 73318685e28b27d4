"""Lazy package exports: a package names what it exports and where each lives, and a name
is imported on first use, so importing one light module of the package does not import
its heavy neighbours (torch, scikit-learn, the dataset loaders)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: imports ``where[name]`` on first use and
    caches the value in the package's ``namespace`` (so later look-ups skip it)."""

    def lookup(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return lookup
