"""Feature standardisation fitted on training data only (so test statistics never leak in)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Standardizer"]


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature ``(x - mean) / scale``; constant features get scale 1 instead of 0."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        """Statistics over the sample axis of ``x`` (N, ...)."""
        if len(x) == 0:
            raise ValueError("cannot fit a Standardizer on zero samples")
        std = x.std(axis=0)
        return cls(mean=x.mean(axis=0), scale=np.where(std > 0, std, 1.0))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Standardised float32 copy of ``x``."""
        scaled: np.ndarray = (x - self.mean) / self.scale
        return scaled.astype(np.float32)
