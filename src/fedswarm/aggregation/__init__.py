"""Aggregation: kernels from a round's updates to the one update the server applies.

``base`` holds the interface every aggregator shares (:class:`Aggregator`, the
:class:`StreamingAggregator` capability, :class:`AggregationContext`, :class:`Aggregate`);
each kernel has its own module (``mean``, and the Byzantine-robust ``median``,
``trimmed_mean``, ``krum``, ``bulyan``, ``geometric_median``, ``centered_clip``,
``norm_bound``, ``fltrust``), and ``registry`` names them for configuration. Kernels are pure
functions over plain arrays: no I/O, no message types. Robust kernels do not stream: a round
hands them the stacked updates, and they report per-client anomaly scores (``scores``).
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
from fedswarm.aggregation.bulyan import Bulyan
from fedswarm.aggregation.centered_clip import CenteredClip
from fedswarm.aggregation.fltrust import FLTrust, ReferenceUpdate
from fedswarm.aggregation.geometric_median import GeometricMedian
from fedswarm.aggregation.krum import Krum, MultiKrum
from fedswarm.aggregation.mean import MeanAccumulator, WeightedMean, weighted_mean
from fedswarm.aggregation.median import Median
from fedswarm.aggregation.norm_bound import NormBound
from fedswarm.aggregation.registry import AGGREGATORS, AggregatorName, aggregator_type
from fedswarm.aggregation.scores import anomaly_scores, score_metrics
from fedswarm.aggregation.trimmed_mean import TrimmedMean

__all__ = [
    "AGGREGATORS",
    "Accumulator",
    "Aggregate",
    "AggregationContext",
    "Aggregator",
    "AggregatorName",
    "Bulyan",
    "CenteredClip",
    "FLTrust",
    "GeometricMedian",
    "Krum",
    "MeanAccumulator",
    "Median",
    "MultiKrum",
    "NormBound",
    "ReferenceUpdate",
    "StreamingAggregator",
    "TrimmedMean",
    "WeightedMean",
    "WeightedSum",
    "Weighting",
    "aggregator_type",
    "anomaly_scores",
    "check_aggregate",
    "check_stacked",
    "client_weights",
    "score_metrics",
    "stack",
    "weighted_mean",
]
