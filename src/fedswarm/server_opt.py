"""Server optimisers: pure state transitions applied to the aggregated update.

The server treats the negated mean client update as a pseudo-gradient (Reddi et al.
2021, "Adaptive Federated Optimization"). ``ServerSGD(lr=1)`` is FedAvg, with momentum
it is FedAvgM (Hsu et al. 2019); ``ServerAdaptive`` with an :class:`AdaptiveRule` is
FedAdam/FedYogi/FedAdagrad exactly as in Reddi et al.'s Algorithm 2: no bias
correction, second moment started at ``tau**2``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = [
    "AdaptiveRule",
    "OptimizerState",
    "ServerAdaptive",
    "ServerOptimizer",
    "ServerSGD",
    "second_moment",
]


@dataclass(frozen=True, eq=False)
class OptimizerState:
    """Step count and named moment vectors (checkpointed as tensors)."""

    step: int = 0
    slots: Mapping[str, np.ndarray] = field(default_factory=dict)


class ServerOptimizer(Protocol):
    def init(self, params: np.ndarray) -> OptimizerState: ...

    def apply(
        self, state: OptimizerState, params: np.ndarray, pseudo_grad: np.ndarray
    ) -> tuple[np.ndarray, OptimizerState]:
        """New parameters and state; inputs are not modified."""
        ...


@dataclass(frozen=True)
class ServerSGD:
    """``v = momentum * v + g; x = x - lr * v`` (plain SGD when momentum is 0)."""

    lr: float = 1.0
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"ServerSGD needs lr > 0 and momentum in [0, 1), got {self}")

    def init(self, params: np.ndarray) -> OptimizerState:
        slots = {"momentum": np.zeros_like(params)} if self.momentum else {}
        return OptimizerState(0, slots)

    def apply(
        self, state: OptimizerState, params: np.ndarray, pseudo_grad: np.ndarray
    ) -> tuple[np.ndarray, OptimizerState]:
        if not self.momentum:
            return params - np.float32(self.lr) * pseudo_grad, OptimizerState(state.step + 1)
        v = np.float32(self.momentum) * _slot(state, "momentum", self) + pseudo_grad
        return params - np.float32(self.lr) * v, OptimizerState(state.step + 1, {"momentum": v})


class AdaptiveRule(enum.Enum):
    """Second-moment rule of an adaptive server optimiser (Reddi et al. 2021)."""

    ADAM = "adam"  # v = beta2 * v + (1 - beta2) * g**2
    YOGI = "yogi"  # v = v - (1 - beta2) * g**2 * sign(v - g**2)
    ADAGRAD = "adagrad"  # v = v + g**2


def second_moment(rule: AdaptiveRule, v: np.ndarray, g2: np.ndarray, beta2: float) -> np.ndarray:
    if rule is AdaptiveRule.ADAM:
        out: np.ndarray = np.float32(beta2) * v + np.float32(1 - beta2) * g2
    elif rule is AdaptiveRule.YOGI:
        out = v - np.float32(1 - beta2) * g2 * np.sign(v - g2)
    else:
        out = v + g2
    return out


@dataclass(frozen=True)
class ServerAdaptive:
    """FedAdam / FedYogi / FedAdagrad: ``x = x - lr * m / (sqrt(v) + tau)``."""

    rule: AdaptiveRule
    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.tau <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"ServerAdaptive needs lr, tau > 0 and betas in [0, 1), got {self}")

    def init(self, params: np.ndarray) -> OptimizerState:
        m = np.zeros_like(params)
        v = np.full_like(params, self.tau**2)
        return OptimizerState(0, {"m": m, "v": v})

    def apply(
        self, state: OptimizerState, params: np.ndarray, pseudo_grad: np.ndarray
    ) -> tuple[np.ndarray, OptimizerState]:
        f = np.float32
        m = f(self.beta1) * _slot(state, "m", self) + f(1 - self.beta1) * pseudo_grad
        v = second_moment(self.rule, _slot(state, "v", self), pseudo_grad * pseudo_grad, self.beta2)
        new = params - f(self.lr) * m / (np.sqrt(v) + f(self.tau))
        return new, OptimizerState(state.step + 1, {"m": m, "v": v})


def _slot(state: OptimizerState, name: str, opt: object) -> np.ndarray:
    try:
        return state.slots[name]
    except KeyError:
        raise ValueError(
            f"optimiser state has no {name!r} slot (it has {sorted(state.slots)}): it was made "
            f"by a differently configured server optimiser than {opt}"
        ) from None
