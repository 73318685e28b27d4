"""sklearn's 8x8 handwritten digits: the small dataset that is always available offline.

1,797 images ship inside scikit-learn itself, so this is the default for examples and tests.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits as _sklearn_digits
from sklearn.model_selection import train_test_split

from fedswarm.data.arrays import ArrayDataset
from fedswarm.data.partition import IID_PARTITION, PartitionSpec
from fedswarm.data.partitioned import PartitionedDataset, partition_pool
from fedswarm.data.scaling import Standardizer

__all__ = ["CENTRAL_TEST_FRACTION", "load_digits"]

CENTRAL_TEST_FRACTION = 0.2


def load_digits(
    *,
    num_clients: int = 10,
    partition: PartitionSpec = IID_PARTITION,
    seed: int = 0,
    split_seed: int = 0,
    local_test_fraction: float = 0.2,
) -> PartitionedDataset:
    """Digits as x float32 (N, 64) standardised, y int64 in 0..9, partitioned across clients.

    A stratified 20% central test set is held out with ``split_seed`` (kept apart from
    ``seed`` so that changing the partition never changes the test set); the scaler is fitted
    on the remaining train pool only, which is then partitioned with ``partition`` / ``seed``.
    """
    x, y = _sklearn_digits(return_X_y=True)
    x_pool, x_test, y_pool, y_test = train_test_split(
        x, y, test_size=CENTRAL_TEST_FRACTION, stratify=y, random_state=split_seed
    )
    scaler = Standardizer.fit(x_pool)
    return partition_pool(
        "digits",
        num_classes=10,
        pool=ArrayDataset(scaler.apply(x_pool), np.asarray(y_pool, dtype=np.int64)),
        central_test=ArrayDataset(scaler.apply(x_test), np.asarray(y_test, dtype=np.int64)),
        num_clients=num_clients,
        spec=partition,
        seed=seed,
        local_test_fraction=local_test_fraction,
    )
