"""Lineage rows of the run store (``lineage`` and ``rollbacks`` tables; ``fedswarm.registry``
reads them): who contributed to each version, under which config and code, and each
rollback with the rounds it discarded."""

from __future__ import annotations

import functools
import json
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from fedswarm.messages import ClientId

__all__ = ["code_version", "discard_after", "insert_lineage"]


@functools.cache
def code_version() -> str:
    """fedswarm's ``__version__``, plus ``+g<commit>`` when it runs from a git checkout."""
    from fedswarm import __version__

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{out.stdout.strip()}"


def insert_lineage(
    db: sqlite3.Connection, round_: int, contributors: Sequence[ClientId], config_sha: str
) -> None:
    db.execute(
        "INSERT INTO lineage VALUES (?, ?, ?, ?)",
        (round_, json.dumps(sorted(contributors)), config_sha, code_version()),
    )


def discard_after(db: sqlite3.Connection, round_: int, sha256: str) -> list[int]:
    """Drop every committed round after ``round_`` and record the rollback; the dropped
    rounds (with their versions' sha256) stay in the ``rollbacks`` row."""
    rows = db.execute(
        "SELECT round, sha256 FROM versions WHERE round > ? ORDER BY round", (round_,)
    ).fetchall()
    for table in ("drift", "lineage", "updates", "rounds", "versions"):
        db.execute(f"DELETE FROM {table} WHERE round > ?", (round_,))
    last = int(rows[-1][0]) if rows else round_
    discarded = json.dumps([[int(r), str(s)] for r, s in rows])
    db.execute(
        "INSERT INTO rollbacks (at, from_round, to_round, to_sha256, discarded) "
        "VALUES (?, ?, ?, ?, ?)",
        (time.time(), last, round_, sha256, discarded),
    )
    return [int(r) for r, _ in rows]
