"""Aggregation: kernels from a round's updates to the one update the server applies.

``base`` holds the interface every aggregator shares (:class:`Aggregator`, the
:class:`StreamingAggregator` capability, :class:`AggregationContext`, :class:`Aggregate`);
each kernel has its own module (``mean``; robust kernels go beside it). Kernels are pure
functions over plain arrays: no I/O, no message types.
"""

from fedswarm.aggregation.base import (
    Accumulator,
    Aggregate,
    AggregationContext,
    Aggregator,
    StreamingAggregator,
    WeightedSum,
    Weighting,
    check_aggregate,
    check_stacked,
    client_weights,
    stack,
)
from fedswarm.aggregation.mean import MeanAccumulator, WeightedMean, weighted_mean

__all__ = [
    "Accumulator",
    "Aggregate",
    "AggregationContext",
    "Aggregator",
    "MeanAccumulator",
    "StreamingAggregator",
    "WeightedMean",
    "WeightedSum",
    "Weighting",
    "check_aggregate",
    "check_stacked",
    "client_weights",
    "stack",
    "weighted_mean",
]
