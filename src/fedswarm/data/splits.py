"""Small helpers shared by the datasets: client ids, per-client seeds, local train/test splits."""

from __future__ import annotations

import numpy as np

__all__ = [
    "check_fraction",
    "check_seed",
    "client_id",
    "client_index",
    "client_rng",
    "num_local_test",
    "random_local_split",
]


def client_id(index: int, num_clients: int) -> str:
    """Zero-padded id, at least 5 digits wide: ``client_id(3, 10) == "00003"``.

    The width grows past 5 digits only for 100,000+ clients, so ids of one dataset always
    share a width and sort in index order.
    """
    width = max(5, len(str(max(num_clients - 1, 0))))
    return f"{index:0{width}d}"


def client_index(cid: str, num_clients: int) -> int:
    """Inverse of :func:`client_id`; ``KeyError`` naming the id and the client count."""
    if cid.isdigit() and cid.isascii():
        index = int(cid)
        if index < num_clients and client_id(index, num_clients) == cid:
            return index
    raise KeyError(
        f"unknown client id {cid!r}: this dataset has {num_clients} clients, "
        f"ids {client_id(0, num_clients)!r} .. {client_id(max(num_clients - 1, 0), num_clients)!r}"
    )


def check_seed(seed: int) -> None:
    """Seeds feed ``np.random.SeedSequence``, which only takes non-negative integers."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


def client_rng(seed: int, index: int) -> np.random.Generator:
    """Generator for one client, independent of every other (seed, index) pair.

    Seeding with the pair ``[seed, index]`` (not ``seed + index``) keeps seed 1 / client 0 and
    seed 0 / client 1 apart, and lets a client be rebuilt without touching the others.
    """
    check_seed(seed)
    return np.random.default_rng([seed, index])


def check_fraction(name: str, value: float) -> None:
    """A held-out fraction must lie in [0, 1): something must remain to train on."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def num_local_test(n: int, test_fraction: float) -> int:
    """Samples held out of ``n``: ``floor(n * fraction)``, always leaving one to train on."""
    check_fraction("local_test_fraction", test_fraction)
    return 0 if n == 0 else min(int(n * test_fraction), n - 1)


def random_local_split(
    n: int, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``0..n-1`` shuffled into (train, test), each sorted."""
    order = rng.permutation(n)
    n_test = num_local_test(n, test_fraction)
    return np.sort(order[n_test:]), np.sort(order[:n_test])
