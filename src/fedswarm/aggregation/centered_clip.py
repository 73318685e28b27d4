"""Centered clipping (Karimireddy, He and Jaggi 2021).

``v <- v + mean_k (u_k - v) min(1, tau / ||u_k - v||)``, ``iterations`` times: updates far
from the centre ``v`` count with length at most ``tau``. The paper starts each round at the
previous round's aggregate (server momentum); kernels here hold no state between rounds, so
it starts at the coordinate-wise median, already robust, and the clipping refines it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation._blocks import row_sq_distances, weighted_rows_sum
from fedswarm.aggregation.base import Aggregate, AggregationContext, check_stacked
from fedswarm.aggregation.median import coordinate_median
from fedswarm.aggregation.scores import anomaly_scores

__all__ = ["CenteredClip", "centered_clip"]


def centered_clip(
    updates: np.ndarray, start: np.ndarray, tau: float, iterations: int
) -> np.ndarray:
    """The clipped centre after ``iterations`` steps from ``start``, float64."""
    n = len(updates)
    v = start.astype(np.float64)
    for _ in range(iterations):
        d = np.sqrt(row_sq_distances(updates, v))
        c = np.ones_like(d)
        far = d > tau  # the rest move by their whole difference
        c[far] = tau / d[far]
        v = v + (weighted_rows_sum(updates, c) - c.sum() * v) / n
    return v


@dataclass(frozen=True)
class CenteredClip:
    tau: float = 1.0  # clipping radius around the centre
    iterations: int = 3

    def __post_init__(self) -> None:
        if not self.tau > 0 or self.iterations < 1:
            raise ValueError("tau must be positive and iterations >= 1")

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        v = centered_clip(updates, coordinate_median(updates), self.tau, self.iterations)
        update = v.astype(np.float32)
        return Aggregate(update, anomaly_scores(updates, update))
