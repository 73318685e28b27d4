"""Open message kinds: a protocol defined outside the core (tests/toy_protocol.py) runs end
to end in memory, in worker processes and over gRPC; sessions carry its state between the
exchanges of a round; its secrets are the participants' own."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import toy_protocol as toy
from fedswarm.client import ClientApp, Session, Sessions
from fedswarm.deploy.node import peer_check, tls_identity
from fedswarm.driver import pump
from fedswarm.entropy import OsSecrets, SimulatedSecrets
from fedswarm.kinds import BUILTIN_KINDS, UnknownMessageKind
from fedswarm.messages import Failure, FailureKind
from fedswarm.security.pki import Role, TrustStore, init_ca, issue
from fedswarm.simulation.backends import SequentialBackend
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.simulation.process import ProcessBackend
from fedswarm.transport.grpc.client import Backoff, run_participant
from fedswarm.transport.grpc.frames import RunSpec
from fedswarm.transport.grpc.server import GrpcServerTransport
from fedswarm.wire import WireError, default_codec

CLIENTS = [f"p{i}" for i in range(8)]


def _memory(backend: SequentialBackend | ProcessBackend, seed: int | None = 7) -> InMemoryTransport:
    return InMemoryTransport(
        CLIENTS, toy.ToyClients(seed), fail_fast=False, backend=backend, kinds=toy.KINDS
    )


def test_unknown_kinds_are_errors_that_name_them() -> None:
    ins = toy.CommitIns("run", 1)
    with pytest.raises(UnknownMessageKind, match=r"CommitIns \(known: EvaluateIns, FitIns\)"):
        BUILTIN_KINDS.of(ins)
    plain = ClientApp("p0", toy.NoLearner(), toy.ToyClients()("p0").data)  # builtin handlers
    with pytest.raises(UnknownMessageKind, match="no handler for a CommitIns"):
        plain.handle(ins, {})
    transport = InMemoryTransport(CLIENTS, toy.ToyClients(7))  # built-in kinds only
    with pytest.raises(UnknownMessageKind, match="CommitIns"):
        transport.exchange([("p0", ins)], timeout=None)
    with pytest.raises(WireError, match="CommitIns: not a registered message type"):
        default_codec().encode(ins)
    assert toy.CODEC.decode(toy.CODEC.encode(ins), max_bytes=1 << 10) == ins


def test_a_new_protocol_runs_in_memory_with_state_kept_between_its_exchanges() -> None:
    transport = _memory(SequentialBackend())
    first = pump(toy.commit_reveal_round("run", 1, CLIENTS), transport, None)
    again = pump(toy.commit_reveal_round("run", 1, CLIENTS), _memory(SequentialBackend()), None)
    second = pump(toy.commit_reveal_round("run", 2, CLIENTS), transport, None)
    assert sorted(first) == CLIENTS  # every reveal matched its commitment
    assert first == again  # simulated secrets: the same run replays
    assert len({*first.values(), *second.values()}) == 2 * len(CLIENTS)  # per round, per client


def test_worker_processes_get_every_exchange_of_a_participant_in_its_worker() -> None:
    backend = ProcessBackend(workers=2)
    try:
        transport = _memory(backend)
        revealed = pump(toy.commit_reveal_round("run", 1, CLIENTS), transport, None)
        assert revealed == pump(
            toy.commit_reveal_round("run", 1, CLIENTS), _memory(SequentialBackend()), None
        )
        # Commitments open sessions in both workers, and the router knows where each is.
        outcomes = transport.exchange([(c, toy.CommitIns("run", 2)) for c in CLIENTS], timeout=None)
        assert all(isinstance(o, toy.CommitRes) for o in outcomes)
        assert backend._router is not None
        where = {c: w for c, (rnd, w) in backend._router._open.items() if rnd == 2}
        assert sorted(where) == CLIENTS
        assert set(where.values()) == {0, 1}
        # The check can fail: forget the routing, and reveals reach the other worker.
        on_1 = next(c for c, w in where.items() if w == 1)
        on_0 = next(c for c, w in where.items() if w == 0)
        backend._router._open.clear()
        reveals = [(c, toy.RevealIns("run", 2)) for c in (on_1, on_0)]
        for o in transport.exchange(reveals, timeout=None):
            assert isinstance(o, Failure)
            assert o.kind is FailureKind.RAISED
            assert "no commitment" in o.reason
    finally:
        backend.close()


def test_sessions_are_per_round_and_never_pickled() -> None:
    sessions = Sessions()
    s1 = sessions.get("a", 1)
    s1.values["k"] = b"secret"
    assert sessions.get("a", 1) is s1
    assert s1.is_open
    assert sessions.get("b", 2) is not None
    assert sessions.get("a", 2).values == {}  # a later round: the old session is gone
    for thing in (s1, sessions):
        with pytest.raises(TypeError, match="never pickled"):
            pickle.dumps(thing)
    assert not Session("c", 1).is_open


def test_a_participants_os_secrets_are_not_determined_by_what_the_coordinator_holds() -> None:
    # Same run id, round, client id and public seeds: a coordinator knows all of these.
    a, b = OsSecrets(), OsSecrets()
    assert a.key(3, "toy.nonce") != b.key(3, "toy.nonce")
    assert a.generator(3, "noise").integers(2**62) != b.generator(3, "noise").integers(2**62)
    # The simulation stand-in is reproducible by design (and says so).
    sim = SimulatedSecrets(0, "p0")
    assert sim.key(3, "x") == SimulatedSecrets(0, "p0").key(3, "x") != sim.key(4, "x")
    assert "SIMULATION ONLY" in (SimulatedSecrets.__doc__ or "")


@contextmanager
def _grpc_federation(tmp_path: Path) -> Iterator[GrpcServerTransport]:
    init_ca(tmp_path)
    server = GrpcServerTransport(
        tls_identity(issue(tmp_path, "coordinator", Role.SERVER)),
        peer_check(TrustStore.load(tmp_path), Role.CLIENT),
        run=RunSpec("toy-run", ""),
        codec=toy.CODEC,
        kinds=toy.KINDS,
    )
    port = server.start()
    stop = threading.Event()
    threads = []
    for cid in CLIENTS[:3]:
        node = tls_identity(issue(tmp_path, cid, Role.CLIENT))
        app = toy.ToyClients()(cid)  # OS secrets, as a deployed participant has
        t = threading.Thread(
            target=run_participant,
            args=(f"127.0.0.1:{port}", node, lambda spec, app=app: app, stop),
            kwargs={"backoff": Backoff(0.05, 0.2, 5.0), "codec": toy.CODEC, "kinds": toy.KINDS},
        )
        t.start()
        threads.append(t)
    try:
        deadline = time.monotonic() + 30
        while len(server.available()) < 3:
            assert time.monotonic() < deadline, "participants did not connect"
            time.sleep(0.02)
        yield server
    finally:
        stop.set()
        server.stop(grace=1.0)
        for t in threads:
            t.join(timeout=10)


def test_a_new_protocol_runs_over_grpc_without_a_core_edit(tmp_path: Path) -> None:
    with _grpc_federation(tmp_path) as server:
        nonces = pump(toy.commit_reveal_round("toy-run", 1, CLIENTS[:3]), server, 30.0)
        assert sorted(nonces) == CLIENTS[:3]
        assert all(len(n) == 16 for n in nonces.values())
        assert len(set(nonces.values())) == 3  # each participant's own OS entropy
        assert server.refusals == {}
