"""Typed messages between the coordinator and participants.

No string keys on the wire: every field is typed. The algorithm-specific part of a fit
instruction is a :class:`ClientStep`, a small frozen dataclass defined next to its
server half (``fedswarm.algorithms.*``), which tells the participant how to correct its
gradients and what to send back.

Fit and evaluate are the built-in message kinds; a protocol adds its own instruction and
reply types and registers them (:mod:`fedswarm.kinds`), so :class:`Instruction` and
:class:`Reply` are protocols every kind satisfies, not closed unions. A participant that
does not reply usefully is a :class:`Failure` of a typed :class:`FailureKind`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from fedswarm.params import Params
from fedswarm.training import GradientCorrection, LocalFit, LocalTraining
from fedswarm.transforms import UpdateTransform

__all__ = [
    "ClientId",
    "ClientMemory",
    "ClientStep",
    "EvaluateIns",
    "EvaluateRes",
    "Failure",
    "FailureKind",
    "FitIns",
    "FitRes",
    "Instruction",
    "Outcome",
    "Refusal",
    "Reply",
    "ReplyExtra",
    "Stage",
]

ClientId = str
# What a participant keeps between rounds for its algorithm (e.g. SCAFFOLD's control
# variate). It stays on the participant; it is never sent.
ClientMemory = Mapping[str, np.ndarray]


_STAGE_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")


@dataclass(frozen=True, order=True)
class Stage:
    """A named step of a round protocol: ``fit``, ``evaluate``, or a protocol's own
    (``secagg.share_keys``, ``split.forward``). Open, so a protocol needs no core edit."""

    name: str
    FIT: ClassVar[Stage]
    EVALUATE: ClassVar[Stage]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _STAGE_NAME.fullmatch(self.name):
            raise ValueError(
                f"stage name {self.name!r} must be dotted lowercase words, e.g. 'secagg.unmask'"
            )

    def __str__(self) -> str:
        return self.name


Stage.FIT = Stage("fit")
Stage.EVALUATE = Stage("evaluate")


class Instruction(Protocol):
    """What the coordinator sends: every kind's instruction names its run and round."""

    @property
    def run_id(self) -> str: ...
    @property
    def round(self) -> int: ...


class Reply(Protocol):
    """What a participant answers: every kind's reply names its sender and round."""

    @property
    def client_id(self) -> ClientId: ...
    @property
    def round(self) -> int: ...


@dataclass(frozen=True)
class ReplyExtra:
    """Base of algorithm-specific reply payloads (e.g. SCAFFOLD's control delta)."""


class ClientStep(Protocol):
    """The client half of an algorithm, carried inside :class:`FitIns`."""

    def correction(self, memory: ClientMemory, dim: int) -> GradientCorrection:
        """How to change local gradients this round, given the participant's memory."""
        ...

    def finish(
        self, memory: ClientMemory, update: np.ndarray, fit: LocalFit, training: LocalTraining
    ) -> tuple[ReplyExtra | None, ClientMemory]:
        """After training: what to send back beside the update, and the new memory."""
        ...


@dataclass(frozen=True, eq=False)
class FitIns:
    run_id: str
    round: int
    params: Params
    training: LocalTraining
    step: ClientStep
    seed: int  # batch order and any local randomness; derived from the run seed
    transforms: tuple[UpdateTransform, ...] = ()  # applied to the update before it is sent


@dataclass(frozen=True, eq=False)
class FitRes:
    client_id: ClientId
    round: int
    update: np.ndarray  # flat float32: local params - global params
    num_examples: int
    num_steps: int
    train_loss: float
    extra: ReplyExtra | None = None


@dataclass(frozen=True, eq=False)
class EvaluateIns:
    run_id: str
    round: int
    params: Params


@dataclass(frozen=True)
class EvaluateRes:
    client_id: ClientId
    round: int
    loss: float
    accuracy: float
    num_examples: int


class FailureKind(enum.Enum):
    """Why a participant did not count in an exchange (accounting reads this, never prose)."""

    DROPPED = "dropped"  # gone: disconnected, not connected, dropped out
    UNSENT = "unsent"  # the coordinator did not send it (the participant asked twice at once)
    TIMED_OUT = "timed_out"  # no reply by the deadline (stragglers included)
    RAISED = "raised"  # the participant's own code failed and said why
    REFUSED = "refused"  # its reply was unusable: ``refusal`` says which rule it broke


class Refusal(enum.Enum):
    """Reason codes of a refused reply (bad input from a participant, counted as such)."""

    NOT_ASKED = "not_asked"  # from a participant not asked, or a second reply
    WRONG_ROUND = "wrong_round"
    WRONG_KIND = "wrong_kind"  # a reply of another kind than the instruction's
    WRONG_RUN = "wrong_run"  # an instruction of another run (refused by a participant)
    IMPERSONATION = "impersonation"  # the reply names another sender than its channel's
    UNDECODABLE = "undecodable"  # bytes that are no valid message
    MALFORMED = "malformed"  # a valid message whose values are unusable (shape, dtype, ...)
    NON_FINITE = "non_finite"  # NaN or Inf
    NO_EXAMPLES = "no_examples"  # trained on nothing, where examples weight the mean
    ALGORITHM = "algorithm"  # the algorithm's own check (e.g. SCAFFOLD's control delta)


@dataclass(frozen=True)
class Failure:
    """A participant that did not reply usefully, in which stage of which round, and why.

    ``kind`` is what accounting reads; ``refusal`` (set exactly when ``kind`` is
    ``REFUSED``) is the rule the reply broke; ``reason`` says it in words, for people.
    """

    client_id: ClientId
    round: int
    stage: Stage
    kind: FailureKind
    reason: str
    refusal: Refusal | None = None

    def __post_init__(self) -> None:
        if (self.kind is FailureKind.REFUSED) != (self.refusal is not None):
            raise ValueError(
                f"a failure of kind {self.kind.value} takes a refusal code exactly when it is "
                f"'refused'; got refusal {self.refusal}"
            )

    @classmethod
    def refused(
        cls, client_id: ClientId, round_: int, stage: Stage, code: Refusal, reason: str
    ) -> Failure:
        return cls(client_id, round_, stage, FailureKind.REFUSED, reason, code)

    def __str__(self) -> str:
        code = f" ({self.refusal.value})" if self.refusal else ""
        return f"{self.client_id}: {self.kind.value}{code}: {self.reason}"


Outcome = Reply | Failure
