"""FedProx (Li et al. 2020): local loss plus ``mu/2 * ||w - w_global||^2``.

Both halves live here. The proximal term's gradient ``mu * (w - w_global)`` is applied
as a gradient correction, so the reported training loss is the data loss alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.algorithms.base import Slots
from fedswarm.messages import ClientMemory, ClientStep, FitRes, ReplyExtra
from fedswarm.training import GradientCorrection, LocalFit, LocalTraining

__all__ = ["FedProx", "ProxStep"]


@dataclass(frozen=True)
class ProxStep:
    """Client half: add the proximal gradient ``mu * (w - w_global)``."""

    mu: float

    def __post_init__(self) -> None:
        if not 0 <= self.mu < math.inf:  # also refuses NaN arriving from the wire
            raise ValueError(f"FedProx mu must be finite and non-negative, got {self.mu}")

    def correction(self, memory: ClientMemory, dim: int) -> GradientCorrection:
        return GradientCorrection(mu=self.mu)

    def finish(
        self, memory: ClientMemory, update: np.ndarray, fit: LocalFit, training: LocalTraining
    ) -> tuple[ReplyExtra | None, ClientMemory]:
        return None, memory


@dataclass(frozen=True)
class FedProx:
    """Server half: tells every participant the proximal coefficient ``mu``."""

    mu: float

    def __post_init__(self) -> None:
        ProxStep(self.mu)  # same validation as the participant's half

    def init(self, dim: int) -> Slots:
        return {}

    def unsupported(self, training: LocalTraining) -> str | None:
        return None

    def instruction(self, slots: Slots) -> ClientStep:
        return ProxStep(self.mu)

    def refuse(self, reply: FitRes, dim: int) -> str | None:
        return None if reply.extra is None else "unexpected algorithm payload in the reply"

    def absorb(self, slots: Slots, replies: Sequence[FitRes], num_clients: int) -> Slots:
        return slots
