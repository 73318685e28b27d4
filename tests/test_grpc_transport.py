"""The gRPC transport over loopback with a real PKI: same results as in memory, mutual TLS,
revocation, large models and drop-outs. Every server and participant thread is stopped here."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset
from fedswarm.data.digits import load_digits
from fedswarm.deploy.node import peer_check, tls_identity
from fedswarm.driver import RoundPolicy, pump, run_rounds
from fedswarm.learner import Learner
from fedswarm.messages import Failure, FitRes
from fedswarm.params import Params
from fedswarm.presets import fedavg
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.models import MLP
from fedswarm.rounds import fit_round
from fedswarm.security.pki import NodePaths, Role, TrustStore, init_ca, issue, revoke
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.strategy import RunInfo
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining
from fedswarm.transport.grpc.client import AppFactory, Backoff, ParticipantRefused, run_participant
from fedswarm.transport.grpc.frames import METHOD, RunSpec, message_frames, new_message_id
from fedswarm.transport.grpc.server import GrpcServerTransport
from fedswarm.transport.grpc.tls import PeerCheck
from fedswarm.wire import encode

RUN = RunInfo("grpc-test", seed=3)
TRAINING = LocalTraining(batch_size=32, lr=0.05, epochs=1)
CLIENTS = ("00000", "00001", "00002")
SPEC = RunSpec(RUN.run_id, "")
FAST = Backoff(initial_s=0.05, max_s=0.2, connect_timeout_s=2.0)


def factory(app: ClientApp) -> AppFactory:
    """A participant that is ``app`` whatever run it joins."""
    return lambda spec: app


@dataclass(frozen=True)
class Pki:
    dir: Path
    server: NodePaths
    clients: dict[str, NodePaths]

    def trust(self) -> TrustStore:
        return TrustStore.load(self.dir)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root)
    server = issue(root, "coordinator", Role.SERVER)
    clients = {n: issue(root, n, Role.CLIENT) for n in (*CLIENTS, "mallory")}
    revoke(root, "mallory")
    return Pki(root, server, clients)


def _check(trust: TrustStore) -> PeerCheck:
    return peer_check(trust, Role.CLIENT)


def _wait_for(predicate: object, seconds: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@contextmanager
def serving(
    pki: Pki, apps: Sequence[ClientApp], stops: dict[str, threading.Event] | None = None
) -> Iterator[GrpcServerTransport]:
    """A started coordinator with ``apps`` connected as participants; all stopped after."""
    server = GrpcServerTransport(tls_identity(pki.server), _check(pki.trust()), run=SPEC)
    port = server.start("127.0.0.1", 0)
    stops = stops if stops is not None else {}
    threads = []
    for app in apps:
        stop = stops.setdefault(app.client_id, threading.Event())
        args = (f"127.0.0.1:{port}", tls_identity(pki.clients[app.client_id]), factory(app), stop)
        t = threading.Thread(target=run_participant, args=args, kwargs={"backoff": FAST})
        t.start()
        threads.append(t)
    try:
        _wait_for(lambda: set(server.available()) == {a.client_id for a in apps})
        yield server
    finally:
        for stop in stops.values():
            stop.set()
        server.stop(grace=1.0)
        for t in threads:
            t.join(timeout=10)
        assert not any(t.is_alive() for t in threads), "a participant did not stop"


def digits_apps() -> tuple[list[ClientApp], TorchLearner]:
    data = load_digits(num_clients=len(CLIENTS))
    learner = TorchLearner(lambda: MLP(64, (16,), 10))
    return [ClientApp(cid, learner, data.client(cid)) for cid in data.client_ids()], learner


def test_three_rounds_over_grpc_equal_the_in_memory_run(pki: Pki) -> None:
    apps, learner = digits_apps()
    assert tuple(a.client_id for a in apps) == CLIENTS
    strategy = fedavg(TRAINING)
    start = strategy.init(learner.init_params(seed=0))
    by_id = {a.client_id: a for a in apps}
    memory = InMemoryTransport(list(CLIENTS), by_id.__getitem__)
    expected = run_rounds(strategy, memory, start, rounds=3, run=RUN)
    with serving(pki, apps) as server:
        got = run_rounds(
            strategy, server, start, rounds=3, run=RUN, policy=RoundPolicy(timeout_s=60)
        )
    assert got.round == 3
    np.testing.assert_array_equal(got.params.flat, expected.params.flat)
    assert not np.array_equal(got.params.flat, start.params.flat)


def test_a_revoked_participant_is_refused(pki: Pki) -> None:
    apps, _ = digits_apps()
    with serving(pki, apps[:1]) as server:
        address = _address(server)
        mallory = ClientApp("mallory", apps[0].learner, apps[0].data)
        with pytest.raises(ParticipantRefused, match="revoked") as refused:
            run_participant(
                address, tls_identity(pki.clients["mallory"]), factory(mallory), backoff=FAST
            )
        assert refused.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert server.available() == ["00000"]


def test_a_certificate_from_another_ca_fails_the_handshake(pki: Pki, tmp_path: Path) -> None:
    init_ca(tmp_path / "other")
    stranger = issue(tmp_path / "other", "00001", Role.CLIENT)
    apps, _ = digits_apps()
    with serving(pki, apps[:1]) as server:
        address = _address(server)
        for node, ready in ((stranger, False), (pki.clients["00001"], True)):
            creds = grpc.ssl_channel_credentials(
                pki.server.ca_cert.read_bytes(), node.key.read_bytes(), node.cert.read_bytes()
            )
            with grpc.secure_channel(address, creds) as channel:
                future = grpc.channel_ready_future(channel)
                if ready:
                    future.result(timeout=5)
                else:
                    with pytest.raises(grpc.FutureTimeoutError):
                        future.result(timeout=1)
        assert server.available() == ["00000"]


@dataclass(frozen=True)
class DoublingLearner:
    """Returns ``2 w``, so the update it sends back is ``w`` itself: checks both directions."""

    def init_params(self, seed: int) -> Params:
        raise NotImplementedError

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        return LocalFit(params.flat * 2, len(data), 1, 0.0)

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        raise NotImplementedError


def test_a_64_mb_model_passes_intact(pki: Pki) -> None:
    apps, _ = digits_apps()
    learner: Learner = DoublingLearner()
    app = ClientApp("00000", learner, apps[0].data)
    w = np.random.default_rng(0).standard_normal(16 << 20, dtype=np.float32)  # 64 MiB
    strategy = fedavg(TRAINING)
    requests = strategy.configure_fit(strategy.init(Params.from_arrays({"w": w})), ["00000"], RUN)
    with serving(pki, [app]) as server:
        [outcome] = server.exchange(requests, timeout=120)
    assert isinstance(outcome, FitRes), outcome
    assert outcome.update.nbytes == 64 << 20
    np.testing.assert_array_equal(outcome.update, w)


@dataclass(frozen=True)
class VanishingLearner:
    """Pulls the plug on its own participant in the middle of training."""

    inner: TorchLearner
    stop: threading.Event

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
        self.stop.set()
        time.sleep(0.2)  # the participant's connection is cancelled meanwhile
        return self.inner.fit(params, data, training, correction, seed)

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        return self.inner.evaluate(params, data)


def test_a_participant_killed_mid_round_is_a_failure_and_the_round_completes(pki: Pki) -> None:
    apps, learner = digits_apps()
    stops = {cid: threading.Event() for cid in CLIENTS}
    apps[1] = ClientApp("00001", VanishingLearner(learner, stops["00001"]), apps[1].data)
    strategy = fedavg(TRAINING)
    state = strategy.init(learner.init_params(seed=0))
    with serving(pki, apps, stops) as server:
        result = pump(fit_round(strategy, state, server.available(), RUN, 2), server, 60)
        _wait_for(lambda: server.available() == ["00000", "00002"])
    [failure] = result.failures
    assert isinstance(failure, Failure)
    assert failure.client_id == "00001"
    assert "disconnected" in failure.reason
    assert result.summary.num_replies == 2
    assert result.state.round == 1


def test_a_reply_claiming_another_identity_is_refused(pki: Pki) -> None:
    apps, _ = digits_apps()
    impostor = ClientApp("00002", apps[0].learner, apps[0].data)  # certificate 00000
    strategy = fedavg(TRAINING)
    state = strategy.init(apps[0].learner.init_params(seed=0))
    server = GrpcServerTransport(tls_identity(pki.server), _check(pki.trust()), run=SPEC)
    port = server.start()
    stop = threading.Event()
    node = pki.clients["00000"]
    t = threading.Thread(
        target=run_participant,
        args=(f"127.0.0.1:{port}", tls_identity(node), factory(impostor), stop),
        kwargs={"backoff": FAST},
    )
    t.start()
    try:
        _wait_for(lambda: server.available() == ["00000"])
        [outcome] = server.exchange(strategy.configure_fit(state, ["00000"], RUN), timeout=60)
    finally:
        stop.set()
        server.stop(grace=1.0)
        t.join(timeout=10)
    assert not t.is_alive()
    assert isinstance(outcome, Failure)
    assert "from '00002', its sender is '00000'" in outcome.reason


def test_an_unknown_participant_is_not_connected(pki: Pki) -> None:
    apps, _ = digits_apps()
    strategy = fedavg(TRAINING)
    state = strategy.init(apps[0].learner.init_params(seed=0))
    with serving(pki, apps[:1]) as server:
        outcomes = server.exchange(strategy.configure_fit(state, ["00001"], RUN), timeout=5)
    assert [(o.client_id, getattr(o, "reason", None)) for o in outcomes] == [
        ("00001", "not connected")
    ]


def _address(server: GrpcServerTransport) -> str:
    assert server.port is not None
    return f"127.0.0.1:{server.port}"


def test_a_reply_to_no_outstanding_instruction_is_refused(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    apps, _ = digits_apps()
    forged = FitRes("00001", 1, np.zeros(3, np.float32), 10, 1, 0.5)
    frames = list(message_frames(encode(forged), new_message_id()))
    node = pki.clients["00001"]
    creds = grpc.ssl_channel_credentials(
        node.ca_cert.read_bytes(), node.key.read_bytes(), node.cert.read_bytes()
    )
    with (
        caplog.at_level(logging.WARNING),
        serving(pki, apps[:1]) as server,
        grpc.secure_channel(_address(server), creds) as channel,
    ):
        call = channel.stream_stream(METHOD)(iter(frames))
        try:
            _wait_for(lambda: "refused input from 00001" in caplog.text)
        finally:
            call.cancel()
        assert "not an instruction outstanding for it" in caplog.text
        assert server.refusals == {"00001": 1}


def test_reloading_trust_disconnects_a_revoked_participant(tmp_path: Path) -> None:
    init_ca(tmp_path)
    node = issue(tmp_path, "00000", Role.CLIENT)
    server = GrpcServerTransport(
        tls_identity(issue(tmp_path, "coordinator", Role.SERVER)),
        _check(TrustStore.load(tmp_path)),
        run=SPEC,
    )
    port = server.start()
    apps, _ = digits_apps()
    stop, refused = threading.Event(), []

    def participate() -> None:
        try:
            identity = tls_identity(node)
            run_participant(f"127.0.0.1:{port}", identity, factory(apps[0]), stop, backoff=FAST)
        except ParticipantRefused as err:
            refused.append(err)

    t = threading.Thread(target=participate)
    t.start()
    try:
        _wait_for(lambda: server.available() == ["00000"])
        revoke(tmp_path, "00000")
        server.reload_check(_check(TrustStore.load(tmp_path)))
        assert server.available() == []
        t.join(timeout=10)  # it reconnects, and is refused
    finally:
        stop.set()
        server.stop(grace=1.0)
        t.join(timeout=10)
    assert not t.is_alive()
    [err] = refused
    assert err.code is grpc.StatusCode.PERMISSION_DENIED
    assert "revoked" in err.details
