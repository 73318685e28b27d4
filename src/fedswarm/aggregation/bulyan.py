"""Bulyan (El Mhamdi et al. 2018): Krum picks a set, a trimmed coordinate-wise rule averages it.

``theta = n - 2f`` updates are chosen one at a time, each the Krum choice among those not yet
chosen (scores recomputed on what remains); then each coordinate is the mean of the
``beta = theta - 2f`` chosen values closest to their median. Needs ``n >= 4f + 3``, which
the configuration checks; with fewer replies both counts are clipped to at least one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation._blocks import column_blocks, columns_as_rows
from fedswarm.aggregation.base import Aggregate, AggregationContext, check_stacked
from fedswarm.aggregation.krum import krum_scores, krum_select, pairwise_sq_distances
from fedswarm.aggregation.scores import anomaly_scores

__all__ = ["Bulyan", "bulyan_select", "closest_to_median_mean"]


def bulyan_select(updates: np.ndarray, sq_dist: np.ndarray, f: int, theta: int) -> list[int]:
    """Indices chosen by ``theta`` successive Krum rounds on the remaining clients (ties
    broken by the updates' values, as Krum's are)."""
    remaining = list(range(len(sq_dist)))
    chosen: list[int] = []
    while len(chosen) < theta:
        sub = sq_dist[np.ix_(remaining, remaining)]
        best = int(krum_select(krum_scores(sub, f), updates[remaining], 1)[0])
        chosen.append(remaining.pop(best))
    return chosen


def closest_to_median_mean(values: np.ndarray, beta: int) -> np.ndarray:
    """Per row of ``values`` (``(dim, theta)``: one coordinate's chosen values a row): the
    mean of the ``beta`` values nearest the row's median (ties to the smaller value).
    float64 in, float64 out."""
    row = np.sort(values, axis=1)
    med = np.median(row, axis=1, keepdims=True)
    nearest = np.argsort(np.abs(row - med), axis=1, kind="stable")[:, :beta]
    out: np.ndarray = np.take_along_axis(row, nearest, axis=1).mean(axis=1)
    return out


@dataclass(frozen=True)
class Bulyan:
    f: int = 1

    def __post_init__(self) -> None:
        if self.f < 0:
            raise ValueError(f"f must be >= 0, got {self.f}")

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        n = len(updates)
        theta = max(n - 2 * self.f, 1)
        beta = max(theta - 2 * self.f, 1)
        sq = pairwise_sq_distances(updates)
        chosen = sorted(bulyan_select(updates, sq, self.f, theta))
        update = np.empty(updates.shape[1], np.float32)
        for b in column_blocks(updates.shape[1]):
            update[b] = closest_to_median_mean(columns_as_rows(updates, b)[:, chosen], beta)
        scores = {**anomaly_scores(updates, update), "krum": krum_scores(sq, self.f)}
        return Aggregate(update, scores)
