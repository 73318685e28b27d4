"""The coordinator's state directory: what a killed coordinator resumes from.

::

    config.toml                      the run's resolved config (another config is refused)
    state.sqlite                     run id, completed rounds and their metrics, the client
                                     registry, and every refusal and failure, with reasons
    checkpoints/round-NNNNNN.safetensors   server state after round N (model, optimiser
                                     moments, the algorithm's server slots)
    metrics.jsonl, model.safetensors, summary.json, curves.png    when the run ends

Round N is committed by the sqlite transaction that records it. Its checkpoint was written
before (to a temporary file, fsynced and renamed), so whenever the process dies the
directory holds either round N, complete, or round N - 1, from which a restarted
coordinator plays round N again. Seeds depend only on (seed, round, client), so the replay
is identical and nothing is lost or counted twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedswarm.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from fedswarm.driver import RoundReport
from fedswarm.messages import ClientId, FailureKind
from fedswarm.run.config import RunConfig, config_sha256, dump_config
from fedswarm.run.rundir import write_results
from fedswarm.strategy import ServerState

__all__ = ["ClientRecord", "StateDirError", "StateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, finished_at REAL NOT NULL, checkpoint TEXT NOT NULL,
    record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    updates INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    refusals INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, round INTEGER NOT NULL,
    client_id TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL);
"""
_EVENT = "INSERT INTO events (at, round, client_id, kind, reason) VALUES (?, ?, ?, ?, ?)"
_FAILED = {
    "failure": "UPDATE clients SET failures = failures + 1 WHERE client_id = ?",
    "refusal": "UPDATE clients SET failures = failures + 1, refusals = refusals + 1 "
    "WHERE client_id = ?",
}
_KEEP_CHECKPOINTS = 2


class StateDirError(RuntimeError):
    """A state directory that cannot be used for this run; says why and what to do."""


@dataclass(frozen=True)
class ClientRecord:
    client_id: ClientId
    updates: int  # fit replies that counted
    failures: int  # rounds it was asked in and did not count (dropped, late, refused)
    refusals: int  # bad input it sent (malformed, forged, replayed, NaN, ...)


@dataclass(frozen=True)
class StateStore:
    path: Path
    config: RunConfig
    run_id: str

    @classmethod
    def open(cls, path: Path, config: RunConfig) -> StateStore:
        """Open (or create) ``path`` for ``config``; refuses a directory of another config."""
        path.mkdir(parents=True, exist_ok=True)
        (path / "checkpoints").mkdir(exist_ok=True)
        text, saved = dump_config(config), path / "config.toml"
        if saved.exists() and saved.read_text(encoding="utf-8") != text:
            raise StateDirError(
                f"{path} holds the state of a run with a different config (its {saved.name} "
                "differs); give --state another directory, or delete this one to start afresh"
            )
        with _db(path) as db:
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'run_id'").fetchone()
            run_id = row[0] if row else f"run-{uuid.uuid4().hex[:12]}"
            db.execute("INSERT OR IGNORE INTO meta VALUES ('run_id', ?)", (run_id,))
        if not saved.exists():
            saved.write_text(text, encoding="utf-8")
        return cls(path, config, run_id)

    def latest(self) -> ServerState | None:
        """The state after the last committed round, or None before the first."""
        with _db(self.path) as db:
            row = db.execute(
                "SELECT round, checkpoint FROM rounds ORDER BY round DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        file = self.path / "checkpoints" / row[1]
        try:
            ckpt = load_checkpoint(file)
        except (CheckpointError, OSError) as exc:
            raise StateDirError(f"round {row[0]}'s checkpoint cannot be read: {exc}") from None
        if ckpt.state.round != row[0] or ckpt.config_sha256 != config_sha256(self.config):
            raise StateDirError(f"{file} does not hold round {row[0]} of this run's config")
        return ckpt.state

    def commit(self, state: ServerState, report: RoundReport) -> None:
        """Record a completed round: checkpoint first, then one transaction (the commit)."""
        name = f"round-{state.round:06d}.safetensors"
        ckpt = Checkpoint(state, {}, config_sha256(self.config))
        save_checkpoint(self.path / "checkpoints" / name, ckpt)
        now = time.time()
        with _db(self.path) as db:
            db.execute(
                "INSERT OR REPLACE INTO rounds VALUES (?, ?, ?, ?)",
                (state.round, now, name, json.dumps(report.record())),
            )
            for cid in report.replied:
                _touch(db, cid, now)
                db.execute("UPDATE clients SET updates = updates + 1 WHERE client_id = ?", (cid,))
            for f in report.failures:  # a refused reply is a failure and a refusal
                kind = "refusal" if f.kind is FailureKind.REFUSED else "failure"
                _touch(db, f.client_id, now)
                db.execute(_FAILED[kind], (f.client_id,))
                db.execute(_EVENT, (now, f.round, f.client_id, kind, f.reason))
        self._prune(state.round)

    def refused(self, refusals: Iterable[tuple[ClientId, str]], round_: int) -> None:
        """Record bad input the transport refused (outside any round's replies)."""
        now = time.time()
        with _db(self.path) as db:
            for cid, reason in refusals:
                _touch(db, cid, now)
                db.execute("UPDATE clients SET refusals = refusals + 1 WHERE client_id = ?", (cid,))
                db.execute(_EVENT, (now, round_, cid, "refusal", reason))

    def seen(self, client_ids: Sequence[ClientId]) -> None:
        """Register connected participants (first and last seen)."""
        now = time.time()
        with _db(self.path) as db:
            for cid in client_ids:
                _touch(db, cid, now)

    def clients(self) -> list[ClientRecord]:
        with _db(self.path) as db:
            rows = db.execute(
                "SELECT client_id, updates, failures, refusals FROM clients ORDER BY client_id"
            ).fetchall()
        return [ClientRecord(*row) for row in rows]

    def events(self) -> list[tuple[int, ClientId, str, str]]:
        """Every failure and refusal: (round, client, kind, reason), oldest first."""
        with _db(self.path) as db:
            rows = db.execute("SELECT round, client_id, kind, reason FROM events ORDER BY id")
            return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows.fetchall()]

    def records(self) -> list[dict[str, Any]]:
        """The committed rounds' metric lines, in order."""
        with _db(self.path) as db:
            rows = db.execute("SELECT record FROM rounds ORDER BY round").fetchall()
        return [json.loads(r[0]) for r in rows]

    def finish(self, state: ServerState) -> dict[str, Any]:
        """Write ``metrics.jsonl`` and the results of ``fedswarm run``; return the summary."""
        records = self.records()
        lines = "".join(json.dumps(r) + "\n" for r in records)
        (self.path / "metrics.jsonl").write_text(lines, encoding="utf-8")
        return write_results(self.path, self.config, state, records)

    def _prune(self, done: int) -> None:
        keep = {f"round-{r:06d}.safetensors" for r in range(done - _KEEP_CHECKPOINTS + 1, done + 1)}
        for file in (self.path / "checkpoints").glob("round-*.safetensors"):
            if file.name not in keep:
                file.unlink(missing_ok=True)


def _touch(db: sqlite3.Connection, cid: ClientId, now: float) -> None:
    db.execute(
        "INSERT OR IGNORE INTO clients (client_id, first_seen, last_seen) VALUES (?, ?, ?)",
        (cid, now, now),
    )
    db.execute("UPDATE clients SET last_seen = ? WHERE client_id = ?", (now, cid))


@contextmanager
def _db(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection whose block is one transaction (committed on success, else rolled back)."""
    with closing(sqlite3.connect(path / "state.sqlite", timeout=30)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        with db:
            yield db
