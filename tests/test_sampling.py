"""Client sampling (and the seeds it is driven by)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedswarm.sampling import PoissonSampler, UniformSampler
from fedswarm.seeding import client_seed, round_rng

IDS = [f"client-{k:02d}" for k in range(50)]
TEN = IDS[:10]


@pytest.mark.parametrize(
    ("sampler", "available", "expected"),
    [
        (UniformSampler(), 10, 10),
        (UniformSampler(fraction=0.1), 10, 1),
        (UniformSampler(fraction=0.25), 10, 3),  # ceil(2.5)
        (UniformSampler(fraction=0.3), 10, 3),
        (UniformSampler(fraction=0.14), 50, 7),  # 0.14 * 50 is 7.000000000000001 in floats
        (UniformSampler(fraction=0.7), 10, 7),
        (UniformSampler(fraction=0.01), 10, 1),  # never fewer than min_clients = 1
        (UniformSampler(fraction=0.1, min_clients=5), 10, 5),
        (UniformSampler(fraction=0.1, min_clients=50), 10, 10),  # capped at K
        (UniformSampler(clients_per_round=3), 10, 3),
        (UniformSampler(fraction=0.1, clients_per_round=4), 10, 4),  # the count wins
        (UniformSampler(clients_per_round=30), 10, 10),  # capped at K
        (UniformSampler(fraction=0.5), 1, 1),
        (UniformSampler(), 0, 0),
    ],
)
def test_count_rules(sampler: UniformSampler, available: int, expected: int) -> None:
    assert sampler.count(available) == expected
    assert len(sampler.sample(IDS[:available], np.random.default_rng(0))) == expected


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_fraction_outside_zero_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        UniformSampler(fraction=fraction)


def test_zero_clients_per_round_is_refused() -> None:
    with pytest.raises(ValueError, match="clients_per_round must be >= 1, got 0"):
        UniformSampler(clients_per_round=0)


@settings(max_examples=80, deadline=None)
@given(
    ids=st.sets(st.text("abcxyz0123", min_size=1, max_size=4), max_size=30),
    fraction=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_sample_is_a_sorted_subset_of_the_right_size(
    ids: set[str], fraction: float, seed: int
) -> None:
    sampler = UniformSampler(fraction=fraction)
    picked = sampler.sample(list(ids), np.random.default_rng(seed))
    assert picked == sorted(set(picked))  # sorted, no duplicates
    assert set(picked) <= ids
    assert len(picked) == sampler.count(len(ids))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_same_seed_same_sample_whatever_the_order_of_available(
    seed: int, data: st.DataObject
) -> None:
    sampler = UniformSampler(clients_per_round=4)
    shuffled = data.draw(st.permutations(TEN))
    first = sampler.sample(TEN, np.random.default_rng(seed))
    again = sampler.sample(shuffled, np.random.default_rng(seed))
    assert first == again


def test_different_seeds_give_different_samples() -> None:
    sampler = UniformSampler(clients_per_round=3)
    samples = {tuple(sampler.sample(TEN, np.random.default_rng(s))) for s in range(20)}
    assert len(samples) > 10  # 120 possible triples; identical draws would be a bug


def test_sampling_is_uniform_over_clients() -> None:
    """Each of 10 clients is picked with probability 3/10; 4000 draws, 5-sigma bounds."""
    sampler = UniformSampler(clients_per_round=3)
    rng = np.random.default_rng(1234)
    counts = dict.fromkeys(TEN, 0)
    draws = 4000
    for _ in range(draws):
        for cid in sampler.sample(TEN, rng):
            counts[cid] += 1
    sigma = (draws * 0.3 * 0.7) ** 0.5
    for cid, n in counts.items():
        assert abs(n - draws * 0.3) < 5 * sigma, (cid, n)


def test_round_rng_is_deterministic_and_separate_per_round_and_purpose() -> None:
    def draw(seed: int, rnd: int, purpose: str) -> list[int]:
        return [int(v) for v in round_rng(seed, rnd, purpose).integers(0, 2**62, 4)]

    assert draw(7, 1, "sample") == draw(7, 1, "sample")
    others = [draw(8, 1, "sample"), draw(7, 2, "sample"), draw(7, 1, "evaluate")]
    assert all(o != draw(7, 1, "sample") for o in others)


def test_client_seed_is_deterministic_distinct_and_63_bits() -> None:
    seeds = {client_seed(7, rnd, cid) for rnd in range(1, 6) for cid in TEN}
    assert len(seeds) == 50
    assert all(0 <= s < 2**63 for s in seeds)
    assert client_seed(7, 3, "client-01") == client_seed(7, 3, "client-01")
    assert client_seed(7, 3, "client-01") != client_seed(8, 3, "client-01")


def test_poisson_sampling_takes_each_client_independently_at_its_rate() -> None:
    """Over 2,000 rounds of 50 clients at q = 0.1 the count per round is Binomial(50, 0.1):
    its mean within 5 standard errors (false-failure rate below 1e-6); some rounds ask nobody;
    the sample is sorted and a function of the generator."""
    sampler, pool = PoissonSampler(0.1), [f"c{k:02d}" for k in range(50)]
    rng = np.random.default_rng(0)
    counts = np.array([len(sampler.sample(pool, rng)) for _ in range(2000)])
    assert abs(counts.mean() - 5.0) < 5 * np.sqrt(50 * 0.1 * 0.9 / 2000)
    assert (counts == 0).any()
    picked = sampler.sample(pool, np.random.default_rng(7))
    assert picked == sorted(picked) == sampler.sample(pool, np.random.default_rng(7))
    with pytest.raises(ValueError, match="rate"):
        PoissonSampler(0.0)
