"""Registries of the open-ended parts of messages: client steps, reply extras, transforms.

Each variant is registered under a short tag with a pair of functions: ``encode`` turns a
value into a :class:`Part` (scalar fields for the header plus named tensors and blobs), and
``decode`` builds the value back from a strict field reader and a tensor reader. A
:class:`~fedswarm.wire.Codec` holds one registry of each family; an algorithm registers its
variants in a function that extends a codec (see :meth:`~fedswarm.wire.Codec.extended`)::

    def register_fedprox(codec: Codec) -> None:
        codec.steps.register(
            "fedprox", ProxStep,
            encode=lambda s: Part(fields={"mu": s.mu}),
            decode=lambda f, t: ProxStep(f.number("mu")),
        )

Encoding looks the type up exactly (a subclass is not silently sent as its parent), and
an unknown tag on decode names the registry and the tags it knows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

import numpy as np

from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, Json
from fedswarm.wire._tensors import TensorReader, TensorWriter

__all__ = ["Part", "Registry", "Table"]

T = TypeVar("T")
S = TypeVar("S")
E = TypeVar("E")


@dataclass(frozen=True)
class Part:
    """One variant's wire form: header fields (JSON values), tensors (arrays of any dtype
    in :data:`~fedswarm.wire.DTYPES` and any shape) and blobs (raw bytes)."""

    fields: Mapping[str, Json] = field(default_factory=dict)
    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)
    blobs: Mapping[str, bytes] = field(default_factory=dict)


class Table(Generic[E]):
    """Tag <-> type -> entry, for one family (``what`` names it in errors). A table is
    filled while its codec is built, then sealed: a built codec never changes."""

    def __init__(self, what: str, *, sealed: bool = False) -> None:
        self.what = what
        self._by_tag: dict[str, E] = {}
        self._by_type: dict[type, E] = {}
        self._sealed = sealed

    def _add(self, tag: str, cls: type, entry: E) -> None:
        if self._sealed:
            raise RuntimeError(
                f"the {self.what} registry of a built codec is sealed: register in a "
                "function given to Codec.extended(...), which returns a new codec"
            )
        if tag in self._by_tag or cls in self._by_type:
            raise ValueError(f"{self.what} tag {tag!r} or type {cls.__name__} registered twice")
        self._by_tag[tag] = entry
        self._by_type[cls] = entry

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_tag))

    def _known(self) -> str:
        return ", ".join(self.tags) or "none"

    def unsealed_copy(self) -> Self:
        """A copy to register more into (the codec being built from this one)."""
        new = copy.copy(self)
        new._by_tag, new._by_type, new._sealed = dict(self._by_tag), dict(self._by_type), False
        return new

    def seal(self) -> None:
        """Refuse any further registration (the codec holding this table is built)."""
        self._sealed = True


@dataclass(frozen=True)
class _Codec(Generic[T]):
    tag: str
    encode: Callable[[Any], Part]
    decode: Callable[[Fields, TensorReader], T]


class Registry(Table[_Codec[T]]):
    """Tag -> codec for one family of variants."""

    def register(
        self,
        tag: str,
        cls: type[S],
        *,
        encode: Callable[[S], Part],
        decode: Callable[[Fields, TensorReader], T],
    ) -> None:
        self._add(tag, cls, _Codec(tag, encode, decode))

    def write(self, value: T, slot: str, tensors: TensorWriter) -> dict[str, Json]:
        """The header object for ``value``; its tensors go to ``tensors`` as ``slot.name``."""
        codec = self._by_type.get(type(value))
        if codec is None:
            raise WireError(
                f"{slot}: no wire codec for {self.what} {type(value).__qualname__}; "
                f"registered tags: {self._known()}"
            )
        part = codec.encode(value)
        if "tag" in part.fields:
            raise WireError(f"{slot}: a {self.what} may not have a field named 'tag'")
        for name, array in part.tensors.items():
            tensors.tensor(f"{slot}.{name}", array)
        for name, data in part.blobs.items():
            tensors.blob(f"{slot}.{name}", data)
        return {"tag": codec.tag, **part.fields}

    def read(self, fields: Fields, tensors: TensorReader) -> T:
        tag = fields.text("tag")
        codec = self._by_tag.get(tag)
        if codec is None:
            raise WireError(
                f"{fields.where}.tag: unknown {self.what} {tag!r}; known: {self._known()}"
            )
        try:
            value = codec.decode(fields, tensors)
        except WireError:
            raise
        except ValueError as e:  # the variant's own validation, e.g. ClipNorm(max_norm=-1)
            raise WireError(f"{fields.where}: invalid {self.what} {tag!r}: {e}") from None
        fields.done()
        return value
