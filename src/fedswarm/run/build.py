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
from fedswarm.entropy import OsSecrets, SecretSource, SimulatedSecrets
from fedswarm.presets import fedavg, fedavgm, fedopt, fedprox, scaffold
from fedswarm.privacy.build import private
from fedswarm.privacy.wire import register_privacy
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
    SamplingKind,
    ScaffoldConfig,
    StrategyConfig,
)
from fedswarm.run.experiment import Experiment
from fedswarm.run.models import model_factory
from fedswarm.run.participants import ConfiguredClients, configured_dataset
from fedswarm.sampling import PoissonSampler, Sampler, UniformSampler
from fedswarm.server_opt import AdaptiveRule
from fedswarm.strategy import FitStrategy, RunInfo, Strategy
from fedswarm.training import LocalTraining
from fedswarm.transforms import ClipNorm
from fedswarm.wire import Codec, default_codec

__all__ = ["build", "build_strategy", "data_spec", "round_policy", "run_codec", "run_strategy"]


def run_strategy(config: RunConfig, secrets: SecretSource | None = None) -> FitStrategy:
    """What a run executes: the configured strategy, under ``[privacy]`` wrapped by
    DP-FedAvg, whose noise comes from ``secrets`` (the coordinator's; default: the OS's)."""
    strategy = build_strategy(config)
    if config.privacy is not None:
        return private(strategy, config.privacy, secrets or OsSecrets())
    return strategy


def run_codec() -> Codec:
    """The wire codec of a configured run: fedswarm's messages and the privacy transforms
    (the coordinator and its participants must use the same)."""
    return default_codec().extended(register_privacy)


def build_strategy(config: RunConfig) -> Strategy:
    """The configured algorithm (sampler, client update, aggregator, server optimiser)."""
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
    sampler: Sampler = UniformSampler(s.fraction, s.min_clients, s.clients_per_round)
    if s.sampling is SamplingKind.POISSON:
        sampler = PoissonSampler(s.fraction)
    strategy = _algorithm(s, training, sampler)
    if s.clip_norm is not None:
        strategy = replace(strategy, transforms=(ClipNorm(s.clip_norm),))
    return strategy


def _algorithm(s: StrategyConfig, training: LocalTraining, sampler: Sampler) -> Strategy:
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
    if (why := vectorizable(model_fn)) is not None:
        return BackendKind.SEQUENTIAL, f"vectorized backend not used: {why}; running sequential"
    return kind, ""


def build(config: RunConfig, run_id: str = "local") -> Experiment:
    spec = data_spec(config.data, config.seed)
    dataset = configured_dataset(spec)
    model_fn = model_factory(config.model, dataset)
    backend, note = _backend(config, model_fn)
    clients = ConfiguredClients(
        spec,
        config.model,
        vectorized=backend is BackendKind.VECTORIZED,
        max_clients_per_chunk=config.simulation.max_clients_per_chunk,
    )
    return Experiment(
        config=config,
        dataset=dataset,
        learner=TorchLearner(model_fn),
        # SIMULATION ONLY: the coordinator's DP noise replays from the run seed.
        strategy=run_strategy(config, SimulatedSecrets(config.seed, "(coordinator)")),
        policy=round_policy(config),
        run=RunInfo(run_id, config.seed),
        clients=clients,
        backend=backend,
        notes=(note,) if note else (),
    )
