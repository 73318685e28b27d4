"""Partitioners: pure functions that cut a labelled sample set into client index arrays.

Every partitioner takes ``(labels, num_clients, rng, ...)`` and returns ``num_clients``
sorted int64 index arrays that are disjoint and together cover ``range(len(labels))``.
Randomness comes only from ``rng``, so a seed reproduces a partition exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = [
    "IID_PARTITION",
    "Partition",
    "PartitionSpec",
    "dirichlet",
    "iid",
    "partition",
    "quantity_skew",
    "shards",
]

MAX_DIRICHLET_DRAWS = 100


class Partition(enum.Enum):
    """How a centralised dataset is split across simulated clients."""

    IID = "iid"
    DIRICHLET = "dirichlet"
    SHARDS = "shards"
    QUANTITY = "quantity"
    NATURAL = "natural"  # clients given by the data (speakers, hospitals): no partitioner


@dataclass(frozen=True)
class PartitionSpec:
    """Which partitioner to use and its parameters (unused ones are ignored).

    ``alpha``: Dirichlet concentration (small = strong label skew); ``min_size``: the fewest
    samples a Dirichlet client may get; ``shards_per_client``: shards per client for
    ``SHARDS``; ``exponent``: Pareto tail index for ``QUANTITY`` (small = strong size skew).
    """

    kind: Partition = Partition.IID
    alpha: float = 0.5
    min_size: int = 2
    shards_per_client: int = 2
    exponent: float = 1.5

    def __post_init__(self) -> None:
        _check_positive("alpha", self.alpha)
        _check_positive("exponent", self.exponent)
        if self.min_size < 1:
            raise ValueError(f"min_size must be >= 1, got {self.min_size}")
        if self.shards_per_client < 1:
            raise ValueError(f"shards_per_client must be >= 1, got {self.shards_per_client}")


def partition(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, spec: PartitionSpec
) -> list[np.ndarray]:
    """Dispatch on ``spec.kind``; ``NATURAL`` is an error (it has no partitioner)."""
    match spec.kind:
        case Partition.IID:
            return iid(labels, num_clients, rng)
        case Partition.DIRICHLET:
            return dirichlet(labels, num_clients, rng, spec.alpha, min_size=spec.min_size)
        case Partition.SHARDS:
            return shards(labels, num_clients, rng, spec.shards_per_client)
        case Partition.QUANTITY:
            return quantity_skew(labels, num_clients, rng, exponent=spec.exponent)
        case Partition.NATURAL:
            raise ValueError(
                "Partition.NATURAL is only valid for datasets with natural clients "
                "(shakespeare, heart, synthetic); choose iid, dirichlet, shards or quantity"
            )


def iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, then split into ``num_clients`` parts whose sizes differ by at most one."""
    _check_args(labels, num_clients)
    parts = np.array_split(rng.permutation(len(labels)), num_clients)
    return [np.sort(p).astype(np.int64) for p in parts]


def dirichlet(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    alpha: float,
    *,
    min_size: int = 2,
) -> list[np.ndarray]:
    """Label skew (Hsu et al. 2019): each class is spread over clients with Dir(alpha) shares.

    Small ``alpha`` gives each client few classes. A draw that leaves a client with fewer than
    ``min_size`` samples is redrawn, at most ``MAX_DIRICHLET_DRAWS`` times.
    """
    _check_args(labels, num_clients)
    _check_positive("alpha", alpha)
    if min_size < 0 or min_size * num_clients > len(labels):
        raise ValueError(
            f"min_size must be in [0, len(labels) / num_clients] = "
            f"[0, {len(labels) // num_clients}], got {min_size}"
        )
    for _ in range(MAX_DIRICHLET_DRAWS):
        parts = _dirichlet_draw(labels, num_clients, rng, alpha)
        if min(len(p) for p in parts) >= min_size:
            return parts
    raise ValueError(
        f"dirichlet: no draw in {MAX_DIRICHLET_DRAWS} gave every client >= {min_size} samples; "
        f"alpha={alpha} is too small or num_clients={num_clients} too large for "
        f"{len(labels)} samples (raise alpha, lower num_clients or min_size)"
    )


def _dirichlet_draw(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, alpha: float
) -> list[np.ndarray]:
    """One draw: every class's shuffled samples cut at the cumulative Dir(alpha) shares."""
    chunks: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
        for client, piece in enumerate(np.split(members, cuts)):
            chunks[client].append(piece)
    return [np.sort(np.concatenate(c)).astype(np.int64) for c in chunks]


def shards(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, shards_per_client: int = 2
) -> list[np.ndarray]:
    """Pathological non-IID (McMahan et al. 2017): each client gets a few label-sorted shards.

    Samples are sorted by label (ties in random order), cut into
    ``num_clients * shards_per_client`` near-equal shards, and each client receives
    ``shards_per_client`` shards chosen at random, so it sees only a few labels.
    """
    _check_args(labels, num_clients)
    if shards_per_client < 1 or num_clients * shards_per_client > len(labels):
        raise ValueError(
            f"shards_per_client must be in [1, len(labels) / num_clients] = "
            f"[1, {len(labels) // num_clients}], got {shards_per_client}"
        )
    shuffled = rng.permutation(len(labels))
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    pieces = np.array_split(by_label, num_clients * shards_per_client)
    order = rng.permutation(len(pieces)).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([pieces[s] for s in row])).astype(np.int64) for row in order]


def quantity_skew(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, exponent: float = 1.5
) -> list[np.ndarray]:
    """IID labels, power-law sizes: client weights ~ 1 + Pareto(exponent).

    Every client gets one sample, the rest are shared in proportion to the weights (largest
    remainder rounding), so sizes sum to ``len(labels)``. Smaller ``exponent`` = heavier tail.
    """
    _check_args(labels, num_clients)
    _check_positive("exponent", exponent)
    weights = 1.0 + rng.pareto(exponent, num_clients)
    sizes = 1 + _largest_remainder(len(labels) - num_clients, weights / weights.sum())
    cuts = np.cumsum(sizes)[:-1]
    return [np.sort(p).astype(np.int64) for p in np.split(rng.permutation(len(labels)), cuts)]


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    """Integers proportional to ``shares`` that sum exactly to ``total``."""
    exact: np.ndarray = shares * total
    counts: np.ndarray = np.floor(exact).astype(np.int64)
    leftover = total - int(counts.sum())
    counts[np.argsort(counts - exact, kind="stable")[:leftover]] += 1
    return counts


def _check_args(labels: np.ndarray, num_clients: int) -> None:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-d integer array, got shape {labels.shape} dtype {labels.dtype}"
        )
    if not 1 <= num_clients <= len(labels):
        raise ValueError(
            f"num_clients must be in [1, len(labels)] = [1, {len(labels)}], got {num_clients}"
        )


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


# The loaders' default; built last because validation uses the helpers above.
IID_PARTITION = PartitionSpec()
