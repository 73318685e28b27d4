"""Flower's simulation of a workload, for the simulation benchmark (W1 and W2 only)."""

from __future__ import annotations

import os
import sys
import time

import torch

from bench import sim_workloads
from bench.sim_workloads import Measured, accuracy, initial_model, local_sgd, sampler_of
from fedswarm.data.registry import load_dataset
from fedswarm.run.build import build_strategy, data_spec
from fedswarm.run.config import RunConfig
from fedswarm.run.models import model_factory
from fedswarm.run.participants import configured_dataset
from fedswarm.seeding import client_seed

__all__ = ["run_flower"]


def run_flower(config: RunConfig) -> Measured:
    """Flower's simulation (``run_simulation`` with a ``ClientApp`` and a ``ServerApp``
    running the message-API ``FedAvg``), one CPU per client, on the same partitions.

    Clients train with :func:`local_sgd`, the plain loop's, so Flower's overhead is all
    that differs; Flower samples clients its own way (Python's ``random``). A round's time
    is from the end of one ``evaluate_fn`` call (Flower calls it after every round) to the
    start of the next, which leaves out the central evaluation done after the last round.
    """
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # this machine has no network
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from flwr.app import (  # type: ignore[import-not-found, unused-ignore]
        ArrayRecord,
        Context,
        Message,
        MetricRecord,
        RecordDict,
    )
    from flwr.clientapp import ClientApp  # type: ignore[import-not-found, unused-ignore]
    from flwr.serverapp import Grid, ServerApp  # type: ignore[import-not-found, unused-ignore]
    from flwr.serverapp.strategy import FedAvg  # type: ignore[import-not-found, unused-ignore]
    from flwr.simulation import run_simulation  # type: ignore[import-not-found, unused-ignore]
    from ray import cloudpickle

    # The ClientApp's function runs in Ray actors, which need not be able to import the
    # bench package: ship this module's and the workloads' code by value.
    for module in (sys.modules[__name__], sim_workloads):
        cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]

    spec = data_spec(config.data, config.seed)
    dataset = load_dataset(spec)
    n, training = len(dataset.client_ids()), build_strategy(config).training
    k = sampler_of(config).count(n)
    marks: list[float] = []  # entry and exit of every evaluate_fn call
    final: list[float] = []
    replies: list[int] = []  # per round: the training replies FedAvg aggregated

    def train(msg: Message, context: Context) -> Message:  # runs in a Ray actor
        torch.set_num_threads(1)
        data_in_actor = configured_dataset(spec)  # loaded once per actor process
        cid = data_in_actor.client_ids()[int(context.node_config["partition-id"])]
        model = model_factory(config.model, data_in_actor)()
        model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
        data = data_in_actor.client(cid).train
        rnd = msg.content.config_records["config"]["server-round"]
        assert isinstance(rnd, int), "FedAvg sends the round number"
        loss = local_sgd(model.train(), data, training, client_seed(config.seed, rnd, cid))
        metrics = MetricRecord({"train_loss": loss, "num-examples": len(data)})
        reply = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
        return Message(reply, reply_to=msg)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        marks.append(time.perf_counter())
        result = None
        if server_round == config.rounds:
            model = model_factory(config.model, dataset)()
            model.load_state_dict(arrays.to_torch_state_dict())
            final.append(accuracy(model, dataset.central_test))
            result = MetricRecord({"accuracy": final[-1]})
        marks.append(time.perf_counter())
        return result

    def count_replies(records: list[RecordDict], weight_key: str) -> MetricRecord:
        replies.append(len(records))
        return MetricRecord({"replies": len(records)})

    def server_main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=k / n,
            fraction_evaluate=0.0,
            min_train_nodes=k,
            min_available_nodes=n,
            train_metrics_aggr_fn=count_replies,
        )
        initial = ArrayRecord(initial_model(config, dataset).state_dict())
        strategy.start(
            grid=grid, initial_arrays=initial, num_rounds=config.rounds, evaluate_fn=evaluate
        )

    client_app, server_app = ClientApp(), ServerApp()
    client_app.train()(train)
    server_app.main()(server_main)
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=n,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    # marks: [enter0, exit0, enter1, exit1, ...]: round r runs from exit(r-1) to enter(r)
    seconds = tuple(marks[2 * r] - marks[2 * r - 1] for r in range(1, config.rounds + 1))
    return Measured(seconds, sum(replies), final[0], "Flower samples its own clients")
