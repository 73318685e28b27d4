"""Strategy's two transitions, without any participant: configure_fit and aggregate_fit,
and what its aggregator sees and returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from fedswarm.aggregation import (
    Aggregate,
    AggregationContext,
    MeanAccumulator,
    StreamingAggregator,
    WeightedMean,
    Weighting,
    weighted_mean,
)
from fedswarm.algorithms.fedprox import FedProx, ProxStep
from fedswarm.algorithms.scaffold import Scaffold, ScaffoldExtra
from fedswarm.messages import FitRes, ReplyExtra
from fedswarm.params import Params
from fedswarm.sampling import UniformSampler
from fedswarm.seeding import client_seed, round_rng
from fedswarm.server_opt import ServerSGD
from fedswarm.strategy import RunInfo, ServerState, Strategy
from fedswarm.training import LocalTraining

RUN = RunInfo("run-x", seed=5)
TRAINING = LocalTraining(batch_size=4, lr=0.1)
IDS = [f"c{k}" for k in range(8)]


def initial(strategy: Strategy, x0: tuple[float, ...] = (1.0, -1.0)) -> ServerState:
    return strategy.init(Params.from_arrays({"w": np.array(x0, np.float32)}))


def reply(
    cid: str, update: tuple[float, float], n: int, loss: float, extra: ReplyExtra | None = None
) -> FitRes:
    return FitRes(cid, 1, np.array(update, np.float32), n, 2, loss, extra)


def test_configure_fit_instructs_the_sampled_clients_of_the_next_round() -> None:
    sampler = UniformSampler(clients_per_round=3)
    strategy = Strategy(TRAINING, sampler=sampler, client_update=FedProx(0.25))
    state = replace(initial(strategy), round=4)
    requests = strategy.configure_fit(state, IDS[::-1], RUN)
    # Round 5's sample comes from the run seed's "sample" stream for round 5.
    assert [cid for cid, _ in requests] == sampler.sample(IDS, round_rng(5, 5, "sample"))
    for cid, ins in requests:
        assert (ins.run_id, ins.round, ins.seed) == ("run-x", 5, client_seed(5, 5, cid))
        assert ins.params is state.params
        assert ins.training is TRAINING
        assert ins.step == ProxStep(0.25)
    next_round = strategy.configure_fit(replace(state, round=5), IDS, RUN)
    assert {i.seed for _, i in requests}.isdisjoint({i.seed for _, i in next_round})


def test_aggregate_fit_by_hand() -> None:
    strategy = Strategy(TRAINING, server_optimizer=ServerSGD(lr=0.5))
    state = initial(strategy)
    replies = [reply("a", (1.0, 2.0), 1, 2.0), reply("b", (3.0, 6.0), 3, 1.0)]
    new, summary = strategy.aggregate_fit(state, replies, num_clients=10, run=RUN)
    # mean update (1 * [1, 2] + 3 * [3, 6]) / 4 = [2.5, 5]; x = [1, -1] + 0.5 * [2.5, 5]
    np.testing.assert_array_equal(new.params.flat, [2.25, 1.5])
    assert (new.round, new.optimizer.step) == (1, 1)
    np.testing.assert_array_equal(state.params.flat, [1.0, -1.0])  # the old state stands
    assert state.round == 0
    assert (summary.num_replies, summary.num_examples) == (2, 4)
    assert summary.train_loss == pytest.approx((1 * 2.0 + 3 * 1.0) / 4)
    assert summary.update_norm == pytest.approx(math.hypot(2.5, 5.0))


def first_row(updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext) -> Aggregate:
    """An aggregator that depends on client order: the first update wins."""
    return Aggregate(updates[0].copy())


def test_aggregate_fit_sorts_replies_by_client_id() -> None:
    strategy = Strategy(TRAINING, aggregator=first_row)
    replies = [reply("c", (3.0, 3.0), 1, 0.0), reply("a", (1.0, 1.0), 1, 0.0)]
    for order in (replies, replies[::-1]):
        new, _ = strategy.aggregate_fit(initial(strategy), order, num_clients=2, run=RUN)
        np.testing.assert_array_equal(new.params.flat, [2.0, 0.0])  # "a"'s update


def test_train_loss_falls_back_to_the_plain_mean_without_examples() -> None:
    strategy = Strategy(TRAINING, weighting=Weighting.UNIFORM)
    replies = [reply("a", (0.0, 0.0), 0, 1.0), reply("b", (0.0, 0.0), 0, 2.0)]
    _, summary = strategy.aggregate_fit(initial(strategy), replies, num_clients=2, run=RUN)
    assert summary.train_loss == 1.5
    assert summary.num_examples == 0


def test_scaffold_control_moves_with_the_federation_size() -> None:
    strategy = Strategy(TRAINING, client_update=Scaffold(), weighting=Weighting.UNIFORM)
    state = initial(strategy)
    np.testing.assert_array_equal(state.update["control"], [0.0, 0.0])
    replies = [
        reply("a", (1.0, 1.0), 1, 0.0, ScaffoldExtra(np.array([2.0, 0.0], np.float32))),
        reply("b", (3.0, 3.0), 5, 0.0, ScaffoldExtra(np.array([0.0, 4.0], np.float32))),
    ]
    new, _ = strategy.aggregate_fit(state, replies, num_clients=4, run=RUN)
    np.testing.assert_array_equal(new.update["control"], [0.5, 1.0])  # 2/4 * mean
    np.testing.assert_array_equal(new.params.flat, [3.0, 1.0])  # uniform: x + [2, 2]


@dataclass
class Recording:
    """An aggregator that keeps what it was given and scores each client by its row norm."""

    seen: list[tuple[np.ndarray, np.ndarray, AggregationContext]] = field(default_factory=list)

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        self.seen.append((updates.copy(), weights.copy(), ctx))
        norms = np.linalg.norm(updates.astype(np.float64), axis=1)
        return Aggregate(weighted_mean(updates, weights), {"norm": norms})


def test_the_aggregator_gets_the_round_the_clients_the_params_and_a_seeded_rng() -> None:
    recording = Recording()
    strategy = Strategy(TRAINING, aggregator=recording)
    state = replace(initial(strategy), round=2)
    replies = [reply("c", (3.0, 4.0), 1, 0.0), reply("a", (0.0, 1.0), 2, 0.0)]
    _, summary = strategy.aggregate_fit(state, replies, num_clients=5, run=RUN)
    ((updates, weights, ctx),) = recording.seen
    assert (ctx.round, ctx.client_ids) == (3, ("a", "c"))  # the rows' order
    np.testing.assert_array_equal(updates, [[0.0, 1.0], [3.0, 4.0]])
    np.testing.assert_array_equal(weights, [2.0, 1.0])
    assert ctx.params is state.params
    expected = round_rng(RUN.seed, 3, "aggregate").random(4)
    np.testing.assert_array_equal(ctx.rng.random(4), expected)
    assert set(summary.scores) == {"norm"}
    np.testing.assert_array_equal(summary.scores["norm"], [1.0, 5.0])  # a, then c


@dataclass(frozen=True)
class Returns:
    """An aggregator that returns a fixed, possibly malformed, aggregate."""

    out: Aggregate

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        return self.out


@pytest.mark.parametrize(
    ("out", "match"),
    [
        (Aggregate(np.zeros(3, np.float32)), r"shape \(3,\) dtype float32, expected shape \(2,\)"),
        (Aggregate(np.zeros(2, np.float64)), "dtype float64"),
        (
            Aggregate(np.zeros(2, np.float32), {"krum": np.zeros(3)}),
            r"scores 'krum' of shape \(3,\), expected one per client: \(2,\)",
        ),
    ],
)
def test_a_malformed_aggregate_is_refused_naming_the_aggregator(out: Aggregate, match: str) -> None:
    strategy = Strategy(TRAINING, aggregator=Returns(out))
    replies = [reply("a", (1.0, 1.0), 1, 0.0), reply("b", (2.0, 2.0), 1, 0.0)]
    with pytest.raises(ValueError, match=match) as info:
        strategy.aggregate_fit(initial(strategy), replies, num_clients=2, run=RUN)
    assert "Returns(" in str(info.value)


def test_streaming_is_declared_by_the_aggregator() -> None:
    assert isinstance(WeightedMean(), StreamingAggregator)
    assert not isinstance(Recording(), StreamingAggregator)
    assert not isinstance(first_row, StreamingAggregator)
    assert isinstance(Strategy(TRAINING).accumulator(3), MeanAccumulator)
    assert Strategy(TRAINING, aggregator=Recording()).accumulator(3) is None


def summed(replies: list[FitRes], weights: list[float]) -> MeanAccumulator:
    acc = MeanAccumulator(2)
    for r, w in zip(replies, weights, strict=True):
        acc.add(r.update, w)
    return acc


def test_a_summed_round_divides_the_sum_by_its_weight() -> None:
    """What a wrapper hands in is the sum and the weight: halving the weight doubles the step."""
    strategy = Strategy(TRAINING)
    replies = [reply("a", (1.0, 2.0), 1, 2.0), reply("b", (3.0, 6.0), 3, 1.0)]
    total = summed(replies, [1.0, 3.0]).summed()
    np.testing.assert_array_equal(total.total, [10.0, 20.0])
    assert (total.weight, total.count) == (4.0, 2)
    folded = [replace(r, update=np.zeros(0, np.float32)) for r in replies]  # not read
    stacked, s1 = strategy.aggregate_fit(initial(strategy), replies, num_clients=2, run=RUN)
    streamed, s2 = strategy.aggregate_fit(
        initial(strategy), folded, num_clients=2, run=RUN, summed=total
    )
    np.testing.assert_array_equal(streamed.params.flat, stacked.params.flat)  # [3.5, 4]
    assert s1 == s2
    fixed = replace(total, weight=2.0)  # DP's fixed denominator, say
    new, _ = strategy.aggregate_fit(initial(strategy), folded, num_clients=2, run=RUN, summed=fixed)
    np.testing.assert_array_equal(new.params.flat, [6.0, 9.0])  # [1, -1] + [5, 10]


def test_a_summed_round_is_refused_by_an_aggregator_that_needs_every_update() -> None:
    strategy = Strategy(TRAINING, aggregator=Recording())
    replies = [reply("a", (1.0, 2.0), 1, 2.0)]
    with pytest.raises(ValueError, match="does not stream: it needs every update"):
        strategy.aggregate_fit(
            initial(strategy),
            replies,
            num_clients=1,
            run=RUN,
            summed=summed(replies, [1.0]).summed(),
        )
