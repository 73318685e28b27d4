"""A dataset whose clients are given by nature (hospitals, generated users), held in memory.

Used for small natural datasets where every client's data is built at load time anyway
(the central test set is the union of the clients' local tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fedswarm.data.arrays import ArrayDataset, ClientData, concat

__all__ = ["NaturalDataset", "natural_dataset"]


@dataclass(frozen=True, eq=False)
class NaturalDataset:
    """Clients keyed by their natural names, in the mapping's (documented) order."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    central_test: ArrayDataset
    clients: Mapping[str, ClientData]

    def __post_init__(self) -> None:
        if not self.clients:
            raise ValueError(f"{self.name}: a natural dataset needs at least one client")

    def client_ids(self) -> tuple[str, ...]:
        return tuple(self.clients)

    def client(self, cid: str) -> ClientData:
        try:
            return self.clients[cid]
        except KeyError:
            raise KeyError(
                f"unknown client id {cid!r}: {self.name} has {len(self.clients)} clients, "
                f"e.g. {next(iter(self.clients))!r}"
            ) from None


def natural_dataset(
    name: str, num_classes: int, clients: Mapping[str, ClientData]
) -> NaturalDataset:
    """Build a :class:`NaturalDataset` whose central test is the union of the local tests."""
    first = next(iter(clients.values()), None)
    if first is None:
        raise ValueError(f"{name}: a natural dataset needs at least one client")
    return NaturalDataset(
        name=name,
        num_classes=num_classes,
        input_shape=tuple(first.train.x.shape[1:]),
        central_test=concat([c.test for c in clients.values()]),
        clients=dict(clients),
    )
