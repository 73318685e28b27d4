"""Anomaly scores reach ``metrics.jsonl`` (per-round summaries) and the run store (one row
per participant, round and score), and they single out the attackers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fedswarm.aggregation import score_metrics
from fedswarm.run.build import build
from fedswarm.run.config import loads_config
from fedswarm.run.simulate import simulate
from fedswarm.run.store import RunStore

CONFIG = """
seed = 0
rounds = 2
[data]
name = "digits"
num_clients = 10
[model]
name = "logreg"
[simulation]
backend = "sequential"
[strategy]
aggregator = "krum"
[aggregator]
f = 2
[attack]
kind = "sign_flip"
count = 2
"""


def test_scores_in_metrics_jsonl_and_the_store(tmp_path: Path) -> None:
    config = loads_config(CONFIG)
    simulate(config, tmp_path / "run")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    assert {"robust/krum_max", "robust/norm_median", "robust/distance_max"} <= set(
        lines[0]["metrics"]
    )
    store = RunStore.open(tmp_path / "run", config)
    rows = store.scores()
    assert len(rows) == 2 * 10 * 3  # rounds x participants x (norm, distance, krum)
    assert store.records()[0].metrics["robust/krum_max"] == max(
        r.value for r in rows if r.round == 1 and r.name == "krum"
    )
    attackers = build(config).clients.attackers
    norms = {r.client_id: r.value for r in rows if r.round == 1 and r.name == "norm"}
    top = sorted(norms, key=norms.__getitem__)[-2:]
    assert set(top) == attackers  # -4x the honest update: the two longest


def test_score_metrics_summarise_each_score() -> None:
    got = score_metrics({"norm": np.array([1.0, 3.0, 2.0])})
    assert got == {"robust/norm_max": 3.0, "robust/norm_median": 2.0}
    assert score_metrics({}) == {}
