"""Simulation backends against the sequential one: same config and seed, same model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedswarm.client import ClientApp
from fedswarm.driver import run_rounds
from fedswarm.messages import ClientId, EvaluateIns
from fedswarm.params import Params
from fedswarm.pytorch.vectorized import VectorizedTorchLearner
from fedswarm.run.build import build
from fedswarm.run.config import BackendKind, RunConfig, parse_config
from fedswarm.run.participants import ConfiguredClients
from fedswarm.simulation.backends import Job
from fedswarm.simulation.process import ProcessBackend
from fedswarm.strategy import ServerState

PROCESS = pytest.param(BackendKind.PROCESS, marks=pytest.mark.slow)  # worker processes
STRATEGIES: list[dict[str, Any]] = [
    {"name": "fedavg"},
    {"name": "fedprox", "mu": 0.1},
    {"name": "scaffold"},
]


def _config(backend: BackendKind, strategy: dict[str, Any], model: str = "mlp") -> RunConfig:
    return parse_config(
        {
            "seed": 3,
            "rounds": 2,
            # power-law client sizes: unequal step counts and ragged last batches
            "data": {"name": "digits", "num_clients": 8, "partition": "quantity"},
            "model": {"name": model, "hidden": [16]},
            "client": {"epochs": 1, "batch_size": 16, "lr": 0.05},
            "strategy": {**strategy, "clients_per_round": 5},
            "evaluation": {"central": False},
            "simulation": {"backend": backend.value, "workers": 2},
        }
    )


def _train(config: RunConfig) -> ServerState:
    exp = build(config)
    transport = exp.transport()
    try:
        return run_rounds(
            exp.strategy, transport, exp.initial_state(), rounds=config.rounds, run=exp.run
        )
    finally:
        transport.close()


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: str(s["name"]))
@pytest.mark.parametrize("backend", [BackendKind.VECTORIZED, PROCESS])
def test_backend_matches_sequential(backend: BackendKind, strategy: dict[str, Any]) -> None:
    reference = _train(_config(BackendKind.SEQUENTIAL, strategy))
    other = _train(_config(backend, strategy))
    np.testing.assert_allclose(other.params.flat, reference.params.flat, rtol=0, atol=1e-5)
    for key, slot in reference.update.items():  # SCAFFOLD's server control variate
        np.testing.assert_allclose(other.update[key], slot, rtol=0, atol=1e-5)
    assert reference.round == other.round == 2


def test_vectorised_backend_is_really_used_and_deterministic() -> None:
    config = _config(BackendKind.VECTORIZED, STRATEGIES[0])
    assert build(config).backend is BackendKind.VECTORIZED
    a, b = _train(config), _train(config)
    assert a.params.sha256() == b.params.sha256()


def test_the_vectorised_backend_trains_each_round_in_one_fit_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same results prove nothing about speed: a backend that trained the clients one by one
    would match too. Count the batched calls: one per round, with every sampled client."""
    batches: list[int] = []
    batched = VectorizedTorchLearner.fit_many

    def counting(self: VectorizedTorchLearner, params: Params, datasets: Any, *rest: Any) -> Any:
        batches.append(len(datasets))
        return batched(self, params, datasets, *rest)

    monkeypatch.setattr(VectorizedTorchLearner, "fit_many", counting)
    _train(_config(BackendKind.VECTORIZED, STRATEGIES[0]))
    assert batches == [5, 5]  # 2 rounds of 5 clients


def test_unvectorisable_model_falls_back_to_sequential_and_says_why() -> None:
    config = parse_config(
        {
            "data": {"name": "synthetic", "num_clients": 3, "max_samples_per_client": 20},
            "model": {"name": "lstm", "hidden": [8]},
            "simulation": {"backend": "vectorized"},
        }
    )
    exp = build(config)  # an LSTM on synthetic features: built, never trained here
    assert exp.backend is BackendKind.SEQUENTIAL
    assert any("vectorized backend not used" in n and "LSTM" in n for n in exp.notes)


def test_process_backend_needs_a_picklable_factory() -> None:
    def local_factory(cid: ClientId) -> ClientApp:  # a closure: cannot be pickled
        raise AssertionError("never called")

    backend = ProcessBackend(workers=1)
    ins = EvaluateIns("run", 1, Params.from_arrays({"w": np.zeros(1, np.float32)}))
    with pytest.raises(TypeError, match="picklable"):
        backend.run(local_factory, [Job("a", ins, {})])
    backend.close()


@dataclass(frozen=True)
class RecordingFactory:
    """Builds participants as ``clients`` does, leaving a file named by the process id."""

    clients: ConfiguredClients
    directory: Path

    def __call__(self, cid: ClientId) -> ClientApp:
        (self.directory / str(os.getpid())).touch()
        return self.clients(cid)


@pytest.mark.slow
@pytest.mark.timeout(600)  # starts worker processes until each has answered
def test_start_warms_every_worker_up_before_the_first_round(tmp_path: Path) -> None:
    exp = build(_config(BackendKind.PROCESS, STRATEGIES[0]))
    recording = RecordingFactory(exp.clients, tmp_path)
    backend = ProcessBackend(workers=2)
    try:
        backend.start(recording, warm_up=exp.dataset.client_ids()[0])
        started = {p.name for p in tmp_path.iterdir()}
        assert len(started) == 2  # each worker built a participant
        ins = EvaluateIns("run", 1, exp.initial_state().params)
        results = backend.run(recording, [Job(c, ins, {}) for c in exp.dataset.client_ids()])
    finally:
        backend.close()
    assert all(r.error is None for r in results)
    assert {p.name for p in tmp_path.iterdir()} == started  # the same workers ran the round
