"""The run store: what a run (``fedswarm run``) or a coordinator (``fedswarm server``) leaves
behind, and what a killed one resumes from.

::

    config.toml          the run's resolved config (another config is refused)
    state.sqlite         the commit point: every round's model version and its parent,
                         the round records, the participant registry (clients, events)
    versions/<sha256>.safetensors   model versions, content-addressed (round 0: the
                         initial model); which are kept is the ``[store]`` table's choice
    states/<sha256>.safetensors     the last round's resume state: optimiser moments,
                         the algorithm's server slots and, in simulation, participants'
                         memories (their data; the simulator stands in for their disks)
    metrics.jsonl        a line per committed round (rewritten from the database on open)
    model.safetensors, summary.json, curves.png    when the run ends

A round is committed by the sqlite transaction that records it. Its version and state files
are written first (atomically, fsynced), so whenever the process dies the store holds round
N, complete, or round N - 1, from which the run plays round N again. Seeds depend only on
(seed, round, client), so the replay is identical and nothing is lost or counted twice.
After each commit, files no committed row needs (a crashed round's, a pruned version's)
are removed. One process writes a store at a time; others may read ``state.sqlite``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedswarm.checkpoint import (
    Checkpoint,
    CheckpointError,
    decode_params,
    decode_state,
    encode_params,
    encode_state,
)
from fedswarm.contrib.drift import DriftRow
from fedswarm.messages import ClientId, ClientMemory
from fedswarm.params import Params
from fedswarm.reports import RecordError, RoundRecord, RoundReport
from fedswarm.run import _drift as drift_table
from fedswarm.run import _ledger as ledger
from fedswarm.run._blobs import BlobError, BlobFolder, write_atomic
from fedswarm.run._ledger import ClientRecord, Event, Score
from fedswarm.run._lineage import discard_after, insert_lineage
from fedswarm.run._results import METRICS, metrics_line, write_metrics, write_results
from fedswarm.run._updates import RoundUpdates, decode_updates, encode_updates
from fedswarm.run.config import RunConfig, config_sha256, dump_config
from fedswarm.strategy import ServerState

__all__ = ["ClientRecord", "Event", "ModelVersion", "RunStore", "RunStoreError", "Score"]

_LAST = "SELECT round, sha256, state FROM versions ORDER BY round DESC LIMIT 1"


class RunStoreError(RuntimeError):
    """A run store that cannot be used as asked; says which file and what to do."""


@dataclass(frozen=True)
class ModelVersion:
    round: int  # the model after this many rounds (0: the initial model)
    sha256: str  # of its version file: versions/<sha256>.safetensors
    parent: str | None  # the version it was trained from (None for round 0)
    kept: bool  # False: pruned by [store] retention (the row stays, the file is gone)


@dataclass(frozen=True)
class RunStore:
    path: Path
    config: RunConfig
    run_id: str

    @classmethod
    def open(cls, path: Path, config: RunConfig) -> RunStore:
        """Open (or create) the store at ``path`` for ``config``; refuses one of another
        config, or of the layout before this one, writing nothing."""
        path.mkdir(parents=True, exist_ok=True)
        text = dump_config(config)
        _refuse_foreign(path, text)
        try:
            with ledger.connect(path) as db:
                db.executescript(ledger.SCHEMA + drift_table.SCHEMA)
                run_id = _meta(db, "run_id", f"run-{uuid.uuid4().hex[:12]}")
                if _meta(db, "config_sha256", config_sha256(config)) != config_sha256(config):
                    raise RunStoreError(_other_config(path, ledger.DATABASE))
        except sqlite3.DatabaseError as exc:
            raise RunStoreError(
                f"{path / ledger.DATABASE} is not a usable run store database ({exc}); "
                "restore it from a backup, or delete the directory to start afresh"
            ) from None
        if not (path / "config.toml").exists():
            write_atomic(path / "config.toml", text.encode())
        store = cls(path, config, run_id)
        write_metrics(path, store.records())  # a crash may have left a line too few or many
        return store

    @property
    def _versions(self) -> BlobFolder:
        return BlobFolder(self.path / "versions")

    @property
    def _updates(self) -> BlobFolder:
        return BlobFolder(self.path / "updates")

    @property
    def _states(self) -> BlobFolder:
        return BlobFolder(self.path / "states")

    def latest(self) -> Checkpoint | None:
        """What to resume from: the last committed round (0 after :meth:`begin`), or None."""
        with ledger.connect(self.path) as db:
            row = db.execute(_LAST).fetchone()
        if row is None:
            return None
        rnd, version, state = int(row[0]), str(row[1]), str(row[2])
        try:
            params = decode_params(self._versions.get(version), str(self._versions.file(version)))
            data = self._states.get(state)
            ckpt = decode_state(data, params, str(self._states.file(state)))
        except (BlobError, CheckpointError) as exc:
            raise RunStoreError(
                f"round {rnd} of {self.path} cannot be resumed: {exc}; restore the file from a "
                "backup, or delete the directory to start the run afresh"
            ) from None
        if ckpt.state.round != rnd:
            file = self._states.file(state)
            raise RunStoreError(f"{file} holds round {ckpt.state.round}, not round {rnd}")
        return ckpt

    def begin(self, initial: ServerState) -> Checkpoint:
        """Commit round 0: the initial model (every later version descends from it)."""
        if initial.round != 0:
            raise RunStoreError(f"a run begins at round 0, not {initial.round}")
        version, state = self._write(Checkpoint(initial, {}))
        with ledger.connect(self.path) as db:
            if db.execute(_LAST).fetchone() is not None:
                raise RunStoreError(f"{self.path} has begun already; resume from latest()")
            self._insert_version(db, 0, version, None, state)
            insert_lineage(db, 0, [], config_sha256(self.config))
            needed = _needed(db, self.config.store.keep_states)
        self._sweep(*needed)
        return Checkpoint(initial, {})

    def commit(
        self,
        state: ServerState,
        report: RoundReport,
        memories: Mapping[ClientId, ClientMemory],
    ) -> None:
        """Record a completed round: its files first, then one transaction (the commit)."""
        version, resume = self._write(Checkpoint(state, memories))
        updates = self._write_updates(report)
        now = time.time()
        with ledger.connect(self.path) as db:
            parent = self._parent_of(db, state.round, report.round)
            record = self._record(db, report)
            self._insert_version(db, state.round, version, parent, resume)
            db.execute(
                "INSERT INTO rounds VALUES (?, ?, ?)",
                (state.round, now, json.dumps(record.to_json())),
            )
            ledger.record_outcomes(db, report, now)
            ledger.record_scores(db, report)
            insert_lineage(db, state.round, report.replied, config_sha256(self.config))
            if updates is not None:
                db.execute("INSERT INTO updates VALUES (?, ?)", (state.round, updates))
            self._retain(db, state.round)
            needed = _needed(db, self.config.store.keep_states)
        self._sweep(*needed)
        with open(self.path / METRICS, "a", encoding="utf-8") as f:
            f.write(metrics_line(record))  # a view: open() rewrites it from the database

    def versions(self) -> list[ModelVersion]:
        """Every committed round's model version, round 0 first, pruned ones included."""
        with ledger.connect(self.path) as db:
            rows = db.execute("SELECT round, sha256, parent, kept FROM versions ORDER BY round")
            return [ModelVersion(int(r), str(s), p, bool(k)) for r, s, p, k in rows.fetchall()]

    def load_version(self, ref: int | str) -> Params:
        """A kept version's model, by round or by sha256 (or a unique prefix of 8+ digits)."""
        version = self._find(ref)
        if not version.kept:
            kept = [v.round for v in self.versions() if v.kept]
            raise RunStoreError(
                f"round {version.round}'s version {version.sha256[:12]} was pruned "
                f"([store] keep_every/keep_last); kept rounds: {kept}"
            )
        file = self._versions.file(version.sha256)
        try:
            return decode_params(self._versions.get(version.sha256), str(file))
        except (BlobError, CheckpointError) as exc:
            raise RunStoreError(f"round {version.round}'s model version: {exc}") from None

    def resumable(self) -> list[int]:
        """The rounds whose resume state is kept (the last; every kept one under
        ``[store] keep_states``): those a rollback can continue from."""
        with ledger.connect(self.path) as db:
            _, states = _needed(db, self.config.store.keep_states)
            rows = db.execute("SELECT round, state FROM versions WHERE kept = 1").fetchall()
        return sorted(int(r) for r, s in rows if s in states)

    def rollback(self, ref: int | str) -> list[int]:
        """Make version ``ref`` the last committed round, so the run continues from it;
        the later rounds are discarded and the rollback recorded (``rollbacks`` table).
        Returns the discarded rounds. Only a :meth:`resumable` round can be rolled back to."""
        version = self._find(ref)
        resumable = self.resumable()
        if version.round not in resumable:
            raise RunStoreError(
                f"round {version.round} of {self.path} has no kept resume state (rounds with "
                f"one: {resumable}); set [store] keep_states = true to roll back to any kept "
                "version"
            )
        with ledger.connect(self.path) as db:
            discarded = discard_after(db, version.round, version.sha256)
            needed = _needed(db, self.config.store.keep_states)
        self._sweep(*needed)
        write_metrics(self.path, self.records())
        return discarded

    def forget(self, participant: ClientId, config: RunConfig) -> RunStore:
        """This run under ``config``, which differs from this one only in forgetting
        ``participant`` (``forgotten``); the store's config is replaced and the forgetting
        recorded in the participant registry. Roll back before it first contributed first."""
        if config.model_copy(update={"forgotten": self.config.forgotten}) != self.config:
            raise RunStoreError("forget changes nothing of a run's config but `forgotten`")
        with ledger.connect(self.path) as db:
            last = int(db.execute(_LAST).fetchone()[0])
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'config_sha256'", (config_sha256(config),)
            )
            ledger.record_forgotten(db, participant, last, time.time())
        write_atomic(self.path / "config.toml", dump_config(config).encode())
        return RunStore(self.path, config, self.run_id)

    def records(self) -> list[RoundRecord]:
        """The committed rounds' records, in order."""
        with ledger.connect(self.path) as db:
            rows = db.execute("SELECT round, record FROM rounds ORDER BY round").fetchall()
        where = f"{self.path / ledger.DATABASE} rounds row"
        try:
            return [RoundRecord.from_json(json.loads(text), f"{where} {r}") for r, text in rows]
        except (RecordError, json.JSONDecodeError) as exc:
            raise RunStoreError(f"{exc}; the database is damaged") from None

    def finish(self, state: ServerState) -> dict[str, Any]:
        """Write ``metrics.jsonl``, ``model.safetensors``, ``summary.json`` and
        ``curves.png`` for the finished run; returns the summary."""
        versions = self.versions()
        last = versions[-1].round if versions else None
        if state.round != last:
            raise RunStoreError(f"finish: round {state.round} is not the last committed ({last})")
        return write_results(self.path, self.config, state, self.records())

    # --- the participant registry (the coordinator's view of its federation) -------------

    def refused(self, refusals: Iterable[tuple[ClientId, str]], round_: int) -> None:
        """Record bad input the transport refused (outside any round's replies)."""
        with ledger.connect(self.path) as db:
            ledger.record_refusals(db, refusals, round_, time.time())

    def seen(self, client_ids: Sequence[ClientId]) -> None:
        """Register connected participants (first and last seen)."""
        with ledger.connect(self.path) as db:
            ledger.touch(db, client_ids, time.time())

    def clients(self) -> list[ClientRecord]:
        with ledger.connect(self.path) as db:
            return ledger.read_clients(db)

    def events(self) -> list[Event]:
        """Every failure and refusal, oldest first."""
        with ledger.connect(self.path) as db:
            return ledger.read_events(db)

    def scores(self) -> list[Score]:
        """Every participant's anomaly scores, by round then participant."""
        with ledger.connect(self.path) as db:
            return ledger.read_scores(db)

    # --- internals -------------------------------------------------------------------------

    def _write(self, ckpt: Checkpoint) -> tuple[str, str]:
        """Write a round's version and state files (before its commit); their sha256s."""
        version = self._versions.put(encode_params(ckpt.state.params))
        return version, self._states.put(encode_state(ckpt))

    def _record(self, db: sqlite3.Connection, report: RoundReport) -> RoundRecord:
        """The round's record, with its drift flags (``drift/...``) when monitored."""
        record = RoundRecord.from_report(report)
        if not self.config.drift.enabled:
            return record
        flags = drift_table.record_drift(db, report, self.config.drift)
        return replace(record, metrics={**record.metrics, **flags})

    def drift(self) -> list[DriftRow]:
        """Every committed round's drift rows (per participant and signal)."""
        with ledger.connect(self.path) as db:
            return drift_table.read_drift(db)

    def _write_updates(self, report: RoundReport) -> str | None:
        if report.updates is None:
            return None
        weights = [report.clients[c].num_examples for c in report.replied]
        return self._updates.put(encode_updates(report.replied, report.updates, weights))

    def rounds_with_updates(self) -> list[int]:
        with ledger.connect(self.path) as db:
            return [int(r) for (r,) in db.execute("SELECT round FROM updates ORDER BY round")]

    def round_updates(self, round_: int) -> RoundUpdates:
        """Round ``round_``'s kept participant updates ([store] keep_updates)."""
        with ledger.connect(self.path) as db:
            row = db.execute("SELECT sha256 FROM updates WHERE round = ?", (round_,)).fetchone()
        if row is None:
            raise RunStoreError(
                f"{self.path} kept no updates of round {round_}; set [store] keep_updates = true"
            )
        file = self._updates.file(str(row[0]))
        try:
            return decode_updates(self._updates.get(str(row[0])), str(file))
        except (BlobError, ValueError) as exc:
            raise RunStoreError(f"round {round_}'s updates: {exc}") from None

    def _parent_of(self, db: sqlite3.Connection, state_round: int, report_round: int) -> str:
        row = db.execute(_LAST).fetchone()
        if row is None:
            raise RunStoreError(f"{self.path}: commit before begin(); begin with round 0")
        if not state_round == report_round == int(row[0]) + 1:
            raise RunStoreError(
                f"{self.path}: cannot commit round {state_round} (report of round "
                f"{report_round}) after round {row[0]}; rounds are committed in order, once"
            )
        return str(row[1])

    def _insert_version(
        self, db: sqlite3.Connection, rnd: int, version: str, parent: str | None, state: str
    ) -> None:
        db.execute(
            "INSERT INTO versions VALUES (?, ?, ?, 1, ?, ?)",
            (rnd, version, parent, state, time.time()),
        )

    def _retain(self, db: sqlite3.Connection, last: int) -> None:
        kept = db.execute("SELECT round FROM versions WHERE kept = 1").fetchall()
        pruned = [(r,) for (r,) in kept if not self.config.store.keeps(r, last)]
        db.executemany("UPDATE versions SET kept = 0 WHERE round = ?", pruned)

    def _sweep(self, versions: set[str], states: set[str]) -> None:
        """Remove the files no committed row needs (after the commit: never before)."""
        self._versions.keep_only(versions)
        self._states.keep_only(states)
        with ledger.connect(self.path) as db:
            kept = {str(s) for (s,) in db.execute("SELECT sha256 FROM updates")}
        self._updates.keep_only(kept)

    def _find(self, ref: int | str) -> ModelVersion:
        versions = self.versions()
        if isinstance(ref, int) and not isinstance(ref, bool):
            found = [v for v in versions if v.round == ref]
        elif isinstance(ref, str) and len(ref) >= 8:
            found = [v for v in versions if v.sha256.startswith(ref.lower())]
        else:
            raise RunStoreError(f"a version is a round or 8+ digits of its sha256, not {ref!r}")
        shas = sorted({v.sha256 for v in found})
        if not shas:
            last = versions[-1].round if versions else None
            raise RunStoreError(f"{self.path} has no version {ref!r} (rounds 0 to {last})")
        if len(shas) > 1:
            raise RunStoreError(f"{ref!r} matches {len(shas)} versions ({shas}); give more digits")
        return found[-1]  # the same model reached twice: the later round


def _needed(db: sqlite3.Connection, keep_states: bool) -> tuple[set[str], set[str]]:
    """The files committed rows need: kept versions, and the last round's state (every kept
    version's state under ``keep_states``)."""
    rows = db.execute("SELECT sha256, state FROM versions WHERE kept = 1").fetchall()
    kept = {str(s) for s, _ in rows}
    last = db.execute(_LAST).fetchone()
    states = {str(last[2])} if last else set()
    return kept, states | ({str(st) for _, st in rows} if keep_states else set())


def _meta(db: sqlite3.Connection, key: str, default: str) -> str:
    db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, default))
    return str(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


def _other_config(path: Path, file: str) -> str:
    return (
        f"{path} holds a run of a different config (its {file} differs); use another "
        "directory (fedswarm run --out, fedswarm server --state) or delete this one to "
        "start afresh"
    )


def _refuse_foreign(path: Path, config_text: str) -> None:
    for old in ("checkpoint.safetensors", "checkpoints"):
        if (path / old).exists():
            raise RunStoreError(
                f"{path} holds a run in the layout of an older fedswarm ({old}); finish it "
                "with that version, or use another directory"
            )
    saved = path / "config.toml"
    if saved.exists() and saved.read_text(encoding="utf-8") != config_text:
        raise RunStoreError(_other_config(path, saved.name))
