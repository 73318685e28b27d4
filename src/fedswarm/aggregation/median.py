"""Coordinate-wise median (Yin et al. 2018): each parameter the median of the clients'.

Robust kernels count every client once, whatever its example count: a weight is what a
Byzantine client would inflate first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation._blocks import column_blocks, columns_as_rows
from fedswarm.aggregation.base import Aggregate, AggregationContext, check_stacked
from fedswarm.aggregation.scores import anomaly_scores

__all__ = ["Median", "coordinate_median"]


def coordinate_median(updates: np.ndarray) -> np.ndarray:
    """The median of each column (the mean of the two middle values for an even count),
    computed in float64 and rounded once to float32."""
    out = np.empty(updates.shape[1], np.float32)
    for b in column_blocks(updates.shape[1]):
        out[b] = np.median(columns_as_rows(updates, b), axis=1)
    return out


@dataclass(frozen=True)
class Median:
    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        update = coordinate_median(updates)
        return Aggregate(update, anomaly_scores(updates, update))
