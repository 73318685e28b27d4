"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (no download at run time).

The package installs the four original IDX files under ``/usr/share/datasets/fashion-mnist``;
``FEDSWARM_FASHION_MNIST_DIR`` points elsewhere (other OSes, tests). The IDX parser is written
out here because the format is a few header integers and a raw byte array, and torchvision
(which has one) ships no CPU wheel that fits our pinned torch.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fedswarm.data.arrays import ArrayDataset
from fedswarm.data.errors import dataset_not_installed
from fedswarm.data.partition import IID_PARTITION, PartitionSpec
from fedswarm.data.partitioned import PartitionedDataset, partition_pool
from fedswarm.data.scaling import Standardizer

__all__ = [
    "DEBIAN_DIR",
    "ENV_VAR",
    "FILES",
    "fashion_mnist_dir",
    "load_fashion_mnist",
    "read_idx",
]

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # where the Debian package puts it
ENV_VAR = "FEDSWARM_FASHION_MNIST_DIR"
INSTALL = "sudo apt-get install dataset-fashion-mnist"
FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


def fashion_mnist_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$FEDSWARM_FASHION_MNIST_DIR`` if set, else the Debian package's directory."""
    override = environ.get(ENV_VAR)
    return Path(override) if override else DEBIAN_DIR


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file (LeCun's MNIST format) holding unsigned bytes.

    Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then one
    big-endian uint32 per dimension; the data follows, row-major.
    """
    raw = gzip.decompress(path.read_bytes())
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} bytes")
    return data.reshape(shape)


def _read_split(directory: Path, images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 (N, 1, 28, 28) in [0, 1], labels as int64 (N,)."""
    x = read_idx(directory / FILES[images]).astype(np.float32) / 255.0
    y = read_idx(directory / FILES[labels]).astype(np.int64)
    return x[:, None, :, :], y


def load_fashion_mnist(
    *,
    num_clients: int = 10,
    partition: PartitionSpec = IID_PARTITION,
    seed: int = 0,
    local_test_fraction: float = 0.2,
    normalize: bool = False,
    directory: Path | None = None,
) -> PartitionedDataset:
    """The 60,000 training images partitioned across clients; the 10,000 test images central.

    ``normalize`` standardises with the mean and std of all training pixels (test excluded).
    ``directory`` defaults to :func:`fashion_mnist_dir`.
    """
    where = fashion_mnist_dir() if directory is None else directory
    missing = [name for name in FILES.values() if not (where / name).is_file()]
    if missing:
        raise dataset_not_installed(
            "Fashion-MNIST",
            missing=", ".join(missing),
            looked_in=f"{where} (override with ${ENV_VAR})",
            install=INSTALL,
        )
    x_pool, y_pool = _read_split(where, "train_x", "train_y")
    x_test, y_test = _read_split(where, "test_x", "test_y")
    if normalize:  # one mean/std over all training pixels, the usual choice for images
        scaler = Standardizer(np.asarray(x_pool.mean()), np.asarray(x_pool.std()))
        x_pool, x_test = scaler.apply(x_pool), scaler.apply(x_test)
    return partition_pool(
        "fashion_mnist",
        num_classes=10,
        pool=ArrayDataset(x_pool, y_pool),
        central_test=ArrayDataset(x_test, y_test),
        num_clients=num_clients,
        spec=partition,
        seed=seed,
        local_test_fraction=local_test_fraction,
    )
