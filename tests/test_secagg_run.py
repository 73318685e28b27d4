"""Secure aggregation composed into configured runs: ``[secure_aggregation]`` gives the same
model as plain FedAvg within the quantisation bound; the run store and the logs hold no
participant's update; an aborted round leaves the model alone and the next one runs; what
cannot work with only a sum is refused, naming the keys."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import secagg_helpers as h
from fedswarm.aggregation import Aggregate, AggregationContext
from fedswarm.driver import run_rounds
from fedswarm.params import Params
from fedswarm.run.build import build
from fedswarm.run.config import ConfigError, loads_config
from fedswarm.run.simulate import simulate
from fedswarm.secagg import SecureFitRound, SecureSettings
from fedswarm.secagg.messages import MASKED_INPUT
from fedswarm.secagg.simulation import VectorClients

BASE = """
seed = 0
rounds = 3
[data]
name = "digits"
num_clients = 8
[model]
name = "logreg"
[client]
epochs = 1
batch_size = 20
lr = 0.05
[evaluation]
every = 3
[simulation]
backend = "sequential"
"""
SECURE = BASE + '\n[secure_aggregation]\nprotocol = "secagg+"\nclip_range = 1.0\n'


def _windows(vector: np.ndarray, width: int = 32) -> list[bytes]:
    raw = vector.tobytes()
    return [raw[i : i + width] for i in range(0, len(raw) - width, width)]


def test_a_secure_run_matches_plain_fedavg_and_stores_no_participants_update(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = simulate(loads_config(BASE), tmp_path / "plain")
    with caplog.at_level(logging.DEBUG):
        secure = simulate(loads_config(SECURE), tmp_path / "secure")
    assert secure.round == plain.round == 3
    gap = np.abs(secure.params.flat - plain.params.flat).max()
    assert 0 < gap < 1e-4  # quantisation error only (bound: rounds x units of 1/scale)
    # The participants' round-1 updates, recomputed in the clear, appear nowhere the
    # coordinator wrote: not in the run store's files, not in the log.
    exp = build(loads_config(SECURE))
    state = exp.initial_state()
    fits = exp.strategy.configure_fit(state, exp.dataset.client_ids(), exp.run)
    updates = [exp.clients(cid).fit(ins, {})[0].update for cid, ins in fits]
    assert all(np.abs(u).max() > 0 for u in updates)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "secure").rglob("*") if p.is_file())
    text = caplog.text.encode()
    for u in updates:
        for w in _windows(u):
            assert w not in stored
            assert w not in text
    assert f"{updates[0][0]:.6g}".encode() not in text


def test_an_aborted_round_leaves_the_model_and_the_next_round_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = [f"p{i}" for i in range(5)]
    make = VectorClients(seed=9, dim=6)
    strategy = h.strategy(5)
    state = strategy.init(Params.from_arrays({"w": np.zeros(6, np.float32)}))
    transport = h.transport(ids, make, {MASKED_INPUT: {"p0", "p1", "p2"}}, frozenset({1}))
    reports = []
    protocol = SecureFitRound(SecureSettings(complete_graph=True))
    with caplog.at_level(logging.WARNING, logger="fedswarm.secagg"):
        final = run_rounds(
            strategy, transport, state, rounds=2, run=h.RUN,
            on_round=lambda s, r: reports.append((s.params.flat.copy(), r)),
            fit_protocol=protocol,
        )  # fmt: skip
    assert final.round == 2
    (p1, r1), (p2, r2) = reports
    assert r1.num_clients == 0
    assert np.array_equal(p1, np.zeros(6))
    assert "round 1: secure aggregation aborted in secagg.masked_input: 2 of 5" in caplog.text
    assert r2.num_clients == 5
    assert np.abs(p2).max() > 0


def _median(updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext) -> Aggregate:
    return Aggregate(np.median(updates, axis=0).astype(np.float32))


def test_what_needs_individual_updates_is_refused() -> None:
    strategy = replace(h.strategy(3), aggregator=_median)
    state = strategy.init(Params.from_arrays({"w": np.zeros(2, np.float32)}))
    round_ = SecureFitRound()(strategy, state, ["a", "b", "c"], h.RUN)
    with pytest.raises(ValueError, match=r"\[secure_aggregation\].*aggregator <function _median"):
        next(round_)
    scaffold = SECURE.replace("[client]", '[strategy]\nname = "scaffold"\n[client]')
    with pytest.raises(ConfigError, match=r"\[secure_aggregation\].*strategy.name = 'scaffold'"):
        loads_config(scaffold)
    with pytest.raises(ConfigError, match="degree applies to protocol"):
        loads_config(BASE + '[secure_aggregation]\nprotocol = "secagg"\ndegree = 4\n')
    with pytest.raises(ConfigError, match=r"unknown key 'secure_aggregation\.clip'"):
        loads_config(BASE + "[secure_aggregation]\nclip = 1.0\n")
