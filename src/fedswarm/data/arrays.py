"""The array types every fedswarm dataset is made of, and the protocol the rest consumes.

A dataset is plain numpy: features ``x`` and integer labels ``y``. Clients hold a local train
split and a local held-out split; a :class:`FederatedDataset` hands clients out one at a time
so that a simulation of many clients only keeps the sampled ones in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["ArrayDataset", "ClientData", "FederatedDataset", "concat"]


# eq=False: dataclass equality would compare arrays element-wise and fail on `bool(...)`.
@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Samples ``x`` (N, ...) with integer labels ``y`` (N,).

    ``x`` is float32 features or int64 token ids; ``y`` is int64 class ids. Both are owned by
    the dataset: callers must not mutate them in place.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.x, np.ndarray) or not isinstance(self.y, np.ndarray):
            raise TypeError(
                f"x and y must be numpy arrays, got {type(self.x).__name__} and "
                f"{type(self.y).__name__}"
            )
        if self.x.ndim < 1:
            raise ValueError(f"x must have a sample axis, got a {self.x.ndim}-d array")
        if self.y.ndim != 1 or not np.issubdtype(self.y.dtype, np.integer):
            raise ValueError(
                f"y must be a 1-d integer array, got shape {self.y.shape} dtype {self.y.dtype}"
            )
        if len(self.x) != len(self.y):
            raise ValueError(
                f"x and y disagree on length: len(x)={len(self.x)}, len(y)={len(self.y)}"
            )

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: np.ndarray) -> ArrayDataset:
        """The samples at ``indices`` (a copy, in the order given)."""
        return ArrayDataset(self.x[indices], self.y[indices])


@dataclass(frozen=True, eq=False)
class ClientData:
    """One client's data: ``train`` for local updates, ``test`` for federated evaluation.

    ``test`` is the client's own held-out split and may be empty for very small clients.
    """

    train: ArrayDataset
    test: ArrayDataset


@runtime_checkable
class FederatedDataset(Protocol):
    """What the rest of fedswarm consumes: metadata, a central test set, clients on demand.

    Members are read-only properties so that frozen dataclasses satisfy the protocol.
    """

    @property
    def name(self) -> str:
        """Short name of the dataset, e.g. ``"digits"``."""
        ...

    @property
    def num_classes(self) -> int:
        """Number of label classes; labels are ``0 .. num_classes - 1``."""
        ...

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one ``x`` sample (without the batch axis)."""
        ...

    @property
    def central_test(self) -> ArrayDataset:
        """Held-out global test set for central evaluation."""
        ...

    def client_ids(self) -> Sequence[str]:
        """All client ids, in a fixed order."""
        ...

    def client(self, cid: str) -> ClientData:
        """Materialise one client's data (lazily; raises ``KeyError`` for unknown ids)."""
        ...


def concat(datasets: Sequence[ArrayDataset]) -> ArrayDataset:
    """Stack datasets sample-wise (e.g. clients' local tests into a central test)."""
    if not datasets:
        raise ValueError("concat needs at least one dataset, got none")
    return ArrayDataset(
        np.concatenate([d.x for d in datasets]), np.concatenate([d.y for d in datasets])
    )
