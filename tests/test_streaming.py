"""A streamed fit round (each update folded into a running mean as it arrives) gives the
same bits as the stacked round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fedswarm.aggregation import Aggregate, AggregationContext, MeanAccumulator, WeightedMean
from fedswarm.driver import pump
from fedswarm.messages import FitRes, Outcome
from fedswarm.params import Params
from fedswarm.presets import fedavg
from fedswarm.rounds import fit_round
from fedswarm.strategy import RunInfo, ServerState
from fedswarm.training import LocalTraining
from fedswarm.transport.base import Fold, Request

TRAINING = LocalTraining(batch_size=8, lr=0.1, epochs=1)


def _replies(state: ServerState) -> list[FitRes]:
    rng = np.random.default_rng(0)
    return [
        FitRes(cid, 1, rng.normal(size=state.params.dim).astype(np.float32), n, 3, 0.1 * n)
        for cid, n in (("c", 5), ("a", 17), ("b", 0), ("d", 9))
    ]


class _Scripted:
    """Answers the fit exchange with fixed replies, in reverse order, folding as it goes."""

    def __init__(self, replies: list[FitRes], fold: bool) -> None:
        self.replies, self.fold = replies, fold

    def available(self) -> list[str]:
        return ["a", "b", "c", "d"]

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        out: list[Outcome] = list(reversed(self.replies))
        return [fold(o) for o in out] if (self.fold and fold is not None) else out


@dataclass(frozen=True)
class _Stacked:
    """The weighted mean without the streaming capability, counting its calls."""

    calls: list[str] = field(default_factory=list)

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        self.calls.append("stacked")
        return WeightedMean()(updates, weights, ctx)


@dataclass(frozen=True)
class _Streaming:
    """The weighted mean declaring that it streams (it has ``accumulator``), counting calls;
    a round that stacked the replies anyway would fail here."""

    calls: list[str] = field(default_factory=list)

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        raise AssertionError("a streaming aggregator's round stacked its replies")

    def accumulator(self, dim: int) -> MeanAccumulator:
        self.calls.append("accumulator")
        return WeightedMean().accumulator(dim)


def test_a_streamed_round_equals_the_stacked_round_bit_for_bit() -> None:
    folds, stacks = _Streaming(), _Stacked()
    streaming = replace(fedavg(TRAINING), aggregator=folds)
    stacked = replace(streaming, aggregator=stacks)
    state = streaming.init(Params.from_arrays({"w": np.zeros(1000, np.float32)}))
    run = RunInfo("r", 0)
    a = pump(
        fit_round(streaming, state, ["a", "b", "c", "d"], run),
        _Scripted(_replies(state), True),
        None,
    )
    b = pump(
        fit_round(stacked, state, ["a", "b", "c", "d"], run),
        _Scripted(_replies(state), False),
        None,
    )
    assert folds.calls == ["accumulator"]  # folded as they came, never stacked
    assert stacks.calls == ["stacked"]
    np.testing.assert_array_equal(a.state.params.flat, b.state.params.flat)
    assert a.replied == b.replied == ("a", "c", "d")
    assert [f.reason for f in a.failures] == ["trained on no examples"]
    assert a.summary == b.summary
