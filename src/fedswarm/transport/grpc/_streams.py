"""The coordinator's view of each participant's stream: its session, the instructions it
owes replies to, and the judgement of a reply (does it answer what was asked, from whom it
claims, for which round). No networking here: :mod:`.server` moves the bytes."""

from __future__ import annotations

import enum
import queue
import threading
from dataclasses import dataclass, field
from typing import cast

from cryptography import x509
from cryptography.x509.oid import NameOID

from fedswarm.kinds import MessageKind
from fedswarm.messages import (
    ClientId,
    Failure,
    FailureKind,
    Instruction,
    Outcome,
    Refusal,
    Reply,
    Stage,
)
from fedswarm.transport.base import Fold
from fedswarm.wire import Codec, WireError

__all__ = ["Control", "Message", "Pending", "Stream", "claimed_name", "judge"]


class Control(enum.Enum):
    END = "end"  # tell the participant the run is over, then close
    CLOSE = "close"  # close without END: the participant reconnects


@dataclass(frozen=True)
class Message:
    message_id: str
    data: list[bytes | memoryview]  # encode_parts: the model's bytes are shared, not copied


@dataclass(eq=False)
class Stream:
    """One participant's open stream."""

    identity: ClientId
    cert_pem: bytes
    outbox: queue.SimpleQueue[Message | Control] = field(default_factory=queue.SimpleQueue)
    open: bool = True
    acked: threading.Event = field(default_factory=threading.Event)  # has the last instruction


@dataclass(eq=False)
class Pending:
    """An instruction sent and not yet answered."""

    session: Stream
    ins: Instruction
    kind: MessageKind
    fold: Fold | None = None
    outcome: Outcome | None = None
    claimed: bool = False  # its reply arrived and is being judged: wait for it, even late

    @property
    def stage(self) -> Stage:
        return self.kind.stage

    def failure(self, kind: FailureKind, reason: str) -> Failure:
        return Failure(self.session.identity, self.ins.round, self.stage, kind, reason)

    def refused(self, code: Refusal, reason: str) -> Failure:
        return Failure.refused(self.session.identity, self.ins.round, self.stage, code, reason)


def judge(pending: Pending, data: bytes, codec: Codec, max_bytes: int) -> Outcome:
    """The reply in ``data`` if it answers ``pending``, else a failure saying why not."""
    identity, ins = pending.session.identity, pending.ins
    try:
        msg = codec.decode(data, max_bytes=max_bytes)
    except WireError as err:
        return pending.refused(Refusal.UNDECODABLE, f"undecodable reply: {err}")
    if isinstance(msg, Failure):  # its own failure (a refusal of ours included)
        why = f"the participant reported: {msg.kind.value}: {msg.reason}"
        return pending.failure(FailureKind.RAISED, why)
    expected = pending.kind.reply
    if type(msg) is not expected:
        why = f"a {type(msg).__name__} is no {expected.__name__}"
        return pending.refused(Refusal.WRONG_KIND, why)
    reply = cast(Reply, msg)
    if reply.client_id != identity:
        why = f"the reply says it is from {reply.client_id!r}, its sender is {identity!r}"
        return pending.refused(Refusal.IMPERSONATION, why)
    if reply.round != ins.round:
        why = f"a reply for round {reply.round}, not {ins.round}"
        return pending.refused(Refusal.WRONG_ROUND, why)
    return reply


def claimed_name(cert_pem: bytes, peer: str) -> str:
    """The common name a refused certificate claims (for the log), else the peer address."""
    try:
        subject = x509.load_pem_x509_certificate(cert_pem).subject
        return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    except (ValueError, IndexError):
        return f"<{peer}>"
