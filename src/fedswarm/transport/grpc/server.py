"""The coordinator side of a real federation: a gRPC server that is a :class:`Transport`.

Participants dial out (so they work behind NAT) with mutual TLS and hold one bidirectional
stream open: the coordinator sends instructions down it, they send replies up it, each as
chunked :mod:`fedswarm.wire` messages (see :mod:`.frames`). An open stream is a connected
participant; its identity is what the coordinator's :data:`~.tls.PeerCheck` makes of its
certificate (the federation's PKI, CRL included, which gRPC cannot check itself) when it
connects, and again whenever the check is replaced.

A reply counts only if it answers an instruction still outstanding for the participant
that sent it, carries that participant's own id and the instruction's round; anything else
(late, replayed, duplicated or forged) is refused and logged. The participant loop is
:func:`fedswarm.transport.grpc.client.run_participant`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc

from fedswarm.kinds import BUILTIN_KINDS, MessageKinds
from fedswarm.messages import (
    ClientId,
    Failure,
    FailureKind,
    Instruction,
    Outcome,
)
from fedswarm.transport.base import Fold, Request
from fedswarm.transport.grpc._streams import (
    Control,
    Message,
    Pending,
    Stream,
    claimed_name,
    judge,
)
from fedswarm.transport.grpc.diagnose import bind_problem, host_port, listen_error
from fedswarm.transport.grpc.frames import (
    METHOD,
    Kind,
    RunSpec,
    end_frame,
    hello_frame,
    message_frames,
    new_message_id,
    unpack,
)
from fedswarm.transport.grpc.tls import PeerCheck, PeerRefused, TlsIdentity
from fedswarm.wire import DEFAULT_CHUNK_BYTES, Assembler, Codec, WireError, default_codec

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "GrpcServerTransport"]

DEFAULT_MAX_MESSAGE_BYTES = 1 << 30
_log = logging.getLogger(__name__)
# Participants ping every minute so idle NAT mappings stay open; allow that, no more often.
_SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
    # A fixed receive window: with bandwidth probing, gRPC grows every stream's window and buffers
    # megabytes of each waiting upload; fixed, those wait under flow control (bench/deployment.py:
    # peak RSS 50 vs 10 participants 1.34x fixed, 1.58x probing).
    ("grpc.http2.bdp_probe", 0),
    # No port sharing (gRPC's default shares): a second coordinator on the port must fail, not
    # take half of the participants that dial it.
    ("grpc.so_reuseport", 0),
]


class GrpcServerTransport:
    """Serves participants that connect with a client certificate of this federation.

    ``credentials`` is the coordinator's server key and certificate; ``check`` turns a
    participant's certificate into its identity or refuses it (replace it with
    :meth:`reload_check` after a revocation). ``max_participants`` bounds
    the open streams, each of which holds one server thread. ``max_uploads`` bounds the
    replies received at once: each is reassembled in memory, checked and folded into the
    round's mean before the next starts, while the other participants wait under HTTP/2
    flow control. Likewise ``max_downloads`` bounds the instructions in flight: the next
    participant's starts when one has acknowledged receiving all of its own (gRPC would
    otherwise buffer a copy for every participant at once). So the coordinator's memory
    grows with the model, not the federation. ``codec`` encodes instructions and decodes
    replies (default: :func:`~fedswarm.wire.default_codec`); ``kinds`` says which reply kind
    answers which instruction (a protocol with its own messages extends both).
    """

    def __init__(
        self,
        credentials: TlsIdentity,
        check: PeerCheck,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        max_participants: int = 64,
        max_uploads: int = 2,
        max_downloads: int = 2,
        ack_timeout_s: float = 120.0,
        run: RunSpec | None = None,
        codec: Codec | None = None,
        kinds: MessageKinds = BUILTIN_KINDS,
    ) -> None:
        self.run = run or RunSpec(run_id="", config_toml="")
        self.codec = default_codec() if codec is None else codec
        self.kinds = kinds
        self.credentials = credentials
        self.max_message_bytes = max_message_bytes
        self.chunk_bytes = chunk_bytes
        self.max_participants = max_participants
        self._check = check
        self._uploads = threading.BoundedSemaphore(max_uploads)
        self._downloads = threading.BoundedSemaphore(max_downloads)
        self.ack_timeout_s = ack_timeout_s
        self._fold_lock = threading.Lock()  # folds run one at a time
        self.refusals: dict[ClientId, int] = {}  # bad input per sender (counted, logged)
        self._refusal_log: list[tuple[ClientId, str]] = []
        self._lock = threading.Condition()
        self._sessions: dict[ClientId, Stream] = {}
        self._pending: dict[str, Pending] = {}  # by message id
        self._stopping = False
        self._server: grpc.Server | None = None
        self.port: int | None = None  # the bound port, once started

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); returns the bound port.

        Raises :class:`~.diagnose.ListenError` naming the likely cause if it cannot (the port
        is taken, the address is not this machine's)."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        if port and (taken := bind_problem(host, port)):  # before gRPC logs its own error
            raise taken
        server = grpc.server(
            futures.ThreadPoolExecutor(self.max_participants + 2, "fedswarm-grpc"),
            options=_SERVER_OPTIONS,
            maximum_concurrent_rpcs=self.max_participants,
        )
        handler = grpc.stream_stream_rpc_method_handler(self._connect)  # raw bytes both ways
        service, method = METHOD.strip("/").split("/")
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service, {method: handler})]
        )
        creds = grpc.ssl_server_credentials(
            [(self.credentials.key, self.credentials.cert)],
            root_certificates=self.credentials.ca_cert,
            require_client_auth=True,
        )
        try:
            bound = int(server.add_secure_port(host_port(host, port), creds))
        except RuntimeError:  # "Failed to bind to address", whatever the cause
            bound = 0
        if bound == 0:
            raise listen_error(host, port)
        server.start()
        self._server, self.port = server, bound
        return bound

    def stop(self, grace: float = 2.0) -> None:
        """Tell every participant the run is over and shut the server down."""
        with self._lock:
            self._stopping = True
            sessions = list(self._sessions.values())
        for session in sessions:
            session.outbox.put(Control.END)
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1.0)
            self._server = None

    def reload_check(self, check: PeerCheck) -> None:
        """Use ``check`` from now on; participants it refuses are disconnected."""
        with self._lock:
            self._check = check
            sessions = list(self._sessions.values())
        for session in sessions:
            try:
                check(session.cert_pem)
            except PeerRefused as err:
                _log.warning("disconnecting %s: %s", session.identity, err)
                self._close(session, f"certificate no longer accepted: {err}")

    # -- Transport --------------------------------------------------------------------------

    def available(self) -> Sequence[ClientId]:
        with self._lock:
            return sorted(self._sessions)

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        deadline = None if timeout is None else time.monotonic() + timeout
        # Each participant's instruction differs (its seed) but they share the model: the
        # pieces are a small header each and views of the one parameter vector.
        encoded: dict[int, list[bytes | memoryview]] = {}
        for _, ins in requests:
            if id(ins) not in encoded:
                encoded[id(ins)] = self.codec.encode_parts(ins)
        outcomes: list[Outcome | Pending] = []
        with self._lock:
            for cid, ins in requests:
                outcomes.append(self._send(cid, ins, encoded[id(ins)], outcomes, fold))
            self._wait(outcomes, deadline)
            return [self._settle(o, timeout) for o in outcomes]

    def _send(
        self,
        cid: ClientId,
        ins: Instruction,
        data: list[bytes | memoryview],
        earlier: list[Outcome | Pending],
        fold: Fold | None,
    ) -> Outcome | Pending:
        kind = self.kinds.of(ins)
        session = self._sessions.get(cid)
        if session is None:
            return Failure(cid, ins.round, kind.stage, FailureKind.DROPPED, "not connected")
        if any(isinstance(o, Pending) and o.session is session for o in earlier):
            why = "asked twice in one exchange: only the first instruction was sent"
            return Failure(cid, ins.round, kind.stage, FailureKind.UNSENT, why)
        message_id = new_message_id()
        pending = self._pending[message_id] = Pending(session, ins, kind, fold)
        session.outbox.put(Message(message_id, data))
        return pending

    def _wait(self, outcomes: list[Outcome | Pending], deadline: float | None) -> None:
        def unsettled(late: bool) -> bool:  # after the deadline only replies being judged
            return any(
                isinstance(o, Pending) and o.outcome is None and (o.claimed or not late)
                for o in outcomes
            )

        while unsettled(late=False):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._lock.wait(left)
        while unsettled(late=True):  # a reply already being folded must land, not time out
            self._lock.wait(1.0)

    def _settle(self, o: Outcome | Pending, timeout: float | None) -> Outcome:
        if not isinstance(o, Pending):
            return o
        if o.outcome is not None:
            return o.outcome
        for message_id, pending in list(self._pending.items()):
            if pending is o:  # a reply arriving later is refused as not outstanding
                del self._pending[message_id]
        return o.failure(FailureKind.TIMED_OUT, f"no reply within {timeout} s")

    # -- the stream -------------------------------------------------------------------------

    def _connect(self, frames: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        session = self._open(self._authenticate(context), context)
        if session is None:  # the run is over
            yield end_frame()
            return
        context.add_callback(lambda: self._close(session, "disconnected"))
        reader = threading.Thread(
            target=self._read, args=(session, frames), name=f"fedswarm-read-{session.identity}"
        )
        reader.daemon = True
        reader.start()
        yield hello_frame(self.run)
        while isinstance(item := session.outbox.get(), Message):
            with self._downloads:  # released when the participant has it all (or is gone)
                session.acked.clear()
                yield from message_frames(item.data, item.message_id, self.chunk_bytes)
                if not session.acked.wait(self.ack_timeout_s):
                    _log.warning("%s did not acknowledge an instruction", session.identity)
        if item is Control.END:
            yield end_frame()
        self._close(session, "the coordinator closed the connection")

    def _authenticate(self, context: grpc.ServicerContext) -> tuple[ClientId, bytes]:
        certs: list[bytes] = context.auth_context().get("x509_pem_cert", [])
        if not certs:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        try:
            return self._check(certs[0]), certs[0]
        except PeerRefused as err:
            self._refused(claimed_name(certs[0], context.peer()), f"refused at connection: {err}")
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(err))
            raise  # not reached: abort raises

    def _open(self, peer: tuple[ClientId, bytes], context: Any) -> Stream | None:
        identity, cert = peer
        session = Stream(identity, cert)
        with self._lock:
            if self._stopping:
                return None
            old = self._sessions.get(identity)
            self._sessions[identity] = session
        if old is not None:
            self._close(old, "replaced by a new connection from the same participant")
        _log.info("%s connected from %s", identity, context.peer())
        return session

    def _close(self, session: Stream, reason: str) -> None:
        """Forget ``session``; what it still owed fails with ``reason``. Idempotent."""
        with self._lock:
            if not session.open:
                return
            session.open = False
            if self._sessions.get(session.identity) is session:
                del self._sessions[session.identity]
            for message_id, pending in list(self._pending.items()):
                if pending.session is session:
                    pending.outcome = pending.failure(FailureKind.DROPPED, reason)
                    del self._pending[message_id]
            self._lock.notify_all()
        session.outbox.put(Control.CLOSE)
        session.acked.set()
        _log.info("%s: %s", session.identity, reason)

    def _read(self, session: Stream, frames: Iterator[bytes]) -> None:
        assembler = Assembler(max_bytes=self.max_message_bytes)
        reason, uploading = "disconnected", False
        try:
            for frame in frames:
                kind, chunk = unpack(frame)
                if kind is Kind.ACK:
                    session.acked.set()
                    continue
                if kind is not Kind.DATA:
                    raise WireError(f"a participant sent a {kind.name} frame")
                if not uploading:  # the first chunk of a message waits for an upload slot
                    self._uploads.acquire()
                    uploading = True
                if (data := assembler.feed(chunk)) is not None:
                    self._receive(session, chunk.message_id, data)
                    del data
                    self._uploads.release()
                    uploading = False
            assembler.close()
        except WireError as err:
            reason = f"sent a malformed stream: {err}"
            self._refused(session.identity, reason)
        except grpc.RpcError:
            pass  # the stream broke: the participant is gone
        except Exception:  # a bug here must not leave the session open and the round waiting
            _log.exception("reading the stream of %s failed", session.identity)
            reason = "the coordinator failed to read its stream"
        finally:
            if uploading:
                self._uploads.release()
        self._close(session, reason)

    def _refused(self, identity: ClientId, why: str, *, in_outcome: bool = False) -> None:
        """Count and log bad input from ``identity``. Refusals that are not also an
        outcome of the exchange go to :meth:`take_refusals` (for the registry)."""
        with self._lock:
            self.refusals[identity] = self.refusals.get(identity, 0) + 1
            if not in_outcome:
                self._refusal_log.append((identity, why))
        _log.warning("refused input from %s: %s", identity, why)

    def take_refusals(self) -> list[tuple[ClientId, str]]:
        """The (sender, reason) of each refusal since the last call (for the registry)."""
        with self._lock:
            taken, self._refusal_log = self._refusal_log, []
        return taken

    def _receive(self, session: Stream, message_id: str, data: bytes) -> None:
        with self._lock:
            pending = self._pending.pop(message_id, None)
            if pending is not None and pending.session is not session:
                self._pending[message_id] = pending  # someone else's: leave it outstanding
                pending = None
            if pending is not None:
                pending.claimed = True
        if pending is None:
            why = f"a reply to message {message_id}, which is not an instruction outstanding"
            self._refused(session.identity, f"{why} for it (late, replayed, duplicated or forged)")
            return
        outcome = judge(pending, data, self.codec, self.max_message_bytes)
        if pending.fold is not None:
            with self._fold_lock:
                outcome = pending.fold(outcome)
        if isinstance(outcome, Failure) and outcome.kind is FailureKind.REFUSED:
            self._refused(session.identity, outcome.reason, in_outcome=True)
        with self._lock:
            pending.outcome = outcome
            self._lock.notify_all()
