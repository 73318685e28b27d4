"""Split learning against its oracles: cutting, centralised training, FedAvg, the labels."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import split_helpers as h
from fedswarm.aggregation.mean import weighted_mean
from fedswarm.driver import pump
from fedswarm.messages import Outcome, Refusal
from fedswarm.params import Params
from fedswarm.pytorch.learner import TorchLearner, batch_indices, make_optimizer
from fedswarm.pytorch.models import CNN, CharLSTM
from fedswarm.pytorch.params import flat_tensor, load_params
from fedswarm.reports import RoundReport
from fedswarm.rounds import QuorumError
from fedswarm.seeding import client_seed, round_rng
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.split import CODEC, KINDS, CutError, SplitMode, SplitPlan, SplitProtocol, cut_model
from fedswarm.split.coordinator import turns_epoch
from fedswarm.split.cut import default_cuts
from fedswarm.split.driver import unpack
from fedswarm.split.messages import HeadRes, StepRes
from fedswarm.strategy import RunInfo
from fedswarm.training import GradientCorrection, LocalTraining, OptimizerKind
from fedswarm.transport.base import Request

RUN = RunInfo("split-test", 3)


def _sgd(**kw: object) -> LocalTraining:
    return LocalTraining(**{"batch_size": 8, "lr": 0.1, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "u_shaped", "expected"),
    [
        (h.MODEL(), False, ("net.2", None)),
        (h.MODEL(), True, ("net.2", "net.5")),
        (CNN(1, 8, (2, 3), 5, 4), True, ("features.2", "head.3")),
        (CharLSTM(10, 4, 6, 1), True, ("embed", "head")),
    ],
)
def test_built_in_models_cut_by_default_into_parts_that_compose_to_the_model(
    model: nn.Module, u_shaped: bool, expected: tuple[str, str | None]
) -> None:
    cuts = default_cuts(model, u_shaped)
    assert cuts == expected
    parts = cut_model(model, *cuts)
    x = torch.randint(0, 10, (3, 5)) if isinstance(model, CharLSTM) else torch.randn(3, 1, 8, 8)
    if isinstance(model, type(h.MODEL())):
        x = torch.randn(3, h.FEATURES)
    with torch.no_grad():
        assert torch.equal(parts.full()(x), model(x))
    whole = np.concatenate(
        [flat_tensor(p) for p in (parts.bottom, parts.trunk, parts.head) if p is not None]
    )
    assert np.array_equal(whole, flat_tensor(model))  # the parts' state is the model's, in order
    shared = {id(p) for p in model.parameters()} & {id(p) for p in parts.full().parameters()}
    assert not shared  # copies: training a part leaves the model as it was


def test_a_cut_that_does_not_fit_names_the_layers() -> None:
    with pytest.raises(CutError, match=r"'net\.9' is not a layer.*'net\.0'"):
        cut_model(h.MODEL(), "net.9")
    with pytest.raises(CutError, match="last layer"):
        cut_model(h.MODEL(), "net.5")
    with pytest.raises(CutError, match="comes before"):
        cut_model(h.MODEL(), "net.3", "net.1")


def _centralised(training: LocalTraining, epochs: int) -> np.ndarray:
    """The uncut model trained on the participant's batches, in the same order."""
    torch.manual_seed(0)
    model = h.MODEL()
    load_params(model, TorchLearner(h.MODEL).init_params(0))
    data = h.local_data("p0").train
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    optimizer = make_optimizer(list(model.parameters()), training)
    for rnd in range(1, epochs + 1):
        for idx in batch_indices(len(data), training, client_seed(RUN.seed, rnd, "p0")):
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return flat_tensor(model)


@pytest.mark.parametrize("mode", [SplitMode.VANILLA, SplitMode.U_SHAPED])
@pytest.mark.parametrize(
    "training",
    [_sgd(momentum=0.9, weight_decay=1e-3), _sgd(optimizer=OptimizerKind.ADAM, lr=0.01)],
    ids=["sgd-momentum", "adam"],
)
def test_one_participant_equals_centralised_training_of_the_uncut_model(
    mode: SplitMode, training: LocalTraining
) -> None:
    head = "net.5" if mode is SplitMode.U_SHAPED else None
    plan = SplitPlan.cutting(h.MODEL, "net.2", head)
    protocol = SplitProtocol(plan, mode, training)
    start = protocol.initial_state(TorchLearner(h.MODEL).init_params(0))
    final = protocol.run_rounds(h.transport(plan, 1), start, rounds=3, run=RUN)
    expected = _centralised(training, 3)
    assert final.round == 3
    assert not np.array_equal(final.params.flat, start.params.flat)
    # The optimiser states travel with the parts: three epochs, one optimiser, as centralised.
    np.testing.assert_allclose(final.params.flat, expected, rtol=0, atol=1e-6)


class Recording(InMemoryTransport):
    """Keeps every reply the coordinator receives."""

    received: list[Outcome]

    def exchange(self, requests: Sequence[Request], **kw: object) -> list[Outcome]:
        out = super().exchange(requests, **kw)  # type: ignore[arg-type]
        self.__dict__.setdefault("received", []).extend(out)
        return list(out)


def test_u_shaped_the_server_receives_no_labels_and_no_head_output() -> None:
    plan = SplitPlan.cutting(h.MODEL, "net.2", "net.5")
    protocol = SplitProtocol(plan, SplitMode.U_SHAPED, _sgd(), batches_per_exchange=2)
    ids = ["p0", "p1"]
    transport = Recording(ids, h.Participants(plan), kinds=protocol.kinds)
    protocol.run_rounds(
        transport, protocol.initial_state(TorchLearner(h.MODEL).init_params(0)), rounds=1, run=RUN
    )
    steps = [o for o in transport.received if isinstance(o, StepRes)]
    heads = [o for o in transport.received if isinstance(o, HeadRes)]
    assert steps
    assert heads
    assert len(transport.received) == len(steps) + len(heads)
    assert all(s.labels == () for s in steps)
    hidden = 16  # the cut: after the first hidden layer's ReLU
    assert all(a.shape[1] == hidden for s in steps for a in s.activations)
    # what comes back from the head is d loss / d trunk output (width 8), never logits (4)
    assert all(g.shape[1] == 8 for r in heads for g in r.grads)
    for reply in transport.received:  # and on the wire: no integer tensor, no logits' width
        data = CODEC.encode(reply)
        header = json.loads(data[8 : 8 + int.from_bytes(data[4:8], "little")])
        assert all(row["dtype"] == "float32" for row in header["tensors"])
        assert all(row["shape"][-1] != h.CLASSES for row in header["tensors"])


def _fedavg(
    start: np.ndarray, clients: list[str], training: LocalTraining, rounds: int
) -> np.ndarray:
    learner, params = TorchLearner(h.MODEL), TorchLearner(h.MODEL).init_params(0).replace(start)
    for rnd in range(1, rounds + 1):
        fits = [
            learner.fit(
                params,
                h.local_data(c).train,
                training,
                GradientCorrection(),
                client_seed(RUN.seed, rnd, c),
            )
            for c in clients
        ]
        weights = np.array([f.num_examples for f in fits], np.float64)
        params = params.replace(weighted_mean(np.stack([f.params for f in fits]), weights))
    return params.flat


@pytest.mark.parametrize("mode", [SplitMode.SPLITFED_V1, SplitMode.SPLITFED_V2])
def test_splitfed_with_an_identity_server_part_equals_fedavg(mode: SplitMode) -> None:
    plan = SplitPlan(h.IdentityServer())
    training = _sgd()
    protocol = SplitProtocol(plan, mode, training)
    start = protocol.initial_state(TorchLearner(h.MODEL).init_params(0))
    transport = h.transport(plan, 3)
    final = protocol.run_rounds(transport, start, rounds=2, run=RUN)
    expected = _fedavg(start.params.flat, ["p0", "p1", "p2"], training, 2)
    assert not np.array_equal(final.params.flat, start.params.flat)
    np.testing.assert_allclose(final.params.flat, expected, rtol=0, atol=1e-6)


def _nan(res: StepRes) -> StepRes:
    return replace(res, activations=tuple(np.full_like(a, np.nan) for a in res.activations))


def _bad_class(res: StepRes) -> StepRes:
    return replace(res, labels=tuple(np.full_like(y, 99) for y in res.labels))


def _wide(res: StepRes) -> StepRes:
    return replace(
        res, activations=tuple(np.zeros((len(a), 3), np.float32) for a in res.activations)
    )


def _wrong_part(res: StepRes) -> StepRes:
    if res.final is None:
        return res
    p = Params.from_arrays({"w": np.zeros(3, np.float32)})
    return replace(res, final=replace(res.final, params=p))


@pytest.mark.parametrize(
    ("spoil", "refusal"),
    [
        (_nan, Refusal.NON_FINITE),
        (_bad_class, Refusal.MALFORMED),
        (_wide, Refusal.MALFORMED),
        (_wrong_part, Refusal.MALFORMED),
    ],
)
@pytest.mark.parametrize("mode", [SplitMode.VANILLA, SplitMode.SPLITFED_V2])
def test_a_bad_reply_is_refused_with_its_reason_and_the_round_goes_on(
    spoil: Callable[[StepRes], StepRes], refusal: Refusal, mode: SplitMode
) -> None:
    plan = SplitPlan.cutting(h.MODEL, "net.2", None)
    protocol = SplitProtocol(plan, mode, _sgd())
    transport = InMemoryTransport(["p0", "p1", "p2"], h.WithOneBad(plan, "p1", spoil), kinds=KINDS)
    reports: list[RoundReport] = []
    start = protocol.initial_state(TorchLearner(h.MODEL).init_params(0))
    final = protocol.run_rounds(
        transport, start, rounds=1, run=RUN, on_round=lambda s, r: reports.append(r)
    )
    (report,) = reports
    assert report.replied == ("p0", "p2")
    assert [(f.client_id, f.refusal) for f in report.failures] == [("p1", refusal)]
    assert np.isfinite(final.params.flat).all()


def test_batches_per_exchange_cuts_the_round_trips() -> None:
    plan = SplitPlan.cutting(h.MODEL, "net.2", None)
    trips, reports = {}, list[RoundReport]()
    for k in (1, 4):
        protocol = SplitProtocol(plan, SplitMode.VANILLA, _sgd(), batches_per_exchange=k)
        reports.clear()
        start = protocol.initial_state(TorchLearner(h.MODEL).init_params(0))
        protocol.run_rounds(
            h.transport(plan, 1), start, rounds=1, run=RUN, on_round=lambda s, r: reports.append(r)
        )
        trips[k] = reports[0].metrics["split/exchanges"]
    # p0 holds 29 examples: 4 batches of 8; one more exchange returns the trained part
    assert trips == {1: 5.0, 4: 2.0}


def test_splitfed_v1_with_a_real_trunk_is_fedavg_of_the_uncut_model() -> None:
    # Each participant trains bottom + its own trunk copy by the same SGD steps local
    # training takes, and both halves are averaged by examples: FedAvg, layer by layer.
    # SplitFed v2 (one trunk serving all in turn) is not, and the test says so.
    training = _sgd()
    plan = SplitPlan.cutting(h.MODEL, "net.2", None)
    start = SplitProtocol(plan, SplitMode.SPLITFED_V1, training).initial_state(
        TorchLearner(h.MODEL).init_params(0)
    )
    expected = _fedavg(start.params.flat, ["p0", "p1", "p2"], training, 2)
    finals = {
        mode: SplitProtocol(plan, mode, training)
        .run_rounds(h.transport(plan, 3), start, rounds=2, run=RUN)
        .params.flat
        for mode in (SplitMode.SPLITFED_V1, SplitMode.SPLITFED_V2)
    }
    np.testing.assert_allclose(finals[SplitMode.SPLITFED_V1], expected, rtol=0, atol=1e-6)
    assert np.abs(finals[SplitMode.SPLITFED_V2] - expected).max() > 1e-3


def _raise_on_second_step(res: StepRes) -> StepRes:
    if res.final is None and res.activations and len(_SEEN) >= 1:
        raise RuntimeError("the participant's device died mid-epoch")
    _SEEN.append(1)
    return res


_SEEN: list[int] = []


def test_vanilla_a_participant_dying_mid_turn_leaves_the_last_hand_off() -> None:
    plan = SplitPlan.cutting(h.MODEL, "net.2", None)
    protocol = SplitProtocol(plan, SplitMode.VANILLA, _sgd(momentum=0.5))
    start = protocol.initial_state(TorchLearner(h.MODEL).init_params(0))
    ids = ["p0", "p1", "p2"]
    full = [str(c) for c in round_rng(RUN.seed, 1, "split.order").permutation(ids)]
    bad = full[1]  # one turn before it, one after
    _SEEN.clear()
    dying = InMemoryTransport(
        ids, h.WithOneBad(plan, bad, _raise_on_second_step), fail_fast=False, kinds=KINDS
    )
    got, result = pump(protocol.round(start, ids, RUN), dying, None)
    # the oracle: the same turns in the same order without it, as if it never took part
    split = unpack(plan, start)
    starts = protocol._starts(RUN.seed, 1)
    order = [c for c in full if c != bad]
    turns = turns_epoch(plan, split.participant, split.trunk, order, starts, RUN.run_id, 1)
    _, participant, trunk = pump(turns, h.transport(plan, 3), None)
    assert [f.client_id for f in result.failures] == [bad]
    expected = plan.join_params(participant.params, trunk.params, start.params)
    np.testing.assert_array_equal(got.params.flat, expected.flat)


@pytest.mark.parametrize("mode", list(SplitMode))
def test_a_round_nobody_completes_fails_its_quorum(mode: SplitMode) -> None:
    head = "net.5" if mode is SplitMode.U_SHAPED else None
    plan = SplitPlan.cutting(h.MODEL, "net.2", head)
    protocol = SplitProtocol(plan, mode, _sgd())
    start = protocol.initial_state(TorchLearner(h.MODEL).init_params(0))
    with pytest.raises(QuorumError, match="0 participants completed an epoch"):
        protocol.run_rounds(h.transport(plan, 0), start, rounds=1, run=RUN)
