"""Geometric median by Weiszfeld's iteration (Pillutla et al. 2022's RFA, unweighted).

The point minimising the sum of Euclidean distances to the updates. Each step is the mean of
the updates weighted by ``1 / max(distance, eps)``: one pass over the stack for the distances
and one for the weighted sum; it stops when a step moves less than ``tol`` (relative to the
updates' mean distance to it) or after ``iterations``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation._blocks import row_sq_distances, weighted_rows_sum
from fedswarm.aggregation.base import Aggregate, AggregationContext, check_stacked
from fedswarm.aggregation.scores import anomaly_scores

__all__ = ["GeometricMedian", "weiszfeld"]


def weiszfeld(
    updates: np.ndarray, iterations: int, tol: float, eps: float
) -> tuple[np.ndarray, int]:
    """The (smoothed) geometric median, float64, and the steps taken; starts at the mean."""
    n = len(updates)
    z = weighted_rows_sum(updates, np.full(n, 1.0 / n))
    for step in range(1, iterations + 1):
        d = np.sqrt(row_sq_distances(updates, z))
        w = 1.0 / np.maximum(d, eps)
        z_next = weighted_rows_sum(updates, w / w.sum())
        moved = float(np.linalg.norm(z_next - z))
        z = z_next
        # Relative to the updates' spread, not to ||z||: then translating every update
        # translates the answer (a norm-relative stop would move with the origin).
        if moved <= tol * max(float(d.mean()), eps):
            return z, step
    return z, iterations


@dataclass(frozen=True)
class GeometricMedian:
    iterations: int = 100  # at most
    tol: float = 1e-6  # relative step size at which it stops
    eps: float = 1e-8  # distances below it count as eps: no division by zero at a client

    def __post_init__(self) -> None:
        if self.iterations < 1 or not self.tol > 0 or not self.eps > 0:
            raise ValueError("iterations must be >= 1, tol and eps positive")

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        z, _ = weiszfeld(updates, self.iterations, self.tol, self.eps)
        update = z.astype(np.float32)
        return Aggregate(update, anomaly_scores(updates, update))
