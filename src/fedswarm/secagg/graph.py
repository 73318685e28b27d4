"""Who masks with whom, and the degree and threshold that make a round survive dropouts.

SecAgg+ (Bell et al. 2020) masks each participant with ``k`` neighbours of a random
``k``-regular graph instead of everyone. Like Bell et al. we use a Harary graph on a random
ordering: participants on a ring in random order, each joined to the ``k/2`` nearest on
either side. The complete graph (``k = n - 1``) is the original SecAgg (Bonawitz et al.).

Choosing ``k`` and ``t`` (:func:`choose_parameters`): a participant's secrets are
recoverable when at least ``t`` of its ``k + 1`` holders (its neighbours and itself) answer
the last stage. With each participant gone by then independently with probability ``delta``,
one neighbourhood fails with probability ``P[Binomial(k + 1, 1 - delta) < t]``; a union
bound over the ``n`` participants bounds the round's failure probability. ``t`` is a strict
majority of the ``k + 1`` holders (so the holders cannot be split into two groups that
reveal both of a participant's secrets), and ``k`` at least ``2 * ceil(log2 n)`` (Bell et
al.'s ``O(log n)`` degree, which keeps the honest survivors' graph connected), rounded up
to even. The smallest ``k`` meeting the failure target is chosen; if none does, the
complete graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.messages import ClientId

__all__ = ["GraphChoice", "choose_parameters", "failure_bound", "harary_graph", "majority"]


@dataclass(frozen=True)
class GraphChoice:
    degree: int  # neighbours per participant (n - 1: the complete graph)
    threshold: int  # holders needed to recover a secret, of degree + 1
    failure_bound: float  # union bound on a round failing at the target dropout


def majority(holders: int) -> int:
    return holders // 2 + 1


def failure_bound(n: int, degree: int, threshold: int, dropout: float) -> float:
    """``n * P[Binomial(degree + 1, 1 - dropout) < threshold]``, capped at 1."""
    m, alive = degree + 1, 1.0 - dropout
    tail = sum(math.comb(m, a) * alive**a * dropout ** (m - a) for a in range(threshold))
    return min(1.0, n * tail)


def choose_parameters(
    n: int, dropout: float, failure: float, complete: bool = False
) -> GraphChoice:
    """The smallest even degree (or the complete graph) whose failure bound is at most
    ``failure`` at ``dropout``; see the module doc."""
    if n < 2 or not 0 <= dropout < 1 or not 0 < failure < 1:
        raise ValueError("need n >= 2, 0 <= dropout < 1 and 0 < failure < 1")
    full = GraphChoice(n - 1, majority(n), failure_bound(n, n - 1, majority(n), dropout))
    if complete:
        return full
    low = 2 * math.ceil(math.log2(n))
    for k in range(low + low % 2, n - 1, 2):
        t = majority(k + 1)
        if (bound := failure_bound(n, k, t, dropout)) <= failure:
            return GraphChoice(k, t, bound)
    return full


def harary_graph(
    clients: Sequence[ClientId], degree: int, rng: np.random.Generator
) -> dict[ClientId, tuple[ClientId, ...]]:
    """Each participant's neighbourhood, itself included, sorted; ``degree >= n - 1`` (or an
    odd degree, rounded up) joins everyone within ``ceil(degree / 2)`` places on the ring."""
    n = len(clients)
    order = [clients[i] for i in rng.permutation(n)]
    half = min((degree + 1) // 2, n // 2)
    out: dict[ClientId, tuple[ClientId, ...]] = {}
    for pos, cid in enumerate(order):
        near = {order[(pos + d) % n] for d in range(-half, half + 1)}
        out[cid] = tuple(sorted(near if degree < n - 1 else set(clients)))
    return out
