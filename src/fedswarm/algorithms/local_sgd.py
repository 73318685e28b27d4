"""Plain local training (FedAvg's client half): no correction, nothing extra sent back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.algorithms.base import Slots
from fedswarm.messages import ClientMemory, ClientStep, FitRes, ReplyExtra
from fedswarm.training import GradientCorrection, LocalFit, LocalTraining

__all__ = ["LocalSGD", "LocalSGDStep"]


@dataclass(frozen=True)
class LocalSGDStep:
    """Client half: train on the local loss as it is."""

    def correction(self, memory: ClientMemory, dim: int) -> GradientCorrection:
        return GradientCorrection()

    def finish(
        self, memory: ClientMemory, update: np.ndarray, fit: LocalFit, training: LocalTraining
    ) -> tuple[ReplyExtra | None, ClientMemory]:
        return None, memory


@dataclass(frozen=True)
class LocalSGD:
    """Server half: stateless."""

    def init(self, dim: int) -> Slots:
        return {}

    def unsupported(self, training: LocalTraining) -> str | None:
        return None

    def instruction(self, slots: Slots) -> ClientStep:
        return LocalSGDStep()

    def refuse(self, reply: FitRes, dim: int) -> str | None:
        return None if reply.extra is None else "unexpected algorithm payload in the reply"

    def absorb(self, slots: Slots, replies: Sequence[FitRes], num_clients: int) -> Slots:
        return slots
