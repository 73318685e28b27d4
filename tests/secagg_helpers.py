"""Shared pieces of the secure-aggregation tests: a federation of trivial participants, one
round run directly, and the plain modular sum the secure one must equal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fedswarm.client import ClientApp
from fedswarm.driver import pump
from fedswarm.messages import ClientId, FitIns, Outcome, Stage
from fedswarm.params import Params
from fedswarm.presets import fedavg
from fedswarm.sampling import UniformSampler
from fedswarm.secagg import KINDS, RoundSetup, SecureSum, harary_graph, secure_sum
from fedswarm.secagg.crypto.prg import word_dtype
from fedswarm.secagg.simulation import StageDropouts, VectorClients
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.strategy import RunInfo, Strategy
from fedswarm.training import LocalTraining
from fedswarm.transport.base import Fold, Request, Transport

RUN = RunInfo("secagg-test", 0)


class Factory(Protocol):
    """Builds a participant; ``dim`` is its update's length."""

    @property
    def dim(self) -> int: ...

    def __call__(self, client_id: ClientId) -> ClientApp: ...


def strategy(n: int) -> Strategy:
    training = LocalTraining(batch_size=1, lr=0.1, epochs=1)
    return fedavg(training, UniformSampler(clients_per_round=n))


def fits(ids: Sequence[ClientId], dim: int, rnd: int = 1) -> list[tuple[ClientId, FitIns]]:
    s = strategy(len(ids))
    state = s.init(Params.from_arrays({"w": np.zeros(dim, np.float32)}))
    out = s.configure_fit(state, ids, RUN)
    return [(c, FitIns(i.run_id, rnd, *_rest(i))) for c, i in out]


def _rest(i: FitIns) -> tuple:  # type: ignore[type-arg]
    return (i.params, i.training, i.step, i.seed, i.transforms)


def transport(
    ids: Sequence[ClientId],
    make: Factory,
    drops: Mapping[Stage, set[ClientId]] | None = None,
    rounds: frozenset[int] | None = None,
) -> StageDropouts:
    inner = Recording(InMemoryTransport(list(ids), make, fail_fast=False, kinds=KINDS))
    return StageDropouts(inner, dict(drops or {}), rounds)


@dataclass
class Recording:
    """Keeps every outcome the coordinator received: its whole view of the participants."""

    inner: Transport
    seen: list[Outcome] = field(default_factory=list)

    def available(self) -> Sequence[ClientId]:
        return self.inner.available()

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        out = self.inner.exchange(requests, timeout=timeout, fold=fold)
        self.seen.extend(out)
        return out


def run_round(
    ids: Sequence[ClientId],
    make: Factory,
    degree: int,
    threshold: int,
    drops: Mapping[Stage, set[ClientId]] | None = None,
    *,
    bits: int = 32,
    rnd: int = 1,
    via: Transport | None = None,
) -> tuple[SecureSum, list[tuple[ClientId, FitIns]]]:
    dim = make.dim
    graph = harary_graph(list(ids), degree, np.random.default_rng(rnd))
    setup = RoundSetup(RUN.run_id, rnd, graph, threshold, bits, 1.0, 1000)
    f = fits(ids, dim, rnd)
    return pump(secure_sum(setup, f), via or transport(ids, make, drops), None), f


def plain_sum(
    done: SecureSum, make: VectorClients, f: Sequence[tuple[ClientId, FitIns]]
) -> np.ndarray:
    """The modular sum of the survivors' encoded updates, recomputed in the clear from their
    reproducible (simulated) secrets: what the secure sum must equal, bit for bit."""
    assert done.encoding is not None
    by_id = dict(f)
    total = np.zeros(make.dim + 2, np.uint64)
    for c in done.survivors:
        app = make(c)
        res, _ = app.fit(by_id[c], {})
        rng = app.secrets.generator(by_id[c].round, "secagg.rounding")
        total += done.encoding.encode(res.update, res.num_examples, res.train_loss, rng)
    q = done.encoding.quantiser
    return (total & np.uint64(q.modulus - 1)).astype(word_dtype(q.bits))
