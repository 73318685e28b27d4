"""A run directory's model versions with their lineage, read from its run store."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from fedswarm.messages import ClientId
from fedswarm.params import Params
from fedswarm.run import _ledger as ledger
from fedswarm.run.config import load_config
from fedswarm.run.store import RunStore, RunStoreError

__all__ = [
    "Lineage",
    "Rollback",
    "TensorChange",
    "diff_versions",
    "export_version",
    "find",
    "lineage",
    "open_run",
    "rollbacks",
]


@dataclass(frozen=True)
class Lineage:
    """A model version and where it came from."""

    round: int
    sha256: str
    parent: str | None
    kept: bool  # its file is kept ([store] retention)
    resumable: bool  # its resume state is kept: a rollback can continue from it
    contributors: tuple[ClientId, ...]  # whose updates made it (its round's ``replied``)
    config_sha256: str
    code_version: str  # fedswarm's version (+g<commit> from a git checkout)


@dataclass(frozen=True)
class Rollback:
    from_round: int
    to_round: int
    to_sha256: str
    discarded: tuple[tuple[int, str], ...]  # (round, version sha256) dropped by it


@dataclass(frozen=True)
class TensorChange:
    name: str
    l2: float  # ||b - a||_2 over the tensor
    max_abs: float  # max |b - a|


def open_run(run: Path) -> RunStore:
    """The run store at ``run`` under its own saved config."""
    config = run / "config.toml"
    if not config.is_file():
        raise RunStoreError(f"{run} is not a run directory (no config.toml)")
    return RunStore.open(run, load_config(config))


def lineage(store: RunStore) -> list[Lineage]:
    resumable = set(store.resumable())
    with ledger.connect(store.path) as db:
        rows = dict(_lineage_rows(db))
    out = []
    for v in store.versions():
        who, config, code = rows.get(v.round, ((), "", "unknown"))
        out.append(
            Lineage(v.round, v.sha256, v.parent, v.kept, v.round in resumable, who, config, code)
        )
    return out


def _lineage_rows(
    db: sqlite3.Connection,
) -> list[tuple[int, tuple[tuple[ClientId, ...], str, str]]]:
    rows = db.execute("SELECT round, contributors, config_sha256, code_version FROM lineage")
    return [(int(r), (tuple(json.loads(c)), str(h), str(v))) for r, c, h, v in rows]


def rollbacks(store: RunStore) -> list[Rollback]:
    with ledger.connect(store.path) as db:
        rows = db.execute(
            "SELECT from_round, to_round, to_sha256, discarded FROM rollbacks ORDER BY id"
        ).fetchall()
    return [
        Rollback(int(f), int(t), str(s), tuple((int(r), str(h)) for r, h in json.loads(d)))
        for f, t, s, d in rows
    ]


def diff_versions(a: Params, b: Params) -> list[TensorChange]:
    """Per-tensor L2 distance and largest absolute change from ``a`` to ``b``."""
    if a.spec != b.spec:
        raise RunStoreError("the two versions have different tensors; they cannot be compared")
    old, new = a.arrays(), b.arrays()
    changes = []
    for name in a.spec.names:
        delta = new[name].astype(np.float64) - old[name].astype(np.float64)
        peak = float(np.max(np.abs(delta))) if delta.size else 0.0
        changes.append(TensorChange(name, float(np.linalg.norm(delta)), peak))
    return changes


def export_version(store: RunStore, ref: int | str, dest: Path) -> Lineage:
    """Write version ``ref`` as a standalone safetensors file whose metadata holds its
    lineage (``fedswarm.*`` keys); returns that lineage."""
    params = store.load_version(ref)  # refuses an unknown, ambiguous or pruned ref
    info = find(store, ref)
    metadata = {
        "fedswarm.round": str(info.round),
        "fedswarm.version_sha256": info.sha256,
        "fedswarm.parent": info.parent or "",
        "fedswarm.contributors": json.dumps(list(info.contributors)),
        "fedswarm.config_sha256": info.config_sha256,
        "fedswarm.code_version": info.code_version,
        "fedswarm.run_id": store.run_id,
    }
    save_file({k: np.ascontiguousarray(v) for k, v in params.arrays().items()}, dest, metadata)
    return info


def find(store: RunStore, ref: int | str) -> Lineage:
    """The lineage of version ``ref`` (a round, or 8+ digits of its sha256)."""
    store.load_version(ref)  # names the problem with an unknown or pruned ref
    infos = lineage(store)
    if isinstance(ref, int):
        return next(v for v in reversed(infos) if v.round == ref)
    return next(v for v in reversed(infos) if v.sha256.startswith(ref.lower()))
