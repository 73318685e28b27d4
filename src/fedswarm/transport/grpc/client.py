"""The participant side of a real federation: dial the coordinator, answer what it asks.

A participant connects out with mutual TLS (so it works behind NAT), holds one stream
open, and answers each instruction with its :class:`~fedswarm.client.ClientApp` and its own
memory, which stays in this process between rounds. The app is built from the
:class:`~fedswarm.transport.grpc.frames.RunSpec` the coordinator sends first (rebuilt, and the
memory cleared, if a new run starts). It stops when the coordinator says the
run is over or ``stop`` is set, and reconnects with capped exponential backoff when the
connection drops or the coordinator cannot be reached, but not when a certificate is refused
(:mod:`.diagnose` tells which). The coordinator is
:class:`fedswarm.transport.grpc.server.GrpcServerTransport`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import grpc

from fedswarm.client import ClientApp, Sessions
from fedswarm.kinds import BUILTIN_KINDS, MessageKinds, UnknownMessageKind
from fedswarm.messages import (
    ClientMemory,
    Failure,
    FailureKind,
    Instruction,
    Refusal,
    Stage,
)
from fedswarm.transport.grpc.diagnose import DialFailure, DialProblem, read_dial_failure
from fedswarm.transport.grpc.frames import (
    METHOD,
    Kind,
    RunSpec,
    ack_frame,
    message_frames,
    read_hello,
    unpack,
)
from fedswarm.transport.grpc.tls import TlsIdentity
from fedswarm.wire import DEFAULT_CHUNK_BYTES, Assembler, Codec, WireError, default_codec

__all__ = ["AppFactory", "Backoff", "HandshakeFailed", "ParticipantRefused", "run_participant"]

_log = logging.getLogger(__name__)
_REFUSED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
_CLOSES_TO_REFUSE = 2  # handshakes closed by the coordinator in a row: it refuses this one
_CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000)]
AppFactory = Callable[[RunSpec], ClientApp]  # the participant for the run it is told of
_UNKNOWN = Stage("unknown")  # the stage of an instruction that could not be read


class ParticipantRefused(Exception):  # noqa: N818 -- it is the coordinator's verdict
    """The coordinator refused this participant's certificate; retrying cannot help."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class HandshakeFailed(ParticipantRefused):
    """The TLS handshake fails on a certificate, this participant's or the coordinator's:
    retrying cannot help either. ``failure`` says which side refused and gRPC's reason."""

    def __init__(self, failure: DialFailure, server: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, failure.explain(server))
        self.failure = failure

    def __str__(self) -> str:
        return self.details


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``initial_s``, doubling up to ``max_s``; reset by a good connection."""

    initial_s: float = 0.5
    max_s: float = 30.0
    connect_timeout_s: float = 10.0  # how long one attempt waits for the TLS handshake


def run_participant(
    server: str,
    identity: TlsIdentity,
    app: AppFactory,
    stop: threading.Event | None = None,
    *,
    backoff: Backoff = Backoff(),
    max_message_bytes: int = 1 << 30,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    codec: Codec | None = None,
    kinds: MessageKinds = BUILTIN_KINDS,
) -> None:
    """Serve the coordinator at ``server`` (``host:port``) until the run is over.

    ``app`` builds this participant from the run's spec. Raises :class:`ParticipantRefused`
    if the coordinator rejects the certificate, :class:`HandshakeFailed` if the TLS handshake
    fails on a certificate (either side's); while the coordinator is down or unreachable it
    retries, logging gRPC's reason each time. An error of ``app`` (no such client in the
    data, data that does not fit the model) propagates: retrying cannot fix it. ``codec``
    decodes instructions and encodes replies (default: :func:`fedswarm.wire.default_codec`);
    ``kinds`` names the stage of each instruction (a protocol with its own messages extends
    both, and builds ``app`` with its handlers).
    """
    creds = grpc.ssl_channel_credentials(
        root_certificates=identity.ca_cert,
        private_key=identity.key,
        certificate_chain=identity.cert,
    )
    participant = _Participant(
        server,
        creds,
        app,
        stop or threading.Event(),
        backoff,
        max_message_bytes,
        chunk_bytes,
        default_codec() if codec is None else codec,
        kinds,
    )
    participant.run()


@dataclass
class _Participant:
    server: str
    creds: grpc.ChannelCredentials
    factory: AppFactory
    stop: threading.Event
    backoff: Backoff
    max_message_bytes: int
    chunk_bytes: int
    codec: Codec
    kinds: MessageKinds
    memory: ClientMemory = field(default_factory=dict)  # this participant's "disk"
    sessions: Sessions = field(default_factory=Sessions)  # its state within a round
    spec: RunSpec | None = None
    app: ClientApp | None = None

    @property
    def name(self) -> str:
        return self.app.client_id if self.app else "participant"

    def run(self) -> None:
        delay, closed = self.backoff.initial_s, 0
        while not self.stop.is_set():
            try:
                if self._session():
                    return
                delay, closed = self.backoff.initial_s, 0  # connected and then dropped: retry soon
            except grpc.RpcError as err:
                closed = self._failed(err, closed)
            except grpc.FutureTimeoutError:
                _log.warning(
                    "%s: no answer from %s within %.0f s: the coordinator is down or "
                    "unreachable (a wrong address, or a firewall dropping packets); retrying",
                    self.name,
                    self.server,
                    self.backoff.connect_timeout_s,
                )
            except WireError as err:
                _log.warning("%s: the coordinator sent a malformed stream: %s", self.name, err)
            if self.stop.wait(delay):
                return
            delay = min(2 * delay, self.backoff.max_s)

    def _failed(self, err: grpc.RpcError, closed: int) -> int:
        """Say why the connection failed; raise :class:`ParticipantRefused` if retrying
        cannot help. Returns the handshakes the coordinator has closed in a row, with this one."""
        code, details = err.code(), err.details() or ""
        if code in _REFUSED:
            raise ParticipantRefused(code, details) from None
        failure = read_dial_failure(details)
        if failure is None:  # connected, then the stream broke
            if not self.stop.is_set():
                _log.info("%s: connection lost (%s: %s)", self.name, code.name, details)
            return 0
        closed = closed + 1 if failure.problem is DialProblem.CLOSED_IN_HANDSHAKE else 0
        # One closed handshake may be a coordinator going down just then; two in a row are not.
        if failure.problem is DialProblem.UNTRUSTED_COORDINATOR or closed >= _CLOSES_TO_REFUSE:
            raise HandshakeFailed(failure, self.server) from None
        _log.warning("%s: %s; retrying", self.name, failure.explain(self.server))
        return closed

    def _session(self) -> bool:
        """One connection; True when the run is over or ``stop`` is set, False if it dropped."""
        with grpc.secure_channel(self.server, self.creds, options=_CHANNEL_OPTIONS) as channel:
            _await_channel(channel, self.backoff.connect_timeout_s)
            outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
            call = channel.stream_stream(METHOD)(_drain(outbox))
            done = threading.Event()
            watcher = threading.Thread(target=_cancel_on_stop, args=(self.stop, done, call))
            watcher.daemon = True
            watcher.start()
            try:
                return self._serve(call, outbox)
            finally:
                done.set()
                outbox.put(None)
                call.cancel()

    def _serve(self, call: Iterator[bytes], outbox: queue.SimpleQueue[bytes | None]) -> bool:
        assembler = Assembler(max_bytes=self.max_message_bytes)
        for frame in call:
            kind, chunk = unpack(frame)
            if kind is Kind.END:
                _log.info("%s: the coordinator says the run is over", self.name)
                return True
            if kind is Kind.HELLO:
                self._join(read_hello(chunk))
                continue
            if (data := assembler.feed(chunk)) is None:
                continue
            outbox.put(ack_frame(chunk.message_id))  # the coordinator may send the next one
            reply = self._answer(data)
            if self.stop.is_set():  # stopped while working: the reply is not sent
                return True
            encoded = self.codec.encode(reply)
            for out in message_frames(encoded, chunk.message_id, self.chunk_bytes):
                outbox.put(out)
        return self.stop.is_set()

    def _join(self, spec: RunSpec) -> None:
        if self.spec is not None and spec.run_id == self.spec.run_id:
            return  # a reconnection to the same run: keep app and memory
        if self.spec is not None:
            _log.info("%s: a new run %s; forgetting run %s", self.name, spec.run_id, self.spec)
        _log.info("joined run %s", spec.run_id)
        self.app, self.spec, self.memory = self.factory(spec), spec, {}

    def _answer(self, data: bytes) -> object:
        cid = self.name
        try:
            ins = self.codec.decode(data, max_bytes=self.max_message_bytes)
        except WireError as err:
            why = f"undecodable instruction: {err}"
            return Failure.refused(cid, 0, _UNKNOWN, Refusal.UNDECODABLE, why)
        try:
            stage = self.kinds.stage_of(ins)
        except UnknownMessageKind as err:
            return Failure.refused(cid, 0, _UNKNOWN, Refusal.WRONG_KIND, str(err))
        instruction = cast(Instruction, ins)
        if self.app is None or self.spec is None or instruction.run_id != self.spec.run_id:
            joined = repr(self.spec.run_id) if self.spec else "none (no HELLO)"
            why = f"an instruction of run {instruction.run_id!r}; this participant joined {joined}"
            return Failure.refused(cid, instruction.round, stage, Refusal.WRONG_RUN, why)
        _log.info("%s: round %d: %s", cid, instruction.round, stage)
        session = self.sessions.get(cid, instruction.round)
        try:
            reply, self.memory = self.app.handle(instruction, self.memory, session)
        except Exception as err:  # the coordinator hears why; this participant carries on
            _log.exception("%s: round %d failed", cid, instruction.round)
            why = f"{type(err).__name__}: {err}"
            return Failure(cid, instruction.round, stage, FailureKind.RAISED, why)
        return reply


def _await_channel(channel: grpc.Channel, timeout: float) -> None:
    """Wait until ``channel`` is connected or its first attempt has failed (a call then
    fails at once, and its status says why); FutureTimeoutError if neither within ``timeout``."""
    settled = threading.Event()
    done = {grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE}

    def seen(state: grpc.ChannelConnectivity) -> None:
        if state in done or state is grpc.ChannelConnectivity.SHUTDOWN:
            settled.set()

    channel.subscribe(seen, try_to_connect=True)
    try:
        if not settled.wait(timeout):
            raise grpc.FutureTimeoutError()
    finally:
        channel.unsubscribe(seen)


def _drain(outbox: queue.SimpleQueue[bytes | None]) -> Iterator[bytes]:
    while (frame := outbox.get()) is not None:
        yield frame


def _cancel_on_stop(stop: threading.Event, done: threading.Event, call: grpc.Future) -> None:
    while not done.wait(0.05):
        if stop.is_set():
            call.cancel()
            return
