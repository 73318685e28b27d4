"""What every aggregator shares: its interface, its inputs and its result.

An :class:`Aggregator` is a pure function of the stacked ``(clients, dim)`` updates, their
``(clients,)`` weights and an :class:`AggregationContext`, returning an :class:`Aggregate`:
the ``(dim,)`` update the server optimiser consumes and, optionally, per-client scores (a
robust aggregator's distances, a norm) in the same client order as the rows.

Streaming is a declared capability: an aggregator that also offers ``accumulator(dim)`` is a
:class:`StreamingAggregator`, whose result is its accumulator's :class:`WeightedSum` divided
by the total weight. A round then folds each upload as it arrives instead of stacking them,
and what it hands the strategy is the sum and the weight, not the mean: differential privacy
adds noise to the sum and divides by a fixed denominator; secure aggregation hands in the
unmasked sum.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from fedswarm.params import Params

__all__ = [
    "Accumulator",
    "Aggregate",
    "AggregationContext",
    "Aggregator",
    "StreamingAggregator",
    "WeightedSum",
    "Weighting",
    "check_aggregate",
    "check_stacked",
    "client_weights",
    "stack",
]


@dataclass(frozen=True, eq=False)
class AggregationContext:
    """What an aggregator may know beyond the updates, for one round."""

    round: int
    client_ids: tuple[str, ...]  # whose update each row of the stack is, in row order
    params: Params  # the global model the updates were computed from
    rng: np.random.Generator  # derived from the run seed for this round and purpose


@dataclass(frozen=True, eq=False)
class Aggregate:
    """An aggregator's result: the update, and per-client scores in the rows' order."""

    update: np.ndarray  # (dim,) float32
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (clients,)


@dataclass(frozen=True, eq=False)
class WeightedSum:
    """``sum_k w_k u_k`` (float64, ``(dim,)``) and ``sum_k w_k`` over ``count`` updates."""

    total: np.ndarray
    weight: float
    count: int

    def mean(self) -> np.ndarray:
        """``total / weight`` rounded once to float32."""
        if self.weight <= 0:
            raise ValueError("weights sum to zero: no client carries any weight")
        return (self.total / self.weight).astype(np.float32)


class Aggregator(Protocol):
    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        """Aggregate ``(clients, dim)`` updates; the inputs are not modified."""
        ...


class Accumulator(Protocol):
    """A fold of weighted updates whose result does not depend on their order."""

    def add(self, update: np.ndarray, weight: float) -> None:
        """Fold in one flat update with a finite, non-negative weight (in place)."""
        ...

    def summed(self) -> WeightedSum: ...


@runtime_checkable
class StreamingAggregator(Aggregator, Protocol):
    """An aggregator that can also fold updates as they arrive: its result on a stack equals
    ``accumulator(dim)``'s sum, fed the same rows, divided by its weight."""

    def accumulator(self, dim: int) -> Accumulator: ...


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


def check_stacked(updates: np.ndarray, weights: np.ndarray) -> None:
    """Refuse a stack that is not ``(clients, dim)`` with finite, non-negative weights of
    positive sum, one per client."""
    if updates.ndim != 2:
        raise ValueError(f"updates must be a (clients, dim) matrix, got shape {updates.shape}")
    if weights.shape != (updates.shape[0],):
        raise ValueError(f"weights shape {weights.shape} does not match {updates.shape[0]} clients")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights must be finite and non-negative")
    if weights.sum() <= 0:
        raise ValueError("weights sum to zero: no client carries any weight")


def check_aggregate(aggregate: Aggregate, dim: int, clients: int, by: object) -> Aggregate:
    """``aggregate`` if it has the shapes a round needs; otherwise an error naming ``by``."""
    u = aggregate.update
    if u.shape != (dim,) or u.dtype != np.float32:
        raise ValueError(
            f"aggregator {by!r} returned an update of shape {u.shape} dtype {u.dtype}, "
            f"expected shape ({dim},) dtype float32"
        )
    for name, s in aggregate.scores.items():
        if s.shape != (clients,):
            raise ValueError(
                f"aggregator {by!r} returned scores {name!r} of shape {s.shape}, "
                f"expected one per client: ({clients},)"
            )
    return aggregate
