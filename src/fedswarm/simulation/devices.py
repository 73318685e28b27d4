"""Simulated devices: how fast each participant is, whether it shows up, how much it does.

Everything derives from the run seed and the participant's id, so a device is the same
device in every round and every run. The transport applies the model: a participant that
drops out never replies, one whose simulated training time exceeds the round deadline is
a straggler whose reply arrives too late, and each may be told to do fewer local epochs
(FedProx's systems heterogeneity). The driver's quorum rule then decides the round.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fedswarm.messages import ClientId
from fedswarm.seeding import round_rng
from fedswarm.training import LocalTraining

__all__ = ["DeviceModel"]


@dataclass(frozen=True)
class DeviceModel:
    seed: int
    dropout: float = 0.0  # probability that a sampled participant vanishes in a round
    speed_sigma: float = 0.0  # log-normal spread of device speeds (0: identical devices)
    steps_per_second: float = 100.0  # local mini-batch steps per second of a median device
    min_epochs: int | None = None  # each round a participant does U{min_epochs..E} epochs

    def __post_init__(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.speed_sigma < 0 or self.steps_per_second <= 0:
            raise ValueError("speed_sigma must be >= 0 and steps_per_second > 0")
        if self.min_epochs is not None and self.min_epochs < 1:
            raise ValueError(f"min_epochs must be >= 1, got {self.min_epochs}")

    def speed(self, client_id: ClientId) -> float:
        """The device's speed relative to the median device (fixed for the run)."""
        rng = round_rng(self.seed, 0, f"speed:{client_id}")
        return float(np.exp(self.speed_sigma * rng.standard_normal()))

    def drops_out(self, round_: int, client_id: ClientId) -> bool:
        return bool(round_rng(self.seed, round_, f"dropout:{client_id}").random() < self.dropout)

    def training(self, round_: int, client_id: ClientId, training: LocalTraining) -> LocalTraining:
        """The local work this device does this round (fewer epochs when it varies)."""
        if self.min_epochs is None or training.epochs is None:
            return training
        low = min(self.min_epochs, training.epochs)
        rng = round_rng(self.seed, round_, f"epochs:{client_id}")
        return replace(training, epochs=int(rng.integers(low, training.epochs + 1)))

    def seconds(self, client_id: ClientId, num_steps: int) -> float:
        """Simulated time the device takes for ``num_steps`` local steps."""
        return num_steps / (self.steps_per_second * self.speed(client_id))
