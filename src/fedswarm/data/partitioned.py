"""A centralised dataset cut across simulated clients by index arrays.

Only the index arrays are stored per client; a client's samples are sliced out of the shared
pool when :meth:`PartitionedDataset.client` is called, so memory grows with the sampled
clients, not with the number of clients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.data.partition import PartitionSpec, partition
from fedswarm.data.splits import (
    check_fraction,
    check_seed,
    client_id,
    client_index,
    client_rng,
    random_local_split,
)

__all__ = ["PartitionedDataset", "partition_pool"]


@dataclass(frozen=True, eq=False)
class PartitionedDataset:
    """A train ``pool`` split across clients by ``client_indices`` (one array per client).

    Client ``i`` has id ``client_id(i, n)`` (``"00000"``, ``"00001"``, ...). Its indices are
    split into local train/test by a generator seeded with ``(seed, i)``, so the same client
    is the same data on every call and on every machine.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    central_test: ArrayDataset
    pool: ArrayDataset
    client_indices: tuple[np.ndarray, ...]
    local_test_fraction: float
    seed: int

    def __post_init__(self) -> None:
        check_fraction("local_test_fraction", self.local_test_fraction)
        check_seed(self.seed)
        if not self.client_indices:
            raise ValueError("client_indices must hold at least one client, got none")
        used = np.concatenate(self.client_indices)
        if used.size and (used.min() < 0 or used.max() >= len(self.pool)):
            raise ValueError(f"client_indices must lie in [0, {len(self.pool)}) (the pool size)")
        if np.unique(used).size != used.size:
            raise ValueError("client_indices must be disjoint: a sample belongs to one client")

    def client_ids(self) -> tuple[str, ...]:
        n = len(self.client_indices)
        return tuple(client_id(i, n) for i in range(n))

    def client(self, cid: str) -> ClientData:
        i = client_index(cid, len(self.client_indices))
        indices = self.client_indices[i]
        train, test = random_local_split(
            len(indices), self.local_test_fraction, client_rng(self.seed, i)
        )
        return ClientData(
            train=self.pool.subset(indices[train]), test=self.pool.subset(indices[test])
        )


def partition_pool(
    name: str,
    *,
    num_classes: int,
    pool: ArrayDataset,
    central_test: ArrayDataset,
    num_clients: int,
    spec: PartitionSpec,
    seed: int,
    local_test_fraction: float,
) -> PartitionedDataset:
    """Partition ``pool`` by its labels with ``spec``, seeded by ``seed``."""
    check_seed(seed)
    rng = np.random.default_rng(seed)
    return PartitionedDataset(
        name=name,
        num_classes=num_classes,
        input_shape=tuple(pool.x.shape[1:]),
        central_test=central_test,
        pool=pool,
        client_indices=tuple(partition(pool.y, num_clients, rng, spec)),
        local_test_fraction=local_test_fraction,
        seed=seed,
    )
