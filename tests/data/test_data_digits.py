"""sklearn digits: shapes, standardisation on the pool only, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from fedswarm.data import FederatedDataset, Partition, PartitionSpec, load_digits


def test_digits_shapes_and_sizes() -> None:
    data = load_digits(num_clients=5)
    assert isinstance(data, FederatedDataset)
    assert (data.name, data.num_classes, data.input_shape) == ("digits", 10, (64,))
    assert data.client_ids() == ("00000", "00001", "00002", "00003", "00004")
    assert len(data.central_test) == 360  # stratified 20% of 1,797
    assert len(data.pool) == 1437
    client = data.client("00003")
    assert client.train.x.dtype == np.float32
    assert client.train.y.dtype == np.int64
    assert client.train.x.shape[1:] == (64,)
    assert (
        sum(len(data.client(c).train) + len(data.client(c).test) for c in data.client_ids()) == 1437
    )


def test_digits_scaler_fitted_on_pool() -> None:
    data = load_digits()
    assert np.allclose(data.pool.x.mean(axis=0), 0.0, atol=1e-5)
    assert np.all(
        np.isclose(data.pool.x.std(axis=0), 1.0, atol=1e-4) | (data.pool.x.std(axis=0) == 0)
    )
    assert np.all(np.bincount(data.central_test.y, minlength=10) >= 35)  # stratified


def test_digits_deterministic_and_seeds_separate() -> None:
    spec = PartitionSpec(Partition.DIRICHLET, alpha=0.3)
    a = load_digits(partition=spec, seed=3)
    b = load_digits(partition=spec, seed=3)
    c = load_digits(partition=spec, seed=4)
    assert all(
        np.array_equal(p, q) for p, q in zip(a.client_indices, b.client_indices, strict=True)
    )
    assert np.array_equal(a.client("00001").test.x, b.client("00001").test.x)
    assert not all(
        np.array_equal(p, q) for p, q in zip(a.client_indices, c.client_indices, strict=True)
    )
    # The central test set depends on split_seed only.
    assert np.array_equal(a.central_test.x, c.central_test.x)
    assert not np.array_equal(a.central_test.x, load_digits(split_seed=1).central_test.x)


def test_digits_rejects_natural_partition() -> None:
    with pytest.raises(ValueError, match="natural clients"):
        load_digits(partition=PartitionSpec(Partition.NATURAL))
