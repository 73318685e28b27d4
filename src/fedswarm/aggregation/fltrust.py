"""FLTrust (Cao et al. 2021): trust bootstrapped from a small root dataset the server holds.

The coordinator computes its own update on the root data from the same global model; each
client's trust is ``ReLU(cos(u_k, g0))``, its update is rescaled to ``||g0||``, and the result
is the trust-weighted mean. A client pointing away from the server's own direction gets no
say, whatever its norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fedswarm.aggregation._blocks import row_sq_norms, weighted_rows_sum
from fedswarm.aggregation.base import Aggregate, AggregationContext, check_stacked
from fedswarm.aggregation.scores import anomaly_scores
from fedswarm.params import Params

__all__ = ["FLTrust", "ReferenceUpdate", "fltrust"]


class ReferenceUpdate(Protocol):
    def __call__(self, params: Params, round_: int) -> np.ndarray:
        """The server's own ``(dim,)`` update on its root data, from ``params``."""
        ...


def fltrust(updates: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The aggregate (float32) and each client's cosine to ``reference`` (float64)."""
    ref = reference.astype(np.float64)
    ref_norm = float(np.linalg.norm(ref))
    norms = np.sqrt(row_sq_norms(updates))
    dots = np.array([float(u.astype(np.float64) @ ref) for u in updates])
    denom = norms * ref_norm
    cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    trust = np.maximum(cos, 0.0)
    if trust.sum() == 0:  # nobody agrees with the server: no step this round
        return np.zeros(updates.shape[1], np.float32), cos
    rescale = np.divide(ref_norm, norms, out=np.zeros_like(norms), where=norms > 0)
    total = weighted_rows_sum(updates, trust * rescale / trust.sum())
    return total.astype(np.float32), cos


@dataclass(frozen=True)
class FLTrust:
    reference: ReferenceUpdate

    def __call__(
        self, updates: np.ndarray, weights: np.ndarray, ctx: AggregationContext
    ) -> Aggregate:
        check_stacked(updates, weights)
        update, cos = fltrust(updates, self.reference(ctx.params, ctx.round))
        return Aggregate(update, {**anomaly_scores(updates, update), "fltrust_cosine": cos})
