"""Regressions: bugs found in review, each pinned by the test that first showed it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from fedswarm.aggregation import Weighting
from fedswarm.algorithms.scaffold import Scaffold, ScaffoldExtra
from fedswarm.driver import RoundPolicy, pump
from fedswarm.messages import ClientId, EvaluateRes, FitRes, Outcome
from fedswarm.params import Params, ParamSpec
from fedswarm.rounds import QuorumError, evaluate_round, fit_round
from fedswarm.server_opt import AdaptiveRule, ServerAdaptive, ServerSGD
from fedswarm.strategy import RunInfo, Strategy
from fedswarm.training import Evaluation, LocalTraining, OptimizerKind
from fedswarm.transport.base import Fold, Request

RUN = RunInfo("bugs", seed=0)


class Canned:
    """Answers every fit request with a zero update and the given SCAFFOLD control delta."""

    def __init__(self, deltas: dict[ClientId, np.ndarray]) -> None:
        self.deltas = deltas

    def available(self) -> Sequence[ClientId]:
        return sorted(self.deltas)

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        return [
            FitRes(
                cid, ins.round, np.zeros(2, np.float32), 1, 1, 0.0, ScaffoldExtra(self.deltas[cid])
            )
            for cid, ins in requests
        ]


@pytest.mark.parametrize(
    "bad", [np.array([np.nan, 0.0], np.float32), np.zeros(5, np.float32)], ids=["nan", "shape"]
)
def test_a_malformed_scaffold_control_delta_is_refused_like_a_bad_update(bad: np.ndarray) -> None:
    strategy = Strategy(
        LocalTraining(4, 0.1), client_update=Scaffold(), weighting=Weighting.UNIFORM
    )
    state = strategy.init(Params.from_arrays({"w": np.zeros(2, np.float32)}))
    transport = Canned({"good": np.ones(2, np.float32), "bad": bad})
    result = pump(fit_round(strategy, state, transport.available(), RUN), transport, None)
    assert [f.client_id for f in result.failures] == ["bad"]
    np.testing.assert_array_equal(result.state.update["control"], [0.5, 0.5])  # 1/2 * [1, 1]


def test_an_int64_buffer_round_trips_exactly_or_is_refused() -> None:
    arrays = {"bn.num_batches_tracked": np.array(2**24 + 1, np.int64)}
    try:
        params = Params.from_arrays(arrays)
    except ValueError:
        return  # refusing to carry it is an acceptable fix
    assert int(params.arrays()["bn.num_batches_tracked"]) == 2**24 + 1


def test_params_do_not_change_when_the_callers_array_does() -> None:
    base = np.zeros(3, np.float32)
    view = base.view()
    view.flags.writeable = False
    params = Params(ParamSpec.of({"w": base}), view)
    base[0] = 7.0
    assert params.flat[0] == 0.0


def test_evaluate_round_ignores_strangers_and_stale_rounds() -> None:
    params = Params.from_arrays({"w": np.zeros(2, np.float32)})
    protocol = evaluate_round(params, ["a"], RUN, 3)
    next(protocol)
    replies: list[Outcome] = [
        EvaluateRes("a", 3, loss=1.0, accuracy=1.0, num_examples=1),
        EvaluateRes("mallory", 3, loss=100.0, accuracy=0.0, num_examples=100),
        EvaluateRes("a", 2, loss=50.0, accuracy=0.0, num_examples=10),
    ]
    with pytest.raises(StopIteration) as done:
        protocol.send(replies)
    assert done.value.value == Evaluation(loss=1.0, accuracy=1.0, num_examples=1)


def test_zero_example_replies_do_not_count_towards_the_quorum() -> None:
    strategy = Strategy(LocalTraining(4, 0.1))
    state = strategy.init(Params.from_arrays({"w": np.zeros(2, np.float32)}))

    class Idle:
        def available(self) -> Sequence[ClientId]:
            return ["a"]

        def exchange(
            self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
        ) -> list[Outcome]:
            return [FitRes(c, i.round, np.zeros(2, np.float32), 0, 0, 0.0) for c, i in requests]

    with pytest.raises(QuorumError, match="trained on no examples"):
        pump(fit_round(strategy, state, ["a"], RUN), Idle(), None)


def test_scaffold_refuses_local_optimisers_its_control_update_does_not_model() -> None:
    with pytest.raises(ValueError, match="plain local SGD"):
        Strategy(LocalTraining(4, 0.1, momentum=0.9), client_update=Scaffold())
    with pytest.raises(ValueError, match="plain local SGD"):
        Strategy(LocalTraining(4, 0.1, optimizer=OptimizerKind.ADAM), client_update=Scaffold())


def test_steps_alone_mean_steps_and_nothing_means_one_epoch() -> None:
    assert LocalTraining(4, 0.1, steps=3).epochs is None
    assert LocalTraining(4, 0.1) == LocalTraining(4, 0.1, epochs=1)
    with pytest.raises(ValueError, match="not both"):
        LocalTraining(4, 0.1, epochs=1, steps=3)


def test_policies_and_server_optimisers_validate_their_settings() -> None:
    with pytest.raises(ValueError, match="evaluate_every"):
        RoundPolicy(evaluate_every=0)
    with pytest.raises(ValueError, match="momentum"):
        ServerSGD(lr=1.0, momentum=1.5)
    with pytest.raises(ValueError, match="tau"):
        ServerAdaptive(AdaptiveRule.ADAM, tau=0.0)
    state = ServerSGD().init(np.zeros(2, np.float32))  # no momentum slot
    with pytest.raises(ValueError, match="no 'momentum' slot"):
        ServerSGD(momentum=0.9).apply(state, np.zeros(2, np.float32), np.ones(2, np.float32))


def test_server_control_variate_is_read_only() -> None:
    slots = Scaffold().init(3)
    with pytest.raises(ValueError, match="read-only"):
        slots["control"][0] = 1.0
