"""Registries of the open-ended parts of messages: client steps, reply extras, transforms.

Each variant is registered under a short tag with a pair of functions: ``encode`` turns a
value into a :class:`Part` (scalar fields for the header plus named float32 vectors), and
``decode`` builds the value back from a strict field reader and a tensor reader. An
algorithm registers its variants next to their definition::

    STEPS.register(
        "fedprox", ProxStep,
        encode=lambda s: Part(fields={"mu": s.mu}),
        decode=lambda f, t: ProxStep(f.number("mu")),
    )

Encoding looks the type up exactly (a subclass is not silently sent as its parent), and
an unknown tag on decode names the registry and the tags it knows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from fedswarm.messages import ClientStep, ReplyExtra
from fedswarm.transforms import UpdateTransform
from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, Json
from fedswarm.wire._tensors import TensorReader, TensorWriter

__all__ = ["EXTRAS", "STEPS", "TRANSFORMS", "Part", "Registry"]

T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class Part:
    """One variant's wire form: header fields (JSON values) and flat float32 vectors."""

    fields: Mapping[str, Json] = field(default_factory=dict)
    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class _Codec(Generic[T]):
    tag: str
    encode: Callable[[Any], Part]
    decode: Callable[[Fields, TensorReader], T]


class Registry(Generic[T]):
    """Tag -> codec for one family of variants (``what`` names it in errors)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._by_tag: dict[str, _Codec[T]] = {}
        self._by_type: dict[type, _Codec[T]] = {}

    def register(
        self,
        tag: str,
        cls: type[S],
        *,
        encode: Callable[[S], Part],
        decode: Callable[[Fields, TensorReader], T],
    ) -> None:
        if tag in self._by_tag or cls in self._by_type:
            raise ValueError(f"{self.what} tag {tag!r} or type {cls.__name__} registered twice")
        codec = _Codec(tag, encode, decode)
        self._by_tag[tag] = codec
        self._by_type[cls] = codec

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_tag))

    def write(self, value: T, slot: str, tensors: TensorWriter) -> dict[str, Json]:
        """The header object for ``value``; its vectors go to ``tensors`` as ``slot.name``."""
        codec = self._by_type.get(type(value))
        if codec is None:
            raise WireError(
                f"{slot}: no wire codec for {self.what} {type(value).__qualname__}; "
                f"registered tags: {', '.join(self.tags) or 'none'}"
            )
        part = codec.encode(value)
        if "tag" in part.fields:
            raise WireError(f"{slot}: a {self.what} may not have a field named 'tag'")
        for name, array in part.tensors.items():
            tensors.vector(f"{slot}.{name}", array)
        return {"tag": codec.tag, **part.fields}

    def read(self, fields: Fields, tensors: TensorReader) -> T:
        tag = fields.text("tag")
        codec = self._by_tag.get(tag)
        if codec is None:
            raise WireError(
                f"{fields.where}.tag: unknown {self.what} {tag!r}; "
                f"known: {', '.join(self.tags) or 'none'}"
            )
        try:
            value = codec.decode(fields, tensors)
        except WireError:
            raise
        except ValueError as e:  # the variant's own validation, e.g. ClipNorm(max_norm=-1)
            raise WireError(f"{fields.where}: invalid {self.what} {tag!r}: {e}") from None
        fields.done()
        return value


STEPS: Registry[ClientStep] = Registry("client step")
EXTRAS: Registry[ReplyExtra] = Registry("reply extra")
TRANSFORMS: Registry[UpdateTransform] = Registry("update transform")
