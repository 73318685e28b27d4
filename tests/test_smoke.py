"""End to end on the embedded dataset: every algorithm learns digits in a few rounds."""

from __future__ import annotations

import pytest

from fedswarm.client import ClientApp
from fedswarm.data.digits import load_digits
from fedswarm.data.partition import Partition, PartitionSpec
from fedswarm.driver import run_rounds
from fedswarm.presets import fedavg, fedprox, scaffold
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.models import MLP
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.strategy import RunInfo, Strategy
from fedswarm.training import LocalTraining

TRAINING = LocalTraining(batch_size=10, lr=0.05, epochs=1)


@pytest.mark.parametrize(
    "strategy", [fedavg(TRAINING), fedprox(TRAINING, mu=0.01), scaffold(TRAINING)]
)
def test_algorithms_learn_digits(strategy: Strategy) -> None:
    data = load_digits(num_clients=10, partition=PartitionSpec(Partition.DIRICHLET, alpha=0.5))
    learner = TorchLearner(lambda: MLP(64, (32,), 10))
    transport = InMemoryTransport(
        list(data.client_ids()), lambda cid: ClientApp(cid, learner, data.client(cid))
    )
    start = strategy.init(learner.init_params(seed=0))
    before = learner.evaluate(start.params, data.central_test).accuracy
    final = run_rounds(strategy, transport, start, rounds=8, run=RunInfo("t", 0))
    after = learner.evaluate(final.params, data.central_test).accuracy
    assert before < 0.3
    assert after > 0.8
