"""fedswarm's own codec, built on first use, and the module-level calls that use it."""

from __future__ import annotations

import functools
from typing import TypeAlias

from fedswarm.messages import EvaluateIns, EvaluateRes, Failure, FitIns, FitRes
from fedswarm.wire._builtin_kinds import register_builtin_kinds
from fedswarm.wire._builtin_variants import register_builtin_variants
from fedswarm.wire._codec import Codec

__all__ = ["Message", "decode", "default_codec", "encode", "encode_parts"]

Message: TypeAlias = FitIns | FitRes | EvaluateIns | EvaluateRes | Failure  # the built-in kinds


@functools.cache
def default_codec() -> Codec:
    """The codec of fedswarm's built-in message kinds and variants (built once). A protocol
    with its own adds them with ``default_codec().extended(register)``."""
    return Codec().extended(register_builtin_kinds, register_builtin_variants)


def encode(msg: object) -> bytes:
    """``default_codec().encode(msg)``."""
    return default_codec().encode(msg)


def encode_parts(msg: object) -> list[bytes | memoryview]:
    """``default_codec().encode_parts(msg)``."""
    return default_codec().encode_parts(msg)


def decode(data: bytes, *, max_bytes: int) -> object:
    """``default_codec().decode(data, max_bytes=max_bytes)``."""
    return default_codec().decode(data, max_bytes=max_bytes)
