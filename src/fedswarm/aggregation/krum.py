"""Krum and Multi-Krum (Blanchard et al. 2017).

A client's Krum score is the sum of squared distances from its update to its ``n - f - 2``
nearest other updates; Krum returns the update of lowest score, Multi-Krum the plain mean of
the ``m`` lowest. All pairwise distances come from one Gram matrix
(``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b``), a single matrix product over the stack,
instead of ``n^2`` passes over it.

The guarantee needs ``n >= 2f + 3``; the configuration checks that. When drop-outs leave
fewer replies the kernel still answers, with at least one neighbour per client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation._blocks import gram, weighted_rows_sum
from fedswarm.aggregation.base import Aggregate, AggregationContext, check_stacked
from fedswarm.aggregation.scores import anomaly_scores

__all__ = [
    "Krum",
    "MultiKrum",
    "krum_neighbours",
    "krum_scores",
    "krum_select",
    "pairwise_sq_distances",
]


def pairwise_sq_distances(updates: np.ndarray) -> np.ndarray:
    """``(n, n)`` squared Euclidean distances, float64, from one Gram matrix."""
    g = gram(updates)
    sq = np.diag(g)
    d = sq[:, None] + sq[None, :] - 2 * g
    np.fill_diagonal(d, 0.0)
    out: np.ndarray = np.maximum(d, 0.0)  # rounding may leave tiny negatives for near-equal rows
    return out


def krum_neighbours(n: int, f: int) -> int:
    """How many nearest others a score sums: ``n - f - 2``, clipped to ``[1, n - 1]``."""
    return min(max(n - f - 2, 1), n - 1)


def krum_scores(sq_dist: np.ndarray, f: int) -> np.ndarray:
    """Each client's sum of squared distances to its ``krum_neighbours`` nearest others."""
    n = len(sq_dist)
    m = krum_neighbours(n, f)
    others = sq_dist[~np.eye(n, dtype=bool)].reshape(n, n - 1)  # row i without i itself
    out: np.ndarray = np.sort(others, axis=1)[:, :m].sum(axis=1)
    return out


def krum_select(scores: np.ndarray, updates: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` lowest scores; equal scores in the lexicographic order of their
    updates, so that the choice does not depend on the order the clients came in."""
    order = np.argsort(scores, kind="stable")
    start = 0
    while start < len(order):  # re-sort each run of equal scores (rare: a few rows at most)
        end = start + 1
        while end < len(order) and scores[order[end]] == scores[order[start]]:
            end += 1
        if end - start > 1:
            run = sorted(order[start:end], key=lambda i: tuple(updates[i].tolist()))
            order[start:end] = run
        start = end
    return order[:m]


def _check_f(f: int) -> None:
    if f < 0:
        raise ValueError(f"f must be >= 0, got {f}")


@dataclass(frozen=True)
class Krum:
    f: int = 1  # Byzantine clients tolerated

    def __post_init__(self) -> None:
        _check_f(self.f)

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        scores = krum_scores(pairwise_sq_distances(updates), self.f)
        update = updates[krum_select(scores, updates, 1)[0]].copy()
        return Aggregate(update, {**anomaly_scores(updates, update), "krum": scores})


@dataclass(frozen=True)
class MultiKrum:
    f: int = 1
    m: int | None = None  # updates averaged; None: n - f

    def __post_init__(self) -> None:
        _check_f(self.f)
        if self.m is not None and self.m < 1:
            raise ValueError(f"m must be >= 1, got {self.m}")

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        n = len(updates)
        scores = krum_scores(pairwise_sq_distances(updates), self.f)
        m = min(self.m if self.m is not None else max(n - self.f, 1), n)
        coef = np.zeros(n, np.float64)
        coef[krum_select(scores, updates, m)] = 1.0 / m  # the plain mean of the chosen rows
        update = weighted_rows_sum(updates, coef).astype(np.float32)
        return Aggregate(update, {**anomaly_scores(updates, update), "krum": scores})
