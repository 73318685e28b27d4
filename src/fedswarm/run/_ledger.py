"""The run store's database: its schema, its connections, and the participant registry.

``state.sqlite`` (stdlib sqlite3, WAL, ``synchronous=FULL``) is the run store's commit
point. Tables:

- ``meta``: run id and config hash;
- ``versions``: one row per committed round (0 = the initial model): the sha256 of its model
  version file, its parent's, whether the file is kept, and its resume state's sha256;
- ``rounds``: each completed round's record (a ``metrics.jsonl`` line);
- ``clients`` and ``events``: every participant seen, its counted updates, failures and
  refusals, and each failure and refusal with its reason;
- ``lineage``: each version's contributors (its round's ``replied``), config hash and code
  version; ``rollbacks``: each rollback, with the rounds it discarded (``fedswarm.registry``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from fedswarm.messages import ClientId, Failure, FailureKind
from fedswarm.reports import RoundReport

__all__ = [
    "DATABASE",
    "SCHEMA",
    "ClientRecord",
    "Event",
    "Score",
    "connect",
    "read_clients",
    "read_events",
    "read_scores",
    "record_forgotten",
    "record_outcomes",
    "record_refusals",
    "record_scores",
    "touch",
]

DATABASE = "state.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    round INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, parent TEXT, kept INTEGER NOT NULL,
    state TEXT NOT NULL, committed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY REFERENCES versions (round), finished_at REAL NOT NULL,
    record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    updates INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    refusals INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, round INTEGER NOT NULL,
    client_id TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    round INTEGER NOT NULL, client_id TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (round, client_id, name));
CREATE TABLE IF NOT EXISTS lineage (
    round INTEGER PRIMARY KEY, contributors TEXT NOT NULL, config_sha256 TEXT NOT NULL,
    code_version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS updates (round INTEGER PRIMARY KEY, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollbacks (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, from_round INTEGER NOT NULL,
    to_round INTEGER NOT NULL, to_sha256 TEXT NOT NULL, discarded TEXT NOT NULL);
"""
_EVENT = "INSERT INTO events (at, round, client_id, kind, reason) VALUES (?, ?, ?, ?, ?)"
_COUNT = {
    "update": "UPDATE clients SET updates = updates + 1 WHERE client_id = ?",
    "failure": "UPDATE clients SET failures = failures + 1 WHERE client_id = ?",
    # a refused reply is a failure (it did not count) and a refusal (bad input)
    "refusal": "UPDATE clients SET failures = failures + 1, refusals = refusals + 1 "
    "WHERE client_id = ?",
    "refused outside a round": "UPDATE clients SET refusals = refusals + 1 WHERE client_id = ?",
}


@dataclass(frozen=True)
class ClientRecord:
    client_id: ClientId
    updates: int  # fit replies that counted
    failures: int  # rounds it was asked in and did not count (dropped, late, refused)
    refusals: int  # bad input it sent (malformed, forged, replayed, NaN, ...)


@dataclass(frozen=True)
class Event:
    """A failure or a refusal, as the registry keeps it."""

    round: int
    client_id: ClientId
    kind: str  # "failure", "refusal" or "forgotten"
    reason: str


@dataclass(frozen=True)
class Score:
    """One participant's anomaly score in one round (``name``: ``norm``, ``distance``,
    ``krum``, ``fltrust_cosine``)."""

    round: int
    client_id: ClientId
    name: str
    value: float


def _event_kind(failure: Failure) -> str:
    """A refused reply is bad input (a refusal); every other failure is just a failure."""
    return "refusal" if failure.kind is FailureKind.REFUSED else "failure"


@contextmanager
def connect(folder: Path) -> Iterator[sqlite3.Connection]:
    """A connection whose block is one transaction (committed on success, else rolled back)."""
    with closing(sqlite3.connect(folder / DATABASE, timeout=30)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        with db:
            yield db


def touch(db: sqlite3.Connection, client_ids: Iterable[ClientId], now: float) -> None:
    """Register participants (first and last seen)."""
    for cid in client_ids:
        db.execute(
            "INSERT OR IGNORE INTO clients (client_id, first_seen, last_seen) VALUES (?, ?, ?)",
            (cid, now, now),
        )
        db.execute("UPDATE clients SET last_seen = ? WHERE client_id = ?", (now, cid))


def record_outcomes(db: sqlite3.Connection, report: RoundReport, now: float) -> None:
    """Count a round's updates, failures and refusals, and log each failure and refusal."""
    touch(db, report.replied, now)
    for cid in report.replied:
        db.execute(_COUNT["update"], (cid,))
    for f in report.failures:
        kind = _event_kind(f)
        touch(db, [f.client_id], now)
        db.execute(_COUNT[kind], (f.client_id,))
        db.execute(_EVENT, (now, f.round, f.client_id, kind, f.reason))


def record_scores(db: sqlite3.Connection, report: RoundReport) -> None:
    """The aggregator's per-participant anomaly scores of the round, one row per value."""
    for name, values in report.scores.items():
        db.executemany(
            "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
            [
                (report.round, c, name, float(v))
                for c, v in zip(report.replied, values, strict=True)
            ],
        )


def read_scores(db: sqlite3.Connection) -> list[Score]:
    rows = db.execute(
        "SELECT round, client_id, name, value FROM scores ORDER BY round, client_id, name"
    ).fetchall()
    return [Score(int(r), str(c), str(n), float(v)) for r, c, n, v in rows]


def record_refusals(
    db: sqlite3.Connection, refusals: Iterable[tuple[ClientId, str]], round_: int, now: float
) -> None:
    """Bad input a transport refused outside any round's replies."""
    for cid, reason in refusals:
        touch(db, [cid], now)
        db.execute(_COUNT["refused outside a round"], (cid,))
        db.execute(_EVENT, (now, round_, cid, "refusal", reason))


def record_forgotten(
    db: sqlite3.Connection, participant: ClientId, round_: int, now: float
) -> None:
    """A participant forgotten at its request: the rounds after ``round_`` retrain without it."""
    touch(db, [participant], now)
    why = f"forgotten: rounds after {round_} are retrained without it"
    db.execute(_EVENT, (now, round_, participant, "forgotten", why))


def read_clients(db: sqlite3.Connection) -> list[ClientRecord]:
    rows = db.execute(
        "SELECT client_id, updates, failures, refusals FROM clients ORDER BY client_id"
    ).fetchall()
    return [ClientRecord(str(c), int(u), int(f), int(r)) for c, u, f, r in rows]


def read_events(db: sqlite3.Connection) -> list[Event]:
    rows: Sequence[tuple[int, str, str, str]] = db.execute(
        "SELECT round, client_id, kind, reason FROM events ORDER BY id"
    ).fetchall()
    return [Event(int(r), str(c), str(k), str(why)) for r, c, k, why in rows]
