"""The public surface is what ``__all__`` claims, in every module of fedswarm.data."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import fedswarm.data

MODULES = [
    info.name for info in pkgutil.iter_modules(fedswarm.data.__path__, prefix="fedswarm.data.")
]


@pytest.mark.parametrize("module_name", ["fedswarm.data", *MODULES])
def test_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(module, name), f"{module_name}.__all__ lists missing {name}"


def test_package_exports_the_documented_api() -> None:
    expected = {
        "ArrayDataset", "ClientData", "FederatedDataset", "PartitionedDataset", "NaturalDataset",
        "ShakespeareDataset", "DatasetNotInstalledError", "Partition", "PartitionSpec",
        "DirichletScheme", "dirichlet_clients",
        "iid", "dirichlet", "shards", "quantity_skew", "partition", "DatasetName", "DataSpec",
        "load_dataset", "dataset_name", "load_digits", "load_fashion_mnist", "load_shakespeare",
        "load_heart", "load_synthetic", "concat",
    }  # fmt: skip
    assert set(fedswarm.data.__all__) == expected
