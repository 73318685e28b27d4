"""``[privacy]`` into a run: the wrapper around the configured strategy."""

from __future__ import annotations

from dataclasses import replace

from fedswarm.aggregation import Weighting
from fedswarm.entropy import SecretSource
from fedswarm.privacy.config import AdaptiveClippingConfig, PrivacyConfig
from fedswarm.privacy.dpfedavg import AdaptiveClipping, DPFedAvg, Mechanism
from fedswarm.sampling import PoissonSampler
from fedswarm.strategy import Strategy

__all__ = ["private"]


def private(strategy: Strategy, cfg: PrivacyConfig, secrets: SecretSource) -> DPFedAvg:
    """``strategy`` (Poisson-sampled, checked by the run config) made private by ``cfg``;
    ``secrets`` draws the coordinator's noise."""
    sampler = strategy.sampler
    if not isinstance(sampler, PoissonSampler):
        raise ValueError('[privacy] needs strategy.sampling = "poisson"')
    if cfg.mechanism is Mechanism.CENTRAL:
        # FedAvg's weighting was checked by the config; the other algorithms' tables have no
        # weighting key, and central DP bounds a participant's influence only unweighted.
        strategy = replace(strategy, weighting=Weighting.UNIFORM)
    assert cfg.clip_norm is not None  # the config refuses a [privacy] without it
    return DPFedAvg(
        strategy,
        cfg.mechanism,
        noise_multiplier=cfg.noise_multiplier,
        clip_norm=cfg.clip_norm,
        sampling_rate=sampler.rate,
        delta=cfg.delta,
        accountant=cfg.accountant,
        target_epsilon=cfg.target_epsilon,
        adaptive=_adaptive(cfg.adaptive_clipping),
        secrets=secrets,
    )


def _adaptive(a: AdaptiveClippingConfig | None) -> AdaptiveClipping | None:
    if a is None:
        return None
    return AdaptiveClipping(a.target_quantile, a.learning_rate, a.count_noise)
