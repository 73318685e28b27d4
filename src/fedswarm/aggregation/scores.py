"""Per-client anomaly scores every robust aggregator reports beside its update.

``norm`` (how far a client moved the model) and ``distance`` (how far its update is from the
round's aggregate) are the two an operator can read without knowing the kernel; kernels add
their own (Krum's score, FLTrust's cosine). Scores are in the rows' order, float64.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedswarm.aggregation._blocks import row_sq_distances, row_sq_norms

__all__ = ["anomaly_scores", "score_metrics"]


def anomaly_scores(updates: np.ndarray, aggregate: np.ndarray) -> dict[str, np.ndarray]:
    """``{"norm": ||u_k||, "distance": ||u_k - aggregate||}`` for each row ``k``."""
    return {
        "norm": np.sqrt(row_sq_norms(updates)),
        "distance": np.sqrt(row_sq_distances(updates, aggregate.astype(np.float64))),
    }


def score_metrics(scores: Mapping[str, np.ndarray]) -> dict[str, float]:
    """A round's scores summarised for ``metrics.jsonl``: ``robust/<name>_max`` and
    ``robust/<name>_median`` (the per-participant values go to the run store)."""
    out: dict[str, float] = {}
    for name, values in sorted(scores.items()):
        if len(values):
            out[f"robust/{name}_max"] = float(np.max(values))
            out[f"robust/{name}_median"] = float(np.median(values))
    return out
