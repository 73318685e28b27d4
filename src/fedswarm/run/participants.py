"""Participants built from configuration, in whichever process runs them.

:class:`ConfiguredClients` is a small picklable factory: a worker process (or Ray actor)
that receives it loads the dataset itself, once, and then builds participants on demand,
so client data is never shipped from the driver and only sampled participants exist.
On a GPU device a process keeps each participant's data once it has built it, so that the
learner's copy on the device (made once, kept while the data lives) serves every round.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

from fedswarm.attacks import AttackConfig, malicious_app
from fedswarm.client import BUILTIN_HANDLERS, ClientApp, Handler
from fedswarm.data.arrays import ClientData, FederatedDataset
from fedswarm.data.registry import DataSpec, load_dataset
from fedswarm.entropy import SimulatedSecrets
from fedswarm.learner import Learner
from fedswarm.messages import ClientId
from fedswarm.run.config import ModelConfig
from fedswarm.run.models import model_factory

__all__ = ["ConfiguredClients", "configured_dataset", "configured_learner"]


@lru_cache(maxsize=4)
def configured_dataset(spec: DataSpec) -> FederatedDataset:
    """The dataset of ``spec``, loaded once per process."""
    return load_dataset(spec)


@cache
def _resident_client(spec: DataSpec, client_id: ClientId) -> ClientData:
    """Participant ``client_id``'s data, materialised once per process (GPU runs)."""
    return configured_dataset(spec).client(client_id)


@lru_cache(maxsize=8)
def configured_learner(
    spec: DataSpec,
    model: ModelConfig,
    vectorized: bool,
    max_clients_per_chunk: int | None = None,
    device: str = "cpu",
) -> Learner:
    """One learner per process and configuration: vectorised backends batch participants
    that share it, at most ``max_clients_per_chunk`` at once (None: the learner's choice)."""
    from fedswarm.pytorch.learner import TorchLearner
    from fedswarm.pytorch.vectorized import VectorizedTorchLearner

    model_fn = model_factory(model, configured_dataset(spec))
    if vectorized:
        return VectorizedTorchLearner(
            model_fn, max_clients_per_chunk=max_clients_per_chunk, device=device
        )
    return TorchLearner(model_fn, device=device)


@dataclass(frozen=True)
class ConfiguredClients:
    """``max_clients_per_chunk`` applies to the vectorised learner only; ``device`` is
    where participants train (a torch device name: "cpu", "cuda", "cuda:1").

    Participants' secrets are :class:`~fedswarm.entropy.SimulatedSecrets` of the data
    seed: SIMULATION ONLY, so that a simulated run replays bit for bit (a deployed
    participant draws its own from the OS).
    """

    data: DataSpec
    model: ModelConfig
    vectorized: bool = False
    max_clients_per_chunk: int | None = None
    device: str = "cpu"
    attack: AttackConfig | None = None  # what the participants in ``attackers`` do
    attackers: frozenset[ClientId] = frozenset()
    handlers: tuple[tuple[type, Handler], ...] = ()  # a protocol's own, beside the built-ins

    def __call__(self, client_id: ClientId) -> ClientApp:
        learner = configured_learner(
            self.data, self.model, self.vectorized, self.max_clients_per_chunk, self.device
        )
        if self.device == "cpu":  # fresh each time: memory grows with the sampled clients
            data = configured_dataset(self.data).client(client_id)
        else:
            data = _resident_client(self.data, client_id)
        secrets = SimulatedSecrets(self.data.seed, client_id)
        handlers = {**BUILTIN_HANDLERS, **dict(self.handlers)}
        app = ClientApp(client_id, learner, data, handlers, secrets)
        if self.attack is not None and client_id in self.attackers:
            classes = configured_dataset(self.data).num_classes
            return malicious_app(app, self.attack, classes, self.data.seed)
        return app
