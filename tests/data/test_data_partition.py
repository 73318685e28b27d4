"""Partitioners: disjoint, covering, sorted, seeded; each skew has the shape it promises."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedswarm.data.partition import (
    MAX_DIRICHLET_DRAWS,
    DirichletScheme,
    Partition,
    PartitionSpec,
    dirichlet,
    dirichlet_clients,
    iid,
    partition,
    quantity_skew,
    shards,
)

Partitioner = Callable[[np.ndarray, int, np.random.Generator], list[np.ndarray]]

labels_strategy = arrays(np.int64, st.integers(1, 300), elements=st.integers(0, 9))


def assert_valid_partition(parts: list[np.ndarray], n: int, num_clients: int) -> None:
    assert len(parts) == num_clients
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0), "each index array is sorted and duplicate-free"
    everything = np.concatenate(parts)
    assert np.array_equal(np.sort(everything), np.arange(n)), "disjoint and covering"


PARTITIONERS: dict[str, Partitioner] = {
    "iid": iid,
    "dirichlet": lambda y, k, rng: dirichlet(y, k, rng, 0.5, min_size=0),
    "dirichlet_clients": lambda y, k, rng: dirichlet_clients(y, k, rng, 0.5),
    "shards": lambda y, k, rng: shards(y, k, rng, 1),
    "quantity": lambda y, k, rng: quantity_skew(y, k, rng, 1.5),
}


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
@given(labels=labels_strategy, data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_partitions_are_disjoint_sorted_and_cover(
    name: str, labels: np.ndarray, data: st.DataObject, seed: int
) -> None:
    num_clients = data.draw(st.integers(1, len(labels)), label="num_clients")
    parts = PARTITIONERS[name](labels, num_clients, np.random.default_rng(seed))
    assert_valid_partition(parts, len(labels), num_clients)


@given(labels=labels_strategy, data=st.data())
def test_shards_with_several_shards_per_client_cover(
    labels: np.ndarray, data: st.DataObject
) -> None:
    num_clients = data.draw(st.integers(1, len(labels)))
    per_client = data.draw(st.integers(1, len(labels) // num_clients))
    parts = shards(labels, num_clients, np.random.default_rng(0), per_client)
    assert_valid_partition(parts, len(labels), num_clients)


@given(labels=arrays(np.int64, st.integers(40, 300), elements=st.integers(0, 9)), data=st.data())
def test_dirichlet_honours_min_size(labels: np.ndarray, data: st.DataObject) -> None:
    num_clients = data.draw(st.integers(1, len(labels) // 20))
    parts = dirichlet(labels, num_clients, np.random.default_rng(1), 5.0, min_size=2)
    assert min(len(p) for p in parts) >= 2


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
def test_same_seed_same_partition(name: str) -> None:
    labels = np.random.default_rng(0).integers(0, 10, 500)
    first = PARTITIONERS[name](labels, 7, np.random.default_rng(42))
    again = PARTITIONERS[name](labels, 7, np.random.default_rng(42))
    other = PARTITIONERS[name](labels, 7, np.random.default_rng(43))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_one_client_gets_everything() -> None:
    labels = np.array([3, 1, 2])
    for name, partitioner in PARTITIONERS.items():
        parts = partitioner(labels, 1, np.random.default_rng(0))
        assert [p.tolist() for p in parts] == [[0, 1, 2]], name


def test_iid_sizes_differ_by_at_most_one() -> None:
    sizes = [len(p) for p in iid(np.zeros(103, np.int64), 10, np.random.default_rng(0))]
    assert max(sizes) - min(sizes) <= 1


def mean_label_entropy(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    entropies = []
    for part in parts:
        p = np.bincount(labels[part], minlength=10) / len(part)
        p = p[p > 0]
        entropies.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(entropies))


def test_small_alpha_dirichlet_skews_labels() -> None:
    labels = np.repeat(np.arange(10), 100)
    rng = np.random.default_rng(0)
    skewed = mean_label_entropy(labels, dirichlet(labels, 10, rng, 0.1))
    balanced = mean_label_entropy(labels, iid(labels, 10, rng))
    assert balanced > 2.2  # close to log(10) = 2.30
    assert skewed < balanced - 1.0


def test_client_dirichlet_gives_equal_sizes_where_label_dirichlet_cannot() -> None:
    """The issue's W3 scale: 10,000 clients of 60,000 samples, 6 each, alpha 0.3."""
    labels = np.repeat(np.arange(10), 6000)
    parts = dirichlet_clients(labels, 10_000, np.random.default_rng(0), 0.3, min_size=6)
    assert_valid_partition(parts, len(labels), 10_000)
    assert {len(p) for p in parts} == {6}
    per_client = [np.unique(labels[p]).size for p in parts]
    assert np.mean(per_client) < 4  # IID draws of 6 from 10 labels would average 4.7


def test_client_dirichlet_sizes_differ_by_at_most_one() -> None:
    labels = np.random.default_rng(0).integers(0, 4, 103)
    parts = dirichlet_clients(labels, 10, np.random.default_rng(1), 0.2)
    assert sorted(len(p) for p in parts) == [10] * 7 + [11] * 3


@pytest.mark.parametrize("partitioner", [dirichlet, dirichlet_clients])
def test_label_skew_grows_as_alpha_shrinks(partitioner: Callable[..., list[np.ndarray]]) -> None:
    labels = np.repeat(np.arange(10), 200)
    entropies = [
        mean_label_entropy(labels, partitioner(labels, 20, np.random.default_rng(0), alpha))
        for alpha in (100.0, 1.0, 0.3, 0.05)
    ]
    assert entropies[0] > 2.1  # close to IID: log(10) = 2.30
    assert all(a > b + 0.2 for a, b in itertools.pairwise(entropies)), entropies


def test_client_dirichlet_follows_each_clients_mix() -> None:
    """Client k's label shares are close to its own Dir(alpha) mix, not to another's.

    White-box: the mixes are replayed from the generator (10 pool shuffles, then the mixes).
    """
    labels = np.repeat(np.arange(10), 2000)
    parts = dirichlet_clients(labels, 100, np.random.default_rng(4), 0.5)
    replay = np.random.default_rng(4)
    for _ in range(10):
        replay.permutation(2000)
    mixes = replay.dirichlet(np.full(10, 0.5), size=100)  # (clients, labels)
    got = np.array([np.bincount(labels[p], minlength=10) / len(p) for p in parts])
    own = np.abs(got - mixes).sum(axis=1).mean()  # L1 distance: 0 exact, 2 disjoint
    other = np.abs(got - np.roll(mixes, 1, axis=0)).sum(axis=1).mean()
    assert own < 0.3 < other, (own, other)


def test_client_dirichlet_min_size_is_checked_not_redrawn() -> None:
    with pytest.raises(ValueError, match=r"min_size must be in \[0, len\(labels\) // num_"):
        dirichlet_clients(np.zeros(59, np.int64), 10, np.random.default_rng(0), 0.3, min_size=6)


def test_shards_limit_labels_per_client() -> None:
    labels = np.repeat(np.arange(10), 100)  # 20 shards of 50: each shard holds one label
    parts = shards(labels, 10, np.random.default_rng(0), shards_per_client=2)
    assert all(len(np.unique(labels[p])) <= 2 for p in parts)
    assert all(len(p) == 100 for p in parts)


def test_quantity_skew_sizes_vary_and_sum() -> None:
    labels = np.zeros(10_000, np.int64)
    sizes = np.array([len(p) for p in quantity_skew(labels, 20, np.random.default_rng(0), 1.0)])
    assert sizes.sum() == 10_000
    assert sizes.min() >= 1
    assert sizes.max() > 3 * sizes.min()


def test_quantity_skew_gives_every_client_a_sample_when_tight() -> None:
    parts = quantity_skew(np.zeros(5, np.int64), 5, np.random.default_rng(0), 0.5)
    assert [len(p) for p in parts] == [1] * 5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: iid(np.zeros(3, np.int64), 0, np.random.default_rng()), "num_clients"),
        (lambda: iid(np.zeros(3, np.int64), 4, np.random.default_rng()), r"\[1, 3\]"),
        (lambda: iid(np.zeros(0, np.int64), 1, np.random.default_rng()), "num_clients"),
        (lambda: iid(np.zeros(3), 1, np.random.default_rng()), "integer"),
        (lambda: iid(np.zeros((3, 1), np.int64), 1, np.random.default_rng()), "1-d"),
        (lambda: dirichlet(np.zeros(9, np.int64), 3, np.random.default_rng(), 0.0), "alpha"),
        (
            lambda: dirichlet(np.zeros(9, np.int64), 3, np.random.default_rng(), 1, min_size=4),
            "min_size",
        ),
        (lambda: shards(np.zeros(9, np.int64), 3, np.random.default_rng(), 4), "shards_per_client"),
        (lambda: shards(np.zeros(9, np.int64), 3, np.random.default_rng(), 0), "shards_per_client"),
        (lambda: quantity_skew(np.zeros(9, np.int64), 3, np.random.default_rng(), -1), "exponent"),
    ],
)
def test_bad_arguments_name_the_argument(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_dirichlet_gives_up_with_a_clear_error() -> None:
    labels = np.repeat(np.arange(2), 10)
    with pytest.raises(ValueError, match=f"{MAX_DIRICHLET_DRAWS}.*alpha=0.01 is too small"):
        dirichlet(labels, 10, np.random.default_rng(0), 0.01, min_size=2)


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0}, {"exponent": 0}, {"min_size": -1}, {"shards_per_client": 0}]
)
def test_partition_spec_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PartitionSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", list(DirichletScheme))
@pytest.mark.parametrize("kind", [k for k in Partition if k is not Partition.NATURAL])
def test_dispatcher_matches_direct_calls(kind: Partition, scheme: DirichletScheme) -> None:
    labels = np.random.default_rng(0).integers(0, 10, 300)
    spec = PartitionSpec(kind, 0.3, min_size=1, shards_per_client=3, exponent=1.2)
    spec = PartitionSpec(**{**spec.__dict__, "dirichlet_scheme": scheme})
    by_label = scheme is DirichletScheme.LABELS
    direct = {
        Partition.IID: lambda rng: iid(labels, 6, rng),
        Partition.DIRICHLET: lambda rng: (dirichlet if by_label else dirichlet_clients)(
            labels, 6, rng, 0.3, min_size=1
        ),
        Partition.SHARDS: lambda rng: shards(labels, 6, rng, 3),
        Partition.QUANTITY: lambda rng: quantity_skew(labels, 6, rng, 1.2),
    }[kind](np.random.default_rng(5))
    via = partition(labels, 6, np.random.default_rng(5), spec)
    assert all(np.array_equal(a, b) for a, b in zip(direct, via, strict=True))


def test_natural_is_not_a_partitioner() -> None:
    with pytest.raises(ValueError, match="only valid for datasets with natural clients"):
        partition(
            np.zeros(4, np.int64), 2, np.random.default_rng(), PartitionSpec(Partition.NATURAL)
        )
