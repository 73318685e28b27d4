"""Contribution scores over a cooperative game: exact Shapley values, leave-one-out, and
GTG-Shapley (Liu et al., 2022), a guided, truncated Monte Carlo estimate cheap enough for
100 participants.

A game is ``n`` players and a :data:`Utility`: the value of a coalition (a frozenset of
player indices), for instance the validation accuracy of the model that aggregates only
that coalition's updates (:func:`fedswarm.contrib.game.round_game`). Every function here
is pure; :class:`Memo` counts and caches the utility's evaluations (the cost).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Memo", "ShapleyEstimate", "Utility", "exact_shapley", "gtg_shapley", "leave_one_out"]

Utility = Callable[[frozenset[int]], float]


@dataclass
class Memo:
    """A utility that evaluates each coalition once; ``evaluations`` is the real cost."""

    utility: Utility
    evaluations: int = 0
    _seen: dict[frozenset[int], float] = field(default_factory=dict)

    def __call__(self, coalition: frozenset[int]) -> float:
        if coalition not in self._seen:
            self._seen[coalition] = float(self.utility(coalition))
            self.evaluations += 1
        return self._seen[coalition]


def exact_shapley(n: int, utility: Utility) -> np.ndarray:
    """phi_i = sum over S not containing i of |S|!(n-|S|-1)!/n! (u(S+i) - u(S)); 2^n
    evaluations, so the oracle for small ``n`` only."""
    u = Memo(utility)
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for s in itertools.combinations(others, size):
                coalition = frozenset(s)
                phi[i] += weight * (u(coalition | {i}) - u(coalition))
    return phi


def leave_one_out(n: int, utility: Utility) -> np.ndarray:
    """u(N) - u(N without i) per player: n + 1 evaluations."""
    everyone = frozenset(range(n))
    whole = utility(everyone)
    return np.array([whole - utility(everyone - {i}) for i in range(n)])


@dataclass(frozen=True)
class ShapleyEstimate:
    values: np.ndarray  # (n,) estimated Shapley values
    permutations: int  # sampled
    evaluations: int  # utility evaluations (distinct coalitions)
    truncated: bool  # the whole game was skipped: u(N) is within ``truncation`` of u({})


def gtg_shapley(
    n: int,
    utility: Utility,
    rng: np.random.Generator,
    *,
    truncation: float = 0.01,
    tolerance: float = 0.02,
    max_permutations: int | None = None,
) -> ShapleyEstimate:
    """GTG-Shapley's estimate of one round's game.

    Between-round truncation: a game whose grand coalition is within ``truncation`` of the
    empty one gives every player 0. Guided sampling: permutation k puts player k mod n first
    (each player leads equally often), the rest in random order. Within-round truncation:
    once a prefix's value is within ``truncation`` of u(N), the later marginals are 0.
    Stops after ``max_permutations`` (default ``max(3 n, 30)``) or, after at least n, when
    the estimate's mean relative L1 change over the last n permutations is below
    ``tolerance``.
    """
    u = Memo(utility)
    empty, whole = u(frozenset()), u(frozenset(range(n)))
    if abs(whole - empty) < truncation:
        return ShapleyEstimate(np.zeros(n), 0, u.evaluations, truncated=True)
    limit = max_permutations if max_permutations is not None else max(3 * n, 30)
    total, history = np.zeros(n), []
    for k in range(limit):
        rest = rng.permutation([j for j in range(n) if j != k % n])
        total += _marginals([k % n, *rest], u, empty, whole, truncation)
        history.append(total / (k + 1))
        if k + 1 >= 2 * n and _converged(history[-n - 1 :], tolerance):
            break
    return ShapleyEstimate(history[-1], len(history), u.evaluations, truncated=False)


def _marginals(
    order: list[int], u: Memo, empty: float, whole: float, truncation: float
) -> np.ndarray:
    marginal = np.zeros(len(order))
    prefix: frozenset[int] = frozenset()
    before = empty
    for player in order:
        if abs(whole - before) < truncation:
            break  # the rest add (about) nothing: within-round truncation
        prefix = prefix | {player}
        after = u(prefix)
        marginal[player] = after - before
        before = after
    return marginal


def _converged(window: list[np.ndarray], tolerance: float) -> bool:
    last = window[-1]
    scale = max(float(np.abs(last).sum()), 1e-12)
    changes = [float(np.abs(last - w).sum()) / scale for w in window[:-1]]
    return float(np.mean(changes)) < tolerance
