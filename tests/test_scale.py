"""Many registered clients: only the sampled ones are ever materialised."""

from __future__ import annotations

import pytest

from fedswarm.data.synthetic import SyntheticDataset
from fedswarm.driver import run_rounds
from fedswarm.run.build import build
from fedswarm.run.config import parse_config


def test_hundred_thousand_clients_materialise_only_the_sampled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[int] = []
    original = SyntheticDataset._client

    def counting(self: SyntheticDataset, k: int) -> object:
        made.append(k)
        return original(self, k)

    monkeypatch.setattr(SyntheticDataset, "_client", counting)
    config = parse_config(
        {
            "rounds": 3,
            "data": {"name": "synthetic", "num_clients": 100_000, "max_samples_per_client": 60},
            "model": {"name": "logreg"},
            "strategy": {"name": "scaffold", "clients_per_round": 10},
            "evaluation": {"central": False},
            "simulation": {"backend": "vectorized"},
        }
    )
    exp = build(config)
    transport = exp.transport()
    assert len(transport.available()) == 100_000
    state = run_rounds(exp.strategy, transport, exp.initial_state(), rounds=3, run=exp.run)
    transport.close()
    assert state.round == 3
    assert 0 < len(set(made)) <= 30  # 3 rounds x 10 sampled clients, nothing else
    assert len(transport.memories) <= 30  # SCAFFOLD state only for those who took part
