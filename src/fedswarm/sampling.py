"""Which participants take part in a round."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fedswarm.messages import ClientId

__all__ = ["ForgettingSampler", "PoissonSampler", "Sampler", "UniformSampler"]


class Sampler(Protocol):
    def sample(self, available: Sequence[ClientId], rng: np.random.Generator) -> list[ClientId]:
        """A sorted subset of ``available``; deterministic in ``rng``."""
        ...


@dataclass(frozen=True)
class UniformSampler:
    """``max(min_clients, ceil(fraction * K))`` clients uniformly without replacement.

    With ``fraction = C`` this is McMahan et al.'s client fraction; with
    ``clients_per_round`` set it samples exactly that many (capped at K).
    """

    fraction: float = 1.0
    min_clients: int = 1
    clients_per_round: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.min_clients < 1:
            raise ValueError(f"min_clients must be >= 1, got {self.min_clients}")
        if self.clients_per_round is not None and self.clients_per_round < 1:
            raise ValueError(f"clients_per_round must be >= 1, got {self.clients_per_round}")

    def count(self, num_available: int) -> int:
        if self.clients_per_round is not None:
            wanted = self.clients_per_round
        else:
            wanted = max(self.min_clients, math.ceil(self.fraction * num_available - 1e-9))
        return min(wanted, num_available)

    def sample(self, available: Sequence[ClientId], rng: np.random.Generator) -> list[ClientId]:
        pool = sorted(available)
        picked = rng.choice(len(pool), size=self.count(len(pool)), replace=False)
        return sorted(pool[i] for i in picked)


@dataclass(frozen=True)
class ForgettingSampler:
    """``inner``'s sample of every participant (``forgotten`` ones included, available or
    not), less the forgotten: the others' sampled sets are exactly those of the run that
    still had them, so a run that forgets a participant matches one that never had it."""

    inner: Sampler
    forgotten: frozenset[ClientId]

    def sample(self, available: Sequence[ClientId], rng: np.random.Generator) -> list[ClientId]:
        everyone = sorted({*available, *self.forgotten})
        return [c for c in self.inner.sample(everyone, rng) if c not in self.forgotten]


@dataclass(frozen=True)
class PoissonSampler:
    """Each available client independently with probability ``rate`` (Poisson sampling).

    The round's size varies and may be zero. This is the sampling that differential
    privacy's subsampled-Gaussian accounting assumes: with a fixed-size sample the
    amplification by sampling it reports would not hold.
    """

    rate: float

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")

    def sample(self, available: Sequence[ClientId], rng: np.random.Generator) -> list[ClientId]:
        pool = sorted(available)
        picked = rng.random(len(pool)) < self.rate
        return [cid for cid, keep in zip(pool, picked, strict=True) if keep]
