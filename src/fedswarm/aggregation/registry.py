"""The aggregators by their configuration names (``[strategy] aggregator = "krum"``)."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from fedswarm.aggregation.bulyan import Bulyan
from fedswarm.aggregation.centered_clip import CenteredClip
from fedswarm.aggregation.fltrust import FLTrust
from fedswarm.aggregation.geometric_median import GeometricMedian
from fedswarm.aggregation.krum import Krum, MultiKrum
from fedswarm.aggregation.mean import WeightedMean
from fedswarm.aggregation.median import Median
from fedswarm.aggregation.norm_bound import NormBound
from fedswarm.aggregation.trimmed_mean import TrimmedMean

__all__ = ["AGGREGATORS", "AggregatorName", "aggregator_type"]


class AggregatorName(enum.Enum):
    MEAN = "mean"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"
    KRUM = "krum"
    MULTI_KRUM = "multi_krum"
    BULYAN = "bulyan"
    GEOMETRIC_MEDIAN = "geometric_median"
    CENTERED_CLIP = "centered_clip"
    NORM_BOUND = "norm_bound"
    FLTRUST = "fltrust"


AGGREGATORS: Mapping[AggregatorName, type] = {
    AggregatorName.MEAN: WeightedMean,
    AggregatorName.MEDIAN: Median,
    AggregatorName.TRIMMED_MEAN: TrimmedMean,
    AggregatorName.KRUM: Krum,
    AggregatorName.MULTI_KRUM: MultiKrum,
    AggregatorName.BULYAN: Bulyan,
    AggregatorName.GEOMETRIC_MEDIAN: GeometricMedian,
    AggregatorName.CENTERED_CLIP: CenteredClip,
    AggregatorName.NORM_BOUND: NormBound,
    AggregatorName.FLTRUST: FLTrust,
}


def aggregator_type(name: str) -> type:
    """The kernel class registered as ``name``; an unknown name lists the choices."""
    try:
        return AGGREGATORS[AggregatorName(name)]
    except ValueError:
        choices = ", ".join(n.value for n in AggregatorName)
        raise KeyError(
            f"no aggregator {name!r} in the aggregation registry; choices: {choices}"
        ) from None
