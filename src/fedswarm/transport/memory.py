"""In-process transport: participants are objects in this process.

It runs participants one by one (the debug backend) and keeps each participant's memory
between rounds, as a participant's own disk would. Participants are built on demand by a
factory, so only the sampled ones exist at any time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fedswarm.client import ClientApp
from fedswarm.messages import ClientId, ClientMemory, Failure, FitIns, Instruction, Outcome, Stage
from fedswarm.transport.base import ClientError, Request

__all__ = ["InMemoryTransport"]


@dataclass
class InMemoryTransport:
    """``fail_fast`` re-raises a participant's exception as :class:`ClientError`;
    otherwise it becomes a :class:`Failure` and the round goes on without it."""

    client_ids: Sequence[ClientId]
    make_client: Callable[[ClientId], ClientApp]
    fail_fast: bool = True
    # Participant-side storage (their "disks"): the only mutable state, owned here.
    memories: dict[ClientId, ClientMemory] = field(default_factory=dict)

    def available(self) -> Sequence[ClientId]:
        return self.client_ids

    def exchange(self, requests: Sequence[Request], *, timeout: float | None) -> list[Outcome]:
        # timeout: in-process calls cannot be abandoned midway; deadlines apply to
        # transports whose participants run elsewhere.
        return [self._one(cid, ins) for cid, ins in requests]

    def _one(self, cid: ClientId, ins: Instruction) -> Outcome:
        stage = Stage.FIT if isinstance(ins, FitIns) else Stage.EVALUATE
        try:
            reply, memory = self.make_client(cid).handle(ins, self.memories.get(cid, {}))
        except Exception as exc:
            if self.fail_fast:
                raise ClientError(stage, cid, ins.round, exc) from exc
            return Failure(cid, ins.round, stage, f"{type(exc).__name__}: {exc}")
        self.memories[cid] = memory
        return reply
