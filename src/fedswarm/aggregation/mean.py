"""The weighted mean: a pure kernel over a stack, and the same fold one update at a time.

:class:`MeanAccumulator` takes updates one at a time, in any order, so a coordinator can add
each upload as it arrives and drop it (memory grows with the model, not with the number of
participants). :func:`weighted_mean` is that same fold over the rows of a stack, so streamed
and stacked rounds give the same bits. :class:`WeightedMean` offers both as an aggregator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation.base import Aggregate, AggregationContext, WeightedSum, check_stacked

__all__ = ["MeanAccumulator", "WeightedMean", "weighted_mean"]

_BLOCK = 1 << 14  # elements per step of a fold: the float64 blocks stay in cache


class MeanAccumulator:
    """``sum_k w_k u_k`` and ``sum_k w_k`` built one update at a time, in any order.

    Written by hand because the sum must not depend on arrival order: a network coordinator
    folds uploads as they arrive, a simulation in client order, and both must give the same
    model. Each ``w_k u_k`` is exact in float64 (a float32 times an integer weight below
    2**29), and each addition's rounding error is kept with Knuth's TwoSum in a second
    vector, so the float64 total is exact to well below float32 resolution and rounds to the
    same float32 mean whichever order the updates came in. Memory: two float64 vectors.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.count = 0  # updates folded in, weight zero included
        self.weight = 0.0
        self._sum = np.zeros(dim, np.float64)
        self._err = np.zeros(dim, np.float64)

    def add(self, update: np.ndarray, weight: float) -> None:
        """Fold in ``update`` (flat, ``dim`` long) with ``weight`` (finite, >= 0)."""
        if update.shape != (self.dim,):
            raise ValueError(f"update of shape {update.shape}, expected ({self.dim},)")
        self.add_rows(update[None, :], np.array([weight], np.float64))

    def add_rows(self, updates: np.ndarray, weights: np.ndarray) -> None:
        """Fold in the rows of ``updates`` in order (bit-identical to adding them one by one,
        and faster: each block of the sums stays in cache while all rows pass)."""
        if updates.ndim != 2 or updates.shape[1] != self.dim:
            raise ValueError(f"updates of shape {updates.shape}, expected (k, {self.dim})")
        if weights.shape != (len(updates),):
            raise ValueError(f"weights of shape {weights.shape}, expected ({len(updates)},)")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights must be finite and non-negative")
        self.count += len(updates)
        rows = [(u, float(w)) for u, w in zip(updates, weights, strict=True) if w > 0]
        self.weight += sum(w for _, w in rows)
        x, b = np.empty(_BLOCK, np.float64), np.empty(_BLOCK, np.float64)
        for lo in range(0, self.dim, _BLOCK):
            s, e = self._sum[lo : lo + _BLOCK], self._err[lo : lo + _BLOCK]
            for u, w in rows:
                _two_sum_into(s, e, u[lo : lo + _BLOCK], w, x[: len(s)], b[: len(s)])

    def summed(self) -> WeightedSum:
        """The sum so far (the TwoSum error folded in) and its total weight."""
        return WeightedSum(self._sum + self._err, self.weight, self.count)

    def mean(self) -> np.ndarray:
        return self.summed().mean()


def _two_sum_into(
    s: np.ndarray, e: np.ndarray, u: np.ndarray, w: float, x: np.ndarray, b: np.ndarray
) -> None:
    """``s += w * u`` with the rounding error of the addition added to ``e`` (in place)."""
    np.multiply(u, w, out=x, dtype=np.float64)  # exact: float32 * small integer
    t = s + x
    np.subtract(t, s, out=b)  # b = t - s
    e += (s - (t - b)) + (x - b)  # TwoSum: the exact error of s + x
    s[...] = t


def weighted_mean(updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_k w_k u_k / sum_k w_k``; clients of weight zero do not count."""
    check_stacked(updates, weights)
    acc = MeanAccumulator(updates.shape[1])
    acc.add_rows(updates, weights)
    return acc.mean()


@dataclass(frozen=True)
class WeightedMean:
    """FedAvg's aggregator, stacked or streamed (the same bits either way)."""

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        return Aggregate(weighted_mean(updates, weights))

    def accumulator(self, dim: int) -> MeanAccumulator:
        return MeanAccumulator(dim)
