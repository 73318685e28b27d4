"""Update transforms: what happens to a participant's update before it leaves the device.

The server names the transforms in every fit instruction (so a DP or compression policy is
the coordinator's, applied uniformly); the participant applies them in order to its model
update after local training, and only the transformed update is sent. Clipping is here;
noise (local DP), quantisation and secure-aggregation masking are further transforms of the
same shape. Algorithm-specific state (e.g. SCAFFOLD's control variates) is computed from the
raw update first, since it never leaves the participant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["ClipNorm", "TransformRandomness", "UpdateTransform", "apply_transforms"]


@dataclass(frozen=True, eq=False)
class TransformRandomness:
    """The randomness a transform may use, kept apart by who knows it.

    ``public_seed`` is the fit instruction's seed: the coordinator derived it, so it is for
    nothing secret. ``private`` is drawn from the participant's own secrets
    (:mod:`fedswarm.entropy`): noise and masks come from it.
    """

    public_seed: int
    private: np.random.Generator


class UpdateTransform(Protocol):
    def apply(self, update: np.ndarray, rng: TransformRandomness) -> np.ndarray:
        """The transformed update (a new array)."""
        ...


@dataclass(frozen=True)
class ClipNorm:
    """Scale the update down to L2 norm ``max_norm`` if it is longer (DP's clipping step,
    and a cheap bound on what one participant can move the model)."""

    max_norm: float

    def __post_init__(self) -> None:
        if not self.max_norm > 0:
            raise ValueError(f"max_norm must be positive, got {self.max_norm}")

    def apply(self, update: np.ndarray, rng: TransformRandomness) -> np.ndarray:
        norm = float(np.linalg.norm(update.astype(np.float64)))
        scale = min(1.0, self.max_norm / norm) if norm > 0 else 1.0
        return (update * np.float32(scale)).astype(np.float32)


def apply_transforms(
    transforms: Sequence[UpdateTransform], update: np.ndarray, rng: TransformRandomness
) -> np.ndarray:
    for t in transforms:
        update = t.apply(update, rng)
    return update
