"""Contribution scores on a digits run's kept updates: the stored updates are the round's
real ones (their weighted mean is the next version), and the scores per round add up."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedswarm.cli import app
from fedswarm.registry import find, open_run
from fedswarm.registry.scores import contributions, totals
from fedswarm.run.config import loads_config
from fedswarm.run.simulate import simulate
from fedswarm.run.store import RunStoreError

CONFIG = """
seed = 1
rounds = 3
[data]
name = "digits"
num_clients = 5
[model]
hidden = [8]
[client]
steps = 3
batch_size = 16
lr = 0.1
[evaluation]
every = 3
[store]
keep_updates = true
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow  # about 7 s: a 3-round run and 3 rounds of scores
def test_kept_updates_are_the_rounds_and_scores_add_up(tmp_path: Path) -> None:
    out = tmp_path / "run"
    simulate(loads_config(CONFIG), out)
    store = open_run(out)
    assert store.rounds_with_updates() == [1, 2, 3]
    for rnd in (1, 2, 3):
        kept = store.round_updates(rnd)
        assert kept.client_ids == find(store, rnd).contributors
        w = kept.weights.astype(np.float64)
        mean = w @ kept.updates.astype(np.float64) / w.sum()
        base, after = store.load_version(rnd - 1).flat, store.load_version(rnd).flat
        np.testing.assert_allclose(base + mean, after, atol=1e-6)  # FedAvg: the real round
    start = time.perf_counter()
    scores = contributions(store)
    print(f"scores of 3 rounds x 5 participants: {time.perf_counter() - start:.2f}s")
    assert [s.round for s in scores] == [1, 2, 3]
    for s in scores:
        assert s.shapley.shape == s.leave_one_out.shape == (5,)
        assert s.evaluations <= 2**5
    summed = totals(scores)
    assert len(summed) == 5
    result = CliRunner().invoke(app, ["models", "scores", "--run", str(out)])
    assert result.exit_code == 0
    assert "shapley" in result.output


def test_scores_need_kept_updates(tmp_path: Path) -> None:
    out = tmp_path / "run"
    simulate(loads_config(CONFIG.replace("keep_updates = true", "keep_updates = false")), out)
    with pytest.raises(RunStoreError, match="keep_updates"):
        open_run(out).round_updates(1)
