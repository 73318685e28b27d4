"""An experiment: a built configuration, run in memory over the in-memory transport.

:func:`fedswarm.run.build.build` makes one from a config; :meth:`Experiment.train` runs every
round with the configured simulation backend (``fedswarm.run.simulate`` adds the run
store).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fedswarm.checkpoint import Checkpoint
from fedswarm.data.arrays import FederatedDataset
from fedswarm.driver import RoundPolicy
from fedswarm.learner import Learner
from fedswarm.messages import ClientId, ClientMemory
from fedswarm.pytorch.device import device_settings
from fedswarm.pytorch.settings import torch_settings
from fedswarm.reports import RoundReport
from fedswarm.run.config import BackendKind, RunConfig
from fedswarm.run.paradigm import Federated, Paradigm
from fedswarm.run.participants import ConfiguredClients
from fedswarm.simulation.backends import (
    Backend,
    SequentialBackend,
    VectorizedBackend,
)
from fedswarm.simulation.devices import DeviceModel
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.simulation.process import ProcessBackend
from fedswarm.simulation.ray_backend import RayBackend
from fedswarm.strategy import FitStrategy, RunInfo, ServerState

__all__ = ["Experiment", "RoundProgress", "devices"]


@dataclass(frozen=True)
class Experiment:
    config: RunConfig
    dataset: FederatedDataset
    learner: Learner  # for the initial model and central evaluation
    strategy: FitStrategy  # a Strategy, or a wrapper around one
    policy: RoundPolicy
    run: RunInfo
    clients: ConfiguredClients
    backend: BackendKind  # what actually runs, after any fallback
    notes: tuple[str, ...] = ()  # what the user should know (e.g. why a fallback happened)
    device: str = "cpu"  # where participants train and the model is evaluated (resolved)
    paradigm: Paradigm | None = None  # None: federated rounds of ``strategy``

    @property
    def rounds(self) -> Paradigm:
        """The round loop and what it needs of participants and transports."""
        return self.paradigm or Federated(self.strategy)

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
            devices=devices(self.config),
            kinds=self.rounds.kinds,
        )

    def initial_state(self) -> ServerState:
        return self.rounds.initial_state(self.learner.init_params(self.config.seed))

    def train(
        self,
        on_round: Callable[[RoundProgress], None] = lambda progress: None,
        resume: Checkpoint | None = None,
        on_stop: Callable[[str], None] = lambda why: None,
    ) -> ServerState:
        """Every configured round in memory, no files (``simulate`` adds the run store).

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
                return self.rounds.run_rounds(
                    transport,
                    state,
                    rounds=self.config.rounds,
                    run=self.run,
                    policy=self.policy,
                    central_eval=central,
                    on_round=lambda s, r: on_round(RoundProgress(s, r, transport.memories)),
                    on_stop=lambda s, why: on_stop(why),
                )
            finally:
                transport.close()


@dataclass(frozen=True, eq=False)
class RoundProgress:
    """A completed round as :meth:`Experiment.train` reports it."""

    state: ServerState
    report: RoundReport
    memories: Mapping[ClientId, ClientMemory]  # participants' memories, for checkpoints


def devices(config: RunConfig) -> DeviceModel | None:
    sim = config.simulation
    if not sim.simulates_devices:
        return None
    return DeviceModel(
        config.seed, sim.dropout, sim.speed_sigma, sim.steps_per_second, sim.min_epochs
    )
