"""The one narrow interface between the coordinator and its participants.

A transport delivers a batch of instructions and returns one outcome per instruction: a
reply, or a :class:`~fedswarm.messages.Failure` for a participant that dropped out, timed
out or raised. Batches (rather than one call per client) let simulation backends train
all of a round's clients at once and let network transports overlap their uploads.
Strategies and protocols never see anything below this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from fedswarm.messages import ClientId, Instruction, Outcome, Stage

__all__ = ["ClientError", "Fold", "Request", "Transport"]

Request = tuple[ClientId, Instruction]
Fold = Callable[[Outcome], Outcome]


class Transport(Protocol):
    def available(self) -> Sequence[ClientId]:
        """Participants that can be sampled now."""
        ...

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        """Deliver ``requests``; one outcome each, in any order, within ``timeout`` seconds.

        ``fold``, when given, replaces each outcome as it arrives, one call at a time (a fit
        round checks a reply there and keeps only what it needs of it); outcomes it did not
        see are folded by the protocol afterwards.
        """
        ...


class ClientError(RuntimeError):
    """A participant raised; says which one, in which stage of which round."""

    def __init__(self, stage: Stage, client_id: ClientId, round_: int, cause: BaseException):
        super().__init__(
            f"{stage} failed on client {client_id!r} in round {round_}: "
            f"{type(cause).__name__}: {cause}"
        )
        self.stage = stage
        self.client_id = client_id
        self.round = round_
