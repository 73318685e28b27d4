"""The gRPC stream's framing under arbitrary input: whatever a peer sends, the receiver gets
a frame, a message, or a :class:`WireError` (which refuses the stream), never another
exception that would kill a participant or a coordinator's reader thread."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedswarm.transport.grpc.frames import (
    MAX_HELLO_BYTES,
    Kind,
    RunSpec,
    ack_frame,
    end_frame,
    hello_frame,
    message_frames,
    new_message_id,
    read_hello,
    unpack,
)
from fedswarm.wire import Assembler, Chunk, WireError

SPEC = RunSpec("run-1", "rounds = 3\n", "digits", (64,), 10)
short_text = st.text('az09 _-"\\\u00e9\u2603', max_size=8)  # an explicit alphabet: quick to draw
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | short_text,
    lambda inner: st.lists(inner) | st.dictionaries(short_text, inner),
    max_leaves=20,
)


def _hello(payload: bytes) -> Chunk:
    return Chunk(bytes(16).hex(), 0, 1, payload)


@given(st.binary(max_size=64))
def test_any_bytes_unpack_to_a_frame_or_a_wire_error(frame: bytes) -> None:
    try:
        kind, chunk = unpack(frame)
    except WireError:
        return
    assert kind in Kind
    assert chunk.payload == frame[25:]


@given(st.binary(max_size=256))
def test_any_hello_payload_is_a_run_spec_or_a_wire_error(payload: bytes) -> None:
    with contextlib.suppress(WireError):
        read_hello(_hello(payload))


@given(st.dictionaries(st.sampled_from(sorted(asdict(SPEC))), json_values))
def test_any_json_object_is_a_run_spec_or_a_wire_error(raw: dict[str, object]) -> None:
    with contextlib.suppress(WireError):
        read_hello(_hello(json.dumps({**asdict(SPEC), **raw}).encode()))


@pytest.mark.parametrize(
    "payload",
    [b"[" * 200_000, b'{"run_id": ' + b"[" * 100_000, b'{"num_classes": ' + b"9" * 5000 + b"}"],
    ids=["nested 200,000 deep", "nested in a key", "5000-digit integer"],
)
def test_a_hostile_hello_is_a_wire_error_not_a_crash(payload: bytes) -> None:
    with pytest.raises(WireError, match="malformed HELLO"):
        read_hello(_hello(payload))


def test_an_oversized_hello_is_refused_unread() -> None:
    with pytest.raises(WireError, match="over"):
        read_hello(_hello(b" " * (MAX_HELLO_BYTES + 1)))


def test_frames_round_trip() -> None:
    kind, chunk = unpack(hello_frame(SPEC))
    assert (kind, read_hello(chunk)) == (Kind.HELLO, SPEC)
    assert unpack(end_frame())[0] is Kind.END
    mid = new_message_id()
    assert unpack(ack_frame(mid)) == (Kind.ACK, Chunk(mid, 0, 1, b""))


@given(st.binary(max_size=300), st.integers(1, 64))
def test_message_frames_reassemble_to_the_message(data: bytes, size: int) -> None:
    mid = new_message_id()
    assembler = Assembler(max_bytes=len(data) + 1)
    got = [assembler.feed(unpack(f)[1]) for f in message_frames(data, mid, size)]
    assert got[-1] == data
    assert all(g is None for g in got[:-1])
    assembler.close()


chunks = st.builds(
    Chunk,
    message_id=st.sampled_from(["a", "b", ""]),
    index=st.integers(-2, 5),
    total=st.integers(-1, 6),
    payload=st.binary(max_size=12),
)


@given(st.lists(chunks, max_size=12))
def test_the_assembler_takes_any_chunks_and_returns_only_messages_it_was_sent(
    stream: list[Chunk],
) -> None:
    """Any sequence of chunks: each fed gives None, a message's bytes (the payloads of its
    chunks 0..total-1, in order) or a WireError; nothing is ever returned twice for one id."""
    assembler, finished = Assembler(max_bytes=32), []
    for i, chunk in enumerate(stream):
        try:
            data = assembler.feed(chunk)
        except WireError:
            continue
        if data is None:
            continue
        assert chunk.index == chunk.total - 1
        parts = [c.payload for c in stream[i - chunk.total + 1 : i + 1]]
        assert data == b"".join(parts)
        assert chunk.message_id not in finished
        finished.append(chunk.message_id)
    with contextlib.suppress(WireError):
        assembler.close()
