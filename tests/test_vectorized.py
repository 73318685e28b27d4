"""The vectorised learner against the sequential TorchLearner, client by client."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fedswarm.data.arrays import ArrayDataset
from fedswarm.learner import Learner
from fedswarm.params import Params
from fedswarm.pytorch import vectorized
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.models import CNN, MLP, CharLSTM, LogisticRegression
from fedswarm.pytorch.vectorized import NotVectorizable, VectorizedTorchLearner, vectorizable
from fedswarm.training import GradientCorrection, LocalFit, LocalTraining, OptimizerKind

ModelFn = Callable[[], nn.Module]

# With batch size 8: several full batches and a short one, less than one batch, no data.
SIZES = (23, 7, 0, 40, 13)
SEEDS = (11, 12, 13, 14, 15)

TRAININGS = {
    "sgd-2-epochs": LocalTraining(batch_size=8, lr=0.1, epochs=2),
    "momentum-decay-steps": LocalTraining(
        batch_size=8, lr=0.05, epochs=None, steps=6, momentum=0.9, weight_decay=0.01
    ),
    "adam-decay-2-epochs": LocalTraining(
        batch_size=8, lr=0.01, epochs=2, optimizer=OptimizerKind.ADAM, weight_decay=0.01
    ),
    "adam-steps": LocalTraining(
        batch_size=8, lr=0.01, epochs=None, steps=7, optimizer=OptimizerKind.ADAM
    ),
}


def _mlp() -> nn.Module:
    return MLP(6, (8,), 3)


def _cnn() -> nn.Module:
    return CNN(1, 8, (2, 3), 8, 3)


def _tabular(n: int, seed: int) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return ArrayDataset(x, y)


def _images(n: int, seed: int) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    return ArrayDataset(x, rng.integers(0, 3, size=n))


MODELS: dict[str, tuple[ModelFn, Callable[[int, int], ArrayDataset]]] = {
    "mlp": (_mlp, _tabular),
    "cnn": (_cnn, _images),
}


def _corrections(params: Params) -> list[GradientCorrection]:
    """Per client: none, FedProx, SCAFFOLD shift, both, a stronger FedProx."""
    shift = np.random.default_rng(0).normal(scale=0.1, size=params.dim).astype(np.float32)
    return [
        GradientCorrection(),
        GradientCorrection(mu=0.5),
        GradientCorrection(shift=shift),
        GradientCorrection(mu=0.2, shift=-shift),
        GradientCorrection(mu=1.0),
    ]


def _sequential(
    model_fn: ModelFn,
    params: Params,
    datasets: Sequence[ArrayDataset],
    training: LocalTraining,
    corrections: Sequence[GradientCorrection],
    seeds: Sequence[int],
) -> list[LocalFit]:
    learner = TorchLearner(model_fn)
    return [
        learner.fit(params, d, training, c, s)
        for d, c, s in zip(datasets, corrections, seeds, strict=True)
    ]


def _assert_same_fits(got: Sequence[LocalFit], expected: Sequence[LocalFit]) -> None:
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert (g.num_examples, g.num_steps) == (e.num_examples, e.num_steps), k
        assert g.params.dtype == np.float32
        np.testing.assert_allclose(g.params, e.params, rtol=0, atol=1e-5, err_msg=f"client {k}")
        assert g.train_loss == pytest.approx(e.train_loss, rel=1e-4), k


@pytest.mark.parametrize("training", TRAININGS.values(), ids=list(TRAININGS))
@pytest.mark.parametrize("model", list(MODELS))
def test_fit_many_equals_sequential_fit_per_client(model: str, training: LocalTraining) -> None:
    model_fn, make_data = MODELS[model]
    datasets = [make_data(n, seed) for seed, n in enumerate(SIZES)]
    learner = VectorizedTorchLearner(model_fn)
    params = learner.init_params(seed=3)
    corrections = _corrections(params)
    got = learner.fit_many(params, datasets, training, corrections, SEEDS)
    _assert_same_fits(got, _sequential(model_fn, params, datasets, training, corrections, SEEDS))
    empty = got[SIZES.index(0)]
    assert (empty.num_steps, empty.train_loss) == (0, 0.0)
    np.testing.assert_array_equal(empty.params, params.flat)  # frozen bit for bit
    assert not np.allclose(got[0].params, params.flat, atol=1e-4)  # the others trained
    np.testing.assert_array_equal(params.flat, learner.init_params(seed=3).flat)  # not mutated


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 19), min_size=1, max_size=4),
    batch_size=st.integers(1, 8),
    epochs=st.integers(1, 2),
    momentum=st.sampled_from([0.0, 0.9]),
)
def test_any_client_sizes_match_sequential(
    sizes: list[int], batch_size: int, epochs: int, momentum: float
) -> None:
    datasets = [_tabular(n, seed) for seed, n in enumerate(sizes)]
    training = LocalTraining(batch_size=batch_size, lr=0.1, epochs=epochs, momentum=momentum)
    learner = VectorizedTorchLearner(_mlp)
    params = learner.init_params(seed=0)
    corrections = [GradientCorrection(mu=0.1 * k) for k in range(len(sizes))]
    seeds = list(range(len(sizes)))
    got = learner.fit_many(params, datasets, training, corrections, seeds)
    _assert_same_fits(got, _sequential(_mlp, params, datasets, training, corrections, seeds))


def _smoothed_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets, label_smoothing=0.1)


@pytest.mark.parametrize("model", list(MODELS))
def test_a_custom_loss_is_applied_sample_by_sample(model: str) -> None:
    """Losses other than the default cross-entropy go through a per-sample vmap."""
    model_fn, make_data = MODELS[model]
    datasets = [make_data(n, seed) for seed, n in enumerate(SIZES)]
    training = TRAININGS["sgd-2-epochs"]
    learner = VectorizedTorchLearner(model_fn, loss_fn=_smoothed_loss)
    params = learner.init_params(seed=3)
    corrections = [GradientCorrection()] * len(SIZES)
    got = learner.fit_many(params, datasets, training, corrections, SEEDS)
    sequential = TorchLearner(model_fn, loss_fn=_smoothed_loss)
    expected = [
        sequential.fit(params, d, training, c, s)
        for d, c, s in zip(datasets, corrections, SEEDS, strict=True)
    ]
    _assert_same_fits(got, expected)
    plain = VectorizedTorchLearner(model_fn).fit_many(
        params, datasets, training, corrections, SEEDS
    )
    assert not np.allclose(got[0].params, plain[0].params, atol=1e-6)  # the loss mattered


def test_chunks_give_the_same_result_as_one_chunk() -> None:
    datasets = [_tabular(n, seed) for seed, n in enumerate(SIZES)]
    training = TRAININGS["momentum-decay-steps"]
    whole = VectorizedTorchLearner(_mlp)
    params = whole.init_params(seed=1)
    corrections = _corrections(params)
    expected = whole.fit_many(params, datasets, training, corrections, SEEDS)
    for size in (1, 2, 10):
        chunked = VectorizedTorchLearner(_mlp, max_clients_per_chunk=size)
        got = chunked.fit_many(params, datasets, training, corrections, SEEDS)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g.params, e.params, rtol=0, atol=1e-6)
            assert g.num_steps == e.num_steps
            assert g.train_loss == pytest.approx(e.train_loss, rel=1e-6)


def test_default_chunks_hold_about_chunk_floats_values(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = [_tabular(n, seed) for seed, n in enumerate(SIZES)]
    training = TRAININGS["sgd-2-epochs"]
    learner = VectorizedTorchLearner(_mlp)
    params = learner.init_params(seed=1)
    corrections = _corrections(params)
    expected = VectorizedTorchLearner(_mlp, max_clients_per_chunk=len(SIZES)).fit_many(
        params, datasets, training, corrections, SEEDS
    )
    chunks: list[int] = []
    fit_chunk = VectorizedTorchLearner._fit_chunk

    def spy(self: VectorizedTorchLearner, *args: Any) -> list[LocalFit]:
        chunks.append(len(args[2]))  # the chunk's datasets
        return fit_chunk(self, *args)

    monkeypatch.setattr(vectorized, "CHUNK_FLOATS", 2 * params.dim + 1)
    monkeypatch.setattr(VectorizedTorchLearner, "_fit_chunk", spy)
    got = learner.fit_many(params, datasets, training, corrections, SEEDS)
    assert chunks == [2, 2, 1]
    _assert_same_fits(got, expected)


def test_is_a_drop_in_learner() -> None:
    learner: Learner = VectorizedTorchLearner(_mlp)
    sequential = TorchLearner(_mlp)
    params = learner.init_params(seed=5)
    np.testing.assert_array_equal(params.flat, sequential.init_params(seed=5).flat)
    data, training = _tabular(30, 1), TRAININGS["adam-decay-2-epochs"]
    _assert_same_fits(
        [learner.fit(params, data, training, GradientCorrection(mu=0.3), seed=2)],
        [sequential.fit(params, data, training, GradientCorrection(mu=0.3), seed=2)],
    )
    assert learner.evaluate(params, data) == sequential.evaluate(params, data)
    assert VectorizedTorchLearner(_mlp).fit_many(params, [], training, [], []) == []


class _PartlyFrozen(nn.Module):
    """A frozen layer and an unused one: the sequential optimiser never touches either."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(6, 6)
        self.frozen.requires_grad_(False)
        self.unused = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(torch.relu(self.frozen(x)))
        return out


def test_parameters_without_gradient_stay_as_the_sequential_learner_leaves_them() -> None:
    datasets = [_tabular(n, seed) for seed, n in enumerate(SIZES)]
    training = TRAININGS["momentum-decay-steps"]  # decay and prox would move them otherwise
    learner = VectorizedTorchLearner(_PartlyFrozen)
    params = learner.init_params(seed=0)
    corrections = _corrections(params)
    got = learner.fit_many(params, datasets, training, corrections, SEEDS)
    _assert_same_fits(
        got, _sequential(_PartlyFrozen, params, datasets, training, corrections, SEEDS)
    )
    head = params.spec.names.index("head.weight")
    still = slice(0, params.spec.offsets[head])
    np.testing.assert_array_equal(got[0].params[still], params.flat[still])


class _FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.linear(x), 0.3, self.training)


def _batchnorm() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))


def _dropout() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 3))


def _lstm() -> nn.Module:
    return CharLSTM(6, 4, 8, 1)


@pytest.mark.parametrize(
    ("model_fn", "reason"),
    [(_batchnorm, "buffers"), (_dropout, "dropout"), (_lstm, "batching rule")],
    ids=["batchnorm", "dropout", "lstm"],
)
def test_unsupported_models_are_named_with_the_reason(model_fn: ModelFn, reason: str) -> None:
    assert reason in (vectorizable(model_fn) or "")
    learner = VectorizedTorchLearner(model_fn)
    params = learner.init_params(seed=0)
    data = _tabular(4, 0)  # refused before any data is touched
    with pytest.raises(NotVectorizable, match=reason):
        learner.fit_many(params, [data], TRAININGS["sgd-2-epochs"], [GradientCorrection()], [0])


def test_random_operations_in_forward_are_caught_at_fit_time() -> None:
    assert vectorizable(_FunctionalDropout) is None  # invisible to the static checks
    learner = VectorizedTorchLearner(_FunctionalDropout)
    params, data = learner.init_params(seed=0), _tabular(10, 0)
    with pytest.raises(NotVectorizable, match="random operation"):
        learner.fit(params, data, TRAININGS["sgd-2-epochs"], GradientCorrection(), 0)


@pytest.mark.parametrize(
    "model_fn", [_mlp, _cnn, lambda: LogisticRegression(6, 3), lambda: nn.Dropout(0.0)]
)
def test_plain_parameter_models_are_vectorizable(model_fn: ModelFn) -> None:
    assert vectorizable(model_fn) is None


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_clients_per_chunk"):
        VectorizedTorchLearner(_mlp, max_clients_per_chunk=0)
    learner = VectorizedTorchLearner(_mlp)
    params, data, training = learner.init_params(0), _tabular(5, 0), TRAININGS["sgd-2-epochs"]
    with pytest.raises(ValueError, match="one correction and one seed per dataset"):
        learner.fit_many(params, [data, data], training, [GradientCorrection()], [0, 1])
    with pytest.raises(ValueError, match="shift has shape"):
        learner.fit(params, data, training, GradientCorrection(shift=np.zeros(3, np.float32)), 0)
    images = _images(5, 0)
    with pytest.raises(ValueError, match="client 1's samples"):
        learner.fit_many(params, [data, images], training, [GradientCorrection()] * 2, [0, 1])
