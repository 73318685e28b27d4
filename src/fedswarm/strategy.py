"""A federated optimisation strategy, composed and explicit about its state.

``Strategy`` = sampler + client update + aggregator + server optimiser. It holds no state
of its own: ``init(params) -> ServerState`` and ``aggregate_fit(state, replies) ->
(ServerState, FitSummary)`` are the only transitions. Checkpointing a run is serialising a
``ServerState``; resuming is passing it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedswarm.aggregate import Aggregator, Weighting, client_weights, stack, weighted_mean
from fedswarm.algorithms.base import ClientUpdate
from fedswarm.algorithms.local_sgd import LocalSGD
from fedswarm.messages import ClientId, FitIns, FitRes
from fedswarm.params import Params
from fedswarm.sampling import Sampler, UniformSampler
from fedswarm.seeding import client_seed, round_rng
from fedswarm.server_opt import OptimizerState, ServerOptimizer, ServerSGD
from fedswarm.training import LocalTraining
from fedswarm.transforms import UpdateTransform

__all__ = ["FitSummary", "RunInfo", "ServerState", "Strategy"]


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


@dataclass(frozen=True)
class FitSummary:
    num_replies: int
    num_examples: int
    train_loss: float  # example-weighted mean of the participants' local losses
    update_norm: float  # L2 norm of the aggregated update


@dataclass(frozen=True)
class Strategy:
    training: LocalTraining
    sampler: Sampler = field(default_factory=UniformSampler)
    client_update: ClientUpdate = field(default_factory=LocalSGD)
    aggregator: Aggregator = weighted_mean
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

    @property
    def streams(self) -> bool:
        """Whether replies can be folded into the mean as they arrive (see
        :class:`~fedswarm.aggregate.MeanAccumulator`); other aggregators need them all."""
        return self.aggregator is weighted_mean

    def aggregate_fit(
        self,
        state: ServerState,
        replies: Sequence[FitRes],
        num_clients: int,
        mean_update: np.ndarray | None = None,
    ) -> tuple[ServerState, FitSummary]:
        """Fold the replies of round ``state.round + 1`` into a new state.

        ``mean_update``: the replies' updates already aggregated as they arrived (then their
        ``update`` fields are not read).
        """
        replies = sorted(replies, key=lambda r: r.client_id)  # order-independent result
        if mean_update is None:
            weights = client_weights([r.num_examples for r in replies], self.weighting)
            mean_update = self.aggregator(stack([r.update for r in replies]), weights)
        flat, opt_state = self.server_optimizer.apply(
            state.optimizer, state.params.flat, -mean_update
        )
        new_state = ServerState(
            round=state.round + 1,
            params=state.params.replace(flat),
            optimizer=opt_state,
            update=self.client_update.absorb(state.update, replies, num_clients),
        )
        return new_state, _summarise(replies, mean_update)


def _summarise(replies: Sequence[FitRes], mean_update: np.ndarray) -> FitSummary:
    examples = np.array([r.num_examples for r in replies], np.float64)
    losses = np.array([r.train_loss for r in replies], np.float64)
    loss = float(examples @ losses / examples.sum()) if examples.sum() else float(losses.mean())
    return FitSummary(
        num_replies=len(replies),
        num_examples=int(examples.sum()),
        train_loss=loss,
        update_norm=float(np.linalg.norm(mean_update.astype(np.float64))),
    )
