"""Partitioners: pure functions that cut a labelled sample set into client index arrays.

Every partitioner takes ``(labels, num_clients, rng, ...)`` and returns ``num_clients``
sorted int64 index arrays that are disjoint and together cover ``range(len(labels))``.
Randomness comes only from ``rng``, so a seed reproduces a partition exactly.

Dirichlet label skew comes in the two formulations of the literature (:class:`DirichletScheme`):
``LABELS`` spreads each label over the clients (:func:`dirichlet`), ``CLIENTS`` gives each
client a label mix (:func:`dirichlet_clients`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = [
    "IID_PARTITION",
    "DirichletScheme",
    "Partition",
    "PartitionSpec",
    "dirichlet",
    "dirichlet_clients",
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


class DirichletScheme(enum.Enum):
    """Which way ``Partition.DIRICHLET`` draws its Dir(alpha) shares."""

    # Each label's samples are spread over the clients by Dir(alpha) shares (Yurochkin et
    # al. 2019, NIID-Bench). Sizes vary; a draw leaving a client under min_size is redrawn.
    LABELS = "labels"
    # Each client draws its label mix from Dir(alpha) and fills an equal share of the
    # samples from per-label pools (Hsu et al. 2019). Every client gets len // num_clients.
    CLIENTS = "clients"


@dataclass(frozen=True)
class PartitionSpec:
    """Which partitioner to use and its parameters (unused ones are ignored).

    ``alpha``: Dirichlet concentration (small = strong label skew); ``dirichlet_scheme``:
    which Dirichlet formulation; ``min_size``: the fewest samples a Dirichlet client may get;
    ``shards_per_client``: shards per client for ``SHARDS``; ``exponent``: Pareto tail index
    for ``QUANTITY`` (small = strong size skew).
    """

    kind: Partition = Partition.IID
    alpha: float = 0.5
    min_size: int = 2
    shards_per_client: int = 2
    exponent: float = 1.5
    dirichlet_scheme: DirichletScheme = DirichletScheme.LABELS

    def __post_init__(self) -> None:
        _check_positive("alpha", self.alpha)
        _check_positive("exponent", self.exponent)
        if self.min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")
        if self.shards_per_client < 1:
            raise ValueError(f"shards_per_client must be >= 1, got {self.shards_per_client}")


def partition(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator, spec: PartitionSpec
) -> list[np.ndarray]:
    """Dispatch on ``spec.kind``; ``NATURAL`` is an error (it has no partitioner)."""
    match spec.kind:
        case Partition.IID:
            return iid(labels, num_clients, rng)
        case Partition.DIRICHLET if spec.dirichlet_scheme is DirichletScheme.CLIENTS:
            return dirichlet_clients(labels, num_clients, rng, spec.alpha, min_size=spec.min_size)
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
    """Label skew, label-wise: each class is spread over clients with Dir(alpha) shares.

    Small ``alpha`` gives each client few classes. A draw that leaves a client with fewer than
    ``min_size`` samples is redrawn, at most ``MAX_DIRICHLET_DRAWS`` times: with only a few
    samples per client no draw may succeed, and :func:`dirichlet_clients` is the remedy.
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
        f"{len(labels)} samples (raise alpha, lower num_clients or min_size, or use the "
        f"'clients' Dirichlet scheme, which gives every client len(labels) // num_clients)"
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


def dirichlet_clients(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    alpha: float,
    *,
    min_size: int = 0,
) -> list[np.ndarray]:
    """Label skew, client-wise (Hsu et al. 2019): client k draws a label mix q_k ~ Dir(alpha).

    Every client gets ``len(labels) // num_clients`` samples (the first ``len % num_clients``
    one more), so ``min_size`` holds by construction and is only checked. Each client's
    labels are drawn from its q_k and its samples taken without replacement from shuffled
    per-label pools. When a label's pool runs dry, the clients still owed samples draw
    them from the labels left, by q_k renormalised over those (as FedLab's and Flower
    Datasets' inner-Dirichlet partitioners do), so every sample is used once. Hsu et al.
    write Dir(alpha * p) with p the label frequencies: for C balanced labels, their alpha
    is this function's ``alpha * C``.
    """
    _check_args(labels, num_clients)
    _check_positive("alpha", alpha)
    share = len(labels) // num_clients
    if not 0 <= min_size <= share:
        raise ValueError(
            f"min_size must be in [0, len(labels) // num_clients] = [0, {share}], got {min_size}"
        )
    classes, label_of = np.unique(labels, return_inverse=True)
    pools = [rng.permutation(np.flatnonzero(label_of == c)) for c in range(len(classes))]
    mixes = rng.dirichlet(np.full(len(classes), alpha), size=num_clients)  # (K, C)
    sizes = np.full(num_clients, share)
    sizes[: len(labels) % num_clients] += 1
    counts = _label_counts(sizes, mixes, np.array([len(p) for p in pools]), rng)  # (K, C)
    chunks: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c, pool in enumerate(pools):
        for client, piece in enumerate(np.split(pool, np.cumsum(counts[:, c])[:-1])):
            chunks[client].append(piece)
    return [np.sort(np.concatenate(c)).astype(np.int64) for c in chunks]


def _label_counts(
    sizes: np.ndarray, mixes: np.ndarray, supply: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(K, C) samples per client and label: row k sums to ``sizes[k]``, column c to
    ``supply[c]`` (the sizes sum to the supply), rows drawn from ``mixes`` (K, C).

    Each pass draws every client's missing labels from its mix over the labels not yet
    exhausted; a label asked for more than it has left grants a random subset of the asks
    and is exhausted. So a pass either satisfies everyone or exhausts a label: at most C + 1.
    """
    counts = np.zeros(mixes.shape, np.int64)
    while (need := sizes - counts.sum(axis=1)).any():
        left = supply - counts.sum(axis=0)  # (C,)
        weights = np.where(left > 0, mixes, 0.0)
        dry = weights.sum(axis=1) == 0  # a mix whose labels are all gone (or underflowed)
        weights[dry] = left > 0
        asks = rng.multinomial(need, weights / weights.sum(axis=1, keepdims=True))  # (K, C)
        for c in np.flatnonzero(asks.sum(axis=0) > left):
            askers = rng.permutation(np.repeat(np.arange(len(sizes)), asks[:, c]))
            asks[:, c] = np.bincount(askers[: left[c]], minlength=len(sizes))
        counts += asks
    return counts


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
