"""Strategy, round protocols and the driver over an in-memory federation of fake learners.

The learner is numpy with a hand-checkable loss: client k's loss is
``f_k(w) = 0.5 * mean_j ||w - x_j||^2`` over its rows ``x_j``, whose gradient is
``w - mean_j x_j``. With a batch as large as the data every local step is exact, so
``K`` steps of size ``lr`` from ``w0`` land on ``a + (1 - lr)^K (w0 - a)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from fedswarm.aggregation import (
    Accumulator,
    Aggregate,
    AggregationContext,
    WeightedSum,
    Weighting,
    weighted_mean,
)
from fedswarm.algorithms.base import ClientUpdate
from fedswarm.algorithms.local_sgd import LocalSGD
from fedswarm.algorithms.scaffold import CLIENT_CONTROL, Scaffold
from fedswarm.checkpoint import Checkpoint, decode_params, decode_state, encode_params, encode_state
from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.driver import RoundPolicy, pump, run_rounds
from fedswarm.messages import (
    ClientId,
    EvaluateIns,
    EvaluateRes,
    Failure,
    FailureKind,
    FitIns,
    FitRes,
    Outcome,
    Stage,
)
from fedswarm.params import Params
from fedswarm.reports import RoundRecord, RoundReport
from fedswarm.rounds import (
    Exchange,
    FitReplyCheck,
    FitRoundResult,
    QuorumError,
    evaluate_round,
    fit_round,
)
from fedswarm.sampling import UniformSampler
from fedswarm.server_opt import AdaptiveRule, ServerAdaptive, ServerSGD
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.strategy import FitStrategy, FitSummary, RunInfo, ServerState, Strategy
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining
from fedswarm.transforms import ClipNorm, UpdateTransform
from fedswarm.transport.base import ClientError, Fold, Request, Transport

RUN = RunInfo("test-run", seed=11)
FULL_BATCH = LocalTraining(batch_size=10_000, lr=0.5, epochs=None, steps=1)
Rows = dict[ClientId, list[list[float]]]


@dataclass(frozen=True)
class QuadraticLearner:
    """Minibatch SGD on ``0.5 * mean_j ||w - x_j||^2``; batch order from ``seed``."""

    broken: bool = False  # raise from fit and evaluate

    def init_params(self, seed: int) -> Params:
        w = np.random.default_rng(seed).normal(size=2).astype(np.float32)
        return Params.from_arrays({"w": w})

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        if self.broken:
            raise RuntimeError("disk on fire")
        n, x = len(data), data.x.astype(np.float64)
        batch = min(training.batch_size, n)
        steps = training.steps or (training.epochs or 1) * math.ceil(n / batch)
        rng = np.random.default_rng(seed)
        w_global = params.flat.astype(np.float64)
        w, order, losses = w_global.copy(), np.empty(0, np.int64), []
        for _ in range(steps):
            if not len(order):
                order = rng.permutation(n)
            rows, order = x[order[:batch]], order[batch:]
            losses.append(0.5 * float(np.mean(np.sum((w - rows) ** 2, axis=1))))
            g = w - rows.mean(axis=0) + correction.mu * (w - w_global)
            if correction.shift is not None:
                g = g + correction.shift
            w = w - training.lr * g
        return LocalFit(w.astype(np.float32), n, steps, float(np.mean(losses)))

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        if self.broken:
            raise RuntimeError("disk on fire")
        dist2 = np.sum((params.flat.astype(np.float64) - data.x) ** 2, axis=1)
        return Evaluation(0.5 * float(dist2.mean()), float(np.mean(dist2 <= 1.0)), len(data))


def dataset(rows: Sequence[Sequence[float]]) -> ArrayDataset:
    return ArrayDataset(np.array(rows, np.float32), np.zeros(len(rows), np.int64))


def federation(rows: Rows, fail_fast: bool = True, broken: str = "") -> InMemoryTransport:
    apps = {
        cid: ClientApp(cid, QuadraticLearner(cid == broken), ClientData(dataset(r), dataset(r)))
        for cid, r in rows.items()
    }
    return InMemoryTransport(sorted(apps), apps.__getitem__, fail_fast=fail_fast)


@dataclass
class Wrapped:
    """A transport around another: logs who was asked to fit, may tamper with outcomes."""

    inner: InMemoryTransport
    edit: Callable[[list[Outcome]], list[Outcome]] = list
    asked: list[list[ClientId]] = field(default_factory=list)
    raw: list[Outcome] = field(default_factory=list)
    timeouts: list[float | None] = field(default_factory=list)

    def available(self) -> Sequence[ClientId]:
        return self.inner.available()

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        self.timeouts.append(timeout)
        if all(isinstance(ins, FitIns) for _, ins in requests):
            self.asked.append([cid for cid, _ in requests])
        self.raw = self.inner.exchange(requests, timeout=timeout)
        return self.edit(list(self.raw))


@dataclass
class Scripted:
    """A transport that answers each exchange from a script and records what it was sent."""

    script: list[list[Outcome]]
    seen: list[tuple[list[Request], float | None]] = field(default_factory=list)

    def available(self) -> Sequence[ClientId]:
        return ["a", "b", "c", "d"]

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        self.seen.append((list(requests), timeout))
        return self.script.pop(0)


def start(strategy: Strategy, x0: Sequence[float] = (0.0, 0.0)) -> ServerState:
    return strategy.init(Params.from_arrays({"w": np.array(x0, np.float32)}))


def one_round(strategy: Strategy, transport: Transport, min_replies: int = 1) -> FitRoundResult:
    protocol = fit_round(strategy, start(strategy), transport.available(), RUN, min_replies)
    return pump(protocol, transport, None)


TWO = {"a": [[2.0, 0.0]], "b": [[1.0, 3.0], [-1.0, 5.0], [0.0, 4.0]]}  # means (2, 0), (0, 4)


def test_one_fedavg_round_by_hand() -> None:
    result = one_round(Strategy(FULL_BATCH), federation(TWO))
    # One step of 1/2 from 0: updates (1, 0) and (0, 2); weights 1 and 3 examples.
    np.testing.assert_array_equal(result.state.params.flat, [0.25, 1.5])
    assert result.state.round == 1
    assert result.failures == ()
    summary = result.summary
    assert (summary.num_replies, summary.num_examples) == (2, 4)
    # Losses at w = 0: a: 0.5 * 4 = 2; b: 0.5 * (10 + 26 + 16) / 3 = 26/3.
    assert summary.train_loss == pytest.approx((1 * 2 + 3 * 26 / 3) / 4)
    assert summary.update_norm == pytest.approx(math.hypot(0.25, 1.5))


def test_uniform_weighting_is_the_plain_mean() -> None:
    result = one_round(Strategy(FULL_BATCH, weighting=Weighting.UNIFORM), federation(TWO))
    np.testing.assert_array_equal(result.state.params.flat, [0.5, 1.0])


def test_fedavg_with_one_client_is_central_training() -> None:
    """R rounds of K full-batch steps == R*K central steps: a + (1 - lr)^(RK) (x0 - a)."""
    lr, k, rounds = 0.25, 3, 2
    strategy = Strategy(LocalTraining(10_000, lr, epochs=None, steps=k))
    data = {"solo": [[1.0, 3.0], [-1.0, 5.0], [0.0, 4.0], [4.0, 0.0]]}  # mean (1, 3)
    state = run_rounds(strategy, federation(data), start(strategy, [5, -3]), rounds=rounds, run=RUN)
    a, x0 = np.array([1.0, 3.0]), np.array([5.0, -3.0])
    np.testing.assert_allclose(state.params.flat, a + (1 - lr) ** (rounds * k) * (x0 - a), 1e-6)


THREE = {"p": [[1.0, 0.0]], "q": [[0.0, 2.0], [0.0, 4.0]], "r": [[-3.0, 1.0], [5.0, 4.0]]}


def scaffold_reference(
    x0: list[float], sampled: list[list[ClientId]], k: int, lr: float, lr_g: float
) -> tuple[np.ndarray, np.ndarray, dict[ClientId, np.ndarray]]:
    """Karimireddy et al. 2020, Algorithm 1, option II, full-batch gradients, in float64."""
    means = {cid: np.mean(r, axis=0) for cid, r in THREE.items()}
    x, c = np.array(x0, np.float64), np.zeros(2)
    c_i = {cid: np.zeros(2) for cid in THREE}
    for s in sampled:
        dy, dc = [], []
        for i in s:
            y = x.copy()
            for _ in range(k):
                y = y - lr * ((y - means[i]) - c_i[i] + c)
            c_plus = c_i[i] - c + (x - y) / (k * lr)
            dy.append(y - x)
            dc.append(c_plus - c_i[i])
            c_i[i] = c_plus
        x = x + lr_g * np.mean(dy, axis=0)
        c = c + len(s) / len(THREE) * np.mean(dc, axis=0)
    return x, c, c_i


def test_scaffold_two_rounds_match_the_paper() -> None:
    k, lr, lr_g = 3, 0.1, 0.5
    strategy = Strategy(
        LocalTraining(10_000, lr, epochs=None, steps=k),
        sampler=UniformSampler(clients_per_round=2),
        client_update=Scaffold(),
        server_optimizer=ServerSGD(lr=lr_g),
        weighting=Weighting.UNIFORM,  # the paper's plain means
    )
    transport = Wrapped(federation(THREE))
    state = run_rounds(strategy, transport, start(strategy, [2, -1]), rounds=2, run=RUN)
    assert [len(s) for s in transport.asked] == [2, 2]
    assert set(transport.asked[0]) & set(transport.asked[1])  # some c_i is used again
    x, c, c_i = scaffold_reference([2, -1], transport.asked, k, lr, lr_g)
    np.testing.assert_allclose(state.params.flat, x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.update["control"], c, rtol=1e-5, atol=1e-6)
    for cid, memory in transport.inner.memories.items():
        np.testing.assert_allclose(memory[CLIENT_CONTROL], c_i[cid], rtol=1e-5, atol=1e-6)
    # The correction matters: without control variates the same rounds land elsewhere.
    plain = replace(strategy, client_update=LocalSGD())
    fedavg = run_rounds(plain, federation(THREE), start(strategy, [2, -1]), rounds=2, run=RUN)
    assert np.abs(fedavg.params.flat - x).max() > 1e-3


FIVE = {f"c{k}": [[float(k), 1.0], [0.0, float(k)]] for k in range(5)}


def corrupt(outcomes: list[Outcome]) -> list[Outcome]:
    """c1: NaN, c2: wrong shape, c3: wrong round; then a stranger and a duplicate of c0."""
    bad: dict[ClientId, Callable[[FitRes], FitRes]] = {
        "c1": lambda r: replace(r, update=np.full_like(r.update, np.nan)),
        "c2": lambda r: replace(r, update=np.zeros(3, np.float32)),
        "c3": lambda r: replace(r, round=7),
    }
    fits = [o for o in outcomes if isinstance(o, FitRes)]
    edited: list[Outcome] = [bad[r.client_id](r) if r.client_id in bad else r for r in fits]
    return [*edited, replace(fits[0], client_id="mallory"), fits[0]]


def test_bad_replies_are_refused_and_the_rest_aggregated() -> None:
    transport = Wrapped(federation(FIVE), edit=corrupt)
    result = one_round(Strategy(FULL_BATCH), transport)
    reasons = {f.client_id: f.reason for f in result.failures}
    assert list(reasons) == ["c1", "c2", "c3", "mallory", "c0"]
    assert "NaN" in reasons["c1"]
    assert "shape (3,)" in reasons["c2"]
    assert "round 7, expected round 1" in reasons["c3"]
    assert "not asked" in reasons["mallory"]
    assert "duplicate" in reasons["c0"]
    assert all(f.stage is Stage.FIT and f.round == 1 for f in result.failures)
    good = [o for o in transport.raw if isinstance(o, FitRes) and o.client_id in ("c0", "c4")]
    expected = sum(r.num_examples * r.update.astype(np.float64) for r in good) / 4
    np.testing.assert_allclose(result.state.params.flat, expected, rtol=1e-6)
    assert result.summary.num_replies == 2


def test_quorum_error_names_the_round_and_the_counts() -> None:
    transport = Wrapped(federation(FIVE), edit=corrupt)
    with pytest.raises(QuorumError, match=r"round 1: 2 of 5 participants replied, the quorum is 3"):
        one_round(Strategy(FULL_BATCH), transport, min_replies=3)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda r: replace(r, update=r.update.astype(np.float64)), "dtype float64"),
        (lambda r: replace(r, update=np.full_like(r.update, np.inf)), "NaN or Inf"),
        (lambda r: replace(r, num_examples=-1), "negative num_examples"),
        (lambda r: replace(r, train_loss=np.nan), "non-finite train_loss"),
        (lambda r: EvaluateRes(r.client_id, 1, 0.0, 1.0, 3), "not a fit reply"),
    ],
)
def test_fit_reply_check_refuses(edit: Callable[[FitRes], Outcome], reason: str) -> None:
    ok = FitRes("a", 1, np.zeros(2, np.float32), 3, 1, 0.5)
    dropped = Failure("b", 1, Stage.FIT, FailureKind.TIMED_OUT, "no reply")
    check = FitReplyCheck({"a", "b"}, 1, 2, LocalSGD(), Weighting.UNIFORM)
    replies, failures = check.split([edit(ok), dropped, ok])
    assert replies == [ok]  # a refused reply does not use up the client's turn
    assert failures[0].client_id == "a"
    assert reason in failures[0].reason
    assert failures[1] is dropped


def test_fail_fast_names_stage_client_and_round() -> None:
    transport = federation(TWO, broken="b")
    with pytest.raises(ClientError, match="fit failed on client 'b' in round 1: Runt") as info:
        one_round(Strategy(FULL_BATCH), transport)
    assert (info.value.stage, info.value.client_id, info.value.round) == (Stage.FIT, "b", 1)
    assert isinstance(info.value.__cause__, RuntimeError)
    params = start(Strategy(FULL_BATCH)).params
    with pytest.raises(ClientError, match=r"evaluate failed on client 'b' in round 4"):
        pump(evaluate_round(params, ["a", "b"], RUN, 4), transport, None)


def test_without_fail_fast_the_failure_is_recorded_and_the_round_completes() -> None:
    transport = federation(TWO, fail_fast=False, broken="b")
    result = one_round(Strategy(FULL_BATCH), transport)
    assert result.failures == (
        Failure("b", 1, Stage.FIT, FailureKind.RAISED, "RuntimeError: disk on fire"),
    )
    np.testing.assert_array_equal(result.state.params.flat, [1.0, 0.0])  # a's update alone
    assert "b" not in transport.memories
    ev = pump(evaluate_round(result.state.params, ["a", "b"], RUN, 1), transport, None)
    assert ev == Evaluation(loss=0.5, accuracy=1.0, num_examples=1)  # a alone, |w - x| = 1


FOUR = {f"k{k}": [[k + 0.5 * j, (j * 3 % 5) - k] for j in range(3 + k)] for k in range(4)}
RESUMABLE = {
    "fedavgm": Strategy(
        LocalTraining(2, 0.1, epochs=2),
        sampler=UniformSampler(fraction=0.5),
        server_optimizer=ServerSGD(lr=1.0, momentum=0.9),
    ),
    "fedadam": Strategy(
        LocalTraining(3, 0.1, epochs=1), server_optimizer=ServerAdaptive(AdaptiveRule.ADAM, 0.1)
    ),
    "scaffold": Strategy(
        LocalTraining(2, 0.05, epochs=None, steps=3),
        sampler=UniformSampler(clients_per_round=3),
        client_update=Scaffold(),
    ),
}


@pytest.mark.parametrize("name", sorted(RESUMABLE))
def test_resuming_from_a_checkpoint_equals_running_straight(name: str, tmp_path: Path) -> None:
    strategy = RESUMABLE[name]
    init = strategy.init(QuadraticLearner().init_params(3))
    straight = run_rounds(strategy, federation(FOUR), init, rounds=4, run=RUN)
    first = federation(FOUR)
    halfway = run_rounds(strategy, first, init, rounds=2, run=RUN)
    saved = encode_params(halfway.params), encode_state(Checkpoint(halfway, first.memories))
    # A restart: the saved state, a new transport over the same client "disks".
    ckpt = decode_state(saved[1], decode_params(saved[0], "params"), "state")
    again = InMemoryTransport(first.client_ids, first.make_client, memories=dict(ckpt.memories))
    seen: list[int] = []
    resumed = run_rounds(
        strategy, again, ckpt.state, rounds=4, run=RUN, on_round=lambda s, r: seen.append(r.round)
    )
    assert seen == [3, 4]
    assert resumed.round == straight.round == 4
    assert resumed.params.sha256() == straight.params.sha256()
    assert resumed.params.sha256() != halfway.params.sha256()
    for key, slot in straight.optimizer.slots.items():
        np.testing.assert_array_equal(resumed.optimizer.slots[key], slot)


def test_evaluate_round_weights_by_examples() -> None:
    params = Params.from_arrays({"w": np.zeros(2, np.float32)})
    outcomes: list[Outcome] = [
        EvaluateRes("a", 3, loss=1.0, accuracy=0.5, num_examples=1),
        EvaluateRes("b", 3, loss=3.0, accuracy=1.0, num_examples=3),
        EvaluateRes("c", 3, loss=99.0, accuracy=0.0, num_examples=0),  # nothing to count
        Failure("d", 3, Stage.EVALUATE, FailureKind.DROPPED, "gone"),
    ]
    transport = Scripted([outcomes])
    ev = pump(evaluate_round(params, ["a", "b", "c", "d"], RUN, 3), transport, 2.5)
    assert ev == Evaluation(loss=(1.0 + 9.0) / 4, accuracy=(0.5 + 3.0) / 4, num_examples=4)
    requests, timeout = transport.seen[0]
    assert timeout == 2.5
    assert [cid for cid, _ in requests] == ["a", "b", "c", "d"]
    for _, ins in requests:
        assert isinstance(ins, EvaluateIns)
        assert ins.round == 3
        assert ins.params is params
    nothing = Scripted(
        [
            [
                Failure("a", 1, Stage.EVALUATE, FailureKind.DROPPED, "gone"),
                EvaluateRes("b", 1, 1, 1, 0),
            ]
        ]
    )
    assert pump(evaluate_round(params, ["a", "b"], RUN, 1), nothing, None) is None


def test_pump_feeds_each_exchange_its_outcomes() -> None:
    def two_step() -> Generator[Exchange, Sequence[Outcome], str]:
        first = yield Exchange(Stage.EVALUATE, ())
        second = yield Exchange(Stage.EVALUATE, ())
        return f"{len(first)} then {len(second)}"

    gone = Failure("a", 1, Stage.EVALUATE, FailureKind.DROPPED, "gone")
    transport = Scripted([[gone], [gone, gone]])
    assert pump(two_step(), transport, 1.0) == "1 then 2"
    assert [t for _, t in transport.seen] == [1.0, 1.0]


def test_run_rounds_evaluates_every_k_rounds_and_at_the_end() -> None:
    strategy = Strategy(FULL_BATCH)
    reports: list[RoundReport] = []
    central_calls: list[Params] = []

    def central(p: Params) -> Evaluation:
        central_calls.append(p)
        return Evaluation(1.0, 0.0, 10)

    policy = RoundPolicy(evaluate_every=2, timeout_s=3.0, federated_eval=UniformSampler())
    transport = Wrapped(federation(TWO))
    state = run_rounds(
        strategy,
        transport,
        start(strategy),
        rounds=3,
        run=RUN,
        policy=policy,
        central_eval=central,
        on_round=lambda s, r: reports.append(r),
    )
    assert [r.round for r in reports] == [1, 2, 3]
    assert transport.timeouts == [3.0] * 5  # three fit and two evaluation exchanges
    assert [r.central is not None for r in reports] == [False, True, True]
    assert [r.federated is not None for r in reports] == [False, True, True]
    assert central_calls[-1] is state.params
    per_client = [QuadraticLearner().evaluate(state.params, dataset(r)) for r in TWO.values()]
    last = reports[-1].federated
    assert last is not None
    assert last.num_examples == 4
    assert last.loss == pytest.approx(sum(e.loss * e.num_examples for e in per_client) / 4)
    assert "eval_loss" not in RoundRecord.from_report(reports[0]).to_json()
    assert RoundRecord.from_report(reports[2]).to_json()["fed_eval_loss"] == last.loss


@dataclass(frozen=True)
class Rescaled:
    """A wrapper, built as DP and secure aggregation are: it holds an inner strategy, adds
    ``transforms`` to every instruction and scales the aggregated update by ``scale``, and
    delegates the rest. With the defaults it is the identity."""

    inner: FitStrategy
    transforms: tuple[UpdateTransform, ...] = ()
    scale: float = 1.0

    @property
    def client_update(self) -> ClientUpdate:
        return self.inner.client_update

    @property
    def weighting(self) -> Weighting:
        return self.inner.weighting

    def init(self, params: Params) -> ServerState:
        return self.inner.init(params)

    def configure_fit(
        self, state: ServerState, available: Sequence[ClientId], run: RunInfo
    ) -> list[tuple[ClientId, FitIns]]:
        requests = self.inner.configure_fit(state, available, run)
        return [(c, replace(i, transforms=(*i.transforms, *self.transforms))) for c, i in requests]

    def accumulator(self, dim: int) -> Accumulator | None:
        return self.inner.accumulator(dim)

    def aggregate_fit(
        self,
        state: ServerState,
        replies: Sequence[FitRes],
        *,
        num_clients: int,
        run: RunInfo,
        summed: WeightedSum | None = None,
    ) -> tuple[ServerState, FitSummary]:
        if summed is not None:  # the sum, as DP noises it and secure aggregation unmasks it
            summed = replace(summed, total=summed.total * self.scale)
        else:
            scale = np.float32(self.scale)
            replies = [replace(r, update=r.update * scale) for r in replies]
        return self.inner.aggregate_fit(
            state, replies, num_clients=num_clients, run=run, summed=summed
        )


def stacked_mean(updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext) -> Aggregate:
    """The weighted mean without the streaming capability: the round stacks the replies."""
    return Aggregate(weighted_mean(updates, weights))


WRAPPABLE = {
    "fedavg-streamed": Strategy(LocalTraining(2, 0.1, epochs=2)),
    "fedavg-stacked": Strategy(LocalTraining(2, 0.1, epochs=2), aggregator=stacked_mean),
    "scaffold": RESUMABLE["scaffold"],
    "fedadam": RESUMABLE["fedadam"],
}


def run_reports(strategy: FitStrategy, rounds: int = 3) -> tuple[ServerState, list[RoundReport]]:
    reports: list[RoundReport] = []
    init = strategy.init(QuadraticLearner().init_params(3))
    final = run_rounds(
        strategy,
        federation(FOUR),
        init,
        rounds=rounds,
        run=RUN,
        on_round=lambda s, r: reports.append(r),
    )
    return final, reports


def same_round(a: RoundReport, b: RoundReport) -> bool:
    return replace(a, seconds=0.0) == replace(b, seconds=0.0)


@pytest.mark.parametrize("name", sorted(WRAPPABLE))
def test_an_identity_wrapper_gives_the_same_bits(name: str) -> None:
    plain, plain_reports = run_reports(WRAPPABLE[name])
    wrapped, wrapped_reports = run_reports(Rescaled(WRAPPABLE[name]))
    assert wrapped.params.sha256() == plain.params.sha256()
    for key, slot in plain.update.items():  # SCAFFOLD's control variate, folded per reply
        np.testing.assert_array_equal(wrapped.update[key], slot)
    assert all(map(same_round, plain_reports, wrapped_reports))


@pytest.mark.parametrize("name", ["fedavg-streamed", "fedavg-stacked"])
def test_a_wrapper_adds_a_transform_and_rescales_the_aggregate(name: str) -> None:
    """Clip every update and halve the aggregate: the same bits as the inner strategy with
    the clip among its own transforms and a server learning rate of one half."""
    inner = WRAPPABLE[name]
    assert isinstance(inner, Strategy)
    wrapped, _ = run_reports(Rescaled(inner, (ClipNorm(0.05),), scale=0.5))
    direct = replace(inner, transforms=(ClipNorm(0.05),), server_optimizer=ServerSGD(lr=0.5))
    expected, _ = run_reports(direct)
    assert wrapped.params.sha256() == expected.params.sha256()
    unclipped, _ = run_reports(replace(inner, server_optimizer=ServerSGD(lr=0.5)))
    assert unclipped.params.sha256() != expected.params.sha256()  # the clip did bind


def test_a_wrapper_leaves_the_inner_instructions_and_the_replies_as_they_were() -> None:
    inner = WRAPPABLE["fedavg-stacked"]
    wrapper = Rescaled(inner, (ClipNorm(1.0),), scale=0.5)
    state = start(inner)
    ours = wrapper.configure_fit(state, ["a", "b"], RUN)
    theirs = inner.configure_fit(state, ["a", "b"], RUN)
    assert [i.transforms for _, i in ours] == [(ClipNorm(1.0),)] * 2
    assert [i.transforms for _, i in theirs] == [(), ()]
    replies = [FitRes("a", 1, np.array([2.0, 4.0], np.float32), 1, 1, 0.0)]
    new, summary = wrapper.aggregate_fit(state, replies, num_clients=2, run=RUN)
    np.testing.assert_array_equal(replies[0].update, [2.0, 4.0])  # not modified
    np.testing.assert_array_equal(new.params.flat, [1.0, 2.0])
    assert isinstance(summary, FitSummary)


def norm_scored(updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext) -> Aggregate:
    """The mean, scoring each client by its update's norm (a robust aggregator's shape)."""
    norms = np.linalg.norm(updates.astype(np.float64), axis=1)
    return Aggregate(weighted_mean(updates, weights), {"norm": norms})


def test_per_client_scores_reach_the_round_result_in_the_replied_order() -> None:
    transport = Wrapped(federation(TWO))
    result = one_round(Strategy(FULL_BATCH, aggregator=norm_scored), transport)
    assert result.replied == ("a", "b")
    # One step of 1/2 from 0: a's update (1, 0), b's (0, 2).
    np.testing.assert_array_equal(result.summary.scores["norm"], [1.0, 2.0])
    np.testing.assert_array_equal(result.state.params.flat, [0.25, 1.5])  # as FedAvg's
