"""SecAgg and SecAgg+ in simulation: the secure sum is the plain modular sum exactly under
dropouts at every stage; above the threshold a clean abort; forged, replayed and
inconsistent shares leave their sender out without breaking the round."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import secagg_helpers as h
from fedswarm.secagg.graph import majority
from fedswarm.secagg.messages import ADVERTISE, MASKED_INPUT, SHARE_KEYS, UNMASK, MaskedInputRes
from fedswarm.secagg.simulation import VectorClients

STAGES = [ADVERTISE, SHARE_KEYS, MASKED_INPUT, UNMASK]


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 7),
    dim=st.integers(1, 16),
    complete=st.booleans(),
    bits=st.sampled_from([16, 32, 40]),
    data=st.data(),
)
def test_the_secure_sum_is_the_plain_modular_sum_under_dropouts_at_every_stage(
    n: int, dim: int, complete: bool, bits: int, data: st.DataObject
) -> None:
    ids = [f"p{i}" for i in range(n)]
    degree = n - 1 if complete else data.draw(st.integers(1, n - 1))
    holders = min(degree + (degree % 2), n - 1) + 1  # the Harary graph rounds odd degrees up
    t = majority(holders)
    when = data.draw(st.lists(st.sampled_from([None, *STAGES]), min_size=n, max_size=n))
    drops = {s: {c for c, w in zip(ids, when, strict=True) if w == s} for s in STAGES}
    make = VectorClients(seed=n, dim=dim)
    done, f = h.run_round(ids, make, degree, t, drops, bits=bits)
    gone = sum(w is not None for w in when)
    if complete and gone <= n - t:
        assert done.aborted is None, done.aborted
    if done.aborted is None:
        assert done.words is not None
        np.testing.assert_array_equal(done.words, h.plain_sum(done, make, f))
        before_unmask = {c for c, w in zip(ids, when, strict=True) if w in (None, UNMASK)}
        assert set(done.survivors) <= before_unmask
        if complete:
            assert set(done.survivors) == before_unmask
    else:
        assert str(done.aborted.stage).startswith("secagg.")
        assert " of " in done.aborted.reason or "shares revealed" in done.aborted.reason


def test_without_dropouts_every_participant_counts_and_the_mean_is_within_the_bound() -> None:
    ids = [f"p{i}" for i in range(6)]
    make = VectorClients(seed=3, dim=50)
    done, f = h.run_round(ids, make, 5, 4)
    assert done.aborted is None
    assert done.decoded is not None
    assert done.survivors == tuple(ids)
    ups = np.array([make(c).fit(dict(f)[c], {})[0].update for c in ids], np.float64)
    mean = done.decoded.summed.total / done.decoded.summed.weight
    q = done.encoding.quantiser  # type: ignore[union-attr]
    bound = done.encoding.weight_bound * len(ids) / (q.scale * done.decoded.summed.weight)  # type: ignore[union-attr]
    assert np.abs(mean - ups.mean(axis=0)).max() < bound


@pytest.mark.parametrize("stage", STAGES)
def test_above_the_threshold_the_round_aborts_naming_stage_and_counts(stage: object) -> None:
    ids = [f"p{i}" for i in range(5)]
    make = VectorClients(seed=1, dim=4)
    done, _ = h.run_round(ids, make, 4, 3, {stage: {"p0", "p1", "p2"}})  # type: ignore[dict-item]
    assert done.aborted is not None
    assert done.decoded is None
    text = str(done.aborted)
    if stage is UNMASK:  # everyone masked; two answer the unmask, three are needed
        assert "unmask" in text
        assert "2 shares revealed, 3 needed" in text
    else:
        assert str(stage) in text
        assert "2 of 5 participants answered, at least 3 needed" in text


@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_what_the_coordinator_receives_is_uniform_whatever_the_update(scale: float) -> None:
    """Each masked vector, all-zero updates included, passes a chi-square test of 64 equal
    bins of the word range (false failure rate 1e-4 per vector, 8 vectors); and none equals
    or is correlated with its plaintext words."""
    ids = [f"p{i}" for i in range(8)]
    make = VectorClients(seed=11, dim=20_000, scale=scale)
    via = h.transport(ids, make)
    done, f = h.run_round(ids, make, 4, 3, via=via)
    assert done.aborted is None
    masked = [o for o in via.inner.seen if isinstance(o, MaskedInputRes)]  # type: ignore[attr-defined]
    assert len(masked) == len(ids)
    for m in masked:
        counts = np.bincount((m.masked >> np.uint32(26)).astype(np.int64), minlength=64)
        assert stats.chisquare(counts).pvalue > 1e-4
        app = make(m.client_id)
        res, _ = app.fit(dict(f)[m.client_id], {})
        rng = app.secrets.generator(1, "secagg.rounding")
        plain = done.encoding.encode(res.update, 1, 0.5, rng).astype(np.float64)  # type: ignore[union-attr]
        if plain.std() > 0:
            assert abs(np.corrcoef(plain, m.masked.astype(np.float64))[0, 1]) < 0.05
        assert not np.array_equal(plain, m.masked)
