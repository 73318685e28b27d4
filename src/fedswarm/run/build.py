"""Configuration to objects: the dataset, learner, strategy, round policy and backend a
:class:`~fedswarm.run.config.RunConfig` describes, the same for simulation and deployment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import assert_never

from torch import nn

from fedswarm.aggregation import ReferenceUpdate
from fedswarm.data.partition import PartitionSpec
from fedswarm.data.registry import DataSpec
from fedswarm.driver import RoundPolicy
from fedswarm.entropy import OsSecrets, SecretSource, SimulatedSecrets
from fedswarm.presets import fedavg, fedavgm, fedopt, fedprox, scaffold
from fedswarm.privacy.build import private
from fedswarm.privacy.wire import register_privacy
from fedswarm.pytorch.device import DeviceUnavailableError, resolve_device
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.vectorized import vectorizable
from fedswarm.run.aggregators import build_aggregator
from fedswarm.run.config import (
    BackendKind,
    ConfigError,
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
from fedswarm.run.paradigm import Federated, Paradigm, ProtocolParts
from fedswarm.run.participants import ConfiguredClients, configured_dataset
from fedswarm.run.robust import fltrust_root, with_attack
from fedswarm.sampling import ForgettingSampler, PoissonSampler, Sampler, UniformSampler
from fedswarm.secagg import KINDS as SECAGG_KINDS
from fedswarm.secagg import KeyBinding, secagg_handlers
from fedswarm.secagg._types import Verify
from fedswarm.secagg.wire import register as register_secagg
from fedswarm.server_opt import AdaptiveRule
from fedswarm.split.build import split_protocol
from fedswarm.split.messages import register as register_split
from fedswarm.strategy import FitStrategy, RunInfo, Strategy
from fedswarm.training import LocalTraining
from fedswarm.transforms import ClipNorm
from fedswarm.wire import Codec, default_codec

__all__ = [
    "ProtocolParts",
    "build",
    "build_strategy",
    "data_spec",
    "local_training",
    "paradigm",
    "protocol_parts",
    "round_policy",
    "run_codec",
    "run_strategy",
]


def run_strategy(
    config: RunConfig,
    secrets: SecretSource | None = None,
    root: ReferenceUpdate | None = None,
) -> FitStrategy:
    """What a run executes: the configured strategy, under ``[privacy]`` wrapped by
    DP-FedAvg, whose noise comes from ``secrets`` (the coordinator's; default: the OS's).
    ``root``: FLTrust's update at the coordinator."""
    strategy = build_strategy(config, root)
    if config.privacy is not None:
        return private(strategy, config.privacy, secrets or OsSecrets())
    return strategy


def run_codec() -> Codec:
    """The wire codec of every configured run, for the coordinator and its participants
    alike (a participant learns its run's protocol only once connected): fedswarm's
    messages, the privacy transforms, secure aggregation's and split learning's kinds."""
    return default_codec().extended(register_privacy, register_secagg, register_split)


def protocol_parts(
    config: RunConfig, *, binding: KeyBinding | None = None, verify: Verify | None = None
) -> ProtocolParts:
    """Plain fit rounds, or ``[secure_aggregation]``'s; in deployment ``binding`` signs a
    participant's keys and checks its neighbours', ``verify`` is the coordinator's check."""
    secure = config.secure_aggregation
    if secure is None:
        return ProtocolParts()
    handlers = tuple(secagg_handlers(binding).items())
    return ProtocolParts(secure.round_protocol(verify), SECAGG_KINDS, handlers)


def local_training(config: RunConfig) -> LocalTraining:
    c = config.client
    return LocalTraining(
        batch_size=c.batch_size,
        lr=c.lr,
        epochs=c.epochs,
        steps=c.steps,
        optimizer=c.optimizer,
        momentum=c.momentum,
        weight_decay=c.weight_decay,
        precision=c.precision,
    )


def build_strategy(config: RunConfig, root: ReferenceUpdate | None = None) -> Strategy:
    """``root``: FLTrust's update at the coordinator (:func:`fedswarm.run.robust.fltrust_root`)."""
    s = config.strategy
    sampler: Sampler = UniformSampler(s.fraction, s.min_clients, s.clients_per_round)
    if s.sampling is SamplingKind.POISSON:
        sampler = PoissonSampler(s.fraction)
    sampler = _forgetting(config, sampler)
    strategy = _algorithm(s, local_training(config), sampler)
    strategy = replace(strategy, aggregator=build_aggregator(config.aggregator, root))
    if s.clip_norm is not None:
        strategy = replace(strategy, transforms=(ClipNorm(s.clip_norm),))
    return strategy


def _forgetting(config: RunConfig, sampler: Sampler) -> Sampler:
    if not config.forgotten:
        return sampler
    return ForgettingSampler(sampler, frozenset(config.forgotten))


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
        keep_updates=config.store.keep_updates,
        federated_eval=_forgetting(config, UniformSampler(clients_per_round=ev.federated_clients))
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


def _device(config: RunConfig) -> str:
    """The configured device, resolved ("auto" to what this machine has)."""
    requested = config.simulation.device.value
    try:
        return str(resolve_device(requested))
    except DeviceUnavailableError as exc:
        raise ConfigError(
            f"simulation.device = {requested!r}, but {exc}: set simulation.device = "
            '"cpu" (or "auto", which falls back to the CPU), or run where a CUDA GPU is'
        ) from None


def build(config: RunConfig, run_id: str = "local") -> Experiment:
    device = _device(config)
    spec = data_spec(config.data, config.seed)
    dataset = configured_dataset(spec)
    model_fn = model_factory(config.model, dataset)
    backend, note = _backend(config, model_fn)
    root = fltrust_root(config, dataset, model_fn, local_training(config))
    # SIMULATION ONLY: the coordinator's DP noise replays from the run seed.
    coordinator_secrets = SimulatedSecrets(config.seed, "(coordinator)")
    wrapped = run_strategy(config, coordinator_secrets, root)
    strategy, attackers = with_attack(config, dataset, wrapped)
    rounds = paradigm(config, strategy, model_fn)
    clients = ConfiguredClients(
        spec,
        config.model,
        vectorized=backend is BackendKind.VECTORIZED,
        max_clients_per_chunk=config.simulation.max_clients_per_chunk,
        device=device,
        attack=config.attack,
        attackers=attackers,
        handlers=tuple(rounds.handlers.items()),
    )
    return Experiment(
        config=config,
        dataset=dataset,
        learner=TorchLearner(model_fn, device=device),
        strategy=strategy,
        policy=round_policy(config),
        run=RunInfo(run_id, config.seed),
        clients=clients,
        backend=backend,
        notes=(note,) if note else (),
        device=device,
        paradigm=rounds,
    )


def paradigm(
    config: RunConfig,
    strategy: FitStrategy,
    model_fn: Callable[[], nn.Module],
    *,
    binding: KeyBinding | None = None,
    verify: Verify | None = None,
) -> Paradigm:
    """Split learning if the config has ``[split]``, else federated rounds of ``strategy``
    (secure aggregation's with ``[secure_aggregation]``: ``binding`` signs a participant's
    keys in deployment, ``verify`` is the coordinator's check of them)."""
    if config.split is None:
        return Federated(strategy, protocol_parts(config, binding=binding, verify=verify))
    c = config.client
    training = LocalTraining(
        batch_size=c.batch_size, lr=c.lr, epochs=1, optimizer=c.optimizer,
        momentum=c.momentum, weight_decay=c.weight_decay,
    )  # fmt: skip
    return split_protocol(config.split, training, model_fn)
