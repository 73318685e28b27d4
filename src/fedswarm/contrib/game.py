"""A federated round as a cooperative game: a coalition's value is that of the model the
round would have made from its updates alone (a weighted mean, as FedAvg aggregates)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fedswarm.contrib.shapley import Utility

__all__ = ["round_game"]


def round_game(
    base: np.ndarray,
    updates: np.ndarray,
    weights: np.ndarray,
    value: Callable[[np.ndarray], float],
    server_lr: float = 1.0,
) -> Utility:
    """The game of one round: ``base`` (dim,) the round's starting model, ``updates``
    (clients, dim), ``weights`` (clients,) their aggregation weights, ``value`` of a flat
    model (higher is better, e.g. validation accuracy or minus its loss). The empty
    coalition's model is ``base``. Each evaluation costs one aggregate (O(|S| dim)) and one
    call of ``value``."""
    if updates.ndim != 2 or updates.shape != (len(weights), base.shape[0]):
        raise ValueError(
            f"updates {updates.shape} and weights {weights.shape} do not match base {base.shape}"
        )

    def utility(coalition: frozenset[int]) -> float:
        if not coalition:
            return value(base)
        members = sorted(coalition)
        w = weights[members].astype(np.float64)
        mean = w @ updates[members].astype(np.float64) / w.sum()
        return value(base + server_lr * mean)

    return utility
