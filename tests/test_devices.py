"""Simulated devices: drop-outs, stragglers past the deadline, and per-client local work."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedswarm.driver import run_rounds
from fedswarm.reports import RoundReport
from fedswarm.rounds import QuorumError
from fedswarm.run.build import build
from fedswarm.run.config import BackendKind, RunConfig, parse_config
from fedswarm.simulation.devices import DeviceModel
from fedswarm.strategy import ServerState
from fedswarm.training import LocalTraining


def test_devices_are_deterministic_and_behave_as_configured() -> None:
    model = DeviceModel(seed=1, dropout=0.3, speed_sigma=1.0, steps_per_second=10, min_epochs=2)
    ids = [f"c{i}" for i in range(400)]
    assert [model.speed(c) for c in ids] == [DeviceModel(1, 0.3, 1.0).speed(c) for c in ids]
    speeds = np.array([model.speed(c) for c in ids])
    assert 0.8 < np.median(speeds) < 1.25  # log-normal around the median device
    assert speeds.min() < 0.3
    assert speeds.max() > 3
    drops = np.mean([model.drops_out(r, c) for r in range(1, 6) for c in ids])
    assert drops == pytest.approx(0.3, abs=0.03)
    epochs = {
        model.training(r, c, LocalTraining(8, 0.1, epochs=5)).epochs for r in range(5) for c in ids
    }
    assert epochs == {2, 3, 4, 5}
    assert model.training(1, "c0", LocalTraining(8, 0.1, steps=7)).steps == 7  # steps: as told
    assert model.seconds("c0", 30) == pytest.approx(30 / (10 * model.speed("c0")))
    with pytest.raises(ValueError, match="dropout"):
        DeviceModel(seed=0, dropout=1.0)


def _config(simulation: dict[str, Any], strategy: dict[str, Any] | None = None) -> RunConfig:
    return parse_config(
        {
            "seed": 5,
            "rounds": 3,
            "data": {"name": "digits", "num_clients": 12, "partition": "iid"},
            "model": {"name": "mlp", "hidden": [16]},
            "client": {"epochs": 3, "batch_size": 16, "lr": 0.05},
            "strategy": {"name": "fedavg", **(strategy or {})},
            "evaluation": {"central": False},
            "simulation": simulation,
        }
    )


def _run(config: RunConfig) -> tuple[ServerState, list[RoundReport]]:
    exp = build(config)
    reports: list[RoundReport] = []
    transport = exp.transport()
    try:
        state = run_rounds(
            exp.strategy,
            transport,
            exp.initial_state(),
            rounds=config.rounds,
            run=exp.run,
            policy=exp.policy,
            on_round=lambda s, r: reports.append(r),
        )
    finally:
        transport.close()
    return state, reports


def test_dropouts_and_stragglers_are_failures_and_the_round_goes_on() -> None:
    # ~9 steps per client-epoch x 3 epochs at 100 steps/s: a median device needs ~0.25 s
    config = _config({"dropout": 0.25, "speed_sigma": 1.0}, {"deadline_s": 0.3})
    state, reports = _run(config)
    assert state.round == 3
    assert sum(r.num_failures for r in reports) > 0
    assert all(r.num_clients + r.num_failures == 12 for r in reports)
    exp = build(config)
    transport = exp.transport()
    requests = exp.strategy.configure_fit(exp.initial_state(), transport.available(), exp.run)
    outcomes = transport.exchange(requests, timeout=0.3)
    reasons = {getattr(o, "reason", "reply").split(":")[0] for o in outcomes}
    assert reasons == {"reply", "dropped out (simulated)", "straggler"}
    stragglers = [o.client_id for o in outcomes if "straggler" in getattr(o, "reason", "")]
    assert not set(stragglers) & set(transport.memories)  # late replies change nothing


def test_quorum_fails_a_round_when_too_many_devices_drop_out() -> None:
    with pytest.raises(QuorumError, match=r"round 1: .* the quorum is 12"):
        _run(_config({"dropout": 0.5}, {"min_replies": 12}))


@pytest.mark.parametrize(
    "backend", [BackendKind.VECTORIZED, pytest.param(BackendKind.PROCESS, marks=pytest.mark.slow)]
)
def test_per_client_epochs_give_the_same_model_on_every_backend(backend: BackendKind) -> None:
    hetero = {"min_epochs": 1, "speed_sigma": 0.5, "dropout": 0.1}
    reference, _ = _run(_config({**hetero, "backend": "sequential"}))
    other, _ = _run(_config({**hetero, "backend": backend.value}))
    np.testing.assert_allclose(other.params.flat, reference.params.flat, rtol=0, atol=1e-5)
    uniform, _ = _run(_config({"backend": "sequential"}))
    assert not np.allclose(uniform.params.flat, reference.params.flat, atol=1e-4)
