"""The mechanisms as small pure functions, and the participant-side noise transform.

Clipping is :class:`fedswarm.transforms.ClipNorm` (participants apply it). What is added
here: Gaussian noise on a sum (the coordinator's, central DP), the same noise on one update
drawn from the participant's private randomness (local DP), the geometric clip-norm update
of adaptive clipping, and how the coordinator folds the clipped uploads while keeping
their norms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fedswarm.aggregation import Accumulator, WeightedSum
from fedswarm.transforms import TransformRandomness

__all__ = [
    "GaussianNoise",
    "NormedFold",
    "NormedSum",
    "adapted_clip_norm",
    "add_gaussian_noise",
    "unclipped_count",
]

# A clipped update arrives with norm C up to float32 rounding (a few 1e-8 relative); one
# below C by more than this was not clipped. Updates within it of C count as clipped.
_UNCLIPPED_MARGIN = 1e-5


def add_gaussian_noise(total: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """``total + N(0, std^2 I)`` in float64 (a new array; ``std = 0`` adds nothing)."""
    if std == 0:
        return total.astype(np.float64, copy=True)
    return total.astype(np.float64) + rng.normal(0.0, std, total.shape)


@dataclass(frozen=True)
class GaussianNoise:
    """Local DP: add ``N(0, std^2 I)`` to the (clipped) update from the participant's private
    randomness, so nothing the coordinator holds (seeds, messages) determines it."""

    std: float

    def __post_init__(self) -> None:
        if not self.std > 0:
            raise ValueError(f"std must be positive, got {self.std}")

    def apply(self, update: np.ndarray, rng: TransformRandomness) -> np.ndarray:
        noise = rng.private.normal(0.0, self.std, update.shape)
        return (update.astype(np.float64) + noise).astype(np.float32)


@dataclass(frozen=True, eq=False)
class NormedSum(WeightedSum):
    """A :class:`WeightedSum` that also keeps the L2 norm of each update folded in."""

    norms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (count,), arrival order


class NormedFold:
    """An inner fold that also records each update's norm (for the clip-norm check and
    adaptive clipping's unclipped count).

    With ``clip`` set the coordinator clips each upload again before folding it: an honest
    participant's is unchanged (or moved by float32 rounding), and one that skipped the
    transform cannot exceed C. The recorded norms are the uploads' own.
    """

    def __init__(self, inner: Accumulator, clip: float | None = None) -> None:
        self.inner = inner
        self.clip = clip
        self._norms: list[float] = []

    def add(self, update: np.ndarray, weight: float) -> None:
        # A sum of squares, not np.linalg.norm: its BLAS dot took 20 ms on a 51k-vector when
        # the coordinator's cores were contended (OpenBLAS threads spinning).
        norm = float(np.sqrt(np.square(update, dtype=np.float64).sum()))
        self._norms.append(norm)
        if self.clip is not None and norm > self.clip:
            update = (update * np.float32(self.clip / norm)).astype(np.float32)
        self.inner.add(update, weight)

    def summed(self) -> NormedSum:
        s = self.inner.summed()
        return NormedSum(s.total, s.weight, s.count, np.array(self._norms, np.float64))


def unclipped_count(norms: np.ndarray, clip_norm: float) -> int:
    """How many updates were shorter than ``clip_norm`` (not clipped) before clipping."""
    return int(np.sum(norms < clip_norm * (1 - _UNCLIPPED_MARGIN)))


def adapted_clip_norm(
    clip_norm: float, unclipped_fraction: float, target_quantile: float, learning_rate: float
) -> float:
    """Andrew et al. 2021's geometric update: ``C exp(-eta (b - gamma))``, which moves C
    toward the ``gamma`` quantile of the update norms (``b``: the noised unclipped fraction)."""
    return clip_norm * math.exp(-learning_rate * (unclipped_fraction - target_quantile))
