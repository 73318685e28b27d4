"""Fashion-MNIST: the IDX parser on tiny files, the real Debian files, the missing-file error."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedswarm.data import DatasetNotInstalledError, FederatedDataset, load_fashion_mnist
from fedswarm.data.fashion_mnist import DEBIAN_DIR, ENV_VAR, fashion_mnist_dir, read_idx


def test_read_idx_round_trips(
    tmp_path: Path, write_idx: Callable[[Path, np.ndarray], None]
) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), array)


def test_read_idx_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01abcd"))
    with pytest.raises(ValueError, match="not a uint8 IDX"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "short.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05ab"))
    with pytest.raises(ValueError, match="holds 2 bytes"):
        read_idx(tmp_path / "short.gz")


def test_env_var_overrides_directory(
    tiny_fashion_mnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tiny_fashion_mnist))
    assert fashion_mnist_dir() == tiny_fashion_mnist
    data = load_fashion_mnist(num_clients=4, seed=1)
    assert (len(data.pool), len(data.central_test)) == (40, 10)
    again = load_fashion_mnist(num_clients=4, seed=1)
    assert np.array_equal(data.client("00002").train.x, again.client("00002").train.x)


def test_normalize_uses_training_statistics(tiny_fashion_mnist: Path) -> None:
    data = load_fashion_mnist(num_clients=2, normalize=True, directory=tiny_fashion_mnist)
    assert data.pool.x.dtype == np.float32
    assert abs(float(data.pool.x.mean())) < 1e-4
    assert abs(float(data.pool.x.std()) - 1.0) < 1e-3


def test_missing_files_say_what_where_and_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(DatasetNotInstalledError) as caught:
        load_fashion_mnist()
    message = str(caught.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path) in message
    assert "train-images-idx3-ubyte.gz" in message
    assert isinstance(caught.value, RuntimeError)


def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert fashion_mnist_dir() == DEBIAN_DIR
    data = load_fashion_mnist(num_clients=100)
    assert isinstance(data, FederatedDataset)
    assert (len(data.pool), len(data.central_test)) == (60_000, 10_000)
    assert (data.num_classes, data.input_shape) == (10, (1, 28, 28))
    assert data.pool.x.dtype == np.float32
    assert float(data.pool.x.min()) == 0.0
    assert float(data.pool.x.max()) == 1.0
    assert np.bincount(data.pool.y).tolist() == [6000] * 10
    assert np.bincount(data.central_test.y).tolist() == [1000] * 10
    client = data.client("00099")
    assert (len(client.train), len(client.test)) == (480, 120)
