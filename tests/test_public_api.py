"""Every module says what it exports, and what it says exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import fedswarm

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(fedswarm.__path__, "fedswarm.")
    if not m.name.rsplit(".", 1)[-1].startswith("_")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_declares_all_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol!r}"


def test_top_level_surface() -> None:
    assert {"Strategy", "run_rounds", "InMemoryTransport", "fedavg", "scaffold"} <= set(
        fedswarm.__all__
    )
