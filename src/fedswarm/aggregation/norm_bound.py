"""Norm bounding (Sun et al. 2019): each update scaled down to L2 norm ``bound`` at the
coordinator, then the weighted mean. Unlike the participant-side ``ClipNorm`` transform it
does not trust participants to clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation._blocks import row_sq_norms
from fedswarm.aggregation.base import Aggregate, AggregationContext, check_stacked
from fedswarm.aggregation.mean import weighted_mean
from fedswarm.aggregation.scores import anomaly_scores

__all__ = ["NormBound", "clip_rows"]


def clip_rows(updates: np.ndarray, bound: float) -> np.ndarray:
    """A copy of ``updates`` with each row longer than ``bound`` scaled to length ``bound``."""
    norms = np.sqrt(row_sq_norms(updates))
    scale = np.minimum(1.0, bound / np.maximum(norms, np.finfo(np.float64).tiny))
    out: np.ndarray = (updates * scale[:, None].astype(np.float32)).astype(np.float32)
    return out


@dataclass(frozen=True)
class NormBound:
    bound: float

    def __post_init__(self) -> None:
        if not self.bound > 0:
            raise ValueError(f"bound must be positive, got {self.bound}")

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        update = weighted_mean(clip_rows(updates, self.bound), weights)
        return Aggregate(update, anomaly_scores(updates, update))
