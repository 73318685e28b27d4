"""Aggregation kernels: pure functions from stacked updates to one vector.

Every kernel takes a ``(clients, dim)`` matrix and a ``(clients,)`` weight vector and
returns a ``(dim,)`` float32 vector. No I/O, no message types: strategies, DP and robust
aggregation wrap these. Sums are taken in float64 so that the result does not depend on
accumulation error in float32.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["Aggregator", "Weighting", "client_weights", "stack", "weighted_mean"]


_BLOCK_ELEMENTS = 1 << 22  # float64 scratch per block: 32 MiB


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


def weighted_mean(updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_k w_k u_k / sum_k w_k``; clients of weight zero do not count."""
    _check(updates, weights)
    w = weights / weights.sum()
    mean = np.empty(updates.shape[1], np.float32)
    # float64 sums, one block of columns at a time: never a float64 copy of the whole stack
    step = max(1, _BLOCK_ELEMENTS // max(1, updates.shape[0]))
    for lo in range(0, updates.shape[1], step):
        mean[lo : lo + step] = w @ updates[:, lo : lo + step].astype(np.float64)
    return mean
