"""The package's layers, checked from the source: no import loops between packages, and no
layer reaching above itself.

The graph is built from every ``import`` in ``src/fedswarm`` (function-level and
``TYPE_CHECKING`` imports included: a lazy import is still a dependency). Modules are grouped
like ``../shared/tools/import-cycles.py`` does: ``fedswarm.deploy.node`` belongs to
``deploy``; a top-level module (``fedswarm.rounds``) is its own group.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "fedswarm"

# The core: the flat top-level modules and the algorithm halves. What every paradigm shares.
NOT_CORE = {"cli", "__main__"}
CORE_PACKAGES = {"algorithms", "aggregation"}

# What each layer must not import (groups, or exact modules). The core stays free of every
# deployment, simulation and security concern, and of the ML framework; so do the wire
# format and the transport interface. Transports know no PKI (they take a callable).
FORBIDDEN: dict[str, set[str]] = {
    "core": {
        "transport.grpc",
        "deploy",
        "simulation",
        "security",
        "run",
        "cli",
        "pytorch",
        "data.*",  # data.arrays (plain numpy types) is allowed, no loader
    },
    "wire": {"transport", "deploy", "simulation", "security", "run", "cli", "pytorch", "data.*"},
    "transport": {"deploy", "simulation", "security", "run", "cli", "pytorch", "data.*"},
    "security": {"*"},  # only itself and third-party code
    "data": {"*"},
    "simulation": {"run", "deploy", "transport.grpc", "security", "cli"},
    "secagg": {"run", "deploy", "transport.grpc", "simulation", "security", "cli", "pytorch"},
    "pytorch": {"run", "deploy", "simulation", "transport", "security", "cli"},
    "run": {"deploy", "transport.grpc", "security", "cli", "registry"},
    "registry": {"deploy", "transport.grpc", "security", "cli"},
    "contrib": {"run", "registry", "deploy", "transport", "simulation", "security", "cli"},
    "deploy": {"cli", "dashboard"},
    "dashboard": {"cli", "transport", "simulation", "pytorch"},  # reads the store; a view
    # swarm peers reuse the core's strategies and rounds; the run layer builds them
    "swarm": {"run", "deploy", "simulation", "cli", "pytorch", "data.*"},
}
ALLOWED_DATA = {"data.arrays", "data.errors"}
ANYONE_MAY_IMPORT = {"_lazy"}  # plumbing with no fedswarm imports of its own


def _modules() -> dict[str, Path]:
    mods = {}
    for f in (SRC / PKG).rglob("*.py"):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = f
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> Iterator[str]:
    """The fedswarm modules ``name`` imports (without the ``fedswarm.`` prefix)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != PKG:
                yield t.removeprefix(PKG + ".")


def _group(mod: str) -> str:
    return mod.split(".")[0]


def _layer(mod: str) -> str:
    head = _group(mod)
    if head in NOT_CORE:
        return head
    if head in CORE_PACKAGES or not (SRC / PKG / head).is_dir():
        return "core"  # a top-level module, or a core package
    return head


@cache
def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {
        name.removeprefix(PKG + ".") if name != PKG else PKG: set(_imports(name, path, mods))
        for name, path in mods.items()
    }


def _breaks(mod: str, target: str) -> str | None:
    rules = FORBIDDEN.get(_layer(mod), set())
    if target in ANYONE_MAY_IMPORT:
        return None
    if _group(target) == _group(mod) and _layer(target) == _layer(mod):
        return None  # inside its own package
    if "*" in rules and _layer(target) != _layer(mod):
        return "*"
    for rule in rules:
        if rule.endswith(".*") and target.startswith(rule[:-1]) and target not in ALLOWED_DATA:
            return rule
        if target == rule or target.startswith(rule + "."):
            return rule
    return None


def test_no_layer_imports_what_it_must_not() -> None:
    broken = [
        f"{mod} imports {target} (rule: {_layer(mod)} must not import {rule})"
        for mod, targets in sorted(_graph().items())
        if mod != PKG
        for target in sorted(targets)
        if (rule := _breaks(mod, target)) is not None
    ]
    assert not broken, "\n".join(broken)


def test_no_import_loops_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for mod, targets in _graph().items():
        if mod == PKG:
            continue
        edges.setdefault(_group(mod), set()).update(
            _group(t) for t in targets if _group(t) != _group(mod)
        )
    loops = _cycles(edges)
    assert not loops, "package import loops: " + "; ".join(" <-> ".join(c) for c in loops)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                found.append(sorted([v, *comp]))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize(
    ("mod", "target", "expected"),
    [
        ("rounds", "transport.grpc.server", "transport.grpc"),
        ("rounds", "data.registry", "data.*"),
        ("rounds", "data.arrays", None),
        ("security.pki", "rounds", "*"),
        ("security.pki", "security._x509", None),
        ("transport.grpc.server", "security.pki", "security"),
        ("transport.grpc.server", "transport.base", None),
        ("deploy.node", "security.pki", None),
    ],
)
def test_the_rules_catch_what_they_say(mod: str, target: str, expected: str | None) -> None:
    assert _breaks(mod, target) == expected


def test_the_loop_finder_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_importing_the_messages_loads_neither_scikit_learn_nor_torch() -> None:
    import subprocess
    import sys

    code = (
        "import fedswarm.messages, fedswarm.wire, sys; "
        "print('sklearn' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
