"""Aggregation kernels against a float64 reference, with Hypothesis for the inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedswarm.aggregation import (
    AggregationContext,
    MeanAccumulator,
    StreamingAggregator,
    WeightedMean,
    Weighting,
    client_weights,
    stack,
    weighted_mean,
)
from fedswarm.params import Params

SETTINGS = settings(max_examples=60, deadline=None)

finite32 = st.floats(-1e3, 1e3, width=32)
weight = st.floats(0.0, 1e3)


@st.composite
def updates_and_weights(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """``(clients, dim)`` float32 updates and non-negative weights with a positive sum."""
    clients = draw(st.integers(1, 6))
    dim = draw(st.integers(1, 5))
    updates = draw(hnp.arrays(np.float32, (clients, dim), elements=finite32))
    weights = draw(hnp.arrays(np.float64, (clients,), elements=weight))
    heavy = draw(st.integers(0, clients - 1))
    weights[heavy] = draw(st.floats(1e-3, 1e3))  # at least one client carries weight
    return updates, weights


def reference(updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_k w_k u_k / sum_k w_k``, a Python loop in float64."""
    total = np.zeros(updates.shape[1], np.float64)
    for w_k, u_k in zip(weights.tolist(), updates.astype(np.float64), strict=True):
        total += w_k * u_k
    denominator: float = sum(weights.tolist())
    return total / denominator


def assert_close(actual: np.ndarray, expected: np.ndarray, scale: float) -> None:
    # float32 output: one rounding of a float64 result, plus cancellation relative to scale.
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6 * max(scale, 1.0))


@SETTINGS
@given(updates_and_weights())
def test_weighted_mean_matches_the_float64_reference(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    updates, weights = case
    before = (updates.copy(), weights.copy())
    out = weighted_mean(updates, weights)
    assert out.dtype == np.float32
    assert out.shape == (updates.shape[1],)
    assert_close(out, reference(updates, weights), float(np.abs(updates).max()))
    np.testing.assert_array_equal(updates, before[0])  # inputs untouched
    np.testing.assert_array_equal(weights, before[1])


@SETTINGS
@given(hnp.arrays(np.float32, st.integers(1, 8), elements=finite32), st.floats(1e-3, 1e6))
def test_one_client_gets_its_own_update_back(update: np.ndarray, w: float) -> None:
    out = weighted_mean(update[None, :], np.array([w]))
    np.testing.assert_array_equal(out, update)


@SETTINGS
@given(updates_and_weights(), st.data())
def test_a_zero_weight_client_changes_nothing(
    case: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    updates, weights = case
    any_finite = st.floats(width=32, allow_nan=False, allow_infinity=False)
    extra = data.draw(hnp.arrays(np.float32, (updates.shape[1],), elements=any_finite))
    at = data.draw(st.integers(0, len(weights)))
    with_extra = weighted_mean(np.insert(updates, at, extra, axis=0), np.insert(weights, at, 0.0))
    assert_close(with_extra, weighted_mean(updates, weights), float(np.abs(updates).max()))


@SETTINGS
@given(updates_and_weights(), st.data())
def test_client_order_does_not_matter(
    case: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    updates, weights = case
    perm = data.draw(st.permutations(range(len(weights))))
    permuted = weighted_mean(updates[perm], weights[perm])
    assert_close(permuted, weighted_mean(updates, weights), float(np.abs(updates).max()))


@SETTINGS
@given(updates_and_weights(), st.floats(1e-3, 1e3))
def test_uniform_weights_give_the_plain_mean(case: tuple[np.ndarray, np.ndarray], w: float) -> None:
    updates, _ = case
    out = weighted_mean(updates, np.full(len(updates), w))
    plain = updates.astype(np.float64).mean(axis=0)
    assert_close(out, plain, float(np.abs(updates).max()))


@SETTINGS
@given(updates_and_weights(), st.floats(1e-3, 1e3))
def test_scaling_all_weights_changes_nothing(
    case: tuple[np.ndarray, np.ndarray], factor: float
) -> None:
    updates, weights = case
    scaled = weighted_mean(updates, weights * factor)
    assert_close(scaled, weighted_mean(updates, weights), float(np.abs(updates).max()))


def test_hand_computed_example() -> None:
    updates = np.array([[1.0, 2.0], [3.0, 6.0]], np.float32)
    # (1 * [1, 2] + 3 * [3, 6]) / 4 = [10, 20] / 4
    np.testing.assert_array_equal(weighted_mean(updates, np.array([1.0, 3.0])), [2.5, 5.0])
    # Three clients, the last with no weight and a wild update.
    with_idle = np.vstack([updates, [[1e30, -1e30]]]).astype(np.float32)
    np.testing.assert_array_equal(weighted_mean(with_idle, np.array([1.0, 3.0, 0.0])), [2.5, 5.0])


@pytest.mark.parametrize("clients", [1, 3])
def test_all_zero_weights_are_refused(clients: int) -> None:
    with pytest.raises(ValueError, match="sum to zero"):
        weighted_mean(np.ones((clients, 2), np.float32), np.zeros(clients))


@pytest.mark.parametrize(
    "weights", [[1.0, -1.0], [1.0, np.nan], [1.0, np.inf]], ids=["negative", "nan", "inf"]
)
def test_bad_weights_are_refused(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="finite and non-negative"):
        weighted_mean(np.ones((2, 3), np.float32), np.array(weights))


def test_shape_errors_say_what_was_given() -> None:
    with pytest.raises(ValueError, match=r"\(clients, dim\) matrix, got shape \(3,\)"):
        weighted_mean(np.ones(3, np.float32), np.ones(3))
    with pytest.raises(ValueError, match=r"weights shape \(2,\) does not match 3 clients"):
        weighted_mean(np.ones((3, 4), np.float32), np.ones(2))


def test_stack_builds_a_float32_matrix() -> None:
    out = stack([np.array([1.0, 2.0]), np.array([3.0, 4.0], np.float32)])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.0, 2.0], [3.0, 4.0]])


def test_stack_refuses_nothing_and_ragged_or_non_flat_vectors() -> None:
    with pytest.raises(ValueError, match="zero updates"):
        stack([])
    with pytest.raises(ValueError, match="one length"):
        stack([np.zeros(2, np.float32), np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match="flat vectors"):
        stack([np.zeros((2, 2), np.float32)])
    with pytest.raises(ValueError, match="flat vectors"):
        stack([np.float32(1.0) * np.ones(())])


def test_client_weights() -> None:
    np.testing.assert_array_equal(client_weights([3, 0, 5], Weighting.EXAMPLES), [3.0, 0.0, 5.0])
    np.testing.assert_array_equal(client_weights([3, 0, 5], Weighting.UNIFORM), [1.0, 1.0, 1.0])
    assert client_weights([3], Weighting.EXAMPLES).dtype == np.float64


def _exact_mean(updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The correctly rounded weighted mean, column by column with math.fsum."""
    import math

    total = math.fsum(weights)
    cols = [
        math.fsum(float(u) * float(w) for u, w in zip(col, weights, strict=True))
        for col in updates.T
    ]
    return (np.array(cols) / total).astype(np.float32)


def test_streamed_mean_is_exact_and_the_same_in_any_arrival_order() -> None:
    rng = np.random.default_rng(7)
    scales = rng.lognormal(0, 4, size=(40, 1)).astype(np.float32)  # wildly different sizes
    updates = (rng.normal(size=(40, 257)) * scales).astype(np.float32)
    weights = rng.integers(0, 500, 40).astype(np.float64)
    weights[0] = 3.0
    stacked = weighted_mean(updates, weights)
    np.testing.assert_array_equal(stacked, _exact_mean(updates, weights))
    for _ in range(5):  # uploads arriving in another order, folded one at a time
        acc = MeanAccumulator(257)
        for k in rng.permutation(40):
            acc.add(updates[k], float(weights[k]))
        np.testing.assert_array_equal(acc.mean(), stacked)
        assert acc.count == 40


def test_the_accumulator_refuses_what_it_cannot_fold() -> None:
    acc = MeanAccumulator(3)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(3,\)"):
        acc.add(np.zeros(2, np.float32), 1.0)
    with pytest.raises(ValueError, match="finite and non-negative"):
        acc.add(np.zeros(3, np.float32), float("nan"))
    acc.add(np.ones(3, np.float32), 0.0)
    with pytest.raises(ValueError, match="no client carries any weight"):
        acc.mean()


@SETTINGS
@given(updates_and_weights())
def test_the_mean_aggregator_stacked_and_streamed_gives_the_same_bits(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    updates, weights = case
    mean = WeightedMean()
    assert isinstance(mean, StreamingAggregator)
    ids = tuple(f"c{k}" for k in range(len(updates)))
    params = Params.from_arrays({"w": np.zeros(updates.shape[1], np.float32)})
    out = mean(updates, weights, AggregationContext(1, ids, params, np.random.default_rng(0)))
    np.testing.assert_array_equal(out.update, weighted_mean(updates, weights))
    assert out.scores == {}
    acc = mean.accumulator(updates.shape[1])
    for u, w in zip(updates, weights, strict=True):  # the rows one at a time, as they arrive
        acc.add(u, float(w))
    summed = acc.summed()
    assert summed.weight == pytest.approx(float(weights.sum()))
    assert summed.count == len(updates)
    assert summed.total.dtype == np.float64
    np.testing.assert_array_equal(summed.mean(), out.update)


def test_the_sum_is_the_weighted_sum_and_the_weight_its_total() -> None:
    acc = MeanAccumulator(2)
    acc.add(np.array([1.0, 2.0], np.float32), 1.0)
    acc.add(np.array([3.0, 6.0], np.float32), 3.0)
    acc.add(np.array([1e30, -1e30], np.float32), 0.0)  # counted, weighs nothing
    summed = acc.summed()
    np.testing.assert_array_equal(summed.total, [10.0, 20.0])
    assert (summed.weight, summed.count) == (4.0, 3)
    np.testing.assert_array_equal(summed.mean(), acc.mean())
