"""The gRPC stream's framing, shared by the coordinator and its participants.

No protobuf: both directions of the one bidirectional stream carry raw byte frames::

    kind      uint8      DATA (a chunk of a wire message) or END (the run is over)
    id        16 bytes   the message id (a UUID); a reply reuses its instruction's id
    index     uint32     chunk index
    total     uint32     chunks in the message
    payload   the rest   the chunk's bytes

Messages are :func:`fedswarm.wire.encode` output cut by :func:`fedswarm.wire.frames`, each
frame about 1 MiB, so a model of any size stays under gRPC's 4 MB message limit.
"""

from __future__ import annotations

import enum
import struct
import uuid
from collections.abc import Iterator
from typing import Final

from fedswarm.wire import DEFAULT_CHUNK_BYTES, Chunk, WireError, frames

__all__ = ["METHOD", "Kind", "end_frame", "message_frames", "new_message_id", "unpack"]

METHOD: Final = "/fedswarm.Coordinator/Connect"
_HEADER = struct.Struct("<B16sII")  # kind, message id, chunk index, chunk total


class Kind(enum.IntEnum):
    DATA = 0
    END = 1


def new_message_id() -> str:
    return uuid.uuid4().hex


def message_frames(
    data: bytes, message_id: str, size: int = DEFAULT_CHUNK_BYTES
) -> Iterator[bytes]:
    """The frames that carry ``data`` as message ``message_id`` (lazily: one chunk in memory)."""
    raw_id = bytes.fromhex(message_id)
    for c in frames(data, message_id, size):
        yield _HEADER.pack(Kind.DATA, raw_id, c.index, c.total) + c.payload


def end_frame() -> bytes:
    return _HEADER.pack(Kind.END, bytes(16), 0, 1)


def unpack(frame: bytes) -> tuple[Kind, Chunk]:
    """A received frame; :class:`WireError` if it is not one."""
    if len(frame) < _HEADER.size:
        raise WireError(f"frame of {len(frame)} bytes, shorter than its {_HEADER.size}-byte header")
    kind, raw_id, index, total = _HEADER.unpack_from(frame)
    if kind not in Kind._value2member_map_:
        raise WireError(f"frame kind {kind}, expected one of {[k.value for k in Kind]}")
    return Kind(kind), Chunk(raw_id.hex(), index, total, frame[_HEADER.size :])
