"""Client-level DP-FedAvg (McMahan et al. 2018) as a wrapper around a FedAvg-family strategy.

Central mode: participants clip their update to L2 norm C (a transform in the
instruction); the coordinator adds ``N(0, (z C)^2 I)`` to the streamed sum from its own
secret randomness and divides by the fixed denominator ``q N`` (the expected number of
participants), so one participant moves the model by at most ``C / (q N)`` whether it was
sampled or not. The coordinator clips each upload again as it arrives, so a participant
that skips the transform gains nothing (with a fixed C). Local mode: each participant clips
and noises its own update (the coordinator is not trusted), and the inner strategy averages
what arrives.

Every round, an empty one included, appends its releases to the accountant's ledger in
``ServerState.wrapper`` (so a checkpoint carries it) and reports the epsilon spent under
``privacy/epsilon``. With ``target_epsilon`` set the wrapper is :class:`Budgeted`: the driver
stops before the first round that would spend more. Adaptive clipping (Andrew et al. 2021)
moves C toward a quantile of the update norms from a noised count of unclipped updates; that
count is a second release per round, accounted as its own subsampled Gaussian.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fedswarm.aggregation import Accumulator, WeightedSum, Weighting
from fedswarm.algorithms.base import ClientUpdate
from fedswarm.entropy import OsSecrets, SecretSource
from fedswarm.messages import ClientId, FitIns, FitRes
from fedswarm.params import Params
from fedswarm.privacy.accountant import AccountantKind, Event, Ledger, epsilon
from fedswarm.privacy.mechanisms import (
    GaussianNoise,
    NormedFold,
    NormedSum,
    adapted_clip_norm,
    add_gaussian_noise,
    unclipped_count,
)
from fedswarm.strategy import FitStrategy, FitSummary, RunInfo, ServerState
from fedswarm.transforms import ClipNorm, UpdateTransform

__all__ = ["LEDGER", "AdaptiveClipping", "DPFedAvg", "Mechanism", "PrivacyError"]

LEDGER = "privacy/ledger"  # ServerState.wrapper keys
CLIP_NORM = "privacy/clip_norm"
_CLIP_SLACK = 1e-4  # float32 rounding of a clipped update's norm


class Mechanism(enum.Enum):
    CENTRAL = "central"  # the coordinator noises the sum (trusted coordinator)
    LOCAL = "local"  # each participant noises its own update


class PrivacyError(RuntimeError):
    """A round that would break the guarantee (an upload longer than the adaptive C, which the
    fold could not clip); nothing is released."""


@dataclass(frozen=True)
class AdaptiveClipping:
    """Andrew et al. 2021: C follows the ``target_quantile`` of update norms."""

    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_noise: float = 1.0  # std of the noise on the unclipped count (sensitivity 1)

    def __post_init__(self) -> None:
        if not 0 < self.target_quantile < 1 or not self.learning_rate > 0:
            raise ValueError("target_quantile must be in (0, 1) and learning_rate > 0")
        if not self.count_noise > 0:
            raise ValueError(f"count_noise must be positive, got {self.count_noise}")


@dataclass(frozen=True)
class DPFedAvg:
    """A :class:`~fedswarm.strategy.FitStrategy` around ``inner`` that makes it private."""

    inner: FitStrategy
    mechanism: Mechanism
    noise_multiplier: float  # z: noise std / clip norm
    clip_norm: float  # C (the initial C under adaptive clipping)
    sampling_rate: float  # q: the inner strategy's Poisson sampling rate
    delta: float = 1e-5
    accountant: AccountantKind = AccountantKind.RDP
    target_epsilon: float | None = None
    adaptive: AdaptiveClipping | None = None
    secrets: SecretSource = field(default_factory=OsSecrets)  # the coordinator's own noise

    def __post_init__(self) -> None:
        if not self.clip_norm > 0 or not self.noise_multiplier >= 0:
            raise ValueError("clip_norm must be positive and noise_multiplier >= 0")
        Event(self.sampling_rate, self.noise_multiplier)  # validates q
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if self.mechanism is Mechanism.LOCAL and (self.adaptive or not self.noise_multiplier):
            raise ValueError("local DP needs a noise multiplier > 0 and a fixed clip norm")
        if self.mechanism is Mechanism.CENTRAL and self.inner.weighting is not Weighting.UNIFORM:
            raise ValueError(
                "central DP needs uniform weighting: an example-weighted mean lets one "
                "participant's weight, and so its influence, grow without bound"
            )

    @property
    def client_update(self) -> ClientUpdate:
        return self.inner.client_update

    @property
    def weighting(self) -> Weighting:
        return self.inner.weighting

    def init(self, params: Params) -> ServerState:
        state = self.inner.init(params)
        mine = {LEDGER: Ledger.empty().rows, CLIP_NORM: np.array([self.clip_norm], np.float64)}
        return replace(state, wrapper={**state.wrapper, **mine})

    def configure_fit(
        self, state: ServerState, available: Sequence[ClientId], run: RunInfo
    ) -> list[tuple[ClientId, FitIns]]:
        added = self._transforms(current_clip_norm(state))
        requests = self.inner.configure_fit(state, available, run)
        return [(cid, replace(ins, transforms=(*ins.transforms, *added))) for cid, ins in requests]

    def _transforms(self, clip: float) -> tuple[UpdateTransform, ...]:
        if self.mechanism is Mechanism.LOCAL:
            return ClipNorm(clip), GaussianNoise(self.noise_multiplier * clip)
        return (ClipNorm(clip),)  # last: what leaves the participant has norm <= C

    def accumulator(self, dim: int) -> Accumulator | None:
        inner = self.inner.accumulator(dim)
        if self.mechanism is Mechanism.LOCAL:
            return inner  # the uploads are noised already: the inner strategy averages them
        if inner is None:
            raise ValueError("DP-FedAvg noises the streamed sum: the inner aggregator must stream")
        # A fixed C is known here, so the coordinator clips again as uploads arrive; an
        # adaptive C lives in the round's state, so an unclipped upload is refused later.
        return NormedFold(inner, None if self.adaptive else self.clip_norm)

    def aggregate_fit(
        self,
        state: ServerState,
        replies: Sequence[FitRes],
        *,
        num_clients: int,
        run: RunInfo,
        summed: WeightedSum | None = None,
    ) -> tuple[ServerState, FitSummary]:
        clip, rnd = current_clip_norm(state), state.round + 1
        next_clip = clip
        if self.mechanism is Mechanism.CENTRAL:
            if not isinstance(summed, NormedSum):
                raise ValueError("central DP-FedAvg aggregates the sum its accumulator folded")
            if self.adaptive is not None:
                _check_clipped(summed.norms, clip)
                next_clip = self._adapted(summed.norms, clip, rnd, num_clients)
            summed = self._noised(summed, rnd, clip, num_clients)
        new, summary = self.inner.aggregate_fit(
            state, replies, num_clients=num_clients, run=run, summed=summed
        )
        ledger = self.ledger(state).record(self.round_events())
        mine = {LEDGER: ledger.rows, CLIP_NORM: np.array([next_clip], np.float64)}
        metrics = {"privacy/epsilon": epsilon(ledger, self.delta, self.accountant)}
        if self.adaptive is not None:
            metrics["privacy/clip_norm"] = clip  # the C this round's updates were clipped to
        new = replace(new, wrapper={**new.wrapper, **mine})
        return new, replace(summary, metrics={**summary.metrics, **metrics})

    def _noised(self, summed: NormedSum, rnd: int, clip: float, num_clients: int) -> NormedSum:
        """The sum plus ``N(0, (z C)^2)``, over the fixed denominator ``q N``."""
        rng = self.secrets.generator(rnd, "privacy.noise")
        total = add_gaussian_noise(summed.total, self.noise_multiplier * clip, rng)
        denominator = self.sampling_rate * num_clients
        return NormedSum(total, denominator, summed.count, summed.norms)

    def _adapted(self, norms: np.ndarray, clip: float, rnd: int, num_clients: int) -> float:
        assert self.adaptive is not None
        rng = self.secrets.generator(rnd, "privacy.count_noise")
        count = unclipped_count(norms, clip) + rng.normal(0.0, self.adaptive.count_noise)
        fraction = count / (self.sampling_rate * num_clients)
        a = self.adaptive
        return adapted_clip_norm(clip, fraction, a.target_quantile, a.learning_rate)

    def round_events(self) -> list[Event]:
        """The releases of one round, as the accountant composes them."""
        if self.mechanism is Mechanism.LOCAL:
            # A participant's own report, no amplification (it knows it was sampled); any
            # two clipped updates differ by at most 2C: noise multiplier z / 2. Bounds a
            # participant sampled in every round.
            return [Event(1.0, self.noise_multiplier / 2)]
        events = [Event(self.sampling_rate, self.noise_multiplier)]
        if self.adaptive is not None:
            events.append(Event(self.sampling_rate, self.adaptive.count_noise))
        return events

    def ledger(self, state: ServerState) -> Ledger:
        if LEDGER not in state.wrapper:
            raise ValueError("this state was not made by DPFedAvg.init: it has no privacy ledger")
        return Ledger.from_array(state.wrapper[LEDGER], "the privacy ledger")

    def spent(self, state: ServerState) -> float:
        """The epsilon spent by the rounds ``state`` has run."""
        return epsilon(self.ledger(state), self.delta, self.accountant)

    def exhausted(self, state: ServerState) -> str | None:
        """Why the next round must not run: it would spend more than ``target_epsilon``."""
        if self.target_epsilon is None:
            return None
        after = epsilon(self.ledger(state).record(self.round_events()), self.delta, self.accountant)
        if after <= self.target_epsilon:
            return None
        return (
            f"privacy budget: round {state.round + 1} would spend epsilon {after:.4g} > "
            f"target_epsilon {self.target_epsilon:g} (delta {self.delta:g}); stopped after "
            f"round {state.round} at epsilon {self.spent(state):.4g}"
        )


def _check_clipped(norms: np.ndarray, clip: float) -> None:
    """Refuse to release a round with an upload longer than C: a participant that did not
    clip would have unbounded influence, and the accounted epsilon would be false."""
    if len(norms) and float(norms.max()) > clip * (1 + _CLIP_SLACK):
        raise PrivacyError(
            f"an update of norm {float(norms.max()):.6g} arrived, above the clip norm "
            f"{clip:.6g}: a participant did not apply the clip transform; not released"
        )


def current_clip_norm(state: ServerState) -> float:
    value: Mapping[str, np.ndarray] = state.wrapper
    if CLIP_NORM not in value:
        raise ValueError("this state was not made by DPFedAvg.init: it has no clip norm")
    return float(value[CLIP_NORM][0])
