"""Update transforms: applied by the participant, to what it sends, and only to that."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedswarm.client import ClientApp
from fedswarm.data.digits import load_digits
from fedswarm.presets import fedavg, scaffold
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.models import MLP
from fedswarm.run.build import build_strategy
from fedswarm.run.config import parse_config
from fedswarm.strategy import RunInfo
from fedswarm.training import LocalTraining
from fedswarm.transforms import ClipNorm, TransformRandomness

finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@given(arrays(np.float32, st.integers(1, 40), elements=finite), st.floats(0.01, 100))
def test_clip_norm_bounds_the_norm_and_keeps_the_direction(u: np.ndarray, c: float) -> None:
    out = ClipNorm(c).apply(u, TransformRandomness(0, np.random.default_rng(0)))
    norm = float(np.linalg.norm(u.astype(np.float64)))
    assert float(np.linalg.norm(out.astype(np.float64))) <= c * (1 + 1e-5) + 1e-6
    if norm <= c:
        np.testing.assert_array_equal(out, u)  # short updates pass untouched
    else:
        np.testing.assert_allclose(out, u * (c / norm), rtol=1e-5, atol=1e-6)


def test_clip_norm_rejects_a_non_positive_bound() -> None:
    with pytest.raises(ValueError, match="max_norm"):
        ClipNorm(0.0)


def _one_fit(clip: float | None, algorithm: str) -> tuple[np.ndarray, np.ndarray | None]:
    data = load_digits(num_clients=2)
    learner = TorchLearner(lambda: MLP(64, (8,), 10))
    training = LocalTraining(batch_size=10, lr=0.1, epochs=1)
    strategy = fedavg(training) if algorithm == "fedavg" else scaffold(training)
    if clip is not None:
        strategy = replace(strategy, transforms=(ClipNorm(clip),))
    state = strategy.init(learner.init_params(seed=0))
    (cid, ins), _ = strategy.configure_fit(state, ["00000", "00001"], RunInfo("t", 0))
    res, memory = ClientApp(cid, learner, data.client(cid)).fit(ins, {})
    control = next(iter(memory.values())) if memory else None
    return res.update, control


def test_participant_sends_the_clipped_update_but_keeps_its_raw_state() -> None:
    raw, raw_control = _one_fit(None, "scaffold")
    clipped, clipped_control = _one_fit(0.05, "scaffold")
    assert float(np.linalg.norm(raw)) > 0.05
    assert float(np.linalg.norm(clipped)) == pytest.approx(0.05, rel=1e-5)
    np.testing.assert_allclose(clipped, raw * (0.05 / np.linalg.norm(raw)), rtol=1e-5, atol=1e-8)
    assert raw_control is not None
    assert clipped_control is not None
    np.testing.assert_array_equal(clipped_control, raw_control)  # c_i from the raw update


def test_a_bound_larger_than_any_update_changes_nothing() -> None:
    raw, _ = _one_fit(None, "fedavg")
    loose, _ = _one_fit(1e6, "fedavg")
    np.testing.assert_array_equal(raw, loose)


def test_config_clip_norm_reaches_every_instruction() -> None:
    strategy = build_strategy(parse_config({"strategy": {"name": "fedprox", "clip_norm": 2.5}}))
    assert strategy.transforms == (ClipNorm(2.5),)
