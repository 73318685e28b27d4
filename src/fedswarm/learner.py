"""What a participant's local trainer must do, independent of the ML framework.

A :class:`Learner` turns global parameters plus local data into new local parameters
(``fit``) or into a loss and accuracy (``evaluate``). Everything crosses this boundary
as numpy, so strategies, transports and the round driver never import torch.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from fedswarm.data.arrays import ArrayDataset
from fedswarm.params import Params

__all__ = [
    "BatchLearner",
    "Evaluation",
    "GradientCorrection",
    "Learner",
    "LocalFit",
    "LocalTraining",
    "OptimizerKind",
    "Precision",
]


class OptimizerKind(enum.Enum):
    SGD = "sgd"
    ADAM = "adam"


class Precision(enum.Enum):
    """The arithmetic of local training's forward pass and loss. Parameters, gradients,
    optimiser state and evaluation stay float32 either way."""

    FP32 = "fp32"
    BF16 = "bf16"  # bfloat16 autocast around forward and loss


@dataclass(frozen=True)
class LocalTraining:
    """How a client trains in one round: sent by the server with every fit instruction.

    At most one of ``epochs`` and ``steps`` is set: whole passes over the local data, or a
    fixed number of mini-batch steps (cycling through reshuffled epochs as needed). Neither
    means one epoch. ``precision`` is the forward pass's arithmetic (see :class:`Precision`).
    """

    batch_size: int
    lr: float
    epochs: int | None = None
    steps: int | None = None
    optimizer: OptimizerKind = OptimizerKind.SGD
    momentum: float = 0.0
    weight_decay: float = 0.0
    precision: Precision = Precision.FP32

    def __post_init__(self) -> None:
        if self.epochs is None and self.steps is None:
            object.__setattr__(self, "epochs", 1)  # normalise the default so equality holds
        if self.epochs is not None and self.steps is not None:
            raise ValueError("LocalTraining takes epochs or steps, not both")
        if (self.epochs or self.steps or 0) < 1:
            raise ValueError("epochs/steps must be at least 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.lr > 0 or not math.isfinite(self.lr):  # `not >` also refuses NaN
            raise ValueError(f"lr must be positive and finite, got {self.lr}")
        if not 0 <= self.momentum < 1 or not 0 <= self.weight_decay < math.inf:
            raise ValueError("momentum must be in [0, 1) and weight_decay non-negative")

    @property
    def is_plain_sgd(self) -> bool:
        """Constant-rate SGD without momentum: what SCAFFOLD's option II assumes."""
        return self.optimizer is OptimizerKind.SGD and self.momentum == 0


@dataclass(frozen=True, eq=False)
class GradientCorrection:
    """An affine change of the local gradient: ``g + mu * (w - w_global) + shift``.

    One form covers the client halves of FedProx (``mu``), SCAFFOLD (``shift = c - c_i``)
    and FedDyn-like methods, and it is a pure function of ``(w, g)``, so vectorised
    backends can apply it inside ``vmap``.
    """

    mu: float = 0.0
    shift: np.ndarray | None = None

    @property
    def is_identity(self) -> bool:
        return self.mu == 0.0 and self.shift is None


@dataclass(frozen=True, eq=False)
class LocalFit:
    """The result of local training."""

    params: np.ndarray  # flat float32, same layout as the global parameters
    num_examples: int
    num_steps: int
    train_loss: float  # mean data loss over the steps taken (without correction terms)


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    num_examples: int


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
