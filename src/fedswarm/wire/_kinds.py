"""The registry of message kinds: the header's ``"kind"`` tag <-> a message type, with the
writer and reader of its header fields and tensors.

A protocol that adds messages (a secure-aggregation round, a split-learning forward pass)
registers each kind in a function that extends a codec, next to the message's definition::

    def register_masked_input(codec: Codec) -> None:
        codec.kinds.register("masked_input", MaskedInput, write=write_masked, read=read_masked)

    codec = default_codec().extended(register_masked_input)

A writer returns the message's header fields and puts its tensors into the
:class:`TensorWriter`; a reader takes every field and tensor back (what it leaves is
refused). Both get the codec, for the variant registries (``codec.steps.write(...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, Header
from fedswarm.wire._registry import Table
from fedswarm.wire._tensors import TensorReader, TensorWriter

if TYPE_CHECKING:
    from fedswarm.wire._codec import Codec

__all__ = ["RESERVED", "Kinds", "MessageCodec"]

M = TypeVar("M")
RESERVED = frozenset({"version", "kind", "tensors"})  # the codec's own header fields


@dataclass(frozen=True)
class MessageCodec(Generic[M]):
    tag: str
    write: Callable[[M, TensorWriter, Codec], Header]
    read: Callable[[Fields, TensorReader, Codec], M]


class Kinds(Table[MessageCodec[Any]]):
    """Tag -> message kind; a codec holds one (``codec.kinds``)."""

    def register(
        self,
        tag: str,
        cls: type[M],
        *,
        write: Callable[[M, TensorWriter, Codec], Header],
        read: Callable[[Fields, TensorReader, Codec], M],
    ) -> None:
        self._add(tag, cls, MessageCodec(tag, write, read))

    def for_message(self, msg: object) -> MessageCodec[Any]:
        """The kind of ``msg``'s exact type; :class:`WireError` naming the type if none."""
        kind = self._by_type.get(type(msg))
        if kind is None:
            raise WireError(
                f"cannot encode a {type(msg).__qualname__}: not a registered message type; "
                f"registered kinds: {self._known()}"
            )
        return kind

    def for_tag(self, tag: str, where: str) -> MessageCodec[Any]:
        kind = self._by_tag.get(tag)
        if kind is None:
            raise WireError(f"{where}: unknown {self.what} {tag!r}; known: {self._known()}")
        return kind
