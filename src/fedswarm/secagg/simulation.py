"""Simulation aids for secure rounds: trivial participants and dropouts at any stage.

:class:`VectorClients` builds participants whose "training" returns a fixed random float32
vector (so a benchmark measures the protocol, not learning); :class:`StageDropouts` wraps a
transport and drops chosen participants from chosen stages, as a participant vanishing in
mid-round would.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.entropy import SimulatedSecrets
from fedswarm.messages import ClientId, Failure, FailureKind, Outcome, Stage
from fedswarm.params import Params
from fedswarm.secagg.messages import KINDS
from fedswarm.secagg.participant import secagg_handlers
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining
from fedswarm.transport.base import Fold, Request, Transport

__all__ = ["StageDropouts", "VectorClients", "VectorLearner", "client_vector"]


def client_vector(seed: int, client_id: ClientId, rnd: int, dim: int, scale: float) -> np.ndarray:
    """The update participant ``client_id`` sends in round ``rnd``: uniform in ±scale."""
    rng = np.random.default_rng([seed, zlib.crc32(client_id.encode()), rnd])
    return rng.uniform(-scale, scale, dim).astype(np.float32)


@dataclass(frozen=True)
class VectorLearner:
    client_id: ClientId
    seed: int
    dim: int
    scale: float = 0.5
    examples: int = 1

    def init_params(self, seed: int) -> Params:
        return Params.from_arrays({"w": np.zeros(self.dim, np.float32)})

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        rnd = seed  # the public seed differs per round and participant; only as a label here
        update = client_vector(self.seed, self.client_id, rnd, self.dim, self.scale)
        return LocalFit(params.flat + update, self.examples, 1, 0.5)

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        return Evaluation(0.0, 0.0, 1)


_EMPTY = ArrayDataset(np.zeros((0, 1), np.float32), np.zeros(0, np.int64))


@dataclass(frozen=True)
class VectorClients:
    """A picklable participant factory of :class:`VectorLearner` participants."""

    seed: int
    dim: int
    scale: float = 0.5
    examples: Mapping[ClientId, int] = field(default_factory=dict)

    def __call__(self, client_id: ClientId) -> ClientApp:
        learner = VectorLearner(
            client_id, self.seed, self.dim, self.scale, self.examples.get(client_id, 1)
        )
        secrets = SimulatedSecrets(self.seed, client_id)
        return ClientApp(client_id, learner, ClientData(_EMPTY, _EMPTY), secagg_handlers(), secrets)


@dataclass
class StageDropouts:
    """``drops[stage]``: who vanishes at that stage (and stays gone for the round); in every
    round, or in ``rounds`` only."""

    inner: Transport
    drops: dict[Stage, set[ClientId]] = field(default_factory=dict)
    rounds: frozenset[int] | None = None
    _gone: set[tuple[int, ClientId]] = field(default_factory=set)

    def available(self) -> Sequence[ClientId]:
        return self.inner.available()

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        sent: list[Request] = []
        out: dict[int, Outcome] = {}
        for i, (cid, ins) in enumerate(requests):
            stage = KINDS.stage_of(ins)
            now = self.rounds is None or ins.round in self.rounds
            if (now and cid in self.drops.get(stage, set())) or (ins.round, cid) in self._gone:
                self._gone.add((ins.round, cid))
                out[i] = Failure(cid, ins.round, stage, FailureKind.DROPPED, "dropped (simulated)")
            else:
                sent.append((cid, ins))
        replies = iter(self.inner.exchange(sent, timeout=timeout, fold=fold))
        return [out[i] if i in out else next(replies) for i in range(len(requests))]
