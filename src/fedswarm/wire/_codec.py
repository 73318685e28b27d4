"""Messages to bytes and back (the layout is described in :mod:`fedswarm.wire`)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from fedswarm.messages import ClientStep, ReplyExtra
from fedswarm.transforms import UpdateTransform
from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, Header, dump_header, parse_header
from fedswarm.wire._kinds import RESERVED, Kinds
from fedswarm.wire._registry import Registry
from fedswarm.wire._tensors import ALIGN, TensorWriter, aligned, read_manifest

__all__ = ["MAGIC", "MAX_HEADER_BYTES", "VERSION", "Codec"]

VERSION = 2  # 2: tensors of any dtype and shape, blobs, each tensor 8-aligned
MAGIC = b"FSWM"
MAX_HEADER_BYTES = 1 << 22  # a 50,000-tensor spec fits; JSON larger than this is refused
_PREFIX = struct.Struct("<4sI")  # magic, header length in bytes


@dataclass(frozen=True)
class Codec:
    """Encodes and decodes the message kinds in :attr:`kinds`, whose open-ended parts come
    from the variant registries :attr:`steps`, :attr:`extras` and :attr:`transforms`.

    A codec never changes once built; :meth:`extended` builds a new one with more kinds or
    variants. ``Codec()`` knows nothing; :func:`~fedswarm.wire.default_codec` knows
    fedswarm's own messages.
    """

    kinds: Kinds = field(default_factory=lambda: Kinds("message kind", sealed=True))
    steps: Registry[ClientStep] = field(
        default_factory=lambda: Registry("client step", sealed=True)
    )
    extras: Registry[ReplyExtra] = field(
        default_factory=lambda: Registry("reply extra", sealed=True)
    )
    transforms: Registry[UpdateTransform] = field(
        default_factory=lambda: Registry("update transform", sealed=True)
    )

    def extended(self, *register: Callable[[Codec], None]) -> Codec:
        """A new codec: this one's kinds and variants, plus what each ``register(codec)``
        adds to the new codec's registries. This codec is left as it is."""
        codec = Codec(
            self.kinds.unsealed_copy(),
            self.steps.unsealed_copy(),
            self.extras.unsealed_copy(),
            self.transforms.unsealed_copy(),
        )
        for fn in register:
            fn(codec)
        for table in (codec.kinds, codec.steps, codec.extras, codec.transforms):
            table.seal()
        return codec

    def encode(self, msg: object) -> bytes:
        """The wire form of ``msg``; :class:`WireError` if a field cannot be sent as it is."""
        # One copy of each tensor, straight into the message (no intermediate tobytes()).
        return b"".join(self.encode_parts(msg))

    def encode_parts(self, msg: object) -> list[bytes | memoryview]:
        """``encode(msg)`` as pieces to send back to back, without joining them: the prefix
        and header, then zero-copy views of the message's tensors (with the zero padding
        between them). A coordinator sending one model to many participants shares the
        model's bytes instead of copying them for each."""
        kind = self.kinds.for_message(msg)
        tensors = TensorWriter()
        own = kind.write(msg, tensors, self)
        if clash := sorted(RESERVED & own.keys()):
            raise WireError(f"{kind.tag}: a message may not have a field named {clash[0]!r}")
        header: Header = {"version": VERSION, "kind": kind.tag, **own, "tensors": tensors.manifest}
        raw = dump_header(header, kind.tag)
        raw += b" " * (-(_PREFIX.size + len(raw)) % ALIGN)
        if len(raw) > MAX_HEADER_BYTES:
            raise WireError(f"{kind.tag}: header of {len(raw)} bytes exceeds {MAX_HEADER_BYTES}")
        parts: list[bytes | memoryview] = [_PREFIX.pack(MAGIC, len(raw)) + raw]
        end = 0  # relative to the (aligned) start of the tensors
        for buffer in tensors.buffers:
            if pad := aligned(end) - end:
                parts.append(bytes(pad))
            parts.append(buffer)
            end = aligned(end) + len(buffer)
        return parts

    def decode(self, data: bytes, *, max_bytes: int) -> object:
        """The message in ``data``, validated; :class:`WireError` naming what is wrong if not.

        Tensors in the result are read-only views of ``data``. Values are not judged (a NaN
        update decodes): the round protocol refuses those and names the participant.
        """
        if len(data) > max_bytes:
            raise WireError(f"message of {len(data)} bytes exceeds max_bytes={max_bytes}")
        header, body_start = _read_header(data)
        kind = self.kinds.for_tag(header.text("kind"), "header.kind")
        header.where = kind.tag
        tensors = read_manifest(header.children("tensors"), data, body_start)
        msg = kind.read(header, tensors, self)
        header.done()
        tensors.done()
        return msg


def _read_header(data: bytes) -> tuple[Fields, int]:
    """The header of ``data``, of this format version, and where the tensors start."""
    if len(data) < _PREFIX.size:
        raise WireError(f"truncated: {len(data)} bytes, the prefix alone is {_PREFIX.size}")
    magic, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise WireError(f"not a fedswarm message: magic {magic!r}, expected {MAGIC!r}")
    if header_len > MAX_HEADER_BYTES:
        raise WireError(f"header of {header_len} bytes exceeds {MAX_HEADER_BYTES}")
    body_start = _PREFIX.size + header_len
    if body_start % ALIGN:
        raise WireError(
            f"header length {header_len}: the tensors would start at byte {body_start}, "
            f"not a multiple of {ALIGN} (pad the header with spaces)"
        )
    if body_start > len(data):
        have = len(data) - _PREFIX.size
        raise WireError(f"truncated: the header is {header_len} bytes, only {have} follow")
    header = parse_header(data[_PREFIX.size : body_start])
    if (version := header.integer("version")) != VERSION:
        older = "the sender" if version < VERSION else "this side"
        raise WireError(
            f"header.version: a message in wire format version {version}, but this fedswarm "
            f"speaks version {VERSION}: upgrade fedswarm on the older side ({older}) so that "
            "coordinator and participants run the same wire format"
        )
    return header, body_start
