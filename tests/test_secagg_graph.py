"""The neighbour graph and the choice of degree and threshold (Bell et al.): regular and
symmetric graphs; a failure bound that holds; at 50 participants and 10% random dropout at
least 99 of 100 rounds complete."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import secagg_helpers as h
from fedswarm.driver import pump
from fedswarm.params import Params
from fedswarm.secagg import SecureFitRound, SecureSettings, choose_parameters, harary_graph
from fedswarm.secagg.graph import failure_bound, majority
from fedswarm.secagg.messages import ADVERTISE, MASKED_INPUT, SHARE_KEYS, UNMASK
from fedswarm.secagg.simulation import StageDropouts, VectorClients


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 60), data=st.data())
def test_the_graph_is_regular_and_symmetric(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, n - 1))
    ids = [f"c{i}" for i in range(n)]
    g = harary_graph(ids, k, np.random.default_rng(n))
    half = min((k + 1) // 2, n // 2)  # an odd degree rounds up to even
    want = n if k >= n - 1 else min(2 * half + 1, n)
    assert {len(v) for v in g.values()} == {want}
    for c, near in g.items():
        assert c in near
        assert all(c in g[d] for d in near)


def test_the_choice_at_50_participants_and_10_percent_dropout() -> None:
    c = choose_parameters(50, 0.1, 0.01)
    assert (c.degree, c.threshold) == (12, 7)
    assert c.failure_bound <= 0.01
    assert c.threshold == majority(c.degree + 1)
    full = choose_parameters(50, 0.1, 0.01, complete=True)
    assert (full.degree, full.threshold) == (49, 26)
    assert choose_parameters(200, 0.1, 0.01).degree == 16  # O(log n)
    assert choose_parameters(4, 0.3, 1e-6).degree == 3  # nothing smaller works: complete


def test_the_failure_bound_bounds_a_simulated_neighbourhood_count() -> None:
    """Monte Carlo (20,000 rounds) of holders alive per participant, against the bound."""
    n, k, t, drop = 50, 8, 5, 0.2
    rng = np.random.default_rng(0)
    alive = rng.random((20_000, n)) >= drop
    g = harary_graph([str(i) for i in range(n)], k, rng)
    idx = {str(i): i for i in range(n)}
    holders = np.array([[idx[x] for x in g[str(i)]] for i in range(n)])  # (n, k + 1)
    counts = alive[:, holders].sum(axis=2)  # (rounds, n)
    failed = (counts < t).any(axis=1).mean()
    assert failed <= failure_bound(n, k, t, drop) + 3 * np.sqrt(0.25 / 20_000)


@pytest.mark.slow
def test_at_50_participants_and_10_percent_dropout_99_of_100_rounds_complete() -> None:
    """Random dropout at a random stage each round (seeded: deterministic); the union bound
    is 0.005 per round, so about 0.5 failures are expected in 100 rounds."""
    ids = [f"c{i:02d}" for i in range(50)]
    make = VectorClients(seed=0, dim=4)
    inner = h.transport(ids, make)
    strategy = h.strategy(50)
    state = strategy.init(Params.from_arrays({"w": np.zeros(4, np.float32)}))
    protocol = SecureFitRound(SecureSettings(target_dropout=0.1, failure_probability=0.01))
    rng, completed = np.random.default_rng(1), 0
    stages = [ADVERTISE, SHARE_KEYS, MASKED_INPUT, UNMASK]
    for rnd in range(1, 101):
        when = {c: stages[rng.integers(4)] for c in ids if rng.random() < 0.1}
        drops = {s: {c for c, w in when.items() if w == s} for s in stages}
        via = StageDropouts(inner, drops, frozenset({rnd}))
        result = pump(protocol(strategy, state, ids, h.RUN, 1), via, None)
        state = result.state
        completed += result.summary.num_replies > 0
    assert state.round == 100
    assert completed >= 99
