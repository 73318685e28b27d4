"""Per-client anomaly scores every robust aggregator reports beside its update.

``norm`` (how far a client moved the model) and ``distance`` (how far its update is from the
round's aggregate) are the two an operator can read without knowing the kernel; kernels add
their own (Krum's score, FLTrust's cosine). Scores are in the rows' order, float64.
"""

from __future__ import annotations

import numpy as np

from fedswarm.aggregation._blocks import row_sq_distances, row_sq_norms

__all__ = ["anomaly_scores"]


def anomaly_scores(updates: np.ndarray, aggregate: np.ndarray) -> dict[str, np.ndarray]:
    """``{"norm": ||u_k||, "distance": ||u_k - aggregate||}`` for each row ``k``."""
    return {
        "norm": np.sqrt(row_sq_norms(updates)),
        "distance": np.sqrt(row_sq_distances(updates, aggregate.astype(np.float64))),
    }
