"""The wire format between coordinator and participants: typed messages <-> bytes.

Transport-agnostic (no grpc here): a network transport encodes each message, streams it in
chunks, reassembles and decodes on the other side. Peers are untrusted, so decoding is
strict: anything malformed raises :class:`WireError` naming the problem and the field, and
no code path evaluates or unpickles what a peer sent.

Layout of one message, format version 2 (all integers little-endian)::

    b"FSWM"                   magic, 4 bytes
    header length             uint32: N, such that 8 + N is a multiple of 8
    header                    N bytes of UTF-8 JSON, space-padded to that length
    tensors                   the manifest's tensors in order, raw little-endian, C order,
                              each starting at a multiple of 8 bytes from the message start
                              (zero bytes in the gaps); the last one ends the message

The header is one JSON object: ``"version": 2``; the ``"kind"`` (``fit_ins``,
``fit_res``, ``evaluate_ins``, ``evaluate_res``, ``failure``, or one a protocol
registers); the message's own fields (scalars, and typed parts such as the training
settings, the parameter spec, the tagged client step, reply extra and transforms); and
``"tensors"``, the manifest: ``{name, dtype, shape, nbytes}`` rows, where ``dtype`` is one
of :data:`DTYPES` (``nbytes`` = product of ``shape`` x item size) or ``"bytes"`` for a
blob of raw bytes (shape ``[nbytes]``). A blob is its own dtype, not ``uint8``, so that a
reader asking for a key or a signature cannot be handed an array, nor the reverse.

The magic, the prefix and the header's ``"version"`` are the same in every version, so a
peer speaking another one is refused with both versions named (version 1 carried only
float32 vectors, back to back). Decoding checks the size limit before it parses, and
every manifest row and the total length before it touches a tensor byte.

Why not safetensors for the tensor part: the message already needs a JSON header for its
scalar and typed fields, and safetensors would add a second header and a second parser
whose errors come back as library strings rather than as a named field. The manifest is a
few rows with implicit offsets (nothing can overlap, one sum checks the length), and
arrays come back as zero-copy, read-only views of the received buffer. The layout is
simple enough for a participant written in another language to implement with no
dependency. Checkpoints, which are files, keep using safetensors.

What a codec can encode is explicit: a :class:`Codec` holds a registry of message kinds
(:class:`Kinds`) and the variant registries (client steps, reply extras, update
transforms; :class:`Registry`). :func:`default_codec` is fedswarm's own; a protocol adds
its kinds and variants with ``default_codec().extended(register)``, where ``register``
fills the new codec's registries using the helpers exported here. :func:`encode`,
:func:`encode_parts` and :func:`decode` use the default codec.
"""

from fedswarm.wire._chunks import DEFAULT_CHUNK_BYTES, Assembler, Chunk, chunks, frames, reassemble
from fedswarm.wire._codec import MAX_HEADER_BYTES, VERSION, Codec
from fedswarm.wire._default import Message, decode, default_codec, encode, encode_parts
from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, Header, Json, check_integer, check_text
from fedswarm.wire._kinds import Kinds, MessageCodec
from fedswarm.wire._parts import read_params, read_training, write_params, write_training
from fedswarm.wire._registry import Part, Registry
from fedswarm.wire._tensors import BLOB, DTYPES, TensorReader, TensorWriter, check_vector

__all__ = [
    "BLOB",
    "DEFAULT_CHUNK_BYTES",
    "DTYPES",
    "MAX_HEADER_BYTES",
    "VERSION",
    "Assembler",
    "Chunk",
    "Codec",
    "Fields",
    "Header",
    "Json",
    "Kinds",
    "Message",
    "MessageCodec",
    "Part",
    "Registry",
    "TensorReader",
    "TensorWriter",
    "WireError",
    "check_integer",
    "check_text",
    "check_vector",
    "chunks",
    "decode",
    "default_codec",
    "encode",
    "encode_parts",
    "frames",
    "read_params",
    "read_training",
    "reassemble",
    "write_params",
    "write_training",
]
