"""Attacks: each rule against its definition, and every attack taking effect identically
on the sequential and the vectorised backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from fedswarm.attacks import (
    ColludingAttack,
    add_trigger,
    backdoor,
    backdoor_test,
    flip_labels,
    malicious_app,
    malicious_clients,
    poison_update,
)
from fedswarm.attacks.colluding import alie, alie_z, ipm, min_max, min_sum
from fedswarm.attacks.config import AttackConfig
from fedswarm.client import ClientApp
from fedswarm.data.arrays import ArrayDataset, FederatedDataset
from fedswarm.data.digits import load_digits
from fedswarm.driver import run_rounds
from fedswarm.entropy import SimulatedSecrets
from fedswarm.learner import Learner
from fedswarm.messages import FitRes
from fedswarm.params import Params
from fedswarm.presets import fedavg
from fedswarm.pytorch.learner import TorchLearner
from fedswarm.pytorch.models import MLP
from fedswarm.run.config import loads_config
from fedswarm.simulation.backends import Backend, Job, SequentialBackend, VectorizedBackend
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.strategy import FitStrategy, RunInfo
from fedswarm.training import GradientCorrection, LocalFit, LocalTraining


def attack(text: str) -> AttackConfig:
    config = loads_config(f"[data]\nnum_clients = 10\n[attack]\n{text}\n")
    assert config.attack is not None
    return config.attack


# ---- the rules -------------------------------------------------------------------------


def test_per_participant_model_poisoning() -> None:
    u = np.array([1.0, -2.0, 0.5], np.float32)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(poison_update(u, attack("kind = 'sign_flip'"), rng), -4 * u)
    np.testing.assert_array_equal(
        poison_update(u, attack("kind = 'scaling'\nscale = 10.0"), rng), 10 * u
    )
    noise = poison_update(np.zeros(20_000, np.float32), attack("kind = 'gaussian'"), rng)
    assert abs(float(noise.std()) - 1.0) < 0.02
    np.testing.assert_array_equal(poison_update(u, attack("kind = 'label_flip'"), rng), u)


def test_alie_ipm_follow_their_papers() -> None:
    b = np.random.default_rng(0).normal(0, 1, (30, 7)).astype(np.float32)
    z = alie_z(50, 10)  # Baruch et al.: s = floor(50/2 + 1) - 10 = 16, z = Phi^-1(34/50)
    assert z == pytest.approx(0.4677, abs=1e-3)
    want = b.astype(np.float64).mean(0) - z * b.astype(np.float64).std(0)
    np.testing.assert_allclose(alie(b, z), want, rtol=1e-6)
    np.testing.assert_allclose(ipm(b, 0.5), -0.5 * b.astype(np.float64).mean(0), rtol=1e-6)


@pytest.mark.parametrize("rule", [min_max, min_sum])
def test_min_max_and_min_sum_push_to_the_edge_of_what_passes(rule: object) -> None:
    b = np.random.default_rng(1).normal(0, 1, (20, 10)).astype(np.float64)
    mal = rule(b.astype(np.float32)).astype(np.float64)  # type: ignore[operator]
    d2 = ((b[:, None] - b[None]) ** 2).sum(-1)
    dist = ((b - mal) ** 2).sum(1)
    limit, used = (d2.max(), dist.max()) if rule is min_max else (d2.sum(1).max(), dist.sum())
    assert used <= limit * (1 + 1e-6)
    assert used >= 0.95 * limit  # gamma as large as the limit allows (not a timid step)


def test_label_flip_and_backdoor_poison_only_the_training_split() -> None:
    data = load_digits(num_clients=4).client("00000")
    flipped = flip_labels(data, 10)
    np.testing.assert_array_equal(flipped.train.y, 9 - data.train.y)
    assert flipped.test is data.test
    bd = backdoor(data, target=7, fraction=0.5, size=2, rng=np.random.default_rng(0))
    changed = np.any(bd.train.x != data.train.x, axis=1)
    assert abs(int((bd.train.y == 7).sum() - (data.train.y == 7).sum())) <= changed.sum()
    assert changed.sum() <= round(0.5 * len(data.train.y))
    assert np.all(bd.train.y[changed] == 7)
    square = add_trigger(data.train.x[:1], 2, 16.0).reshape(8, 8)
    assert np.all(square[-2:, -2:] == 16.0)
    test = backdoor_test(data.test, 7, 2, 16.0)
    assert np.all(test.y == 7)
    assert len(test) == int((data.test.y != 7).sum())


def test_attackers_come_from_the_seed() -> None:
    ids = [f"{i:05d}" for i in range(100)]
    a = malicious_clients(ids, attack("kind = 'sign_flip'"), seed=3)
    assert len(a) == 20
    assert a == malicious_clients(list(reversed(ids)), attack("kind = 'sign_flip'"), seed=3)
    assert a != malicious_clients(ids, attack("kind = 'sign_flip'"), seed=4)
    assert len(malicious_clients(ids, attack("kind = 'ipm'\ncount = 7"), seed=3)) == 7


# ---- every backend alike ---------------------------------------------------------------


class LoopBatchLearner(TorchLearner):
    """A batch learner whose ``fit_many`` is ``fit`` per participant: the batched path of
    the vectorised backend, with the sequential numerics, so results compare bit for bit.
    ``trained`` counts participants that went through ``fit_many``."""

    trained = 0

    def fit_many(
        self,
        params: Params,
        datasets: Sequence[ArrayDataset],
        training: LocalTraining,
        corrections: Sequence[GradientCorrection],
        seeds: Sequence[int],
    ) -> list[LocalFit]:
        LoopBatchLearner.trained += len(datasets)
        return [
            self.fit(params, d, training, c, s)
            for d, c, s in zip(datasets, corrections, seeds, strict=True)
        ]


TRAINING = LocalTraining(batch_size=10, lr=0.05, epochs=1)
RUN = RunInfo("t", 0)
ATTACKS = [
    "kind = 'sign_flip'",
    "kind = 'gaussian'\nsigma = 0.1",
    "kind = 'scaling'",
    "kind = 'label_flip'",
    "kind = 'backdoor'\ntarget = 3\ntrigger = 2",
    "kind = 'alie'",
    "kind = 'min_max'",
]


def train(
    data: FederatedDataset, learner: Learner, backend: Backend, text: str | None
) -> np.ndarray:
    cfg = attack(text) if text else None
    bad = malicious_clients(data.client_ids(), cfg, 0) if cfg else frozenset()

    def make(cid: str) -> ClientApp:
        app = ClientApp(cid, learner, data.client(cid), secrets=SimulatedSecrets(0, cid))
        return malicious_app(app, cfg, 10, 0) if cfg and cid in bad else app

    strategy: FitStrategy = fedavg(TRAINING)
    if cfg is not None and cfg.attack_kind.value in {"alie", "min_max"}:
        strategy = ColludingAttack(fedavg(TRAINING), bad, cfg)
    transport = InMemoryTransport(list(data.client_ids()), make, backend=backend)
    start = strategy.init(learner.init_params(seed=0))
    final = run_rounds(strategy, transport, start, rounds=2, run=RUN)
    return np.asarray(final.params.flat)


@pytest.fixture(scope="module")
def digits() -> FederatedDataset:
    return load_digits(num_clients=10)


@pytest.mark.parametrize("text", ATTACKS)
def test_an_attack_takes_effect_under_the_vectorised_backend_as_under_the_sequential(
    digits: FederatedDataset, text: str
) -> None:
    learner = LoopBatchLearner(lambda: MLP(64, (16,), 10))
    clean = train(digits, learner, SequentialBackend(), None)
    sequential = train(digits, learner, SequentialBackend(), text)
    LoopBatchLearner.trained = 0
    vectorised = train(digits, learner, VectorizedBackend(), text)
    assert LoopBatchLearner.trained == 2 * 10  # every participant, attackers too, batched
    np.testing.assert_array_equal(vectorised, sequential)  # the same final model
    assert not np.allclose(sequential, clean, atol=1e-4)  # and the attack changed it


def test_with_the_real_vectorised_learner_attackers_send_the_poisoned_update() -> None:
    """vmap numerics differ from the sequential learner's in the last bits, so here the
    check is per reply: each attacker sends exactly -4 times what it trained."""
    from fedswarm.pytorch.vectorized import VectorizedTorchLearner

    data = load_digits(num_clients=6)
    learner = VectorizedTorchLearner(lambda: MLP(64, (16,), 10))
    cfg = attack("kind = 'sign_flip'\ncount = 2")
    bad = malicious_clients(data.client_ids(), cfg, 0)
    strategy = fedavg(TRAINING)
    state = strategy.init(learner.init_params(seed=0))
    jobs = [Job(c, i, {}) for c, i in strategy.configure_fit(state, data.client_ids(), RUN)]

    def honest(c: str) -> ClientApp:
        return ClientApp(c, learner, data.client(c))

    def poisoned(c: str) -> ClientApp:
        return malicious_app(honest(c), cfg, 10, 0) if c in bad else honest(c)

    runs = VectorizedBackend().run(honest, jobs), VectorizedBackend().run(poisoned, jobs)
    pairs = zip(*runs, strict=True)
    for h, p in pairs:
        assert isinstance(h.reply, FitRes)
        assert isinstance(p.reply, FitRes)
        want = -4 * h.reply.update if h.client_id in bad else h.reply.update
        np.testing.assert_array_equal(p.reply.update, want)


# ---- fedswarm client --attack (a test tool) ----------------------------------------------


def test_client_attack_options_parse_into_the_attack_table() -> None:
    from fedswarm.attacks.config import ScaleAttack
    from fedswarm.cli import _attack

    parsed = _attack("scaling", ["scale = 10.0"])
    assert isinstance(parsed, ScaleAttack)
    assert parsed.scale == 10.0
    with pytest.raises(ValueError, match=r"attack\.sigma"):
        _attack("sign_flip", ["sigma=1.0"])
    with pytest.raises(ValueError, match="expected KEY"):
        _attack("sign_flip", ["scale"])


def test_a_deployed_participant_refuses_colluding_attacks() -> None:
    from fedswarm.deploy.node import NodeSetupError, participant_factory

    with pytest.raises(NodeSetupError, match="simulation only"):
        participant_factory("00000", "partition", attack=attack("kind = 'alie'"))
    participant_factory("00000", "partition", attack=attack("kind = 'sign_flip'"))  # fine


def test_the_client_command_labels_attack_a_test_tool() -> None:
    from typer.testing import CliRunner

    from fedswarm.cli import app

    out = CliRunner().invoke(app, ["client", "--help"], env={"COLUMNS": "200"})
    assert "TEST TOOL" in out.output
    assert "--attack" in out.output
