"""DP-FedAvg against its references: the wrapped strategy with the same denominator (zero
noise), the clip bound on every upload, the noise's standard deviation (a chi-square test),
dp-accounting's epsilon for the executed events (RDP and PLD, across a kill and resume),
the budget stop, empty Poisson rounds, and local DP's noise out of the coordinator's reach.

The federation is test_rounds' numpy one: client k's update is a few exact SGD steps toward
the mean of its rows, so the updates and their norms are known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import dp_accounting
import numpy as np
import pytest
from dp_accounting import pld, rdp
from scipy import stats

from fedswarm.aggregation import Accumulator, WeightedSum, Weighting
from fedswarm.algorithms.base import ClientUpdate
from fedswarm.checkpoint import Checkpoint, decode_state, encode_state
from fedswarm.client import ClientApp
from fedswarm.data.arrays import ClientData
from fedswarm.driver import run_rounds
from fedswarm.entropy import OsSecrets, SimulatedSecrets
from fedswarm.messages import ClientId, FitIns, FitRes, Outcome
from fedswarm.params import Params
from fedswarm.privacy import (
    AccountantKind,
    AdaptiveClipping,
    DPFedAvg,
    GaussianNoise,
    Mechanism,
    PrivacyError,
)
from fedswarm.reports import RoundReport
from fedswarm.sampling import PoissonSampler
from fedswarm.simulation.memory import InMemoryTransport
from fedswarm.strategy import FitStrategy, FitSummary, RunInfo, ServerState, Strategy
from fedswarm.transforms import ClipNorm
from fedswarm.transport.base import Fold, Request
from test_rounds import FULL_BATCH, RUN, QuadraticLearner, dataset

N, Q = 20, 0.25


def rows(n: int = N, scale: float = 1.0) -> dict[ClientId, list[list[float]]]:
    """Client k's data: one row at a distinct point, so the updates all differ."""
    rng = np.random.default_rng(3)
    return {f"c{k:02d}": [list(rng.normal(size=2) * scale)] for k in range(n)}


def federation(data: dict[ClientId, list[list[float]]]) -> InMemoryTransport:
    apps = {
        cid: ClientApp(
            cid,
            QuadraticLearner(),
            ClientData(dataset(r), dataset(r)),
            secrets=SimulatedSecrets(RUN.seed, cid),
        )
        for cid, r in data.items()
    }
    return InMemoryTransport(sorted(apps), apps.__getitem__, fail_fast=True)


def fedavg(q: float = Q) -> Strategy:
    return Strategy(FULL_BATCH, sampler=PoissonSampler(q), weighting=Weighting.UNIFORM)


def dp(
    z: float, clip: float, q: float = Q, mechanism: Mechanism = Mechanism.CENTRAL, **kw: object
) -> DPFedAvg:
    secrets = kw.pop("secrets", SimulatedSecrets(RUN.seed, "(coordinator)"))
    return DPFedAvg(fedavg(q), mechanism, z, clip, q, secrets=secrets, **kw)  # type: ignore[arg-type]


def start(strategy: FitStrategy, dim: int = 2) -> ServerState:
    return strategy.init(Params.from_arrays({"w": np.zeros(dim, np.float32)}))


def run(
    strategy: FitStrategy, transport: object, rounds: int, state: ServerState | None = None
) -> tuple[ServerState, list[RoundReport]]:
    reports: list[RoundReport] = []
    final = run_rounds(
        strategy,
        transport,  # type: ignore[arg-type]
        state or start(strategy),
        rounds=rounds,
        run=RUN,
        on_round=lambda s, r: reports.append(r),
    )
    return final, reports


@dataclass(frozen=True)
class FixedDenominator:
    """The reference: the wrapped strategy, its streamed sum divided by ``q N`` instead of
    the count (DP-FedAvg's denominator), nothing else changed."""

    inner: Strategy
    q: float

    @property
    def client_update(self) -> ClientUpdate:
        return self.inner.client_update

    @property
    def weighting(self) -> Weighting:
        return self.inner.weighting

    def init(self, params: Params) -> ServerState:
        return self.inner.init(params)

    def configure_fit(
        self, state: ServerState, available: Sequence[ClientId], run: RunInfo
    ) -> list[tuple[ClientId, FitIns]]:
        return self.inner.configure_fit(state, available, run)

    def accumulator(self, dim: int) -> Accumulator | None:
        return self.inner.accumulator(dim)

    def aggregate_fit(
        self,
        state: ServerState,
        replies: Sequence[FitRes],
        *,
        num_clients: int,
        run: RunInfo,
        summed: WeightedSum | None = None,
    ) -> tuple[ServerState, FitSummary]:
        assert summed is not None
        summed = replace(summed, weight=self.q * num_clients)
        return self.inner.aggregate_fit(
            state, replies, num_clients=num_clients, run=run, summed=summed
        )


def test_zero_noise_and_a_loose_clip_is_the_wrapped_fedavg_over_q_n_bit_for_bit() -> None:
    private, reports = run(dp(z=0.0, clip=1e6), federation(rows()), rounds=4)
    reference, ref_reports = run(FixedDenominator(fedavg(), Q), federation(rows()), rounds=4)
    assert private.params.flat.tobytes() == reference.params.flat.tobytes()
    assert [r.replied for r in reports] == [r.replied for r in ref_reports]
    assert all(r.metrics["privacy/epsilon"] == math.inf for r in reports)  # no noise: no DP
    assert any(0 < len(r.replied) < N for r in reports)  # Poisson sampled a strict subset


def test_the_first_round_by_hand_is_the_sum_of_updates_over_q_n() -> None:
    data = rows()
    state, reports = run(dp(z=0.0, clip=1e6), federation(data), rounds=1)
    # One full-batch step of 0.5 from 0 toward x_k: update 0.5 x_k; ServerSGD(lr 1) adds it.
    expected = sum(0.5 * np.array(data[c][0]) for c in reports[0].replied) / (Q * N)
    np.testing.assert_allclose(state.params.flat, expected, rtol=1e-6)


@dataclass
class Spy:
    """A transport around another that records each fit reply's update before the round's
    fold sees it; ``strip`` removes the instructions' transforms (a cheating participant)."""

    inner: InMemoryTransport
    strip: bool = False
    norms: list[float] = field(default_factory=list)

    def available(self) -> Sequence[ClientId]:
        return self.inner.available()

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        if self.strip:
            requests = [(c, replace(i, transforms=())) for c, i in requests]  # type: ignore[type-var]

        def spied(o: Outcome) -> Outcome:
            if isinstance(o, FitRes):
                self.norms.append(float(np.linalg.norm(o.update.astype(np.float64))))
            return fold(o) if fold else o

        return self.inner.exchange(requests, timeout=timeout, fold=spied)


def test_every_update_the_coordinator_receives_has_norm_at_most_c() -> None:
    spy = Spy(federation(rows(scale=50.0)))
    run(dp(z=1.0, clip=0.5), spy, rounds=3)
    assert len(spy.norms) > 10
    assert max(spy.norms) <= 0.5 * (1 + 1e-6)
    assert min(spy.norms) > 0.5 * (1 - 1e-6)  # they were all longer: all clipped to C


def test_a_participant_that_skips_the_clip_is_clipped_by_the_coordinator() -> None:
    """Uploads sent unclipped (the transforms stripped) move the model exactly as the same
    uploads clipped by the participants do: the coordinator clipped them on arrival."""
    cheating = Spy(federation(rows(scale=50.0)), strip=True)
    cheated, _ = run(dp(z=1.0, clip=0.5), cheating, rounds=2)
    honest, _ = run(dp(z=1.0, clip=0.5), federation(rows(scale=50.0)), rounds=2)
    assert max(cheating.norms) > 10  # they did arrive unclipped
    np.testing.assert_allclose(cheated.params.flat, honest.params.flat, rtol=1e-6)


def test_an_unclipped_upload_under_adaptive_clipping_is_not_released() -> None:
    adaptive = AdaptiveClipping(0.5, 0.2, 1.0)
    with pytest.raises(PrivacyError, match="above the clip norm"):
        run(dp(1.0, 0.5, adaptive=adaptive), Spy(federation(rows(scale=50.0)), strip=True), 1)


def test_the_noise_has_the_promised_standard_deviation() -> None:
    """Coordinator noise on an all-zero sum, read back as the model's change times q N.

    Two-sided chi-square test of the sample variance of n = 200,000 draws against
    sigma^2 = (z C)^2 at false-failure rate 1e-6, and a z-test of the mean at 1e-6. The noise
    comes from the OS's entropy (OsSecrets), so the stated rates are the real ones.
    """
    z, clip, dim, q, n_clients = 1.3, 0.7, 200_000, 0.25, 8
    strategy = dp(z, clip, q=q, secrets=OsSecrets())
    state = start(strategy, dim)
    summed = strategy.accumulator(dim)
    assert summed is not None
    new, summary = strategy.aggregate_fit(
        state, [], num_clients=n_clients, run=RUN, summed=summed.summed()
    )
    noise = new.params.flat.astype(np.float64) * (q * n_clients)
    sigma, n, alpha = z * clip, dim, 1e-6
    statistic = (n - 1) * noise.var(ddof=1) / sigma**2
    lo, hi = stats.chi2.ppf([alpha / 2, 1 - alpha / 2], n - 1)
    assert lo < statistic < hi, f"std {noise.std():.5f}, promised {sigma:.5f}"
    assert abs(noise.mean()) < stats.norm.ppf(1 - alpha / 2) * sigma / math.sqrt(n)
    assert summary.metrics["privacy/epsilon"] > 0


def reference_epsilons(
    events: Sequence[dp_accounting.DpEvent], delta: float, kind: AccountantKind
) -> list[float]:
    """dp-accounting's epsilon after each prefix of ``events``, composed one by one."""
    out = []
    accountant = rdp.RdpAccountant() if kind is AccountantKind.RDP else pld.PLDAccountant()
    for event in events:
        accountant.compose(event)
        out.append(accountant.get_epsilon(delta))
    return out


def subsampled(q: float, z: float) -> dp_accounting.DpEvent:
    return dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))


ACCOUNTANTS = [  # a PLD takes ~0.5 s to build on a loaded 2-core machine
    AccountantKind.RDP,
    pytest.param(AccountantKind.PLD, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("kind", ACCOUNTANTS)
def test_reported_epsilon_is_dp_accountings_for_the_executed_rounds(kind: AccountantKind) -> None:
    z, delta, rounds = 1.1, 1e-5, 3
    _, reports = run(dp(z, 1.0, delta=delta, accountant=kind), federation(rows()), rounds)
    expected = reference_epsilons([subsampled(Q, z)] * rounds, delta, kind)
    got = [r.metrics["privacy/epsilon"] for r in reports]
    np.testing.assert_allclose(got, expected, rtol=1e-6 if kind is AccountantKind.PLD else 1e-12)
    assert got == sorted(got)
    assert got[0] > 0


@pytest.mark.parametrize("kind", ACCOUNTANTS)
def test_a_killed_and_resumed_run_reports_the_uninterrupted_epsilon(kind: AccountantKind) -> None:
    strategy = dp(1.0, 1.0, accountant=kind)
    whole, whole_reports = run(strategy, federation(rows()), rounds=4)
    halfway, _ = run(strategy, federation(rows()), rounds=2)
    ckpt = decode_state(encode_state(Checkpoint(halfway, {})), halfway.params, "test")
    resumed, resumed_reports = run(strategy, federation(rows()), 4, state=ckpt.state)
    assert resumed.params.flat.tobytes() == whole.params.flat.tobytes()
    eps = [r.metrics["privacy/epsilon"] for r in resumed_reports]
    assert eps == [r.metrics["privacy/epsilon"] for r in whole_reports[2:]]
    accountant = rdp.RdpAccountant() if kind is AccountantKind.RDP else pld.PLDAccountant()
    for _ in range(4):
        accountant.compose(subsampled(Q, 1.0))
    expected = accountant.get_epsilon(1e-5)
    assert strategy.spent(resumed) == pytest.approx(expected, rel=1e-6)


def test_target_epsilon_stops_before_the_round_that_would_pass_it() -> None:
    z, delta = 1.5, 1e-5
    per_round = reference_epsilons([subsampled(Q, z)] * 10, delta, AccountantKind.RDP)
    target = (per_round[3] + per_round[4]) / 2  # 4 rounds fit, the 5th would pass it
    allowed = sum(e <= target for e in per_round)
    assert allowed == 4
    strategy = dp(z, 1.0, target_epsilon=target, delta=delta)
    stops: list[str] = []
    final = run_rounds(
        strategy,
        federation(rows()),
        start(strategy),
        rounds=10,
        run=RUN,
        on_stop=lambda s, why: stops.append(why),
    )
    assert final.round == allowed
    assert strategy.spent(final) <= target < per_round[allowed]
    assert len(stops) == 1
    assert f"round {allowed + 1} would spend" in stops[0]


def test_rounds_that_sample_nobody_still_happen_and_are_accounted() -> None:
    q, z = 0.1, 2.0
    strategy = dp(z, 1.0, q=q)
    final, reports = run(strategy, federation(rows(n=5)), rounds=12)
    empty = [r for r in reports if r.num_clients == 0]
    assert empty
    assert len(empty) < 12
    assert all(math.isnan(r.train_loss) and r.update_norm > 0 for r in empty)  # noise moved it
    expected = reference_epsilons([subsampled(q, z)] * 12, 1e-5, AccountantKind.RDP)[-1]
    assert strategy.spent(final) == pytest.approx(expected, rel=1e-12)


def test_local_noise_is_not_determined_by_anything_the_coordinator_holds() -> None:
    """Two federations identical in everything the coordinator holds or sends (run seed,
    instructions, its own secrets) but with participants holding different private
    randomness: the uploads differ, and each upload minus the clipped update is noise of
    the promised size. With OS entropy the same federation run twice differs too."""
    z, clip = 1.0, 1e6  # loose clip: the clipped update is the raw one, known by hand

    def uploads(participants: dict[ClientId, ClientApp]) -> dict[ClientId, np.ndarray]:
        transport = InMemoryTransport(sorted(participants), participants.__getitem__)
        strategy = dp(z, clip, mechanism=Mechanism.LOCAL)
        requests = strategy.configure_fit(start(strategy), transport.available(), RUN)
        assert all(GaussianNoise(z * clip) in ins.transforms for _, ins in requests)
        out = transport.exchange(requests, timeout=None)
        return {o.client_id: o.update for o in out if isinstance(o, FitRes)}

    data = rows()

    def apps(secret: int | None) -> dict[ClientId, ClientApp]:
        return {
            c: ClientApp(
                c,
                QuadraticLearner(),
                ClientData(dataset(r), dataset(r)),
                secrets=OsSecrets() if secret is None else SimulatedSecrets(secret, c),
            )
            for c, r in data.items()
        }

    a, b, c, d = uploads(apps(1)), uploads(apps(2)), uploads(apps(None)), uploads(apps(None))
    assert a.keys() == b.keys() == c.keys() == d.keys()
    assert a
    for cid in a:
        assert not np.array_equal(a[cid], b[cid])
        assert not np.array_equal(c[cid], d[cid])
    raw = np.array([0.5 * np.array(data[cid][0]) for cid in sorted(a)])
    noise = np.array([c[cid] for cid in sorted(a)], np.float64) - raw
    assert noise.std() == pytest.approx(z * clip, rel=0.5)  # ~20 draws: a coarse check


def test_local_mode_sends_clip_then_noise_and_accounts_without_amplification() -> None:
    strategy = dp(2.0, 0.5, mechanism=Mechanism.LOCAL)
    requests = strategy.configure_fit(start(strategy), [f"c{k}" for k in range(N)], RUN)
    assert requests[0][1].transforms == (ClipNorm(0.5), GaussianNoise(1.0))
    final, _ = run(strategy, federation(rows()), rounds=3)
    gaussian = dp_accounting.GaussianDpEvent(1.0)  # replace-one: sensitivity 2C, so z / 2
    expected = reference_epsilons([gaussian] * 3, 1e-5, AccountantKind.RDP)[-1]
    assert strategy.spent(final) == pytest.approx(expected, rel=1e-12)


def test_central_dp_refuses_an_example_weighted_inner_strategy() -> None:
    inner = Strategy(FULL_BATCH, sampler=PoissonSampler(Q))  # weighted by examples
    with pytest.raises(ValueError, match="uniform weighting"):
        DPFedAvg(inner, Mechanism.CENTRAL, 1.0, 1.0, Q)
