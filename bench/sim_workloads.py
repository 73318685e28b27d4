"""The simulation benchmark's workloads and the systems that run inside one child process:
fedswarm's backends and the hand-written PyTorch loop (Flower is in ``sim_flower``).

- W1: digits (standardised, 80/20 split), 100 IID clients, MLP 64-128-10, lr 0.05, B = 10,
  10 clients a round, 50 rounds (``bench/configs/w1.toml``);
- W2: the same with 1,000 clients (one or two samples each), 100 a round, 10 rounds
  (``bench/configs/w2.toml``);
- W3: Fashion-MNIST, CNN with channels (8, 16) and a 64-unit dense layer, 10,000 clients
  with Dirichlet(0.3) label skew, 1,000 a round, B = 20, lr 0.05, 5 rounds. Six samples a
  client are too few for the label-wise Dirichlet (no draw gives every client 2), so W3
  uses the client-wise one (``dirichlet_scheme = "clients"``): each client draws its label
  mix from Dir(0.3) and gets 6 images.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fedswarm.data.arrays import ArrayDataset, FederatedDataset
from fedswarm.data.registry import load_dataset
from fedswarm.pytorch.learner import batch_indices
from fedswarm.reports import RoundReport
from fedswarm.run.build import build, build_strategy, data_spec
from fedswarm.run.config import BackendKind, RunConfig, load_config, parse_config
from fedswarm.run.models import model_factory
from fedswarm.sampling import UniformSampler
from fedswarm.seeding import client_seed, round_rng
from fedswarm.training import LocalTraining

__all__ = [
    "W3",
    "Measured",
    "System",
    "accuracy",
    "initial_model",
    "local_sgd",
    "run_fedswarm",
    "run_plain",
    "sampler_of",
    "workload",
]

CONFIGS = Path(__file__).resolve().parent / "configs"

W3: dict[str, Any] = {
    "seed": 0,
    "rounds": 5,
    "data": {
        "name": "fashion_mnist",
        "num_clients": 10_000,
        "partition": "dirichlet",
        "alpha": 0.3,
        "dirichlet_scheme": "clients",  # 6 images each: the label-wise draw cannot give that
        "local_test_fraction": 0.0,
    },
    "model": {"name": "cnn", "channels": [8, 16], "hidden": [64]},
    "client": {"epochs": 1, "batch_size": 20, "lr": 0.05},
    "strategy": {"name": "fedavg", "clients_per_round": 1_000},
    "evaluation": {"every": 5},
    "simulation": {"backend": "vectorized", "workers": 2, "threads": 1},
}
# --quick: (clients, clients a round, rounds) per workload; None keeps the full value.
QUICK = {"w1": (None, None, 2), "w2": (None, None, 2), "w3": (1_000, 100, 1)}


class System(enum.Enum):
    VECTORIZED = "vectorized"
    SEQUENTIAL = "sequential"
    PROCESS = "process"
    RAY = "ray"
    PLAIN = "plain"  # FedAvg by hand in PyTorch: the no-framework reference
    FLOWER = "flower"

    @property
    def is_fedswarm(self) -> bool:
        return self.value in {k.value for k in BackendKind} or self is System.RAY


def workload(name: str, quick: bool) -> RunConfig:
    """The fedswarm config of workload ``name``; the plain loop and Flower read it too."""
    config = parse_config(W3, "W3") if name == "w3" else load_config(CONFIGS / f"{name}.toml")
    if not quick:
        return config
    clients, per_round, rounds = QUICK[name]
    raw = config.model_dump(mode="json")
    raw["rounds"] = rounds
    raw["evaluation"]["every"] = rounds
    raw["data"]["num_clients"] = clients or raw["data"]["num_clients"]
    raw["strategy"]["clients_per_round"] = per_round or raw["strategy"]["clients_per_round"]
    return parse_config(raw, f"{name} --quick")


def sampler_of(config: RunConfig) -> UniformSampler:
    """The client sampler fedswarm builds from ``config`` (``experiment.build_strategy``)."""
    s = config.strategy
    return UniformSampler(s.fraction, s.min_clients, s.clients_per_round)


@dataclass(frozen=True)
class Measured:
    """What a child process reports about its run."""

    round_seconds: tuple[float, ...]  # each fit round, sampling to aggregation
    clients_trained: int
    accuracy: float  # central test accuracy after the last round
    note: str = ""


def run_fedswarm(config: RunConfig) -> Measured:
    """``fedswarm run`` minus the run directory."""
    exp = build(config)
    reports: list[RoundReport] = []
    exp.train(lambda progress: reports.append(progress.report))
    final = reports[-1].central
    assert final is not None, "the workloads evaluate after the last round"
    return Measured(
        tuple(r.seconds for r in reports),
        sum(r.num_clients for r in reports),
        final.accuracy,
        "; ".join(exp.notes),
    )


def local_sgd(model: nn.Module, data: ArrayDataset, training: LocalTraining, seed: int) -> float:
    """Plain SGD over ``batch_indices`` (fedswarm's batch order); the mean batch loss.

    The step is written out (``w -= lr * g``, what ``torch.optim.SGD`` does without
    momentum): building a torch optimiser imports ``torch._dynamo`` on first use, a
    second or more that would land in the first round's time.
    """
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    params = list(model.parameters())
    loss_sum, steps = 0.0, 0
    for idx in batch_indices(len(data), training, seed):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.add_(g, alpha=-training.lr)
        loss_sum, steps = loss_sum + float(loss.detach()), steps + 1
    return loss_sum / max(steps, 1)


@torch.no_grad()
def accuracy(model: nn.Module, test: ArrayDataset) -> float:
    logits = model.eval()(torch.from_numpy(test.x))
    return int((logits.argmax(dim=1) == torch.from_numpy(test.y)).sum()) / len(test)


def initial_model(config: RunConfig, dataset: FederatedDataset) -> nn.Module:
    """The model fedswarm starts from: ``TorchLearner.init_params(seed)`` seeds the same way."""
    torch.manual_seed(config.seed)
    return model_factory(config.model, dataset)()


def run_plain(config: RunConfig) -> Measured:
    """FedAvg as a PyTorch user would write it, with no framework: the reference.

    It borrows fedswarm's dataset, client sampler, seeds and batch order, and nothing
    else, so that it trains on exactly the batches fedswarm's backends train on: then any
    difference in time or accuracy is the framework's, not the data's. The local loop and
    the example-weighted average are written out here in torch.
    """
    torch.set_num_threads(config.simulation.threads)
    dataset = load_dataset(data_spec(config.data, config.seed))
    model, sampler, seed = initial_model(config, dataset), sampler_of(config), config.seed
    training = build_strategy(config).training
    weights = [p.detach().clone() for p in model.parameters()]  # the global model
    seconds, trained = [], 0
    for rnd in range(1, config.rounds + 1):
        start = time.perf_counter()
        total = [torch.zeros_like(w) for w in weights]
        examples = 0
        for cid in sampler.sample(dataset.client_ids(), round_rng(seed, rnd, "sample")):
            data = dataset.client(cid).train
            with torch.no_grad():  # start from the global model
                for p, w in zip(model.parameters(), weights, strict=True):
                    p.copy_(w)
            local_sgd(model.train(), data, training, client_seed(seed, rnd, cid))
            with torch.no_grad():
                for t, p in zip(total, model.parameters(), strict=True):
                    t.add_(p, alpha=len(data))
            examples += len(data)
            trained += 1
        weights = [t / examples for t in total]
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights, strict=True):
            p.copy_(w)
    return Measured(tuple(seconds), trained, accuracy(model, dataset.central_test))
