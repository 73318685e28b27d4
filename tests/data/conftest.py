"""Shared fixtures: tiny Fashion-MNIST IDX files, so loader tests need not parse 60,000 images."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedswarm.data.fashion_mnist import FILES

IdxWriter = Callable[[Path, np.ndarray], None]


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Gzipped uint8 IDX: magic 0x0000 0x08 ndim, big-endian uint32 dims, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def write_idx() -> IdxWriter:
    return _write_idx


@pytest.fixture
def tiny_fashion_mnist(tmp_path: Path) -> Path:
    """A folder with the four Fashion-MNIST files holding 40 train and 10 test images."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 10)):
        _write_idx(tmp_path / FILES[f"{split}_x"], rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / FILES[f"{split}_y"], np.arange(n) % 10)
    return tmp_path
