"""The primitives of secure aggregation: Shamir against a slow reference, the mask PRG's
uniformity, share encryption's refusal of forged and replayed shares, quantisation's bound."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fedswarm.secagg.crypto.aead import InvalidShareError, open_share, seal_share
from fedswarm.secagg.crypto.keys import agree, keypair_from_seed, public_of
from fedswarm.secagg.crypto.prg import expand_mask
from fedswarm.secagg.crypto.shamir import PRIME, Share, combine, randomness_bytes, split
from fedswarm.secagg.quantise import Quantiser, UpdateEncoding


def _reference_interpolate(points: list[tuple[int, int]]) -> int:
    """Lagrange at zero with exact rationals, then mod p: slow, obviously right."""
    total = Fraction(0)
    for i, (xi, yi) in enumerate(points):
        term = Fraction(yi)
        for j, (xj, _) in enumerate(points):
            if j != i:
                term *= Fraction(xj, xj - xi)
        total += term
    return total.numerator * pow(total.denominator, -1, PRIME) % PRIME


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    holders=st.integers(1, 9),
    data=st.data(),
)
def test_any_threshold_shares_recover_the_secret_and_match_the_reference(
    secret: bytes, holders: int, data: st.DataObject
) -> None:
    t = data.draw(st.integers(1, holders))
    xs = list(range(1, holders + 1))
    shares = split(secret, xs, t, os.urandom(randomness_bytes(t)))
    subset = data.draw(st.permutations(shares)).copy()[:t]
    assert combine(subset) == secret
    ref = _reference_interpolate([(s.x, s.y) for s in subset])
    assert ref == int.from_bytes(secret, "big")
    if t > 1:  # fewer than t shares interpolate something else (with overwhelming odds)
        wrong = _reference_interpolate([(s.x, s.y) for s in subset[:-1]])
        assert wrong != int.from_bytes(secret, "big")


def test_shares_round_trip_as_bytes_and_refuse_garbage() -> None:
    s = split(b"\x01" * 32, [1, 2, 3], 2, os.urandom(randomness_bytes(2)))
    again = [Share.from_bytes(x.x, x.value_bytes()) for x in s]
    assert combine(again[1:]) == b"\x01" * 32
    with pytest.raises(ValueError, match="field element"):
        Share.from_bytes(1, b"\xff" * 66)  # not a field element
    with pytest.raises(ValueError, match="distinct points"):
        split(b"\x00" * 32, [1, 1], 2, os.urandom(randomness_bytes(2)))


def test_key_agreement_is_symmetric_and_bound_to_its_info() -> None:
    a, b = keypair_from_seed(os.urandom(32)), keypair_from_seed(os.urandom(32))
    assert agree(a.private, b.public, b"x") == agree(b.private, a.public, b"x")
    assert agree(a.private, b.public, b"x") != agree(a.private, b.public, b"y")
    assert public_of(a.private) == a.public
    assert "private" not in repr(a) or a.private.hex() not in repr(a)


def test_a_sealed_share_opens_only_with_its_key_and_context() -> None:
    key = os.urandom(32)
    ct = seal_share(key, b"share", b"run|1|a|b")
    assert open_share(key, ct, b"run|1|a|b") == b"share"
    for k, c, ad in [
        (key, ct, b"run|2|a|b"),  # replayed into another round
        (key, ct, b"run|1|a|c"),  # redirected to another receiver
        (os.urandom(32), ct, b"run|1|a|b"),  # forged under another key
        (key, ct[:-1] + bytes([ct[-1] ^ 1]), b"run|1|a|b"),  # altered
    ]:
        with pytest.raises(InvalidShareError):
            open_share(k, c, ad)


@pytest.mark.parametrize("bits", [8, 20, 32, 48])
def test_masks_are_uniform_words_of_the_requested_width(bits: int) -> None:
    """Chi-square test of 64 equal bins over the range; false failure rate 1e-4 per case."""
    words = expand_mask(os.urandom(32), 200_000, bits)
    assert words.dtype == (np.uint32 if bits <= 32 else np.uint64)
    assert int(words.max()) < 1 << bits
    bins = (words >> np.uint64(bits - 6)).astype(np.int64) if bits > 6 else words
    counts = np.bincount(bins, minlength=64)
    assert stats.chisquare(counts).pvalue > 1e-4
    assert not np.array_equal(words, expand_mask(os.urandom(32), 200_000, bits))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 50), bits=st.sampled_from([16, 24, 32]), seed=st.integers(0, 2**32))
def test_quantised_sums_stay_within_the_documented_bound(n: int, bits: int, seed: int) -> None:
    q = Quantiser(bits, clip_range=0.7, max_summands=n)
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1, 1, (n, 64))
    words = [q.quantise(v, rng) for v in values]
    total = np.zeros(64, np.uint64)
    for w in words:
        total += w
    summed = q.dequantise(total & np.uint64(q.modulus - 1))
    exact = np.clip(values, -0.7, 0.7).sum(axis=0)
    assert np.abs(summed - exact).max() < q.error_bound(n)


def test_stochastic_rounding_is_unbiased() -> None:
    q = Quantiser(8, clip_range=1.0, max_summands=1)  # coarse: one unit is 1/126
    x = np.full(200_000, 0.3 / q.scale)  # 0.3 of a unit
    units = q.signed(q.quantise(x, np.random.default_rng(0)))
    assert set(np.unique(units)) == {0, 1}
    assert abs(units.mean() - 0.3) < 5 * np.sqrt(0.21 / x.size)  # 5 sigma


def test_the_encoding_weights_by_capped_examples_and_recovers_the_weighted_mean() -> None:
    enc = UpdateEncoding(Quantiser(32, 1.0, 3), weight_bound=100)
    rng = np.random.default_rng(1)
    ups = [rng.uniform(-0.5, 0.5, 10) for _ in range(3)]
    examples, losses = [10, 50, 400], [1.0, 2.0, 3.0]  # 400 counts as 100
    total = np.zeros(12, np.uint64)
    for u, e, loss in zip(ups, examples, losses, strict=True):
        total += enc.encode(u, e, loss, rng)
    d = enc.decode(total & np.uint64(enc.quantiser.modulus - 1), 3)
    w = np.array([10, 50, 100.0])
    assert d.num_examples == 160
    assert d.summed.weight == 160.0
    want = (w[:, None] * np.array(ups)).sum(axis=0) / w.sum()
    bound = 100 * 3 / (enc.quantiser.scale * 160)
    assert np.abs(d.summed.total / d.summed.weight - want).max() < bound
    assert d.train_loss == pytest.approx(float(w @ losses / w.sum()), abs=1e-4)
