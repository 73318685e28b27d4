"""The ``[privacy]`` table: validated here, cross-checked against ``[strategy]`` by the run
config (:mod:`fedswarm.run.config`), built into a :class:`~fedswarm.privacy.dpfedavg.DPFedAvg`
by :func:`fedswarm.privacy.build.private`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fedswarm.privacy.accountant import AccountantKind
from fedswarm.privacy.dpfedavg import Mechanism

__all__ = ["AdaptiveClippingConfig", "PrivacyConfig"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class AdaptiveClippingConfig(_Frozen):
    """Andrew et al. 2021; ``privacy.clip_norm`` is the initial C."""

    target_quantile: float = Field(0.5, gt=0, lt=1, description="quantile of update norms")
    learning_rate: float = Field(0.2, gt=0, description="eta of the geometric update")
    count_noise: float = Field(
        ..., gt=0, description="std of the noise on the unclipped count (paper: clients / 20)"
    )


class PrivacyConfig(_Frozen):
    mechanism: Mechanism = Mechanism.CENTRAL
    noise_multiplier: float = Field(..., ge=0, description="z: noise std / clip norm")
    clip_norm: float | None = Field(None, gt=0, description="C; the initial C when adaptive")
    adaptive_clipping: AdaptiveClippingConfig | None = None
    delta: float = Field(1e-5, gt=0, lt=1)
    accountant: AccountantKind = AccountantKind.RDP
    target_epsilon: float | None = Field(
        None, gt=0, description="stop before the first round that would spend more"
    )

    @model_validator(mode="after")
    def _mechanism_fits(self) -> PrivacyConfig:
        if self.clip_norm is None:
            raise ValueError(
                "privacy.clip_norm is required (with [privacy.adaptive_clipping] it is the "
                "initial clip norm): without it one participant's influence is unbounded"
            )
        if self.mechanism is Mechanism.LOCAL and self.adaptive_clipping is not None:
            raise ValueError(
                "privacy.adaptive_clipping needs the coordinator's noised count: use "
                'mechanism = "central", or remove [privacy.adaptive_clipping] for local DP'
            )
        if self.mechanism is Mechanism.LOCAL and self.noise_multiplier == 0:
            raise ValueError("privacy.mechanism = 'local' needs privacy.noise_multiplier > 0")
        return self
