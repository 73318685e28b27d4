"""What the gRPC transport refuses, and why, over loopback with a real PKI: a taken port,
replies that answer nothing asked of the sender, and certificates the TLS handshake rejects
(the participant must stop, not retry for ever). Every thread started here is stopped."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from certs import issue_expired
from fedswarm.client import ClientApp, Session
from fedswarm.deploy.node import peer_check, tls_identity
from fedswarm.messages import ClientMemory, EvaluateRes, Failure, FitIns, FitRes, Reply
from fedswarm.presets import fedavg
from fedswarm.security.pki import Role, TrustStore, init_ca, issue
from fedswarm.transport.base import Request
from fedswarm.transport.grpc import server as grpc_server
from fedswarm.transport.grpc.client import HandshakeFailed, ParticipantRefused, run_participant
from fedswarm.transport.grpc.diagnose import DialProblem, ListenError
from fedswarm.transport.grpc.server import GrpcServerTransport
from fedswarm.transport.grpc.tls import TlsIdentity
from test_grpc_transport import CLIENTS, FAST, RUN, SPEC, TRAINING, Pki, digits_apps, factory


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root)
    server = issue(root, "coordinator", Role.SERVER)
    return Pki(root, server, {n: issue(root, n, Role.CLIENT) for n in CLIENTS})


def _server(pki: Pki, max_message_bytes: int = 1 << 30) -> GrpcServerTransport:
    check = peer_check(TrustStore.load(pki.dir), Role.CLIENT)
    return GrpcServerTransport(
        tls_identity(pki.server), check, run=SPEC, max_message_bytes=max_message_bytes
    )


@contextmanager
def connected(server: GrpcServerTransport, pki: Pki, app: ClientApp) -> Iterator[None]:
    """``server`` started, with ``app`` connected (on its own certificate); all stopped after."""
    port, stop = server.start(), threading.Event()
    identity = tls_identity(pki.clients[app.client_id])
    args = (f"127.0.0.1:{port}", identity, factory(app), stop)
    thread = threading.Thread(target=run_participant, args=args, kwargs={"backoff": FAST})
    thread.start()
    try:
        for _ in range(500):
            if server.available() == [app.client_id]:
                break
            stop.wait(0.02)
        assert server.available() == [app.client_id], "the participant did not connect"
        yield
    finally:
        stop.set()
        server.stop(grace=1.0)
        thread.join(timeout=10)
    assert not thread.is_alive(), "the participant did not stop"


def _fit_requests(app: ClientApp) -> list[Request]:
    strategy = fedavg(TRAINING)
    state = strategy.init(app.learner.init_params(seed=0))
    return list(strategy.configure_fit(state, [app.client_id], RUN))


# -- listening ------------------------------------------------------------------------------


def test_a_second_coordinator_on_a_taken_port_is_refused(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _server(pki)
    port = first.start()
    try:
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}: the port is in use"):
            _server(pki).start("127.0.0.1", port)
        # Both starting at once, so the check before binding passes: gRPC shares a port
        # between servers unless told not to, and the second would take half the participants.
        monkeypatch.setattr(grpc_server, "bind_problem", lambda host, port: None)
        with pytest.raises(ListenError, match="the port is in use"):
            _server(pki).start("127.0.0.1", port)
    finally:
        first.stop(grace=0)


def test_a_port_held_by_another_program_is_named_with_the_cause(pki: Pki) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ListenError, match="another program listens on it"):
            _server(pki).start("127.0.0.1", port)


# -- replies that answer nothing asked -------------------------------------------------------


def misreporting(app: ClientApp, alter: Callable[[Reply], Reply]) -> ClientApp:
    """``app``, answering fit instructions honestly, then altering the reply before it is
    sent (its fit handler wrapped, as a protocol's participant half would be)."""
    fit = app.handlers[FitIns]

    def handle(
        a: ClientApp, ins: FitIns, memory: ClientMemory, session: Session
    ) -> tuple[Reply, ClientMemory]:
        reply, memory = fit(a, ins, memory, session)
        return alter(reply), memory

    return replace(app, handlers={**app.handlers, FitIns: handle})


def _one_reply(pki: Pki, alter: Callable[[Reply], Reply]) -> Failure:
    apps, _ = digits_apps()
    app = misreporting(apps[0], alter)
    server = _server(pki)
    with connected(server, pki, app):
        [outcome] = server.exchange(_fit_requests(app), timeout=60)
    assert isinstance(outcome, Failure), outcome
    assert (outcome.client_id, outcome.round) == ("00000", 1)
    assert server.refusals == {"00000": 1}
    return outcome


@pytest.mark.parametrize(
    ("alter", "why"),
    [
        (lambda r: replace(r, round=r.round + 1), "a reply for round 2, not 1"),
        (lambda r: EvaluateRes(r.client_id, r.round, 0.1, 0.9, 10), "EvaluateRes is no FitRes"),
    ],
    ids=["wrong round", "wrong kind"],
)
def test_a_reply_that_does_not_answer_the_instruction_is_refused(
    pki: Pki, alter: Callable[[Reply], Reply], why: str
) -> None:
    assert why in _one_reply(pki, alter).reason


def test_asking_one_participant_twice_in_one_exchange_fails_the_second(pki: Pki) -> None:
    apps, _ = digits_apps()
    server = _server(pki)
    with connected(server, pki, apps[0]):
        requests = _fit_requests(apps[0])
        first, second = server.exchange([*requests, *requests], timeout=60)
    assert isinstance(first, FitRes), first
    assert isinstance(second, Failure), second
    assert (second.client_id, second.round) == ("00000", 1)
    assert "asked twice in one exchange" in second.reason


def test_an_oversized_reply_is_refused_and_its_sender_disconnected(pki: Pki) -> None:
    apps, _ = digits_apps()  # the MLP's update is 4.8 kB
    server = _server(pki, max_message_bytes=4000)
    with connected(server, pki, apps[0]):
        [outcome] = server.exchange(_fit_requests(apps[0]), timeout=60)
        assert "00000" not in server.available()
    assert isinstance(outcome, Failure), outcome
    assert (outcome.client_id, outcome.round) == ("00000", 1)
    assert "exceeds max_bytes=4000" in outcome.reason
    assert server.refusals == {"00000": 1}


# -- certificates the handshake refuses ------------------------------------------------------


def _dial(address: str, identity: TlsIdentity, seconds: float = 20.0) -> ParticipantRefused | None:
    """What ``run_participant`` raised within ``seconds`` (None: it was still retrying)."""
    apps, _ = digits_apps()
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        run_participant(address, identity, factory(apps[0]), stop, backoff=FAST)
    except ParticipantRefused as err:
        return err
    finally:
        timer.cancel()
    return None


def _refused_at_handshake(pki: Pki, identity: TlsIdentity) -> HandshakeFailed:
    server = _server(pki)
    port = server.start()
    try:
        refused = _dial(f"127.0.0.1:{port}", identity)
        assert server.available() == []
    finally:
        server.stop(grace=0)
    assert isinstance(refused, HandshakeFailed), f"not refused but {refused!r}"
    return refused


def test_an_expired_certificate_stops_the_participant(pki: Pki) -> None:
    refused = _refused_at_handshake(pki, tls_identity(issue_expired(pki.dir, "00005")))
    assert refused.failure.problem is DialProblem.CLOSED_IN_HANDSHAKE
    assert "does not accept this participant's certificate" in str(refused)


def test_a_server_certificate_cannot_dial_in_as_a_participant(pki: Pki) -> None:
    refused = _refused_at_handshake(pki, tls_identity(issue(pki.dir, "00006", Role.SERVER)))
    assert refused.failure.problem is DialProblem.CLOSED_IN_HANDSHAKE


def test_a_participant_trusting_another_ca_stops_at_once(pki: Pki, tmp_path: Path) -> None:
    init_ca(tmp_path / "other")
    node = pki.clients["00000"]
    identity = TlsIdentity(
        node.key.read_bytes(), node.cert.read_bytes(), (tmp_path / "other" / "ca.crt").read_bytes()
    )
    refused = _refused_at_handshake(pki, identity)
    assert refused.failure.problem is DialProblem.UNTRUSTED_COORDINATOR
    assert "CERTIFICATE_VERIFY_FAILED" in refused.failure.reason
    assert "does not accept the certificate of 127.0.0.1" in str(refused)


def test_while_the_coordinator_is_down_the_participant_retries_saying_why(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    with caplog.at_level(logging.WARNING):
        assert _dial(f"127.0.0.1:{port}", tls_identity(pki.clients["00000"]), 1.5) is None
    assert f"cannot reach 127.0.0.1:{port}" in caplog.text
    assert "Connection refused" in caplog.text
