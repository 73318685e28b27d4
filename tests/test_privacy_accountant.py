"""The ledger and its epsilon, calibration, adaptive clipping's count query, and the
``fedswarm privacy calibrate`` command."""

from __future__ import annotations

import dp_accounting
import numpy as np
import pytest
from typer.testing import CliRunner

from fedswarm.cli import app
from fedswarm.data.arrays import ArrayDataset
from fedswarm.params import Params
from fedswarm.privacy import AccountantKind, AdaptiveClipping, Event, Ledger, calibrate_noise
from fedswarm.privacy import epsilon as spent
from fedswarm.privacy.dpfedavg import CLIP_NORM
from fedswarm.training import Evaluation, GradientCorrection, LocalFit, LocalTraining
from test_privacy import Q, dp, federation, reference_epsilons, rows, run, start


def test_the_ledger_run_length_encodes_and_keeps_order() -> None:
    a, b = Event(0.1, 1.0), Event(0.1, 2.0)
    ledger = Ledger.empty().record([a, a, b]).record([b, a])
    assert ledger.rows.tolist() == [[0.1, 1.0, 2.0], [0.1, 2.0, 2.0], [0.1, 1.0, 1.0]]
    assert ledger.num_events == 5
    assert Ledger.empty().record([]).num_events == 0
    assert spent(Ledger.empty(), 1e-5, AccountantKind.RDP) == 0.0


def test_a_ledger_from_a_damaged_checkpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="privacy ledger is"):
        Ledger.from_array(np.zeros((2, 2)), "the privacy ledger")


@pytest.mark.parametrize(
    "kind", [AccountantKind.RDP, pytest.param(AccountantKind.PLD, marks=pytest.mark.slow)]
)
def test_calibrated_noise_spends_the_target_and_no_less_noise_would(kind: AccountantKind) -> None:
    eps, delta, q, rounds = 3.0, 1e-5, 0.05, 200
    z = calibrate_noise(eps, delta, q, rounds, kind)
    ledger = Ledger.empty().record([Event(q, z)] * rounds)
    assert spent(ledger, delta, kind) <= eps
    smaller = Ledger.empty().record([Event(q, z * 0.99)] * rounds)
    assert spent(smaller, delta, kind) > eps


def test_calibrate_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="target_epsilon"):
        calibrate_noise(0.0, 1e-5, 0.1, 10, AccountantKind.RDP)


def test_the_calibrate_command_prints_the_multiplier_and_its_epsilon() -> None:
    args = ["privacy", "calibrate", "--epsilon", "8", "--rate", "0.01", "--rounds", "1000"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    z = calibrate_noise(8.0, 1e-5, 0.01, 1000, AccountantKind.RDP)
    assert f"noise_multiplier = {z:.4f}" in result.output
    bad = CliRunner().invoke(app, ["privacy", "calibrate", "--epsilon", "8", "--rate", "2"])
    assert bad.exit_code == 2


def test_adaptive_clipping_accounts_its_count_query_as_a_second_release() -> None:
    z, sigma_b, rounds = 1.0, 2.0, 3
    strategy = dp(z, 1.0, adaptive=AdaptiveClipping(0.5, 0.2, sigma_b))
    final, reports = run(strategy, federation(rows()), rounds)
    events = [
        dp_accounting.PoissonSampledDpEvent(Q, dp_accounting.GaussianDpEvent(s))
        for _ in range(rounds)
        for s in (z, sigma_b)
    ]
    expected = reference_epsilons(events, 1e-5, AccountantKind.RDP)[1::2]  # after each round
    assert [r.metrics["privacy/epsilon"] for r in reports] == pytest.approx(expected, rel=1e-12)
    without = reference_epsilons(events[::2], 1e-5, AccountantKind.RDP)
    assert expected[-1] > without[-1]  # the count query costs something
    assert reports[0].metrics["privacy/clip_norm"] == 1.0  # the initial C, then it moves
    clips = [r.metrics["privacy/clip_norm"] for r in reports] + [final.wrapper[CLIP_NORM][0]]
    assert len(set(clips)) == rounds + 1  # the noised count moved C every round


class FixedUpdate:
    """Every participant's update is its data's first row, whatever the model."""

    def init_params(self, seed: int) -> Params:
        return Params.from_arrays({"w": np.zeros(2, np.float32)})

    def fit(
        self,
        params: Params,
        data: ArrayDataset,
        training: LocalTraining,
        correction: GradientCorrection,
        seed: int,
    ) -> LocalFit:
        return LocalFit(params.flat + data.x[0], len(data), 1, 0.0)

    def evaluate(self, params: Params, data: ArrayDataset) -> Evaluation:
        return Evaluation(0.0, 0.0, len(data))


def test_adaptive_clipping_moves_c_to_the_target_quantile_of_the_norms() -> None:
    from fedswarm.client import ClientApp
    from fedswarm.data.arrays import ClientData
    from fedswarm.simulation.memory import InMemoryTransport
    from test_rounds import dataset

    norms = np.geomspace(0.1, 3.0, 20)  # the participants' update norms, fixed
    apps = {
        f"c{k:02d}": ClientApp(
            f"c{k:02d}", FixedUpdate(), ClientData(dataset([[n, 0.0]]), dataset([[n, 0.0]]))
        )
        for k, n in enumerate(norms)
    }
    transport = InMemoryTransport(sorted(apps), apps.__getitem__)
    adaptive = AdaptiveClipping(target_quantile=0.25, learning_rate=0.2, count_noise=0.05)
    strategy = dp(0.0, 3.0, q=1.0, adaptive=adaptive)  # everyone, every round
    final, _ = run(strategy, transport, rounds=60, state=start(strategy))
    clip = float(final.wrapper[CLIP_NORM][0])
    assert norms[3] < clip < norms[7]  # the 0.25 quantile lies between norms[4] and norms[5]
