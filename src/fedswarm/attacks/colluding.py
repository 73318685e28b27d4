"""Colluding model poisoning: malicious updates crafted from the round's benign updates.

SIMULATION ONLY. These attacks assume an omniscient adversary who sees every participant's
honest update of the round before sending its own (the "full knowledge" setting of the
papers). Simulation plays that adversary at the coordinator: :class:`ColludingAttack` wraps
a strategy and, before aggregation, replaces each malicious reply's update with the crafted
one. The honest updates the statistics are taken from include the malicious participants'
own honest ones. The crafting rules are pure functions of the benign ``(clients, dim)``
stack.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from fedswarm.aggregation import Accumulator, WeightedSum, Weighting, stack
from fedswarm.aggregation.krum import pairwise_sq_distances
from fedswarm.algorithms.base import ClientUpdate
from fedswarm.attacks.config import AlieAttack, AttackConfig, AttackKind, IpmAttack, MinMaxAttack
from fedswarm.messages import ClientId, FitIns, FitRes
from fedswarm.params import Params
from fedswarm.strategy import FitStrategy, FitSummary, RunInfo, ServerState

__all__ = ["ColludingAttack", "alie", "alie_z", "craft", "ipm", "min_max", "min_sum"]


def _mean_std(benign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = benign.astype(np.float64)
    return b.mean(axis=0), b.std(axis=0)


def alie_z(n: int, m: int) -> float:
    """Baruch et al.'s ``z_max``: enough to stay within the benign majority's spread."""
    s = math.floor(n / 2 + 1) - m
    p = min(max((n - s) / n, 1e-6), 1 - 1e-6)
    return NormalDist().inv_cdf(p)


def alie(benign: np.ndarray, z: float) -> np.ndarray:
    mean, std = _mean_std(benign)
    return (mean - z * std).astype(np.float32)


def ipm(benign: np.ndarray, epsilon: float) -> np.ndarray:
    out: np.ndarray = (-epsilon * benign.astype(np.float64).mean(axis=0)).astype(np.float32)
    return out


def _largest_gamma(fits: Callable[[float], bool], gamma: float, tol: float) -> float:
    """The largest ``g`` in ``[0, 2 gamma)`` with ``fits(g)``, by the authors' halving
    search (it assumes ``fits`` holds below some threshold and fails above it)."""
    good, step = 0.0, gamma
    while abs(good - gamma) > tol:
        if fits(gamma):
            good = gamma
            gamma += step / 2
        else:
            gamma -= step / 2
        step /= 2
    return good


def _search(benign: np.ndarray, limit: float, cost: str, gamma: float, tol: float) -> np.ndarray:
    mean, std = _mean_std(benign)
    b = benign.astype(np.float64)

    def fits(g: float) -> bool:
        d = ((b - (mean - g * std)) ** 2).sum(axis=1)
        return bool((d.max() if cost == "max" else d.sum()) <= limit)

    return (mean - _largest_gamma(fits, gamma, tol) * std).astype(np.float32)


def min_max(benign: np.ndarray, gamma: float = 10.0, tol: float = 1e-3) -> np.ndarray:
    """``mean - g std`` no farther from any benign update than two benign updates are apart."""
    limit = float(pairwise_sq_distances(benign).max())
    return _search(benign, limit, "max", gamma, tol)


def min_sum(benign: np.ndarray, gamma: float = 10.0, tol: float = 1e-3) -> np.ndarray:
    """``mean - g std`` whose squared distances to the benign updates sum to no more than
    any benign update's."""
    limit = float(pairwise_sq_distances(benign).sum(axis=1).max())
    return _search(benign, limit, "sum", gamma, tol)


def craft(benign: np.ndarray, attack: AttackConfig, malicious: int) -> np.ndarray:
    """The update every colluder sends, from the round's ``benign`` honest updates."""
    if isinstance(attack, AlieAttack):
        z = attack.z if attack.z is not None else alie_z(len(benign), malicious)
        return alie(benign, z)
    if isinstance(attack, IpmAttack):
        return ipm(benign, attack.epsilon)
    if isinstance(attack, MinMaxAttack):
        rule = min_max if attack.attack_kind is AttackKind.MIN_MAX else min_sum
        return rule(benign, attack.gamma_init, attack.tol)
    raise ValueError(f"attack {attack.attack_kind.value!r} is not a colluding attack")


@dataclass(frozen=True)
class ColludingAttack:
    """A :class:`~fedswarm.strategy.FitStrategy` whose malicious replies are replaced by
    :func:`craft` before ``inner`` aggregates (SIMULATION ONLY: see the module doc)."""

    inner: FitStrategy
    attackers: frozenset[ClientId]
    attack: AttackConfig

    @property
    def client_update(self) -> ClientUpdate:
        return self.inner.client_update

    @property
    def weighting(self) -> Weighting:
        return self.inner.weighting

    def init(self, params: Params) -> ServerState:
        return self.inner.init(params)

    def configure_fit(
        self, state: ServerState, available: Sequence[ClientId], run: RunInfo
    ) -> list[tuple[ClientId, FitIns]]:
        return self.inner.configure_fit(state, available, run)

    def accumulator(self, dim: int) -> Accumulator | None:
        return None  # the adversary must see every honest update before the sum

    def aggregate_fit(
        self,
        state: ServerState,
        replies: Sequence[FitRes],
        *,
        num_clients: int,
        run: RunInfo,
        summed: WeightedSum | None = None,
    ) -> tuple[ServerState, FitSummary]:
        bad = [r.client_id in self.attackers for r in replies]
        if any(bad):
            crafted = craft(stack([r.update for r in replies]), self.attack, sum(bad))
            replies = [
                replace(r, update=crafted.copy()) if b else r
                for r, b in zip(replies, bad, strict=True)
            ]
        return self.inner.aggregate_fit(state, replies, num_clients=num_clients, run=run)
