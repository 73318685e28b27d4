"""The wire format between coordinator and participants: typed messages <-> bytes.

Transport-agnostic (no grpc here): a network transport encodes each message, streams it in
chunks, reassembles and decodes on the other side. Peers are untrusted, so decoding is
strict: anything malformed raises :class:`WireError` naming the problem and the field, and
no code path evaluates or unpickles what a peer sent.

Layout of one message (all integers little-endian)::

    b"FSWM"                   magic, 4 bytes
    header length             uint32: N
    header                    N bytes of UTF-8 JSON, space-padded so tensors start 8-aligned
    tensor bytes              the manifest's tensors back to back, raw little-endian

The header holds ``"version": 1``, the ``"kind"`` (``fit_ins``, ``fit_res``,
``evaluate_ins``, ``evaluate_res``, ``failure``), the message's scalar fields, its typed
parts (training settings, the parameter spec, the tagged client step, reply extra and
transforms) and ``"tensors"``: a manifest of ``{name, dtype, shape, nbytes}`` rows.

Why not safetensors for the tensor part: the message already needs a JSON header for its
scalar and typed fields, and safetensors would add a second header and a second parser
whose errors come back as library strings rather than as a named field. Our tensors are
one to three flat float32 vectors, so the manifest is a few rows with implicit offsets
(nothing can overlap, one sum checks the length), the decoder checks the size limit before
it touches tensor bytes, and arrays come back as zero-copy views of the received buffer.
The layout is simple enough for a participant written in another language to implement
with no dependency. Checkpoints, which are files, keep using safetensors.

Variants (client steps, reply extras, update transforms) are encoded through the
:data:`STEPS`, :data:`EXTRAS` and :data:`TRANSFORMS` registries, where an algorithm
registers its own with :meth:`Registry.register`.
"""

from fedswarm.wire import _builtin  # noqa: F401  (registers the built-in variants)
from fedswarm.wire._chunks import DEFAULT_CHUNK_BYTES, Assembler, Chunk, chunks, frames, reassemble
from fedswarm.wire._codec import MAX_HEADER_BYTES, VERSION, Message, decode, encode, encode_parts
from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields
from fedswarm.wire._registry import EXTRAS, STEPS, TRANSFORMS, Part, Registry
from fedswarm.wire._tensors import TensorReader

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "EXTRAS",
    "MAX_HEADER_BYTES",
    "STEPS",
    "TRANSFORMS",
    "VERSION",
    "Assembler",
    "Chunk",
    "Fields",
    "Message",
    "Part",
    "Registry",
    "TensorReader",
    "WireError",
    "chunks",
    "decode",
    "encode",
    "encode_parts",
    "frames",
    "reassemble",
]
