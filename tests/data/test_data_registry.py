"""load_dataset: every name builds; natural datasets refuse a partitioner; choices named."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from fedswarm.data import (
    DatasetName,
    DataSpec,
    FederatedDataset,
    Partition,
    PartitionSpec,
    dataset_name,
    load_dataset,
)
from fedswarm.data.fashion_mnist import ENV_VAR
from fedswarm.data.registry import _LOADERS

SMALL = {
    DatasetName.DIGITS: DataSpec(DatasetName.DIGITS, num_clients=3),
    DatasetName.FASHION_MNIST: DataSpec(DatasetName.FASHION_MNIST, num_clients=3),
    DatasetName.SHAKESPEARE: DataSpec(
        DatasetName.SHAKESPEARE, num_clients=3, max_samples_per_client=40, central_test_size=20
    ),
    DatasetName.HEART: DataSpec(DatasetName.HEART),
    DatasetName.SYNTHETIC: DataSpec(
        DatasetName.SYNTHETIC, num_clients=3, max_samples_per_client=80
    ),
}


def test_every_name_has_a_loader() -> None:
    assert set(_LOADERS) == set(DatasetName) == set(SMALL)


@pytest.mark.parametrize("name", list(DatasetName))
def test_load_dataset_builds_each(
    name: DatasetName, tiny_fashion_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tiny_fashion_mnist))
    data = load_dataset(SMALL[name])
    assert isinstance(data, FederatedDataset)
    assert data.name == name.value
    first = data.client(data.client_ids()[0])
    assert first.train.x.shape[1:] == data.input_shape
    assert int(first.train.y.max()) < data.num_classes
    assert data.central_test.x.shape[1:] == data.input_shape
    # Datasets travel to worker processes: they must survive pickling.
    copy = pickle.loads(pickle.dumps(data))
    assert np.array_equal(copy.client(copy.client_ids()[0]).train.x, first.train.x)


def test_spec_fields_reach_the_loader() -> None:
    shards = PartitionSpec(Partition.SHARDS, shards_per_client=2)
    data = load_dataset(DataSpec(DatasetName.DIGITS, num_clients=20, partition=shards))
    assert len(data.client_ids()) == 20
    # 40 shards of ~36 samples over classes of ~144: a shard spans at most 2 labels.
    labels = [np.unique(data.client(c).train.y).size for c in data.client_ids()]
    assert max(labels) <= 4


@pytest.mark.parametrize(
    "name", [DatasetName.HEART, DatasetName.SYNTHETIC, DatasetName.SHAKESPEARE]
)
def test_natural_datasets_refuse_partitioners(name: DatasetName) -> None:
    spec = DataSpec(name, partition=PartitionSpec(Partition.DIRICHLET))
    with pytest.raises(ValueError, match="natural clients"):
        load_dataset(spec)
    natural = DataSpec(DatasetName.HEART, partition=PartitionSpec(Partition.NATURAL))
    assert len(load_dataset(natural).client_ids()) == 4


def test_dataset_name_lists_choices() -> None:
    assert dataset_name("heart") is DatasetName.HEART
    with pytest.raises(ValueError, match="'digits', 'fashion_mnist'"):
        dataset_name("mnist")
