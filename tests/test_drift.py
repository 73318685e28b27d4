"""Drift monitoring: a participant judged against its own history (z-score over a window)
and against the round's federation (robust z), flagged in the round's metrics and kept in
the run store's ``drift`` table, rolled back with the rounds."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedswarm.contrib import SIGNALS, DriftSettings, drift_metrics, drift_rows, robust_z
from fedswarm.params import Params
from fedswarm.presets import fedavg
from fedswarm.reports import ClientFitStats, RoundReport
from fedswarm.run.config import ConfigError, StoreConfig, loads_config, parse_config
from fedswarm.run.simulate import simulate
from fedswarm.run.store import RunStore
from fedswarm.strategy import ServerState
from fedswarm.training import LocalTraining

SETTINGS = DriftSettings(window=5, min_history=3, self_threshold=3.0, federation_threshold=3.5)
IDS = [f"c{i}" for i in range(6)]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stats(loss: float, norm: float) -> ClientFitStats:
    return ClientFitStats(loss, norm, 10)


def test_robust_z_is_median_and_mad() -> None:
    z = robust_z({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 100.0})
    assert z["c"] == 0  # the median
    assert z["e"] == pytest.approx((100 - 3) / (1.4826 * 1.0))
    assert all(math.isnan(v) for v in robust_z({"a": 1.0, "b": 5.0}).values())  # too few
    assert all(math.isnan(v) for v in robust_z(dict.fromkeys("abcde", 0.0)).values())  # no scale
    # MAD 0 but a median: the floor (5% of it) is the scale
    assert robust_z({**dict.fromkeys("abcd", 2.0), "e": 3.0})["e"] == pytest.approx(10.0)


def test_a_participant_unlike_the_federation_is_flagged() -> None:
    clients = {cid: _stats(1.0 + 0.01 * i, 2.0 + 0.1 * i) for i, cid in enumerate(IDS)}
    clients["c3"] = _stats(1.02, 40.0)  # an update 20x the others'
    rows = drift_rows(1, clients, {}, SETTINGS)
    assert len(rows) == len(IDS) * len(SIGNALS)
    assert {r.client_id for r in rows if r.flagged} == {"c3"}
    assert all(math.isnan(r.self_z) for r in rows)  # no history yet: never flagged by it
    metrics = drift_metrics(rows)
    assert metrics["drift/flagged"] == 1
    assert metrics["drift/flag.c3"] == 1
    assert metrics["drift/max_federation_z"] > 3.5


def test_a_participant_unlike_its_own_history_is_flagged() -> None:
    """c0's loss jumps from ~1.0 to 3.0; the federation is too small to judge (3 < 4)."""
    history = {("c0", "train_loss"): [1.0, 1.1, 0.9, 1.0], ("c0", "update_norm"): [2.0] * 4}
    clients = {"c0": _stats(3.0, 2.0), "c1": _stats(1.0, 2.0), "c2": _stats(1.0, 2.0)}
    rows = {(r.client_id, r.signal): r for r in drift_rows(5, clients, history, SETTINGS)}
    assert rows["c0", "train_loss"].flagged
    assert rows["c0", "train_loss"].self_z == pytest.approx((3.0 - 1.0) / np.std([1, 1.1, 0.9, 1]))
    assert not rows["c0", "update_norm"].flagged  # constant history, same value: z 0
    assert rows["c0", "update_norm"].self_z == 0
    assert not rows["c1", "train_loss"].flagged  # no history


def test_the_window_limits_the_history() -> None:
    old = [100.0] * 10 + [1.0, 1.1, 0.9, 1.0, 1.05]  # only the last 5 count
    history = {("c0", "train_loss"): old}
    (row,) = [
        r
        for r in drift_rows(9, {"c0": _stats(1.0, 1.0)}, history, SETTINGS)
        if r.signal == "train_loss"
    ]
    assert abs(row.self_z) < 1


def test_drift_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="min_history"):
        parse_config({"drift": {"window": 3, "min_history": 5}})
    with pytest.raises(ConfigError, match=r"drift\.self_threshold"):
        parse_config({"drift": {"self_threshold": 0}})
    with pytest.raises(ConfigError, match=r"drift\.windw"):
        parse_config({"drift": {"windw": 3}})


def _state(rnd: int) -> ServerState:
    training = LocalTraining(batch_size=8, lr=0.1, epochs=1)
    state = fedavg(training).init(Params.from_arrays({"w": np.zeros(4, np.float32)}))
    return replace(state, round=rnd)


def test_the_store_keeps_drift_rows_and_flags_them_in_metrics(tmp_path: Path) -> None:
    """Four quiet rounds, then c2's update norm jumps: round 5 flags it (its own history
    and the federation), in the record's metrics and the drift table; a rollback drops it."""
    config = parse_config({"rounds": 5, "data": {"num_clients": 6}, "store": {"keep_states": True}})
    store = RunStore.open(tmp_path, config)
    store.begin(_state(0))
    rng = np.random.default_rng(0)
    for rnd in range(1, 6):
        clients = {c: _stats(1 + 0.05 * rng.random(), 2 + 0.2 * rng.random()) for c in IDS}
        if rnd == 5:
            clients["c2"] = _stats(1.0, 30.0)
        report = RoundReport(rnd, 6, 0, 1.0, 1.0, 0.1, replied=tuple(IDS), clients=clients)
        store.commit(_state(rnd), report, {})
    records = store.records()
    assert [r.metrics["drift/flagged"] for r in records] == [0, 0, 0, 0, 1]
    assert records[-1].metrics["drift/flag.c2"] == 1
    flagged = [(r.round, r.client_id, r.signal) for r in store.drift() if r.flagged]
    assert flagged == [(5, "c2", "update_norm")]
    (row,) = [r for r in store.drift() if r.flagged]
    assert row.self_z > 3
    assert row.federation_z > 3.5
    assert len(store.drift()) == 5 * 6 * 2
    store.rollback(4)
    assert not [r for r in store.drift() if r.flagged]
    assert max(r.round for r in store.drift()) == 4


def test_a_digits_run_records_each_participants_loss_and_update_norm(tmp_path: Path) -> None:
    text = """
rounds = 3
[data]
name = "digits"
num_clients = 5
[model]
hidden = [8]
[client]
steps = 2
batch_size = 16
[evaluation]
every = 3
"""
    config = loads_config(text).model_copy(update={"store": StoreConfig()})
    reports: list[RoundReport] = []
    simulate(config, tmp_path / "run", on_round=reports.append)
    rows = RunStore.open(tmp_path / "run", config).drift()
    assert len(rows) == 3 * 5 * 2
    for report in reports:
        assert set(report.clients) == set(report.replied)
        for cid, stats in report.clients.items():
            got = {r.signal: r.value for r in rows if (r.round, r.client_id) == (report.round, cid)}
            assert got == {"train_loss": stats.train_loss, "update_norm": stats.update_norm}
            assert stats.update_norm > 0
    records = RunStore.open(tmp_path / "run", config).records()
    assert all("drift/flagged" in r.metrics for r in records)
