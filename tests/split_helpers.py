"""Small split-learning fixtures shared by the split tests: data, participants, runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from torch import nn

from fedswarm.client import ClientApp, Handler, Session
from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.entropy import SimulatedSecrets
from fedswarm.messages import ClientId, ClientMemory, Reply
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.models import MLP
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.split import KINDS, Parts, SplitPlan, split_handlers
from fedswarm.split.messages import StepIns, StepRes

FEATURES, CLASSES = 12, 4
MODEL = partial(MLP, FEATURES, (16, 8), CLASSES)  # Flatten, L, ReLU, L, ReLU, L


def local_data(client_id: ClientId) -> ClientData:
    """A learnable toy task (the class is the argmax of the first four features); clients
    hold different amounts of data."""
    i = int(client_id[1:])
    rng, n = np.random.default_rng(i), 29 + 4 * i
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    y = x[:, :CLASSES].argmax(1).astype(np.int64)
    return ClientData(ArrayDataset(x, y), ArrayDataset(x[:5], y[:5]))


@dataclass(frozen=True)
class IdentityServer:
    """User-given parts: the whole model on the participant, nothing on the server."""

    def __call__(self) -> Parts:
        return Parts(MODEL(), nn.Sequential())


@dataclass(frozen=True)
class Participants:
    """Picklable: participants ``p0, p1, ...`` with the split handlers of ``plan``."""

    plan: SplitPlan
    model_fn: Callable[[], nn.Module] = MODEL

    def __call__(self, client_id: ClientId) -> ClientApp:
        return ClientApp(
            client_id,
            TorchLearner(self.model_fn),
            local_data(client_id),
            split_handlers(self.plan),
            SimulatedSecrets(0, client_id),
        )


def transport(plan: SplitPlan, clients: int, **kw: object) -> InMemoryTransport:
    ids = [f"p{i}" for i in range(clients)]
    return InMemoryTransport(ids, Participants(plan), kinds=KINDS, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Corrupt:
    """A participant's step handler that spoils its replies with ``spoil``."""

    inner: Handler
    spoil: Callable[[StepRes], StepRes]

    def __call__(
        self, app: ClientApp, ins: StepIns, memory: ClientMemory, session: Session
    ) -> tuple[Reply, ClientMemory]:
        res, memory = self.inner(app, ins, memory, session)
        assert isinstance(res, StepRes)
        return self.spoil(res), memory


@dataclass(frozen=True)
class WithOneBad:
    """Participants of ``plan``; ``bad``'s step replies spoiled."""

    plan: SplitPlan
    bad: ClientId
    spoil: Callable[[StepRes], StepRes]

    def __call__(self, client_id: ClientId) -> ClientApp:
        app = Participants(self.plan)(client_id)
        if client_id != self.bad:
            return app
        step = Corrupt(app.handlers[StepIns], self.spoil)
        return replace(app, handlers={**app.handlers, StepIns: step})
