"""The PyTorch learner against plain PyTorch written out by hand."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.driver import run_rounds
from fedswarm.presets import fedavg
from fedswarm.pytorch.learner import TorchLearner, batch_indices
from fedswarm.pytorch.models import CNN, MLP, CharLSTM
from fedswarm.pytorch.params import load_params, module_params
from fedswarm.seeding import client_seed
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.strategy import RunInfo
from fedswarm.training import GradientCorrection, LocalTraining, OptimizerKind


def _data(n: int = 53, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return ArrayDataset(x, y)


def _model() -> nn.Module:
    return MLP(6, (8,), 3)


def _manual_sgd(
    start: nn.Module,
    data: ArrayDataset,
    batches: list[torch.Tensor],
    lr: float,
    penalty: object = None,
) -> nn.Module:
    """Reference: the textbook loop, with an optional extra loss term of the parameters."""
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    opt = torch.optim.SGD(start.parameters(), lr=lr)
    for idx in batches:
        opt.zero_grad()
        loss = F.cross_entropy(start(x[idx]), y[idx])
        if callable(penalty):
            loss = loss + penalty(start)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return start


def test_batches_cover_each_epoch_once_and_steps_cycle() -> None:
    epochs = list(batch_indices(23, LocalTraining(batch_size=5, lr=0.1, epochs=2), seed=3))
    assert [len(b) for b in epochs] == [5, 5, 5, 5, 3] * 2
    assert sorted(torch.cat(epochs[:5]).tolist()) == list(range(23))
    assert sorted(torch.cat(epochs[5:]).tolist()) == list(range(23))
    assert not torch.equal(torch.cat(epochs[:5]), torch.cat(epochs[5:]))  # reshuffled
    steps = list(batch_indices(23, LocalTraining(batch_size=5, lr=0.1, epochs=None, steps=7), 3))
    assert [len(b) for b in steps] == [5, 5, 5, 5, 3, 5, 5]
    assert list(batch_indices(0, LocalTraining(batch_size=5, lr=0.1), 3)) == []


@pytest.mark.parametrize("rounds", [1, 3])
def test_one_client_fedavg_equals_centralised_sgd(rounds: int) -> None:
    data = _data()
    training = LocalTraining(batch_size=8, lr=0.1, epochs=1)
    learner = TorchLearner(_model)
    strategy = fedavg(training)
    transport = InMemoryTransport(
        ["solo"], lambda cid: ClientApp(cid, learner, ClientData(data, data))
    )
    start = strategy.init(learner.init_params(seed=1))
    final = run_rounds(strategy, transport, start, rounds=rounds, run=RunInfo("r", 7))

    reference = _model()
    load_params(reference, start.params)
    for rnd in range(1, rounds + 1):  # each round is one epoch with that round's batch order
        batches = list(batch_indices(len(data), training, client_seed(7, rnd, "solo")))
        reference = _manual_sgd(reference, data, batches, lr=0.1)
    expected = module_params(reference).flat
    np.testing.assert_allclose(final.params.flat, expected, rtol=0, atol=2e-6)
    assert not np.allclose(final.params.flat, start.params.flat)


def test_prox_correction_is_the_gradient_of_the_proximal_term() -> None:
    data, mu = _data(), 0.7
    learner = TorchLearner(_model)
    params = learner.init_params(seed=2)
    training = LocalTraining(batch_size=10, lr=0.2, epochs=3)
    fit = learner.fit(params, data, training, GradientCorrection(mu=mu), seed=5)

    anchor = {k: torch.from_numpy(v.copy()) for k, v in params.arrays().items()}

    def prox(m: nn.Module) -> torch.Tensor:
        return sum(((p - anchor[k]) ** 2).sum() for k, p in m.named_parameters()) * mu / 2  # type: ignore[return-value]

    reference = _model()
    load_params(reference, params)
    batches = list(batch_indices(len(data), training, seed=5))
    expected = module_params(_manual_sgd(reference, data, batches, 0.2, prox)).flat
    np.testing.assert_allclose(fit.params, expected, rtol=0, atol=1e-6)
    plain = learner.fit(params, data, training, GradientCorrection(), seed=5)
    assert not np.allclose(plain.params, fit.params, atol=1e-4)  # the term mattered


def test_shift_correction_adds_a_linear_term() -> None:
    data = _data()
    learner = TorchLearner(_model)
    params = learner.init_params(seed=4)
    shift = np.random.default_rng(0).normal(scale=0.1, size=params.dim).astype(np.float32)
    training = LocalTraining(batch_size=16, lr=0.1, epochs=2)
    fit = learner.fit(params, data, training, GradientCorrection(shift=shift), seed=9)

    shifts = {k: torch.from_numpy(v.copy()) for k, v in params.spec.unflatten(shift).items()}

    def linear(m: nn.Module) -> torch.Tensor:
        return sum((p * shifts[k]).sum() for k, p in m.named_parameters())  # type: ignore[return-value]

    reference = _model()
    load_params(reference, params)
    batches = list(batch_indices(len(data), training, seed=9))
    expected = module_params(_manual_sgd(reference, data, batches, 0.1, linear)).flat
    np.testing.assert_allclose(fit.params, expected, rtol=0, atol=1e-6)


def test_fit_reports_steps_examples_and_is_deterministic() -> None:
    data = _data(40)
    learner = TorchLearner(_model)
    params = learner.init_params(seed=0)
    training = LocalTraining(
        batch_size=16, lr=0.05, epochs=None, steps=5, optimizer=OptimizerKind.ADAM
    )
    a = learner.fit(params, data, training, GradientCorrection(), seed=1)
    b = learner.fit(params, data, training, GradientCorrection(), seed=1)
    c = learner.fit(params, data, training, GradientCorrection(), seed=2)
    assert (a.num_steps, a.num_examples) == (5, 40)
    assert np.array_equal(a.params, b.params)
    assert a.train_loss == b.train_loss
    assert not np.array_equal(a.params, c.params)
    np.testing.assert_array_equal(params.flat, learner.init_params(seed=0).flat)  # not mutated


def _stateful_model() -> nn.Module:
    """Buffers that training moves (BatchNorm) and randomness in forward (dropout)."""
    return nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3)
    )


REUSE_TRAININGS = [
    LocalTraining(batch_size=8, lr=0.1, epochs=2, momentum=0.9, weight_decay=0.01),
    LocalTraining(batch_size=8, lr=0.01, epochs=None, steps=6, optimizer=OptimizerKind.ADAM),
]


@pytest.mark.parametrize("make_model", [_model, _stateful_model], ids=["mlp", "batchnorm"])
def test_a_reused_learner_fits_as_a_fresh_one(make_model: Callable[[], nn.Module]) -> None:
    """One learner runs many tasks on one model; each equals a fresh learner's task,
    whatever ran before it (other parameters, optimiser state, evaluation)."""
    learner = TorchLearner(make_model)
    tasks = [
        (learner.init_params(seed), _data(30 + 2 * seed, seed), training, seed)
        for seed in range(4)
        for training in REUSE_TRAININGS
    ]
    for params, data, training, seed in tasks * 2:
        got = learner.fit(params, data, training, GradientCorrection(mu=0.1), seed)
        fresh = TorchLearner(make_model).fit(
            params, data, training, GradientCorrection(mu=0.1), seed
        )
        np.testing.assert_array_equal(got.params, fresh.params)
        assert got.train_loss == fresh.train_loss
        assert learner.evaluate(params, data) == TorchLearner(make_model).evaluate(params, data)


def test_learner_threads_and_pickled_copies_train_alike() -> None:
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    learner = TorchLearner(_model)
    params, training = learner.init_params(1), REUSE_TRAININGS[0]
    seeds = list(range(8))
    expected = [learner.fit(params, _data(), training, GradientCorrection(), s) for s in seeds]
    with ThreadPoolExecutor(4) as pool:  # each thread gets its own model
        threaded = list(
            pool.map(
                lambda s: learner.fit(params, _data(), training, GradientCorrection(), s), seeds
            )
        )
    copy = pickle.loads(pickle.dumps(learner))
    assert copy == learner
    copied = [copy.fit(params, _data(), training, GradientCorrection(), s) for s in seeds]
    for e, t, c in zip(expected, threaded, copied, strict=True):
        np.testing.assert_array_equal(t.params, e.params)
        np.testing.assert_array_equal(c.params, e.params)


def test_evaluate_matches_manual_loss_and_accuracy() -> None:
    data = _data(101)
    learner = TorchLearner(_model, eval_batch_size=17)  # several uneven batches
    params = learner.init_params(seed=3)
    model = _model()
    load_params(model, params)
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x))
        loss = float(F.cross_entropy(logits, torch.from_numpy(data.y)))
        acc = float((logits.argmax(1) == torch.from_numpy(data.y)).float().mean())
    ev = learner.evaluate(params, data)
    assert ev.num_examples == 101
    assert ev.loss == pytest.approx(loss, rel=1e-5)
    assert ev.accuracy == pytest.approx(acc)
    empty = learner.evaluate(params, ArrayDataset(data.x[:0], data.y[:0]))
    assert empty.num_examples == 0


def test_params_round_trip_with_integer_buffers() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model(torch.randn(8, 3))  # move the running statistics and the int64 counter
    params = module_params(model)
    assert "1.num_batches_tracked" in params.spec.names
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    load_params(other, params)
    for (k, v), w in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert v.dtype == w.dtype, k
        assert torch.equal(v, w), k
    with pytest.raises(ValueError, match="do not fit this model"):
        load_params(nn.Linear(3, 4), params)
    with pytest.raises(ValueError, match="do not fit this model"):  # same names, other shapes
        load_params(nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5)), params)


@pytest.mark.parametrize(
    ("model", "x"),
    [
        (CNN(1, 28, (4, 8), 16, 10), torch.zeros(2, 1, 28, 28)),
        (CharLSTM(30, 8, 16, 2), torch.zeros(2, 80, dtype=torch.int64)),
        (MLP(64, (), 10), torch.zeros(2, 64)),
    ],
)
def test_models_produce_logits_per_class(model: nn.Module, x: torch.Tensor) -> None:
    out = model(x)
    assert out.shape[0] == 2
    assert out.shape[1] in (10, 30)
