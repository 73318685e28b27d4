"""Drift of each participant: its local train loss and update norm against its own history
(a z-score over its last ``window`` rounds) and against the federation (a robust z-score,
median and MAD, over the round's participants). Pure functions; the run store keeps the
rows (``drift`` table) and puts the flags in each round's metrics (``drift/...``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.messages import ClientId
from fedswarm.reports import ClientFitStats

__all__ = ["SIGNALS", "DriftRow", "DriftSettings", "drift_metrics", "drift_rows", "robust_z"]

SIGNALS = ("train_loss", "update_norm")
# The smallest spread a self z divides by, as a share of the history's mean: a few rounds'
# spread can be tiny by chance, and a loss or norm moving by less than a few times 5% of
# itself is not drift.
_REL_FLOOR = 0.05
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution, in standard deviations


@dataclass(frozen=True)
class DriftSettings:
    window: int = 10  # rounds of a participant's own history compared against
    min_history: int = 3  # fewer past values: no self z-score (NaN), never flagged by it
    self_threshold: float = 3.0  # |z| against its own history that flags
    federation_threshold: float = 3.5  # |robust z| against the round's participants
    min_federation: int = 4  # fewer participants in the round: no federation z (NaN)


@dataclass(frozen=True)
class DriftRow:
    round: int
    client_id: ClientId
    signal: str  # one of SIGNALS
    value: float
    self_z: float  # NaN: too little history
    federation_z: float  # NaN: too few participants, or they all agree (MAD 0)
    flagged: bool


def self_z(history: Sequence[float], value: float, settings: DriftSettings) -> float:
    """z of ``value`` against the last ``window`` values of ``history`` (oldest first)."""
    past = np.asarray(history[-settings.window :], dtype=np.float64)
    if len(past) < settings.min_history:
        return math.nan
    mean = float(past.mean())
    spread = max(float(past.std()), _REL_FLOOR * abs(mean), 1e-12)
    return (value - mean) / spread


def robust_z(values: Mapping[ClientId, float], minimum: int = 4) -> dict[ClientId, float]:
    """(x - median) / (1.4826 MAD) per participant, the spread floored at 5% of |median|;
    NaN when fewer than ``minimum`` or the spread is 0 (no scale to judge by)."""
    x = np.array(list(values.values()), dtype=np.float64)
    if len(x) < minimum:
        return dict.fromkeys(values, math.nan)
    median = float(np.median(x))
    mad = _MAD_TO_SIGMA * float(np.median(np.abs(x - median)))
    mad = max(mad, _REL_FLOOR * abs(median))
    if mad == 0:
        return dict.fromkeys(values, math.nan)
    return {cid: (v - median) / mad for cid, v in values.items()}


def drift_rows(
    round_: int,
    clients: Mapping[ClientId, ClientFitStats],
    history: Mapping[tuple[ClientId, str], Sequence[float]],
    settings: DriftSettings,
) -> list[DriftRow]:
    """A round's drift rows: one per participant and signal, sorted by participant."""
    rows = []
    for signal in SIGNALS:
        values = {cid: float(getattr(s, signal)) for cid, s in sorted(clients.items())}
        fed = robust_z(values, settings.min_federation)
        for cid, value in values.items():
            own = self_z(history.get((cid, signal), ()), value, settings)
            flagged = abs(own) > settings.self_threshold or (
                abs(fed[cid]) > settings.federation_threshold
            )  # NaN compares False: too little evidence never flags
            rows.append(DriftRow(round_, cid, signal, value, own, fed[cid], flagged))
    return sorted(rows, key=lambda r: (r.client_id, r.signal))


def drift_metrics(rows: Sequence[DriftRow]) -> dict[str, float]:
    """``drift/flagged`` (participants flagged this round), ``drift/max_self_z`` and
    ``drift/max_federation_z`` (largest finite |z|), and ``drift/flag.<id>`` = 1 for
    each flagged participant."""
    flagged = sorted({r.client_id for r in rows if r.flagged})
    metrics = {"drift/flagged": float(len(flagged))}
    for name, zs in (
        ("max_self_z", [r.self_z for r in rows]),
        ("max_federation_z", [r.federation_z for r in rows]),
    ):
        finite = [abs(z) for z in zs if math.isfinite(z)]
        metrics[f"drift/{name}"] = max(finite, default=0.0)
    metrics.update({f"drift/flag.{cid.replace('/', '_')}": 1.0 for cid in flagged})
    return metrics
