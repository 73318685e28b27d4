"""The gRPC stream's framing, shared by the coordinator and its participants.

No protobuf: both directions of the one bidirectional stream carry raw byte frames::

    kind      uint8      DATA (a chunk of a wire message), END (the run is over), HELLO, or
                         ACK (a participant has received a whole instruction)
    id        16 bytes   the message id (a UUID); a reply reuses its instruction's id
    index     uint32     chunk index
    total     uint32     chunks in the message
    payload   the rest   the chunk's bytes

Messages are :func:`fedswarm.wire.encode` output cut by :func:`fedswarm.wire.frames`, each
frame about 1 MiB, so a model of any size stays under gRPC's 4 MB message limit.

The coordinator's first frame on every stream is a HELLO: the :class:`RunSpec` (run id, the
federation's config, the model's input schema) as JSON in one frame, so a participant
builds the run's model without being told it out of band.
"""

from __future__ import annotations

import enum
import json
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from fedswarm.wire import DEFAULT_CHUNK_BYTES, Chunk, WireError, frames

__all__ = [
    "METHOD",
    "Kind",
    "RunSpec",
    "ack_frame",
    "end_frame",
    "hello_frame",
    "message_frames",
    "new_message_id",
    "read_hello",
    "unpack",
]

METHOD: Final = "/fedswarm.Coordinator/Connect"
_HEADER = struct.Struct("<B16sII")  # kind, message id, chunk index, chunk total
MAX_HELLO_BYTES: Final = 1 << 20


class Kind(enum.IntEnum):
    DATA = 0
    END = 1
    HELLO = 2
    ACK = 3


@dataclass(frozen=True)
class RunSpec:
    """What a participant is told when it connects: which run, under which config."""

    run_id: str
    config_toml: str  # the federation's config (participants build the model from it)
    data_name: str = ""  # the model's input schema, so participants need no dataset to
    input_shape: tuple[int, ...] = ()  # build it
    num_classes: int = 0


def hello_frame(spec: RunSpec) -> bytes:
    payload = json.dumps(asdict(spec)).encode()
    if len(payload) > MAX_HELLO_BYTES:
        raise ValueError(f"the run spec is {len(payload)} bytes, over {MAX_HELLO_BYTES}")
    return _HEADER.pack(Kind.HELLO, bytes(16), 0, 1) + payload


def read_hello(chunk: Chunk) -> RunSpec:
    """The :class:`RunSpec` in a HELLO frame's payload; :class:`WireError` if malformed."""
    if len(chunk.payload) > MAX_HELLO_BYTES:
        raise WireError(f"HELLO frame of {len(chunk.payload)} bytes, over {MAX_HELLO_BYTES}")
    try:
        raw: Any = json.loads(chunk.payload.decode())
        spec = RunSpec(
            run_id=_typed(raw["run_id"], str),
            config_toml=_typed(raw["config_toml"], str),
            data_name=_typed(raw["data_name"], str),
            input_shape=tuple(_typed(n, int) for n in _typed(raw["input_shape"], list)),
            num_classes=_typed(raw["num_classes"], int),
        )
    # ValueError: bad JSON or an integer of too many digits; RecursionError: nesting too deep.
    except (ValueError, RecursionError, KeyError, TypeError) as err:
        raise WireError(f"malformed HELLO frame: {type(err).__name__}: {err}") from None
    return spec


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"expected {kind.__name__}, got {value!r:.60}")
    return value


def new_message_id() -> str:
    return uuid.uuid4().hex


def message_frames(
    data: bytes | Sequence[bytes | memoryview], message_id: str, size: int = DEFAULT_CHUNK_BYTES
) -> Iterator[bytes]:
    """The frames that carry ``data`` (bytes, or :func:`fedswarm.wire.encode_parts`) as
    message ``message_id``, lazily: one chunk in memory at a time."""
    raw_id = bytes.fromhex(message_id)
    for c in frames(data, message_id, size):
        yield _HEADER.pack(Kind.DATA, raw_id, c.index, c.total) + c.payload


def ack_frame(message_id: str) -> bytes:
    return _HEADER.pack(Kind.ACK, bytes.fromhex(message_id), 0, 1)


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
