"""Pick a dataset by name: one frozen :class:`DataSpec` in, a :class:`FederatedDataset` out.

``DataSpec`` carries every loader's parameters as typed fields; each loader adapter reads
the ones it needs, so there is no ``**kwargs`` forwarding and a typo is a type error.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from fedswarm.data.arrays import FederatedDataset
from fedswarm.data.partition import Partition, PartitionSpec

__all__ = ["DataSpec", "DatasetName", "dataset_name", "load_dataset"]


class DatasetName(enum.Enum):
    DIGITS = "digits"
    FASHION_MNIST = "fashion_mnist"
    SHAKESPEARE = "shakespeare"
    HEART = "heart"
    SYNTHETIC = "synthetic"


def dataset_name(text: str) -> DatasetName:
    """Parse a config string; an unknown name lists the choices."""
    try:
        return DatasetName(text)
    except ValueError:
        choices = ", ".join(repr(n.value) for n in DatasetName)
        raise ValueError(f"unknown dataset {text!r}; choose one of {choices}") from None


@dataclass(frozen=True)
class DataSpec:
    """Everything needed to build a federated dataset; fields a dataset doesn't use are ignored.

    ``num_clients``: partitioned datasets (digits, fashion_mnist) default to 10, synthetic to
    30; for datasets with natural clients it caps them to the first K (heart: hospitals,
    shakespeare: sorted speaker ids). ``partition``: ``None`` means the dataset's default (IID
    for partitioned datasets, natural otherwise); natural datasets accept only ``NATURAL``.
    """

    name: DatasetName = DatasetName.DIGITS
    num_clients: int | None = None
    partition: PartitionSpec | None = None
    seed: int = 0
    local_test_fraction: float = 0.2
    split_seed: int = 0  # digits: the central test split, apart from the partition seed
    normalize: bool = False  # fashion_mnist: standardise pixels
    min_chars: int = 1000  # shakespeare: fewest characters a speaker needs to be a client
    max_samples_per_client: int | None = None  # shakespeare, synthetic
    central_test_size: int | None = 10_000  # shakespeare: windows sampled for central test
    synthetic_alpha: float = 1.0  # synthetic: model heterogeneity
    synthetic_beta: float = 1.0  # synthetic: input heterogeneity


def load_dataset(spec: DataSpec) -> FederatedDataset:
    """Build the dataset ``spec.name`` describes."""
    try:
        loader = _LOADERS[spec.name]
    except KeyError:
        choices = ", ".join(n.name for n in _LOADERS)
        raise KeyError(
            f"no loader for {spec.name} in the dataset registry; have {choices}"
        ) from None
    return loader(spec)


def _natural_only(spec: DataSpec) -> None:
    if spec.partition is not None and spec.partition.kind is not Partition.NATURAL:
        raise ValueError(
            f"{spec.name.value} has natural clients; partition must be None or NATURAL, "
            f"got {spec.partition.kind.value}"
        )


def _digits(spec: DataSpec) -> FederatedDataset:
    from fedswarm.data.digits import load_digits  # each loader's dependencies load with it

    return load_digits(
        num_clients=10 if spec.num_clients is None else spec.num_clients,
        partition=spec.partition or PartitionSpec(),
        seed=spec.seed,
        split_seed=spec.split_seed,
        local_test_fraction=spec.local_test_fraction,
    )


def _fashion_mnist(spec: DataSpec) -> FederatedDataset:
    from fedswarm.data.fashion_mnist import (
        load_fashion_mnist,  # each loader's dependencies load with it
    )

    return load_fashion_mnist(
        num_clients=10 if spec.num_clients is None else spec.num_clients,
        partition=spec.partition or PartitionSpec(),
        seed=spec.seed,
        local_test_fraction=spec.local_test_fraction,
        normalize=spec.normalize,
    )


def _shakespeare(spec: DataSpec) -> FederatedDataset:
    from fedswarm.data.shakespeare import (
        load_shakespeare,  # each loader's dependencies load with it
    )

    _natural_only(spec)
    return load_shakespeare(
        min_chars=spec.min_chars,
        max_clients=spec.num_clients,
        max_samples_per_client=spec.max_samples_per_client,
        central_test_size=spec.central_test_size,
        seed=spec.seed,
        local_test_fraction=spec.local_test_fraction,
    )


def _heart(spec: DataSpec) -> FederatedDataset:
    from fedswarm.data.heart import load_heart  # each loader's dependencies load with it

    _natural_only(spec)
    return load_heart(
        num_clients=spec.num_clients,
        seed=spec.seed,
        local_test_fraction=spec.local_test_fraction,
    )


def _synthetic(spec: DataSpec) -> FederatedDataset:
    from fedswarm.data.synthetic import load_synthetic  # each loader's dependencies load with it

    _natural_only(spec)
    return load_synthetic(
        num_clients=30 if spec.num_clients is None else spec.num_clients,
        alpha=spec.synthetic_alpha,
        beta=spec.synthetic_beta,
        seed=spec.seed,
        local_test_fraction=spec.local_test_fraction,
        max_samples_per_client=spec.max_samples_per_client,
    )


_LOADERS: dict[DatasetName, Callable[[DataSpec], FederatedDataset]] = {
    DatasetName.DIGITS: _digits,
    DatasetName.FASHION_MNIST: _fashion_mnist,
    DatasetName.SHAKESPEARE: _shakespeare,
    DatasetName.HEART: _heart,
    DatasetName.SYNTHETIC: _synthetic,
}
