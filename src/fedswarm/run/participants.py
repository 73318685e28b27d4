"""Participants built from configuration, in whichever process runs them.

:class:`ConfiguredClients` is a small picklable factory: a worker process (or Ray actor)
that receives it loads the dataset itself, once, and then builds participants on demand,
so client data is never shipped from the driver and only sampled participants exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from fedswarm.client import BUILTIN_HANDLERS, ClientApp, Handler
from fedswarm.data.arrays import FederatedDataset
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


@lru_cache(maxsize=8)
def configured_learner(
    spec: DataSpec, model: ModelConfig, vectorized: bool, max_clients_per_chunk: int | None = None
) -> Learner:
    """One learner per process and configuration: vectorised backends batch participants
    that share it, at most ``max_clients_per_chunk`` at once (None: the learner's choice)."""
    from fedswarm.pytorch.learner import TorchLearner
    from fedswarm.pytorch.vectorized import VectorizedTorchLearner

    model_fn = model_factory(model, configured_dataset(spec))
    if vectorized:
        return VectorizedTorchLearner(model_fn, max_clients_per_chunk=max_clients_per_chunk)
    return TorchLearner(model_fn)


@dataclass(frozen=True)
class ConfiguredClients:
    """``max_clients_per_chunk`` applies to the vectorised learner only.

    Participants' secrets are :class:`~fedswarm.entropy.SimulatedSecrets` of the data
    seed: SIMULATION ONLY, so that a simulated run replays bit for bit (a deployed
    participant draws its own from the OS).
    """

    data: DataSpec
    model: ModelConfig
    vectorized: bool = False
    max_clients_per_chunk: int | None = None
    handlers: Mapping[type, Handler] = field(default_factory=lambda: BUILTIN_HANDLERS)

    def __call__(self, client_id: ClientId) -> ClientApp:
        dataset = configured_dataset(self.data)
        learner = configured_learner(
            self.data, self.model, self.vectorized, self.max_clients_per_chunk
        )
        secrets = SimulatedSecrets(self.data.seed, client_id)
        data = dataset.client(client_id)
        return ClientApp(client_id, learner, data, self.handlers, secrets)
