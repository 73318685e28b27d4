"""A federated optimisation strategy, composed and explicit about its state.

``Strategy`` = sampler + client update + aggregator + server optimiser. It holds no state
of its own: ``init(params) -> ServerState`` and ``aggregate_fit(state, replies, ...) ->
(ServerState, FitSummary)`` are the only transitions. Checkpointing a run is serialising a
``ServerState``; resuming is passing it back.

A round asks only for a :class:`FitStrategy`. A wrapper (differential privacy, secure
aggregation, compression) is a frozen dataclass holding an inner ``FitStrategy`` and
delegating to it: it may add transforms to the instructions, fold uploads differently or
change the sum before the inner strategy sees it, and stays transparent (same signatures,
same return shapes, inputs not modified).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from fedswarm.aggregation import (
    Accumulator,
    Aggregate,
    AggregationContext,
    Aggregator,
    StreamingAggregator,
    WeightedMean,
    WeightedSum,
    Weighting,
    check_aggregate,
    client_weights,
    stack,
)
from fedswarm.algorithms.base import ClientUpdate
from fedswarm.algorithms.local_sgd import LocalSGD
from fedswarm.messages import ClientId, FitIns, FitRes
from fedswarm.params import Params
from fedswarm.sampling import Sampler, UniformSampler
from fedswarm.seeding import client_seed, round_rng
from fedswarm.server_opt import OptimizerState, ServerOptimizer, ServerSGD
from fedswarm.training import LocalTraining
from fedswarm.transforms import UpdateTransform

__all__ = ["Budgeted", "FitStrategy", "FitSummary", "RunInfo", "ServerState", "Strategy"]


@dataclass(frozen=True)
class RunInfo:
    """Identifies a run; every participant-visible seed derives from ``seed``."""

    run_id: str
    seed: int


@dataclass(frozen=True, eq=False)
class ServerState:
    round: int  # rounds completed so far
    params: Params
    optimizer: OptimizerState
    update: Mapping[str, np.ndarray] = field(default_factory=dict)  # client-update component
    # Wrappers' state (a privacy accountant's events, an adaptive clip norm), under
    # ``namespace/name`` keys; checkpointed with the rest, carried through by ``Strategy``.
    wrapper: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class FitSummary:
    num_replies: int
    num_examples: int
    train_loss: float  # example-weighted mean of the participants' local losses
    update_norm: float  # L2 norm of the aggregated update
    # The aggregator's per-client scores, in the order of the replies sorted by client id
    # (``FitRoundResult.replied``); arrays, so left out of ``==``.
    scores: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False)
    # What wrappers add to the round's report (``namespace/name`` keys, e.g. privacy/epsilon).
    metrics: Mapping[str, float] = field(default_factory=dict)


class FitStrategy(Protocol):
    """What a fit round needs of a strategy; a wrapper implements it around an inner one."""

    @property
    def client_update(self) -> ClientUpdate:
        """Whose ``refuse`` checks the algorithm-specific part of each reply."""
        ...

    @property
    def weighting(self) -> Weighting:
        """How much each reply counts in the sum."""
        ...

    def init(self, params: Params) -> ServerState: ...

    def configure_fit(
        self, state: ServerState, available: Sequence[ClientId], run: RunInfo
    ) -> list[tuple[ClientId, FitIns]]:
        """The fit instructions of round ``state.round + 1``."""
        ...

    def accumulator(self, dim: int) -> Accumulator | None:
        """A fold for the replies' updates as they arrive, or None: aggregation needs them
        all, stacked (then ``aggregate_fit`` gets no ``summed``)."""
        ...

    def aggregate_fit(
        self,
        state: ServerState,
        replies: Sequence[FitRes],
        *,
        num_clients: int,
        run: RunInfo,
        summed: WeightedSum | None = None,
    ) -> tuple[ServerState, FitSummary]:
        """Fold the replies of round ``state.round + 1`` into a new state.

        ``summed``: the replies' updates already folded by :meth:`accumulator` as they
        arrived (then the replies' ``update`` fields are not read); ``num_clients``: the
        federation size this round.
        """
        ...


@runtime_checkable
class Budgeted(Protocol):
    """A strategy that may forbid further rounds (a privacy budget): the driver asks before
    each round and stops, saying why, when :meth:`exhausted` answers."""

    def exhausted(self, state: ServerState) -> str | None:
        """Why round ``state.round + 1`` must not run, or None if it may."""
        ...


@dataclass(frozen=True)
class Strategy:
    training: LocalTraining
    sampler: Sampler = field(default_factory=UniformSampler)
    client_update: ClientUpdate = field(default_factory=LocalSGD)
    aggregator: Aggregator = field(default_factory=WeightedMean)
    server_optimizer: ServerOptimizer = field(default_factory=ServerSGD)
    weighting: Weighting = Weighting.EXAMPLES
    transforms: tuple[UpdateTransform, ...] = ()  # participants apply them to their updates

    def __post_init__(self) -> None:
        if (why := self.client_update.unsupported(self.training)) is not None:
            raise ValueError(why)

    def init(self, params: Params) -> ServerState:
        return ServerState(
            round=0,
            params=params,
            optimizer=self.server_optimizer.init(params.flat),
            update=self.client_update.init(params.dim),
        )

    def configure_fit(
        self, state: ServerState, available: Sequence[ClientId], run: RunInfo
    ) -> list[tuple[ClientId, FitIns]]:
        """The fit instructions of round ``state.round + 1``."""
        rnd = state.round + 1
        clients = self.sampler.sample(available, round_rng(run.seed, rnd, "sample"))
        step = self.client_update.instruction(state.update)
        return [
            (
                cid,
                FitIns(
                    run.run_id,
                    rnd,
                    state.params,
                    self.training,
                    step,
                    client_seed(run.seed, rnd, cid),
                    self.transforms,
                ),
            )
            for cid in clients
        ]

    def accumulator(self, dim: int) -> Accumulator | None:
        """The aggregator's fold, if it declares one (a :class:`StreamingAggregator`)."""
        if isinstance(self.aggregator, StreamingAggregator):
            return self.aggregator.accumulator(dim)
        return None

    def aggregate_fit(
        self,
        state: ServerState,
        replies: Sequence[FitRes],
        *,
        num_clients: int,
        run: RunInfo,
        summed: WeightedSum | None = None,
    ) -> tuple[ServerState, FitSummary]:
        """Fold the replies of round ``state.round + 1`` into a new state (see
        :meth:`FitStrategy.aggregate_fit`)."""
        replies = sorted(replies, key=lambda r: r.client_id)  # order-independent result
        if not replies and (summed is None or summed.weight == 0):
            # Nobody was sampled (Poisson sampling): a round of no update, still a round.
            aggregate = Aggregate(np.zeros(state.params.dim, np.float32))
        elif summed is None:
            aggregate = self._aggregate(state, replies, run)
        elif isinstance(self.aggregator, StreamingAggregator):
            aggregate = Aggregate(summed.mean())
        else:
            raise ValueError(
                f"a summed round was given, but aggregator {self.aggregator!r} does not "
                "stream: it needs every update"
            )
        flat, opt_state = self.server_optimizer.apply(
            state.optimizer, state.params.flat, -aggregate.update
        )
        new_state = ServerState(
            round=state.round + 1,
            params=state.params.replace(flat),
            optimizer=opt_state,
            update=self.client_update.absorb(state.update, replies, num_clients),
            wrapper=state.wrapper,
        )
        return new_state, _summarise(replies, aggregate)

    def _aggregate(self, state: ServerState, replies: Sequence[FitRes], run: RunInfo) -> Aggregate:
        """The aggregator over the stacked updates, rows in ``replies``' order."""
        rnd = state.round + 1
        ids = tuple(r.client_id for r in replies)
        ctx = AggregationContext(rnd, ids, state.params, round_rng(run.seed, rnd, "aggregate"))
        weights = client_weights([r.num_examples for r in replies], self.weighting)
        out = self.aggregator(stack([r.update for r in replies]), weights, ctx)
        return check_aggregate(out, state.params.dim, len(replies), self.aggregator)


def _summarise(replies: Sequence[FitRes], aggregate: Aggregate) -> FitSummary:
    examples = np.array([r.num_examples for r in replies], np.float64)
    losses = np.array([r.train_loss for r in replies], np.float64)
    if not replies:
        loss = float("nan")  # nobody trained: no loss to report
    elif examples.sum():
        loss = float(examples @ losses / examples.sum())
    else:
        loss = float(losses.mean())
    return FitSummary(
        num_replies=len(replies),
        num_examples=int(examples.sum()),
        train_loss=loss,
        update_norm=float(np.linalg.norm(aggregate.update.astype(np.float64))),
        scores=aggregate.scores,
    )
