"""Coordinate-wise trimmed mean (Yin et al. 2018): drop the ``k`` largest and ``k`` smallest
values of each parameter, average the rest; ``k = floor(beta * n)``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation._blocks import column_blocks, columns_as_rows
from fedswarm.aggregation.base import Aggregate, AggregationContext, check_stacked
from fedswarm.aggregation.scores import anomaly_scores

__all__ = ["TrimmedMean", "trim_count", "trimmed_mean"]


def trim_count(n: int, beta: float) -> int:
    """Values cut from each end of a column of ``n``: ``floor(beta n)``, leaving at least one."""
    return min(math.floor(beta * n + 1e-9), (n - 1) // 2)


def trimmed_mean(updates: np.ndarray, k: int) -> np.ndarray:
    """Mean of each column without its ``k`` smallest and ``k`` largest values."""
    n = len(updates)
    if not 0 <= 2 * k < n:
        raise ValueError(f"cannot trim {k} from each end of {n} values")
    out = np.empty(updates.shape[1], np.float32)
    for b in column_blocks(updates.shape[1]):
        rows = np.sort(columns_as_rows(updates, b), axis=1)
        out[b] = rows[:, k : n - k].mean(axis=1)
    return out


@dataclass(frozen=True)
class TrimmedMean:
    beta: float = 0.1  # fraction cut from each end

    def __post_init__(self) -> None:
        if not 0 <= self.beta < 0.5:
            raise ValueError(f"beta must be in [0, 0.5), got {self.beta}")

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        update = trimmed_mean(updates, trim_count(len(updates), self.beta))
        return Aggregate(update, anomaly_scores(updates, update))
