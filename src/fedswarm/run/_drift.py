"""The run store's ``drift`` table: each round's drift rows (``fedswarm.contrib.drift``),
written in the round's commit, so a resumed run's histories are the committed ones."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping

from fedswarm.contrib.drift import DriftRow, DriftSettings, drift_metrics, drift_rows
from fedswarm.reports import RoundReport
from fedswarm.run.config import DriftConfig

__all__ = ["SCHEMA", "read_drift", "record_drift"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS drift (
    round INTEGER NOT NULL, client_id TEXT NOT NULL, signal TEXT NOT NULL,
    value REAL NOT NULL, self_z REAL, federation_z REAL, flagged INTEGER NOT NULL,
    PRIMARY KEY (round, client_id, signal));
"""
_COLUMNS = "round, client_id, signal, value, self_z, federation_z, flagged"


def record_drift(
    db: sqlite3.Connection, report: RoundReport, config: DriftConfig
) -> Mapping[str, float]:
    """Judge and insert the round's drift rows; the round's ``drift/...`` metrics."""
    settings = DriftSettings(
        config.window,
        config.min_history,
        config.self_threshold,
        config.federation_threshold,
        config.min_federation,
    )
    history = {}
    for cid in report.clients:
        for signal, values in _history(db, cid, report.round, config.window).items():
            history[cid, signal] = values
    rows = drift_rows(report.round, report.clients, history, settings)
    db.executemany(
        f"INSERT INTO drift ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.round,
                r.client_id,
                r.signal,
                r.value,
                _sql(r.self_z),
                _sql(r.federation_z),
                int(r.flagged),
            )
            for r in rows
        ],
    )
    return drift_metrics(rows)


def _history(db: sqlite3.Connection, cid: str, before: int, window: int) -> dict[str, list[float]]:
    rows = db.execute(
        "SELECT signal, value FROM drift WHERE client_id = ? AND round < ? ORDER BY round DESC",
        (cid, before),
    ).fetchall()
    out: dict[str, list[float]] = {}
    for signal, value in rows:
        if len(out.setdefault(str(signal), [])) < window:
            out[str(signal)].append(float(value))
    return {s: v[::-1] for s, v in out.items()}  # oldest first


def read_drift(db: sqlite3.Connection) -> list[DriftRow]:
    rows = db.execute(f"SELECT {_COLUMNS} FROM drift ORDER BY round, client_id, signal")
    return [
        DriftRow(int(r), str(c), str(s), float(v), _nan(a), _nan(b), bool(f))
        for r, c, s, v, a, b, f in rows.fetchall()
    ]


def _sql(z: float) -> float | None:
    return None if math.isnan(z) else z  # sqlite has no NaN


def _nan(z: float | None) -> float:
    return math.nan if z is None else float(z)
