"""A secure fit round: the driver runs it in place of :func:`fedswarm.rounds.fit_round`.

The strategy samples and instructs as in a plain round; the fit instructions ride in the
masked-input stage; the unmasked sum goes to the strategy as the :class:`WeightedSum` a
streamed round hands it. An aborted round leaves the model as it was, counts as a round
(so the run goes on to the next, freshly sampled) and is logged with its reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from fedswarm.aggregation import Weighting
from fedswarm.messages import ClientId, FitRes
from fedswarm.rounds import FitRoundResult, RoundProtocol
from fedswarm.secagg._types import Aborted, RoundSetup, Verify
from fedswarm.secagg.coordinator import SecureSum, secure_sum
from fedswarm.secagg.graph import GraphChoice, choose_parameters, harary_graph
from fedswarm.seeding import round_rng
from fedswarm.strategy import FitStrategy, FitSummary, RunInfo, ServerState

__all__ = ["SecureFitRound", "SecureSettings"]

log = logging.getLogger("fedswarm.secagg")


@dataclass(frozen=True)
class SecureSettings:
    """Resolved settings of the ``[secure_aggregation]`` table (see ``secagg.config``).

    ``degree``/``threshold`` None: chosen per round from the sampled count, ``target_dropout``
    and ``failure_probability`` (:func:`~fedswarm.secagg.graph.choose_parameters`).
    """

    complete_graph: bool = False  # True: SecAgg (Bonawitz et al.); False: SecAgg+
    degree: int | None = None
    threshold: int | None = None
    target_dropout: float = 0.1
    failure_probability: float = 0.01
    bits: int = 32
    clip_range: float = 1.0
    weight_bound: int = 1000  # example counts above it weigh as much as it

    def choice(self, n: int) -> GraphChoice:
        auto = choose_parameters(
            n, self.target_dropout, self.failure_probability, self.complete_graph
        )
        degree = min(self.degree, n - 1) if self.degree is not None else auto.degree
        if self.complete_graph:
            degree = n - 1
        threshold = self.threshold if self.threshold is not None else auto.threshold
        if self.degree is not None and self.threshold is None:
            threshold = (degree + 1) // 2 + 1
        return GraphChoice(degree, min(threshold, degree + 1), math.nan)


@dataclass(frozen=True)
class SecureFitRound:
    """A :data:`~fedswarm.driver.FitProtocol`: what ``run_rounds(..., fit_protocol=)`` takes."""

    settings: SecureSettings = SecureSettings()
    verify: Verify | None = None  # checks the participants' signatures on their keys

    def __call__(
        self,
        strategy: FitStrategy,
        state: ServerState,
        available: Sequence[ClientId],
        run: RunInfo,
        min_replies: int = 1,
        keep_updates: bool = False,
    ) -> RoundProtocol:
        if keep_updates:
            raise ValueError(
                "[secure_aggregation] gives the coordinator only the sum of the updates, but "
                "store.keep_updates = true asks it to keep each one: set it false"
            )
        if strategy.accumulator(state.params.dim) is None:
            what = getattr(strategy, "aggregator", strategy)  # only to name it
            raise ValueError(
                f"[secure_aggregation] gives the coordinator only the sum of the updates, but "
                f"the aggregator {what!r} needs each one: secure aggregation needs a streaming "
                "aggregator (the weighted mean)"
            )
        fits = strategy.configure_fit(state, available, run)
        rnd = state.round + 1
        choice = self.settings.choice(max(len(fits), 2))
        clients = sorted(cid for cid, _ in fits)
        graph = harary_graph(clients, choice.degree, round_rng(run.seed, rnd, "secagg.graph"))
        bound = 1 if strategy.weighting is Weighting.UNIFORM else self.settings.weight_bound
        setup = RoundSetup(
            run.run_id,
            rnd,
            graph,
            choice.threshold,
            self.settings.bits,
            self.settings.clip_range,
            bound,
            max(min_replies, 1),
            self.verify,
        )
        done = yield from secure_sum(setup, fits)
        if done.aborted is not None or done.decoded is None:
            return _aborted(state, done, done.aborted)
        return _aggregate(strategy, state, done, len(available), run)


def _aggregate(
    strategy: FitStrategy, state: ServerState, done: SecureSum, num_clients: int, run: RunInfo
) -> FitRoundResult:
    assert done.decoded is not None
    d = done.decoded
    # One stand-in reply carries the sums' example count and loss into the summary; no
    # participant's own figures exist at the coordinator.
    stand_in = FitRes(
        "secagg.sum", state.round + 1, np.zeros(0, np.float32), d.num_examples, 0, d.train_loss
    )
    new_state, summary = strategy.aggregate_fit(
        state, [stand_in], num_clients=num_clients, run=run, summed=d.summed
    )
    summary = replace(summary, num_replies=len(done.survivors))
    return FitRoundResult(new_state, summary, done.failures, done.survivors)


def _aborted(state: ServerState, done: SecureSum, aborted: Aborted | None) -> FitRoundResult:
    log.warning("round %d: %s", state.round + 1, aborted)
    summary = FitSummary(num_replies=0, num_examples=0, train_loss=0.0, update_norm=0.0)
    return FitRoundResult(replace(state, round=state.round + 1), summary, done.failures, ())
