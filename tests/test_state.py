"""The coordinator's state directory, and the streamed fit round it relies on."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from fedswarm.aggregation import Aggregate, AggregationContext, MeanAccumulator, WeightedMean
from fedswarm.checkpoint import Checkpoint, save_checkpoint
from fedswarm.deploy.state import StateDirError, StateStore
from fedswarm.driver import RoundReport, pump
from fedswarm.messages import Failure, FitRes, Outcome, Refusal, Stage
from fedswarm.params import Params
from fedswarm.presets import fedavg
from fedswarm.rounds import fit_round
from fedswarm.run.config import config_sha256, parse_config
from fedswarm.strategy import RunInfo, ServerState
from fedswarm.training import LocalTraining
from fedswarm.transport.base import Fold, Request

CONFIG = parse_config({"rounds": 3, "data": {"num_clients": 2}})
TRAINING = LocalTraining(batch_size=8, lr=0.1, epochs=1)


def _state(rnd: int, value: float) -> ServerState:
    strategy = fedavg(TRAINING)
    state = strategy.init(Params.from_arrays({"w": np.full(4, value, np.float32)}))
    return replace(state, round=rnd)


def _report(rnd: int, failures: tuple[Failure, ...] = ()) -> RoundReport:
    return RoundReport(rnd, 2, len(failures), 0.5, 1.0, 0.1, replied=("a", "b"), failures=failures)


def test_a_committed_round_is_what_a_restart_resumes_from(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path, CONFIG)
    assert store.latest() is None
    store.commit(_state(1, 1.0), _report(1))
    refused = Failure.refused("b", 2, Stage.FIT, Refusal.NON_FINITE, "update contains NaN or Inf")
    store.commit(_state(2, 2.0), _report(2, (refused,)))
    store.refused([("c", "a reply to message 00ff, which is not an instruction")], 2)
    again = StateStore.open(tmp_path, CONFIG)  # a restarted coordinator
    assert again.run_id == store.run_id
    latest = again.latest()
    assert latest is not None
    assert latest.round == 2
    np.testing.assert_array_equal(latest.params.flat, np.full(4, 2.0, np.float32))
    registry = {c.client_id: (c.updates, c.failures, c.refusals) for c in again.clients()}
    assert registry == {"a": (2, 0, 0), "b": (2, 1, 1), "c": (0, 0, 1)}
    assert [e[:3] for e in again.events()] == [(2, "b", "refusal"), (2, "c", "refusal")]
    assert [r["round"] for r in again.records()] == [1, 2]


def test_a_checkpoint_without_its_commit_does_not_count(tmp_path: Path) -> None:
    """A crash between writing round 3's checkpoint and committing it: round 3 is replayed."""
    store = StateStore.open(tmp_path, CONFIG)
    store.commit(_state(1, 1.0), _report(1))
    store.commit(_state(2, 2.0), _report(2))
    orphan = tmp_path / "checkpoints" / "round-000003.safetensors"
    save_checkpoint(orphan, Checkpoint(_state(3, 3.0), {}, config_sha256(CONFIG)))
    latest = StateStore.open(tmp_path, CONFIG).latest()
    assert latest is not None
    assert latest.round == 2
    store.commit(_state(3, 3.0), _report(3))  # the replayed round overwrites it
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "round-000002.safetensors",
        "round-000003.safetensors",
    ]


def test_another_config_or_a_damaged_checkpoint_is_refused(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path, CONFIG)
    store.commit(_state(1, 1.0), _report(1))
    with pytest.raises(StateDirError, match="different config"):
        StateStore.open(tmp_path, parse_config({"rounds": 4}))
    (tmp_path / "checkpoints" / "round-000001.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(StateDirError, match="round 1's checkpoint cannot be read"):
        store.latest()


def test_an_interrupted_transaction_leaves_the_last_round(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path, CONFIG)
    store.commit(_state(1, 1.0), _report(1))
    con = sqlite3.connect(tmp_path / "state.sqlite")
    con.execute("BEGIN")
    con.execute("INSERT INTO rounds VALUES (2, 0, 'round-000002.safetensors', '{}')")
    con.close()  # never committed: as if the process died here
    latest = store.latest()
    assert latest is not None
    assert latest.round == 1


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
