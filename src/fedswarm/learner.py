"""What a participant's local trainer must do, independent of the ML framework.

A :class:`Learner` turns global parameters plus local data into new local parameters
(``fit``) or into a loss and accuracy (``evaluate``). Everything crosses this boundary
as numpy, so strategies, transports and the round driver never import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from fedswarm.data.arrays import ArrayDataset
from fedswarm.params import Params
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining

__all__ = ["BatchLearner", "Learner"]


class Learner(Protocol):
    """Local training and evaluation of one model family on one participant's data."""

    def init_params(self, seed: int) -> Params:
        """Fresh model parameters, deterministic in ``seed``."""
        ...

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        """Train from ``params`` on ``data``; batch order is deterministic in ``seed``."""
        ...

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation: ...


@runtime_checkable
class BatchLearner(Learner, Protocol):
    """A learner that can also train many participants from the same parameters at once."""

    def fit_many(
        self,
        params: Params,
        datasets: Sequence[ArrayDataset],
        training: LocalTraining,
        corrections: Sequence[GradientCorrection],
        seeds: Sequence[int],
    ) -> list[LocalFit]:
        """``[fit(params, d, training, c, s) for ...]``, computed together."""
        ...
