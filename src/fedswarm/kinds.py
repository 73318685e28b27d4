"""The registry of message kinds: which reply answers which instruction, in which stage.

A round protocol adds kinds by building a registry that extends the built-in one
(:data:`BUILTIN_KINDS`), and hands it to the transports it runs over; nothing in the core
lists the kinds, so a new protocol needs no core edit. Transports look an instruction up to
name the stage of a failure and to check that a reply is of the kind its instruction asks
for. Lookups are by exact type (a subclass is not its parent's kind), and an unknown kind is
an :class:`UnknownMessageKind` naming it and the kinds known.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fedswarm.messages import EvaluateIns, EvaluateRes, FitIns, FitRes, Stage

__all__ = ["BUILTIN_KINDS", "MessageKind", "MessageKinds", "UnknownMessageKind"]


class UnknownMessageKind(LookupError):  # noqa: N818 -- the name says what is unknown
    """A message of a type no registry in use knows; says which, and what is known."""


@dataclass(frozen=True)
class MessageKind:
    """An instruction type, the reply type that answers it, and the stage they belong to."""

    stage: Stage
    instruction: type
    reply: type


class MessageKinds:
    """An immutable registry of message kinds, by instruction type."""

    def __init__(self, kinds: Iterable[MessageKind] = ()) -> None:
        self._by_instruction: dict[type, MessageKind] = {}
        for kind in kinds:
            if kind.instruction in self._by_instruction:
                raise ValueError(f"message kind {kind.instruction.__name__} registered twice")
            if kind.stage in {k.stage for k in self._by_instruction.values()}:
                raise ValueError(f"stage {kind.stage} has two message kinds")
            self._by_instruction[kind.instruction] = kind

    def extended(self, *kinds: MessageKind) -> MessageKinds:
        """This registry and ``kinds``: what a protocol with its own messages runs with."""
        return MessageKinds([*self, *kinds])

    def __iter__(self) -> Iterator[MessageKind]:
        return iter(self._by_instruction.values())

    def of(self, instruction: object) -> MessageKind:
        """The kind of ``instruction``; :class:`UnknownMessageKind` if none is registered."""
        kind = self._by_instruction.get(type(instruction))
        if kind is None:
            known = ", ".join(sorted(k.instruction.__name__ for k in self)) or "none"
            raise UnknownMessageKind(
                f"no message kind is registered for a {type(instruction).__qualname__} "
                f"(known: {known}); register it with MessageKinds.extended() and give the "
                "extended registry to the transport and the participants"
            )
        return kind

    def stage_of(self, instruction: object) -> Stage:
        return self.of(instruction).stage


BUILTIN_KINDS = MessageKinds(
    [
        MessageKind(Stage.FIT, FitIns, FitRes),
        MessageKind(Stage.EVALUATE, EvaluateIns, EvaluateRes),
    ]
)
