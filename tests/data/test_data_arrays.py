"""Core types: ArrayDataset validation, PartitionedDataset / NaturalDataset clients, ids."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedswarm.data.arrays import ArrayDataset, ClientData, FederatedDataset, concat
from fedswarm.data.natural import natural_dataset
from fedswarm.data.partitioned import PartitionedDataset
from fedswarm.data.splits import client_id, client_index, num_local_test, random_local_split


def toy(n: int, offset: int = 0) -> ArrayDataset:
    x = np.arange(offset, offset + n, dtype=np.float32)[:, None]
    return ArrayDataset(x, np.arange(offset, offset + n, dtype=np.int64) % 3)


def test_array_dataset_len_and_subset() -> None:
    data = toy(10)
    part = data.subset(np.array([7, 2]))
    assert len(data) == 10
    assert part.x[:, 0].tolist() == [7.0, 2.0]
    assert part.y.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((3, 2)), np.zeros(2, np.int64), r"len\(x\)=3, len\(y\)=2"),
        (np.zeros((3, 2)), np.zeros(3), "1-d integer"),
        (np.zeros((3, 2)), np.zeros((3, 1), np.int64), "1-d integer"),
        (np.float32(1.0), np.zeros(1, np.int64), "sample axis"),
    ],
)
def test_array_dataset_rejects_bad_arrays(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArrayDataset(np.asarray(x), y)


def test_array_dataset_rejects_lists() -> None:
    with pytest.raises(TypeError, match="numpy arrays"):
        ArrayDataset([1.0], np.zeros(1, np.int64))  # type: ignore[arg-type]


def test_array_dataset_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy(2).x = np.zeros(1)  # type: ignore[misc]


def test_concat_stacks_and_needs_input() -> None:
    both = concat([toy(2), toy(3, offset=2)])
    assert both.x[:, 0].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="at least one"):
        concat([])


@given(st.integers(0, 200_000))
def test_client_ids_round_trip(index: int) -> None:
    num_clients = index + 1
    cid = client_id(index, num_clients)
    assert len(cid) >= 5
    assert client_index(cid, num_clients) == index


def test_client_id_format() -> None:
    assert client_id(0, 10) == "00000"
    assert client_id(42, 100) == "00042"
    assert client_id(5, 100_001) == "000005"


@pytest.mark.parametrize("cid", ["10", "0001", "00010", "abc", "-0001", "\uff10" * 5])
def test_unknown_client_ids_raise_key_error(cid: str) -> None:
    with pytest.raises(KeyError, match="10 clients"):
        client_index(cid, 10)


@given(st.integers(0, 500), st.floats(0.0, 0.99), st.integers(0, 10))
def test_local_split_is_a_sorted_partition(n: int, fraction: float, seed: int) -> None:
    train, test = random_local_split(n, fraction, np.random.default_rng(seed))
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
    assert len(test) == num_local_test(n, fraction)
    assert n == 0 or len(train) >= 1


def make_partitioned(seed: int = 0) -> PartitionedDataset:
    pool = toy(20)
    indices = (np.arange(0, 10), np.arange(10, 15), np.array([15]), np.arange(16, 20))
    return PartitionedDataset(
        name="toy",
        num_classes=3,
        input_shape=(1,),
        central_test=toy(4, offset=100),
        pool=pool,
        client_indices=indices,
        local_test_fraction=0.2,
        seed=seed,
    )


def test_partitioned_clients_slice_the_pool() -> None:
    data = make_partitioned()
    assert isinstance(data, FederatedDataset)
    assert data.client_ids() == ("00000", "00001", "00002", "00003")
    first = data.client("00000")
    assert (len(first.train), len(first.test)) == (8, 2)
    got = np.sort(np.concatenate([first.train.x[:, 0], first.test.x[:, 0]]))
    assert got.tolist() == list(range(10))
    single = data.client("00002")
    assert (len(single.train), len(single.test)) == (1, 0)


def test_partitioned_local_split_is_deterministic_per_seed() -> None:
    def test_rows(seed: int) -> list[list[float]]:
        data = make_partitioned(seed)
        return [data.client(c).test.x[:, 0].tolist() for c in data.client_ids()]

    assert test_rows(0) == test_rows(0)
    assert test_rows(0) != test_rows(1)


def test_partitioned_unknown_client() -> None:
    with pytest.raises(KeyError, match=r"'00004'.*4 clients"):
        make_partitioned().client("00004")


def test_partitioned_is_picklable() -> None:
    data = pickle.loads(pickle.dumps(make_partitioned()))
    assert len(data.client("00001").train) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_indices": (np.array([0, 1]), np.array([1]))}, "disjoint"),
        ({"client_indices": (np.array([20]),)}, r"\[0, 20\)"),
        ({"client_indices": ()}, "at least one"),
        ({"local_test_fraction": 1.0}, "local_test_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_partitioned_validates(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(make_partitioned(), **change)  # type: ignore[arg-type]


def test_natural_dataset_central_test_is_union_of_local_tests() -> None:
    clients = {
        "b": ClientData(train=toy(3), test=toy(2, offset=50)),
        "a": ClientData(train=toy(4), test=toy(1, offset=60)),
    }
    data = natural_dataset("toy", 3, clients)
    assert isinstance(data, FederatedDataset)
    assert data.client_ids() == ("b", "a")  # the given order, not sorted
    assert data.central_test.x[:, 0].tolist() == [50, 51, 60]
    assert data.input_shape == (1,)
    with pytest.raises(KeyError, match=r"'c'.*2 clients"):
        data.client("c")
    with pytest.raises(ValueError, match="at least one client"):
        natural_dataset("toy", 3, {})
