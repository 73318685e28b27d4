"""A simulation built from a :class:`~fedswarm.config.RunConfig`: the config's only consumer.

``build(config)`` turns validated configuration into the framework's objects (dataset,
learner, strategy, round policy); ``simulate`` runs them over the in-memory transport,
writing a run directory and resuming from its checkpoint if one is there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import assert_never

import torch
from torch import nn

from fedswarm.algorithms.presets import fedavg, fedavgm, fedopt, fedprox, scaffold
from fedswarm.checkpoint import Checkpoint
from fedswarm.config import (
    BackendKind,
    ConfigError,
    DataConfig,
    FedAvgConfig,
    FedAvgMConfig,
    FedOptConfig,
    FedProxConfig,
    RunConfig,
    ScaffoldConfig,
    StrategyConfig,
)
from fedswarm.data.arrays import FederatedDataset
from fedswarm.data.partition import PartitionSpec
from fedswarm.data.registry import DataSpec
from fedswarm.driver import RoundPolicy, RoundReport, run_rounds
from fedswarm.learner import Learner, LocalTraining
from fedswarm.messages import ClientId, ClientMemory
from fedswarm.models import model_factory
from fedswarm.pytorch.device import DeviceUnavailableError, device_settings, resolve_device
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.vectorized import vectorizable
from fedswarm.rundir import RunDirectory
from fedswarm.sampling import UniformSampler
from fedswarm.server_opt import AdaptiveRule
from fedswarm.simulation.backends import (
    Backend,
    ProcessBackend,
    SequentialBackend,
    VectorizedBackend,
)
from fedswarm.simulation.devices import DeviceModel
from fedswarm.simulation.participants import ConfiguredClients, configured_dataset
from fedswarm.simulation.ray_backend import RayBackend
from fedswarm.strategy import RunInfo, ServerState, Strategy
from fedswarm.transforms import ClipNorm
from fedswarm.transport.memory import InMemoryTransport

__all__ = [
    "Experiment",
    "RoundProgress",
    "build",
    "build_strategy",
    "data_spec",
    "round_policy",
    "simulate",
    "torch_settings",
]


@dataclass(frozen=True)
class Experiment:
    config: RunConfig
    dataset: FederatedDataset
    learner: Learner  # for the initial model and central evaluation
    strategy: Strategy
    policy: RoundPolicy
    run: RunInfo
    clients: ConfiguredClients
    backend: BackendKind  # what actually runs, after any fallback
    notes: tuple[str, ...] = ()  # what the user should know (e.g. why a fallback happened)
    device: str = "cpu"  # where participants train and the model is evaluated (resolved)

    def transport(self) -> InMemoryTransport:
        """Participants under the configured backend, its workers started (each has loaded
        the data and built a participant), so rounds run in steady state from the first;
        ``close()`` it when done."""
        sim = self.config.simulation
        # Workers on a GPU set its math as the driver does; Ray gives each actor a share.
        on_gpu = self.device != "cpu"
        tf32, gpus = (sim.tf32, sim.ray_gpus_per_actor) if on_gpu else (None, 0.0)
        backends: dict[BackendKind, Callable[[], Backend]] = {
            BackendKind.SEQUENTIAL: SequentialBackend,
            BackendKind.VECTORIZED: VectorizedBackend,
            BackendKind.PROCESS: lambda: ProcessBackend(sim.workers, tf32=tf32),
            BackendKind.RAY: lambda: RayBackend(
                sim.ray_address, sim.ray_actors, gpus_per_actor=gpus, tf32=tf32
            ),
        }
        backend = backends[self.backend]()
        try:
            backend.start(self.clients, warm_up=self.dataset.client_ids()[0])
        except BaseException:
            backend.close()
            raise
        return InMemoryTransport(
            list(self.dataset.client_ids()),
            self.clients,
            fail_fast=self.backend is BackendKind.SEQUENTIAL,  # the debug backend re-raises
            backend=backend,
            devices=_devices(self.config),
        )

    def initial_state(self) -> ServerState:
        return self.strategy.init(self.learner.init_params(self.config.seed))

    def train(
        self,
        on_round: Callable[[RoundProgress], None] = lambda progress: None,
        resume: Checkpoint | None = None,
    ) -> ServerState:
        """Every configured round in memory, no files (``simulate`` adds the run directory).

        Sets the run's torch settings (deterministic kernels, thread count) for its duration
        and closes the backend's workers on every path.
        """
        central = (
            (lambda p: self.learner.evaluate(p, self.dataset.central_test))
            if self.config.evaluation.central
            else None
        )
        sim = self.config.simulation
        with torch_settings(sim.threads), device_settings(self.device, sim.tf32):
            state = resume.state if resume else self.initial_state()
            transport = self.transport()
            transport.memories.update(resume.memories if resume else {})
            try:
                return run_rounds(
                    self.strategy,
                    transport,
                    state,
                    rounds=self.config.rounds,
                    run=self.run,
                    policy=self.policy,
                    central_eval=central,
                    on_round=lambda s, r: on_round(RoundProgress(s, r, transport.memories)),
                )
            finally:
                transport.close()


@dataclass(frozen=True, eq=False)
class RoundProgress:
    """A completed round as :meth:`Experiment.train` reports it."""

    state: ServerState
    report: RoundReport
    memories: Mapping[ClientId, ClientMemory]  # participants' memories, for checkpoints


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
        precision=c.precision,
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


def _devices(config: RunConfig) -> DeviceModel | None:
    sim = config.simulation
    if not sim.simulates_devices:
        return None
    return DeviceModel(
        config.seed, sim.dropout, sim.speed_sigma, sim.steps_per_second, sim.min_epochs
    )


def _backend(config: RunConfig, model_fn: Callable[[], nn.Module]) -> tuple[BackendKind, str]:
    """The backend to use and, when it is not the configured one, why."""
    kind = config.simulation.backend
    if kind is not BackendKind.VECTORIZED:
        return kind, ""
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
    clients = ConfiguredClients(
        spec,
        config.model,
        vectorized=backend is BackendKind.VECTORIZED,
        max_clients_per_chunk=config.simulation.max_clients_per_chunk,
        device=device,
    )
    return Experiment(
        config=config,
        dataset=dataset,
        learner=TorchLearner(model_fn, device=device),
        strategy=build_strategy(config),
        policy=round_policy(config),
        run=RunInfo(run_id, config.seed),
        clients=clients,
        backend=backend,
        notes=(note,) if note else (),
        device=device,
    )


def simulate(
    config: RunConfig,
    out: Path,
    on_round: Callable[[RoundReport], None] = lambda r: None,
    log: Callable[[str], None] = lambda line: None,
) -> ServerState:
    """Run ``config`` in simulation, writing (or resuming) the run directory ``out``.

    ``log`` receives notes the user should see (a backend fallback, a resumed run).
    """
    exp = build(config)
    for note in exp.notes:
        log(note)
    rundir = RunDirectory.open(out, config)
    checkpoint = rundir.checkpoint()  # before any workers start: a bad one fails fast
    if checkpoint:
        log(f"resuming {out} after round {checkpoint.state.round}")

    def record(progress: RoundProgress) -> None:
        rundir.record_round(progress.state, progress.report, progress.memories)
        on_round(progress.report)

    final = exp.train(record, resume=checkpoint)
    rundir.finish(final)
    return final


@contextmanager
def torch_settings(threads: int) -> Iterator[None]:
    """Bit-reproducible kernels and the run's thread count; the caller's settings after.

    Small federated models train fastest on one thread per process: the parallelism is
    across participants (vectorised or in worker processes), not inside each matmul.
    Deterministic mode's debugging aid that fills every new tensor with NaN is off: it
    changes no result and costs about 6% of a vectorised CNN round.
    """
    fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), fill
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.set_num_threads(before[1])
        torch.utils.deterministic.fill_uninitialized_memory = before[2]  # type: ignore[attr-defined]
