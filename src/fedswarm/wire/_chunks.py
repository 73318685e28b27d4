"""Streaming a message in chunks, so models far beyond gRPC's 4 MB message limit can pass.

A sender cuts the encoded bytes with :func:`frames`; a receiver feeds what arrives to an
:class:`Assembler`, which hands back each message whole once its last chunk is in. Chunks
of one message arrive in order and messages one after another (a gRPC stream keeps that
order), so anything else is a broken or hostile peer, and is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from fedswarm.wire._errors import WireError

__all__ = ["DEFAULT_CHUNK_BYTES", "Assembler", "Chunk", "chunks", "frames", "reassemble"]

DEFAULT_CHUNK_BYTES = 1 << 20  # well under gRPC's 4 MB default, large enough to be cheap


@dataclass(frozen=True)
class Chunk:
    """Part ``index`` of ``total`` of the message ``message_id`` (the gRPC layer maps it to
    a protobuf message). Only a one-chunk message may have an empty payload."""

    message_id: str
    index: int
    total: int
    payload: bytes


def chunks(
    data: bytes | Sequence[bytes | memoryview], size: int = DEFAULT_CHUNK_BYTES
) -> Iterator[bytes]:
    """``data`` (bytes, or pieces sent back to back) cut into pieces of ``size`` bytes (the
    last may be shorter); at least one. Only one chunk is built at a time."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1 byte, got {size}")
    parts = [data] if isinstance(data, bytes | bytearray | memoryview) else list(data)
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    if not views:
        yield b""
        return
    piece: list[memoryview] = []
    have = 0
    for view in views:
        lo = 0
        while lo < len(view):
            take = view[lo : lo + size - have]
            piece.append(take)
            have, lo = have + len(take), lo + len(take)
            if have == size:
                yield b"".join(piece)
                piece, have = [], 0
    if piece:
        yield b"".join(piece)


def frames(
    data: bytes | Sequence[bytes | memoryview], message_id: str, size: int = DEFAULT_CHUNK_BYTES
) -> Iterator[Chunk]:
    """The chunks of ``data`` (bytes, or pieces sent back to back), framed for an
    :class:`Assembler`."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1 byte, got {size}")
    length = len(data) if isinstance(data, bytes) else sum(memoryview(p).nbytes for p in data)
    total = max(1, -(-length // size))
    for index, payload in enumerate(chunks(data, size)):
        yield Chunk(message_id, index, total, payload)


class Assembler:
    """Rebuilds messages from their chunks, one message at a time, never more than
    ``max_bytes`` each.

    :meth:`feed` returns a message's bytes when its last chunk arrives and ``None`` before.
    Out-of-order, duplicate, oversized or inconsistent chunks raise :class:`WireError` and
    discard the partial message. Payloads are copied into one growing buffer as they come,
    so however finely a peer cuts a message, memory stays under twice ``max_bytes`` (the
    buffer and, at the end, the finished copy). A message id may be used once per
    assembler: finished ids are kept to refuse a replay.
    """

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._finished: set[str] = set()
        self._reset()

    def _reset(self) -> None:
        self._id: str | None = None
        self._total = 0
        self._received = 0
        self._buffer = bytearray()

    @property
    def pending(self) -> str | None:
        """The id of the message partly received, if any."""
        return self._id

    def feed(self, chunk: Chunk) -> bytes | None:
        try:
            return self._feed(chunk)
        except WireError:
            self._reset()
            raise

    def close(self) -> None:
        """Refuse a stream that ends in the middle of a message."""
        if self._id is not None:
            got, total, mid = self._received, self._total, self._id
            self._reset()
            raise WireError(f"stream ended after chunk {got} of {total} of message {mid!r}")

    def _feed(self, c: Chunk) -> bytes | None:
        where = f"chunk {c.index!r:.20} of message {c.message_id!r:.80}"
        self._check_frame(c, where)
        if self._id is None:
            if c.message_id in self._finished:
                raise WireError(
                    f"{where}: message {c.message_id!r} was already received (a replay)"
                )
            if c.index != 0:
                raise WireError(f"{where}: out of order, a message starts at chunk 0")
            self._id, self._total = c.message_id, c.total
        elif c.message_id != self._id:
            got = f"{self._received} of {self._total}"
            raise WireError(f"{where}: message {self._id!r} is incomplete ({got} chunks)")
        elif c.total != self._total:
            raise WireError(f"{where}: total {c.total}, earlier chunks said {self._total}")
        elif c.index != self._received:
            problem = "duplicate" if c.index < self._received else "out of order"
            raise WireError(f"{where}: {problem}, expected chunk {self._received}")
        if len(self._buffer) + len(c.payload) > self.max_bytes:
            raise WireError(f"{where}: message exceeds max_bytes={self.max_bytes}")
        if self._total == 1:  # the common small message: no copy at all
            self._finished.add(c.message_id)
            self._reset()
            return c.payload
        self._buffer += c.payload
        self._received += 1
        if self._received < self._total:
            return None
        data = bytes(self._buffer)
        self._finished.add(c.message_id)
        self._reset()
        return data

    def _check_frame(self, c: Chunk, where: str) -> None:
        if not isinstance(c.message_id, str) or not c.message_id:
            raise WireError(f"{where}: message_id must be a non-empty string")
        if not isinstance(c.payload, bytes):
            raise WireError(f"{where}: payload must be bytes, got {type(c.payload).__name__}")
        if type(c.total) is not int or not 1 <= c.total <= max(1, self.max_bytes):
            raise WireError(f"{where}: total {c.total!r} is not in [1, max_bytes]")
        if type(c.index) is not int or not 0 <= c.index < c.total:
            raise WireError(f"{where}: index {c.index!r} is not in [0, total={c.total})")
        if not c.payload and c.total > 1:
            raise WireError(f"{where}: empty payload in a message of {c.total} chunks")


def reassemble(stream: Iterable[Chunk], *, max_bytes: int) -> Iterator[bytes]:
    """Every message in ``stream``, whole; refuses a stream that ends mid-message."""
    assembler = Assembler(max_bytes=max_bytes)
    for chunk in stream:
        if (data := assembler.feed(chunk)) is not None:
            yield data
    assembler.close()
