"""FedProx Synthetic(alpha, beta): shapes, sizes, seeds, heterogeneity."""

from __future__ import annotations

import numpy as np
import pytest

from fedswarm.data import FederatedDataset, load_synthetic
from fedswarm.data.synthetic import generate_client


def test_synthetic_shapes_and_ids() -> None:
    data = load_synthetic()
    assert isinstance(data, FederatedDataset)
    assert (data.num_classes, data.input_shape) == (10, (60,))
    assert data.client_ids() == tuple(f"{i:05d}" for i in range(30))
    sizes = [len(data.client(c).train) + len(data.client(c).test) for c in data.client_ids()]
    assert min(sizes) >= 50  # lognormal(4, 2) + 50
    assert len(data.central_test) == sum(len(data.client(c).test) for c in data.client_ids())
    x = data.client("00000").train.x
    assert x.dtype == np.float32
    assert data.client("00000").train.y.dtype == np.int64


def test_synthetic_is_deterministic_and_prefix_stable() -> None:
    small = load_synthetic(num_clients=3, seed=7, max_samples_per_client=200)
    large = load_synthetic(num_clients=5, seed=7, max_samples_per_client=200)
    other = load_synthetic(num_clients=3, seed=8, max_samples_per_client=200)
    for cid in small.client_ids():
        assert np.array_equal(small.client(cid).train.x, large.client(cid).train.x)
    assert not np.array_equal(small.client("00000").train.x[:5], other.client("00000").train.x[:5])


def test_synthetic_cap() -> None:
    data = load_synthetic(num_clients=20, max_samples_per_client=60)
    assert all(
        len(data.client(c).train) + len(data.client(c).test) <= 60 for c in data.client_ids()
    )


def test_alpha_shifts_all_logits_equally_so_labels_do_not_change() -> None:
    # u_k is added to every entry of W_k and b_k, i.e. the same amount to every logit.
    for seed in range(5):
        calm = generate_client(np.random.default_rng(seed), 0.0, 1.0, 300)
        wild = generate_client(np.random.default_rng(seed), 50.0, 1.0, 300)
        assert np.array_equal(calm.x, wild.x)
        assert np.array_equal(calm.y, wild.y)


def test_beta_spreads_client_inputs() -> None:
    def spread_of_means(beta: float) -> float:
        rng = np.random.default_rng(0)
        means = [generate_client(rng, 0.0, beta, 200).x.mean() for _ in range(30)]
        return float(np.std(means))

    assert spread_of_means(10.0) > 3 * spread_of_means(0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_clients": 0}, "num_clients"),
        ({"alpha": -1.0}, "alpha"),
        ({"max_samples_per_client": 0}, "max_samples_per_client"),
        ({"seed": -3}, "seed"),
    ],
)
def test_synthetic_validates(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_synthetic(**kwargs)  # type: ignore[arg-type]
