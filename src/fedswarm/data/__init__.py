"""Datasets and partitioners for federated simulations, all offline.

Every loader returns a :class:`FederatedDataset`: metadata, a central test set, and clients
materialised on demand. Pick one by name with :func:`load_dataset` and a :class:`DataSpec`.

Names load lazily: ``import fedswarm.data.arrays`` (what messages and learners need) loads
numpy alone, and each loader's dependencies (scikit-learn, scipy) load with the loader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedswarm._lazy import lazy_getattr

if TYPE_CHECKING:
    from fedswarm.data.arrays import ArrayDataset, ClientData, FederatedDataset, concat
    from fedswarm.data.digits import load_digits
    from fedswarm.data.errors import DatasetNotInstalledError
    from fedswarm.data.fashion_mnist import load_fashion_mnist
    from fedswarm.data.heart import load_heart
    from fedswarm.data.natural import NaturalDataset
    from fedswarm.data.partition import (
        DirichletScheme,
        Partition,
        PartitionSpec,
        dirichlet,
        dirichlet_clients,
        iid,
        partition,
        quantity_skew,
        shards,
    )
    from fedswarm.data.partitioned import PartitionedDataset
    from fedswarm.data.registry import DatasetName, DataSpec, dataset_name, load_dataset
    from fedswarm.data.shakespeare import ShakespeareDataset, load_shakespeare
    from fedswarm.data.synthetic import load_synthetic

_WHERE = {
    "ArrayDataset": "fedswarm.data.arrays",
    "ClientData": "fedswarm.data.arrays",
    "DataSpec": "fedswarm.data.registry",
    "DatasetName": "fedswarm.data.registry",
    "DatasetNotInstalledError": "fedswarm.data.errors",
    "DirichletScheme": "fedswarm.data.partition",
    "FederatedDataset": "fedswarm.data.arrays",
    "NaturalDataset": "fedswarm.data.natural",
    "Partition": "fedswarm.data.partition",
    "PartitionSpec": "fedswarm.data.partition",
    "PartitionedDataset": "fedswarm.data.partitioned",
    "ShakespeareDataset": "fedswarm.data.shakespeare",
    "concat": "fedswarm.data.arrays",
    "dataset_name": "fedswarm.data.registry",
    "dirichlet": "fedswarm.data.partition",
    "dirichlet_clients": "fedswarm.data.partition",
    "iid": "fedswarm.data.partition",
    "load_dataset": "fedswarm.data.registry",
    "load_digits": "fedswarm.data.digits",
    "load_fashion_mnist": "fedswarm.data.fashion_mnist",
    "load_heart": "fedswarm.data.heart",
    "load_shakespeare": "fedswarm.data.shakespeare",
    "load_synthetic": "fedswarm.data.synthetic",
    "partition": "fedswarm.data.partition",
    "quantity_skew": "fedswarm.data.partition",
    "shards": "fedswarm.data.partition",
}

__all__ = [
    "ArrayDataset",
    "ClientData",
    "DataSpec",
    "DatasetName",
    "DatasetNotInstalledError",
    "DirichletScheme",
    "FederatedDataset",
    "NaturalDataset",
    "Partition",
    "PartitionSpec",
    "PartitionedDataset",
    "ShakespeareDataset",
    "concat",
    "dataset_name",
    "dirichlet",
    "dirichlet_clients",
    "iid",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_heart",
    "load_shakespeare",
    "load_synthetic",
    "partition",
    "quantity_skew",
    "shards",
]


__getattr__ = lazy_getattr("fedswarm.data", _WHERE, globals())


def __dir__() -> list[str]:
    return __all__
