"""Contribution scores: exact Shapley against games with known values, GTG-Shapley against
exact Shapley on a 4-participant federation, leave-one-out and Shapley finding the
participant that sends noise, and GTG-Shapley's cost at 100 participants."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fedswarm.contrib import Memo, exact_shapley, gtg_shapley, leave_one_out, round_game

DIM = 8


def test_exact_shapley_of_known_games() -> None:
    weights = np.array([1.0, -2.0, 0.5])
    additive = exact_shapley(3, lambda s: float(sum(weights[list(s)])))
    np.testing.assert_allclose(additive, weights)
    # a 3-player majority game: any two win; by symmetry each gets 1/3
    majority = exact_shapley(3, lambda s: float(len(s) >= 2))
    np.testing.assert_allclose(majority, [1 / 3] * 3)
    # a dummy player (adds nothing to any coalition) gets 0
    dummy = exact_shapley(3, lambda s: float(len(s - {2}) > 0))
    assert dummy[2] == 0


def _federation(
    n: int, seed: int, noisy: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linear regression: participant i holds 10 (i + 1) examples; each update is 5 local
    gradient steps from the zero model. A ``noisy`` participant sends Gaussian noise."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=DIM)
    base = np.zeros(DIM)
    updates, weights = [], []
    for i in range(n):
        m = 10 * (i % 4 + 1)
        x = rng.normal(size=(m, DIM))
        y = x @ truth + rng.normal(scale=0.5 + i % 3, size=m)
        w = base.copy()
        for _ in range(5):
            w -= 0.05 * x.T @ (x @ w - y) / m
        updates.append(rng.normal(scale=3.0, size=DIM) if i == noisy else w - base)
        weights.append(m)
    x_val = rng.normal(size=(200, DIM))
    return base, np.array(updates), np.array(weights, float), x_val, x_val @ truth


def _game(n: int, seed: int, noisy: int | None = None) -> Memo:
    base, updates, weights, x_val, y_val = _federation(n, seed, noisy)
    return Memo(
        round_game(base, updates, weights, lambda w: -float(np.mean((x_val @ w - y_val) ** 2)))
    )


@pytest.mark.parametrize("seed", range(8))
def test_gtg_shapley_matches_exact_on_four_participants(seed: int) -> None:
    """Tolerance, as a share of the round's total value u(N) - u({}): every estimate within
    2.5% with 200 permutations (measured over 20 seeds: max 1.7%, mean 0.6%), and within 10%
    at the default budget of 30 (max 6.7%, mean 2.9%)."""
    game = _game(4, seed)
    exact = exact_shapley(4, game)
    total = game(frozenset(range(4))) - game(frozenset())
    np.testing.assert_allclose(exact.sum(), total)  # efficiency
    for permutations, share in ((200, 0.025), (None, 0.10)):
        rng = np.random.default_rng(seed)
        est = gtg_shapley(
            4,
            game,
            rng,
            truncation=1e-3 * abs(total),
            max_permutations=permutations,
            tolerance=0.0 if permutations else 0.02,
        )
        assert not est.truncated
        assert est.permutations == (permutations or 30)
        assert np.max(np.abs(est.values - exact)) <= share * abs(total)


def test_leave_one_out_and_shapley_find_the_noisy_participant() -> None:
    game = _game(6, seed=4, noisy=2)
    loo = leave_one_out(6, game)
    assert int(np.argmin(loo)) == 2
    assert loo[2] < 0  # the federation is better off without it
    est = gtg_shapley(6, game, np.random.default_rng(0))
    assert int(np.argmin(est.values)) == 2


def test_a_game_that_changes_nothing_is_truncated() -> None:
    est = gtg_shapley(5, lambda s: 1.0, np.random.default_rng(0))
    assert est.truncated
    assert est.evaluations == 2
    assert not est.values.any()


def test_gtg_shapley_is_cheap_for_100_participants() -> None:
    """At most max(3n, 30) permutations of n evaluations each, far below 2^100; measured
    here: its evaluation count and seconds (a 200-example validation set, dim 8)."""
    game = _game(100, seed=5, noisy=7)
    start = time.perf_counter()
    est = gtg_shapley(100, game, np.random.default_rng(0), truncation=1e-3)
    seconds = time.perf_counter() - start
    assert est.evaluations <= 300 * 100
    assert est.evaluations == game.evaluations  # a Memo inside: each coalition once
    assert seconds < 5.0
    assert int(np.argmin(est.values)) == 7
    print(f"n=100: {est.permutations} permutations, {est.evaluations} evaluations, {seconds:.2f}s")


def test_round_game_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="do not match"):
        round_game(np.zeros(3), np.zeros((2, 4)), np.ones(2), lambda w: 0.0)
