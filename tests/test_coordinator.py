"""The coordinator behind ``fedswarm server``, in this process over gRPC on loopback, with
participants as threads: whom each round waits for (``[deployment] clients``,
``join_timeout_s``, less the revoked), and what a round does with a participant that fails
(``min_replies``), is slow (``deadline_s``) or is revoked between rounds (the CRL is re-read).
Every coordinator and participant started here is stopped here."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset
from fedswarm.deploy.coordinator import Coordinator
from fedswarm.deploy.node import PARTITION, find_node, participant_factory, tls_identity
from fedswarm.learner import Learner
from fedswarm.messages import Failure, FailureKind
from fedswarm.params import Params
from fedswarm.reports import RoundReport
from fedswarm.run.config import loads_config
from fedswarm.security.pki import Role, init_ca, issue, revoke
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining
from fedswarm.transport.grpc.client import AppFactory, ParticipantRefused, run_participant
from fedswarm.transport.grpc.frames import RunSpec
from test_grpc_transport import FAST

NAMES = ("00000", "00001", "00002")
CONFIG = """
seed = 2
rounds = {rounds}
[data]
num_clients = 3
[client]
batch_size = 32
[strategy]
min_replies = {min_replies}
{deadline}
[evaluation]
central = false
[simulation]
backend = "sequential"
[deployment]
clients = 3
join_timeout_s = {join}
"""


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    root = tmp_path / "pki"
    init_ca(root)
    issue(root, "coordinator", Role.SERVER)
    for name in NAMES:
        issue(root, name, Role.CLIENT)
    return root


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@dataclass
class Participants:
    """Participant threads dialling ``address`` (they retry until the coordinator listens)."""

    address: str
    pki: Path
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    refused: dict[str, ParticipantRefused] = field(default_factory=dict)

    def start(self, name: str, app: AppFactory | None = None) -> None:
        identity = tls_identity(find_node(self.pki, Role.CLIENT, name))
        build = app or participant_factory(name, PARTITION)

        def serve() -> None:
            try:
                run_participant(self.address, identity, build, self.stop, backoff=FAST)
            except ParticipantRefused as err:
                self.refused[name] = err

        thread = threading.Thread(target=serve, name=f"participant-{name}")
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)
        assert not any(t.is_alive() for t in self.threads), "a participant did not stop"


@pytest.fixture
def participants(pki: Path) -> Iterator[Participants]:
    group = Participants(_free_address(), pki)
    try:
        yield group
    finally:
        group.close()


@dataclass
class Run:
    summary: dict[str, Any]
    reports: list[RoundReport]
    times: list[float]  # when each report came


def coordinate(
    participants: Participants,
    tmp_path: Path,
    *,
    rounds: int = 1,
    min_replies: int = 1,
    deadline_s: float | None = None,
    join: float = 60.0,
    between_rounds: dict[int, Any] | None = None,
) -> Run:
    """Play the config's rounds; ``between_rounds[r]()`` runs after round ``r`` commits."""
    deadline = f"deadline_s = {deadline_s}" if deadline_s else ""
    text = CONFIG.format(rounds=rounds, min_replies=min_replies, deadline=deadline, join=join)
    run = Run({}, [], [])

    def on_round(report: RoundReport) -> None:
        run.reports.append(report)
        run.times.append(time.monotonic())
        (between_rounds or {}).get(report.round, lambda: None)()

    pki = participants.pki
    node = find_node(pki, Role.SERVER)
    coordinator = Coordinator(loads_config(text), node, pki, tmp_path / "state", on_round=on_round)
    guard = threading.Timer(120, coordinator.stop.set)  # a hang fails the test, not the suite
    guard.start()
    try:
        run.summary = coordinator.run(participants.address)
    finally:
        guard.cancel()
    assert run.summary, "the coordinator was stopped before the last round"
    return run


# -- participants that misbehave once ------------------------------------------------------


@dataclass(frozen=True)
class FirstFitFails:
    """Raises in its first fit (as a participant out of memory would), trains after."""

    inner: Learner
    fits: list[float]  # when each fit started
    delay_s: float = 0.0  # or: sleeps this long in its first fit, then trains

    def init_params(self, seed: int) -> Params:
        return self.inner.init_params(seed)

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        self.fits.append(time.monotonic())
        if len(self.fits) == 1 and not self.delay_s:
            raise RuntimeError("out of memory (the first time)")
        if len(self.fits) == 1:
            time.sleep(self.delay_s)
        return self.inner.fit(params, data, training, correction, seed)

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        return self.inner.evaluate(params, data)


def misbehaving(name: str, fits: list[float], delay_s: float = 0.0) -> AppFactory:
    honest = participant_factory(name, PARTITION)

    def build(spec: RunSpec) -> ClientApp:
        app = honest(spec)
        return ClientApp(app.client_id, FirstFitFails(app.learner, fits, delay_s), app.data)

    return build


# -- the tests -----------------------------------------------------------------------------


def test_a_round_below_quorum_is_played_again_and_nothing_of_it_committed(
    participants: Participants, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fits: list[float] = []
    participants.start("00000")
    participants.start("00001")
    participants.start("00002", misbehaving("00002", fits))
    with caplog.at_level(logging.WARNING, logger="fedswarm.deploy.coordinator"):
        run = coordinate(participants, tmp_path, min_replies=3)
    assert "2 of 3 participants replied, the quorum is 3" in caplog.text
    assert "playing the round again" in caplog.text
    assert len(fits) == 2  # asked again
    [report] = run.reports  # the failed attempt reported (and committed) nothing
    assert (report.round, report.replied, report.failures) == (1, NAMES, ())
    metrics = (tmp_path / "state" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1


def test_a_participant_slower_than_the_deadline_times_out_and_the_round_completes(
    participants: Participants, tmp_path: Path
) -> None:
    fits: list[float] = []
    participants.start("00000")
    participants.start("00001")
    participants.start("00002", misbehaving("00002", fits, delay_s=4.0))
    run = coordinate(participants, tmp_path, min_replies=2, deadline_s=1.5)
    [report] = run.reports
    assert report.replied == ("00000", "00001")
    [failure] = report.failures
    assert isinstance(failure, Failure)
    assert (failure.client_id, failure.round) == ("00002", 1)
    assert failure.kind is FailureKind.TIMED_OUT
    assert "no reply within 1.5 s" in failure.reason
    assert run.times[0] - fits[0] < 4.0  # the round did not wait for it


def test_after_join_timeout_the_round_starts_with_those_connected(
    participants: Participants, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    participants.start("00000")
    participants.start("00001")  # of the 3 configured; 00002 never comes
    with caplog.at_level(logging.WARNING, logger="fedswarm.deploy.coordinator"):
        run = coordinate(participants, tmp_path, join=1.0)
    assert "going on with 2 of 3 participants" in caplog.text
    [report] = run.reports
    assert report.replied == ("00000", "00001")


def test_revoked_between_rounds_the_next_round_excludes_it_without_waiting_for_it(
    participants: Participants, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fedswarm.transport.grpc.server")
    for name in NAMES:
        participants.start(name)
    revoking = {1: lambda: revoke(participants.pki, "00002")}
    run = coordinate(participants, tmp_path, rounds=2, join=60, between_rounds=revoking)
    first, second = run.reports
    assert first.replied == NAMES
    assert second.replied == ("00000", "00001")  # the CRL was re-read before round 2
    assert run.times[1] - run.times[0] < 30, "round 2 waited for the revoked participant"
    # The re-read CRL disconnected it (if it came back before the run ended, it was refused).
    assert "disconnecting 00002" in caplog.text
    assert "revoked" in caplog.text
    if "00002" in participants.refused:
        assert "revoked" in str(participants.refused["00002"])
