"""The light types of local training that travel on the wire: what to train and what came of it.

Plain dataclasses over numpy, importing no dataset and no ML framework, so that messages,
the wire codec and the coordinator's protocols can use them without loading either.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Evaluation",
    "GradientCorrection",
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
