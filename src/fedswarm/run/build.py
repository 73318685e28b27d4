"""Configuration to objects: the dataset, learner, strategy, round policy and backend a
:class:`~fedswarm.run.config.RunConfig` describes, the same for simulation and deployment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import assert_never

from torch import nn

from fedswarm.data.partition import PartitionSpec
from fedswarm.data.registry import DataSpec
from fedswarm.driver import RoundPolicy
from fedswarm.presets import fedavg, fedavgm, fedopt, fedprox, scaffold
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.vectorized import vectorizable
from fedswarm.run.config import (
    BackendKind,
    DataConfig,
    FedAvgConfig,
    FedAvgMConfig,
    FedOptConfig,
    FedProxConfig,
    RunConfig,
    ScaffoldConfig,
    StrategyConfig,
)
from fedswarm.run.experiment import Experiment
from fedswarm.run.models import model_factory
from fedswarm.run.paradigm import Federated, Paradigm
from fedswarm.run.participants import ConfiguredClients, configured_dataset
from fedswarm.sampling import UniformSampler
from fedswarm.server_opt import AdaptiveRule
from fedswarm.split.build import split_protocol
from fedswarm.strategy import RunInfo, Strategy
from fedswarm.training import LocalTraining
from fedswarm.transforms import ClipNorm

__all__ = ["build", "build_strategy", "data_spec", "paradigm", "round_policy"]


def build_strategy(config: RunConfig) -> Strategy:
    c, s = config.client, config.strategy
    training = LocalTraining(
        batch_size=c.batch_size,
        lr=c.lr,
        epochs=c.epochs,
        steps=c.steps,
        optimizer=c.optimizer,
        momentum=c.momentum,
        weight_decay=c.weight_decay,
    )
    sampler = UniformSampler(s.fraction, s.min_clients, s.clients_per_round)
    strategy = _algorithm(s, training, sampler)
    if s.clip_norm is not None:
        strategy = replace(strategy, transforms=(ClipNorm(s.clip_norm),))
    return strategy


def _algorithm(s: StrategyConfig, training: LocalTraining, sampler: UniformSampler) -> Strategy:
    match s:  # the presets hold each algorithm's composition; config only picks one
        case FedAvgConfig():
            return fedavg(training, sampler, s.weighting)
        case FedAvgMConfig():
            return fedavgm(training, sampler, s.server_lr, s.server_momentum)
        case FedProxConfig():
            return fedprox(training, s.mu, sampler)
        case FedOptConfig():
            rule = AdaptiveRule(s.name.removeprefix("fed"))
            return fedopt(training, rule, sampler, s.server_lr, s.beta1, s.beta2, s.tau)
        case ScaffoldConfig():
            return scaffold(training, sampler, s.server_lr)
    assert_never(s)


def data_spec(cfg: DataConfig, seed: int) -> DataSpec:
    partition = None
    if cfg.partition is not None:
        partition = PartitionSpec(
            cfg.partition,
            alpha=cfg.alpha,
            min_size=cfg.min_size,
            shards_per_client=cfg.shards_per_client,
            exponent=cfg.exponent,
            dirichlet_scheme=cfg.dirichlet_scheme,
        )
    return DataSpec(
        name=cfg.name,
        num_clients=cfg.num_clients,
        partition=partition,
        seed=seed,
        local_test_fraction=cfg.local_test_fraction,
        normalize=cfg.normalize,
        min_chars=cfg.min_chars,
        max_samples_per_client=cfg.max_samples_per_client,
        synthetic_alpha=cfg.synthetic_alpha,
        synthetic_beta=cfg.synthetic_beta,
    )


def round_policy(config: RunConfig) -> RoundPolicy:
    """Quorum, deadline and evaluation schedule: the same in simulation and deployment."""
    ev = config.evaluation
    return RoundPolicy(
        min_replies=config.strategy.min_replies,
        timeout_s=config.strategy.deadline_s,
        evaluate_every=ev.every,
        federated_eval=UniformSampler(clients_per_round=ev.federated_clients)
        if ev.federated_clients
        else None,
    )


def _backend(config: RunConfig, model_fn: Callable[[], nn.Module]) -> tuple[BackendKind, str]:
    """The backend to use and, when it is not the configured one, why."""
    kind = config.simulation.backend
    if kind is not BackendKind.VECTORIZED:
        return kind, ""
    if config.split is not None:
        return BackendKind.SEQUENTIAL, "split learning has no fit rounds to vectorise; sequential"
    if (why := vectorizable(model_fn)) is not None:
        return BackendKind.SEQUENTIAL, f"vectorized backend not used: {why}; running sequential"
    return kind, ""


def build(config: RunConfig, run_id: str = "local") -> Experiment:
    spec = data_spec(config.data, config.seed)
    dataset = configured_dataset(spec)
    model_fn = model_factory(config.model, dataset)
    backend, note = _backend(config, model_fn)
    strategy = build_strategy(config)
    rounds = paradigm(config, strategy, model_fn)
    clients = ConfiguredClients(
        spec,
        config.model,
        vectorized=backend is BackendKind.VECTORIZED,
        max_clients_per_chunk=config.simulation.max_clients_per_chunk,
        handlers=rounds.handlers,
    )
    return Experiment(
        config=config,
        dataset=dataset,
        learner=TorchLearner(model_fn),
        strategy=strategy,
        policy=round_policy(config),
        run=RunInfo(run_id, config.seed),
        clients=clients,
        backend=backend,
        notes=(note,) if note else (),
        paradigm=rounds,
    )


def paradigm(config: RunConfig, strategy: Strategy, model_fn: Callable[[], nn.Module]) -> Paradigm:
    """Split learning if the config has ``[split]``, else federated rounds of ``strategy``."""
    if config.split is None:
        return Federated(strategy)
    c = config.client
    training = LocalTraining(
        batch_size=c.batch_size, lr=c.lr, epochs=1, optimizer=c.optimizer,
        momentum=c.momentum, weight_decay=c.weight_decay,
    )  # fmt: skip
    return split_protocol(config.split, training, model_fn)
