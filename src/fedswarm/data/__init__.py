"""Datasets and partitioners for federated simulations, all offline.

Every loader returns a :class:`FederatedDataset`: metadata, a central test set, and clients
materialised on demand. Pick one by name with :func:`load_dataset` and a :class:`DataSpec`.
"""

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
