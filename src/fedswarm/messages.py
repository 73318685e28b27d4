"""Typed messages between the coordinator and participants.

No string keys on the wire: every field is typed. The algorithm-specific part of a fit
instruction is a :class:`ClientStep`, a small frozen dataclass defined next to its
server half (``fedswarm.algorithms.*``), which tells the participant how to correct its
gradients and what to send back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

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
    "FitIns",
    "FitRes",
    "Instruction",
    "Outcome",
    "Reply",
    "ReplyExtra",
    "Stage",
]

ClientId = str
# What a participant keeps between rounds for its algorithm (e.g. SCAFFOLD's control
# variate). It stays on the participant; it is never sent.
ClientMemory = Mapping[str, np.ndarray]


class Stage(enum.Enum):
    FIT = "fit"
    EVALUATE = "evaluate"


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


@dataclass(frozen=True)
class Failure:
    """A participant that did not reply usefully: dropped out, timed out, or raised."""

    client_id: ClientId
    round: int
    stage: Stage
    reason: str


Instruction = FitIns | EvaluateIns
Reply = FitRes | EvaluateRes
Outcome = FitRes | EvaluateRes | Failure
