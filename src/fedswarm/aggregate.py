"""Aggregation kernels: pure functions from stacked updates to one vector.

Every kernel takes a ``(clients, dim)`` matrix and a ``(clients,)`` weight vector and
returns a ``(dim,)`` float32 vector. No I/O, no message types: strategies, DP and robust
aggregation wrap these.

The weighted mean is also a fold: :class:`MeanAccumulator` takes updates one at a time, in
any order, so a coordinator can add each upload as it arrives and drop it (memory grows
with the model, not with the number of participants). :func:`weighted_mean` is that same
fold over the rows of a stack, so streamed and stacked rounds give the same bits.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = [
    "Aggregator",
    "MeanAccumulator",
    "Weighting",
    "client_weights",
    "stack",
    "weighted_mean",
]

_BLOCK = 1 << 14  # elements per step of a fold: the float64 blocks stay in cache


class Aggregator(Protocol):
    def __call__(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray: ...


class Weighting(enum.Enum):
    """How much each client's update counts in the mean."""

    EXAMPLES = "examples"  # by number of local training examples (McMahan et al.)
    UNIFORM = "uniform"  # every sampled client the same


def stack(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Stack equal-length flat vectors into a ``(clients, dim)`` float32 matrix."""
    if not vectors:
        raise ValueError("cannot stack zero updates")
    dims = {v.shape for v in vectors}
    if len(dims) != 1 or next(iter(dims)) == () or len(next(iter(dims))) != 1:
        raise ValueError(f"updates must be flat vectors of one length, got shapes {sorted(dims)}")
    return np.stack(vectors).astype(np.float32, copy=False)


def client_weights(num_examples: Sequence[int], weighting: Weighting) -> np.ndarray:
    if weighting is Weighting.UNIFORM:
        return np.ones(len(num_examples), np.float64)
    return np.asarray(num_examples, np.float64)


def _check(updates: np.ndarray, weights: np.ndarray) -> None:
    if updates.ndim != 2:
        raise ValueError(f"updates must be a (clients, dim) matrix, got shape {updates.shape}")
    if weights.shape != (updates.shape[0],):
        raise ValueError(f"weights shape {weights.shape} does not match {updates.shape[0]} clients")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights must be finite and non-negative")
    if weights.sum() <= 0:
        raise ValueError("weights sum to zero: no client carries any weight")


class MeanAccumulator:
    """``sum_k w_k u_k / sum_k w_k`` built one update at a time, in any order.

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

    def mean(self) -> np.ndarray:
        if self.weight <= 0:
            raise ValueError("weights sum to zero: no client carries any weight")
        return ((self._sum + self._err) / self.weight).astype(np.float32)


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
    _check(updates, weights)
    acc = MeanAccumulator(updates.shape[1])
    acc.add_rows(updates, weights)
    return acc.mean()
