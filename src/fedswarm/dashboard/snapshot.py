"""What the dashboard shows, read from the run store: one JSON-ready snapshot of a run.

:class:`RunSource` reads a run directory (the round records, the participant registry, the
failures and refusals, the model versions) into a :class:`Snapshot`; the page, the server-sent
events and ``/metrics`` are all drawn from the same snapshot, so they never disagree.
:class:`LiveFeed` is how a round loop (``fedswarm run``, ``fedswarm server``) wakes the
dashboard: ``publish`` is a non-blocking put on a thread-safe queue, called after the round is
committed, so the store already holds what the dashboard will read.
"""

from __future__ import annotations

import queue
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedswarm.reports import RoundRecord, RoundReport
from fedswarm.run.config import ConfigError, RunConfig, load_config
from fedswarm.run.store import ClientRecord, Event, ModelVersion, RunStore, RunStoreError

__all__ = ["FLAG_NAMESPACES", "LiveFeed", "RunSource", "RunSourceError", "Snapshot", "epsilon"]

# Round metrics in these namespaces are flags (anomaly scores, drift) shown in their own panel.
FLAG_NAMESPACES = ("anomaly", "drift")
_RECENT_EVENTS = 100


class RunSourceError(ValueError):
    """A directory the dashboard cannot show; says what is missing and what to do."""


def epsilon(record: RoundRecord) -> float | None:
    """The privacy spent by the end of a round (``metrics["privacy/epsilon"]``, where the
    privacy wrapper puts it), None for a run without differential privacy."""
    return record.metrics.get("privacy/epsilon")


@dataclass(frozen=True)
class Snapshot:
    """A run as the store holds it at one moment."""

    title: str
    rounds_total: int | None
    records: tuple[RoundRecord, ...] = ()
    clients: tuple[ClientRecord, ...] = ()
    events: tuple[Event, ...] = ()  # every failure and refusal, oldest first
    versions: tuple[ModelVersion, ...] = ()

    @property
    def rounds_done(self) -> int:
        return self.records[-1].round if self.records else 0

    @property
    def finished(self) -> bool:
        return self.rounds_total is not None and self.rounds_done >= self.rounds_total

    def to_json(self, live: bool) -> dict[str, Any]:
        return {
            "run": {
                "title": self.title,
                "rounds_total": self.rounds_total,
                "rounds_done": self.rounds_done,
                "finished": self.finished,
                "live": live,
            },
            "rounds": [_round_json(r) for r in self.records],
            "participants": [_client_json(c, self.events) for c in self.clients],
            "events": [_event_json(e) for e in self.events[-_RECENT_EVENTS:]],
            "versions": [_version_json(v) for v in self.versions],
        }


def _round_json(record: RoundRecord) -> dict[str, Any]:
    line = record.to_json()
    flags = {k: v for k, v in record.metrics.items() if k.split("/")[0] in FLAG_NAMESPACES}
    return {**line, "epsilon": epsilon(record), "flags": flags}


def _client_json(client: ClientRecord, events: tuple[Event, ...]) -> dict[str, Any]:
    last = next((e for e in reversed(events) if e.client_id == client.client_id), None)
    return {
        "client_id": client.client_id,
        "updates": client.updates,
        "failures": client.failures,
        "refusals": client.refusals,
        "last_problem": None if last is None else f"round {last.round}: {last.reason}",
    }


def _event_json(event: Event) -> dict[str, Any]:
    return {"round": event.round, "client_id": event.client_id, "kind": event.kind,
            "reason": event.reason}  # fmt: skip


def _version_json(version: ModelVersion) -> dict[str, Any]:
    return {"round": version.round, "sha256": version.sha256, "parent": version.parent,
            "kept": version.kept}  # fmt: skip


@dataclass
class RunSource:
    """A run directory, read on demand. A live run's store may not exist yet (the round
    loop opens it): until it does, the snapshot is empty."""

    path: Path
    config: RunConfig | None = None
    _store: RunStore | None = field(default=None, repr=False)

    @classmethod
    def finished(cls, path: Path) -> RunSource:
        """A run directory someone ran before (``fedswarm dashboard RUN_DIR``), checked now:
        a directory that holds no run is refused, naming what is missing."""
        if not path.is_dir():
            raise RunSourceError(f"{path} is not a directory; give a run directory (--out)")
        missing = [f for f in ("config.toml", "state.sqlite") if not (path / f).is_file()]
        if missing:
            raise RunSourceError(
                f"{path} holds no fedswarm run (no {' or '.join(missing)}); give the "
                "directory `fedswarm run --out` or `fedswarm server --state` wrote"
            )
        source = cls(path)
        source.snapshot()  # a damaged store fails here, not in the browser
        return source

    def snapshot(self) -> Snapshot:
        store = self._open()
        title, total = self._describe()
        if store is None or not _has_schema(self.path / "state.sqlite"):
            return Snapshot(title, total)  # a run just starting: its store is being created
        try:
            return Snapshot(
                title, total, tuple(store.records()), tuple(store.clients()),
                tuple(store.events()), tuple(store.versions()),
            )  # fmt: skip
        except (sqlite3.Error, RunStoreError) as exc:
            raise RunSourceError(f"{self.path}: cannot read the run store ({exc})") from None

    def _open(self) -> RunStore | None:
        if self._store is None and (self.path / "state.sqlite").is_file():
            if self.config is None:
                self.config = self._load_config()
            # read-only use: records, registry and versions; RunStore.open would write
            self._store = RunStore(self.path, self.config, run_id="")
        return self._store

    def _load_config(self) -> RunConfig:
        try:
            return load_config(self.path / "config.toml")
        except (ConfigError, OSError) as exc:
            raise RunSourceError(f"{self.path}: its config.toml is not usable ({exc})") from None

    def _describe(self) -> tuple[str, int | None]:
        cfg = self.config
        if cfg is None:
            return self.path.name, None
        return f"{cfg.strategy.name} on {cfg.data.name.value} ({self.path.name})", cfg.rounds


@dataclass
class LiveFeed:
    """Round reports from the round loop's thread to the dashboard's (never blocks)."""

    _queue: queue.SimpleQueue[RoundReport] = field(default_factory=queue.SimpleQueue)

    def publish(self, report: RoundReport) -> None:
        """The round loop's ``on_round``: called after the round is committed."""
        self._queue.put(report)

    def drain(self) -> list[RoundReport]:
        """Everything published since the last drain (the dashboard's side)."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out


def _has_schema(database: Path) -> bool:
    """Whether the run store's tables exist yet (a run creates them as it starts)."""
    with closing(sqlite3.connect(database, timeout=30)) as db:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rounds'"
        return db.execute(query).fetchone() is not None
