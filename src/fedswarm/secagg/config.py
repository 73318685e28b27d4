"""The ``[secure_aggregation]`` table: validated at the edge, resolved into the round
protocol, message kinds and participant handlers a run needs.

```toml
[secure_aggregation]
protocol = "secagg+"        # secagg+ (Bell et al. neighbour graph) | secagg (complete graph)
target_dropout = 0.1        # degree and threshold chosen for this dropout ...
failure_probability = 0.01  # ... so that at most this share of rounds fails
# degree = 12, threshold = 7  (or set them; threshold must be a majority of degree + 1)
bits = 32                   # the modulus 2**bits of the masked sums
clip_range = 1.0            # each update coordinate is clipped to [-clip_range, clip_range]
weight_bound = 1000         # example counts above it weigh as much as it
```
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fedswarm.secagg._types import Verify
from fedswarm.secagg.fit_round import SecureFitRound, SecureSettings

__all__ = ["SecAggProtocol", "SecureAggregationConfig"]


class SecAggProtocol(enum.Enum):
    SECAGG_PLUS = "secagg+"  # masks with O(log n) neighbours of a random regular graph
    SECAGG = "secagg"  # masks with every other participant


class SecureAggregationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    protocol: SecAggProtocol = SecAggProtocol.SECAGG_PLUS
    degree: int | None = Field(None, ge=2, description="secagg+: neighbours; unset: derived")
    threshold: int | None = Field(None, ge=2, description="holders to recover; unset: derived")
    target_dropout: float = Field(0.1, ge=0, lt=1, description="dropout the round must survive")
    failure_probability: float = Field(0.01, gt=0, lt=1, description="rounds allowed to fail")
    bits: int = Field(32, ge=16, le=62, description="masked sums are mod 2**bits")
    clip_range: float = Field(1.0, gt=0, description="update coordinates clipped to +-this")
    weight_bound: int = Field(1000, ge=1, description="example counts are capped at this")

    @model_validator(mode="after")
    def _graph_keys_fit_the_protocol(self) -> SecureAggregationConfig:
        if self.protocol is SecAggProtocol.SECAGG and self.degree is not None:
            raise ValueError(
                'secure_aggregation.degree applies to protocol = "secagg+" only; '
                '"secagg" masks with every participant'
            )
        d, t = self.degree, self.threshold
        if d is not None and t is not None and not (d + 1) // 2 + 1 <= t <= d + 1:
            raise ValueError(
                "secure_aggregation.threshold must be a majority of the degree + 1 holders "
                f"({(d + 1) // 2 + 1}..{d + 1}), got {t}"
            )
        return self

    def settings(self) -> SecureSettings:
        return SecureSettings(
            complete_graph=self.protocol is SecAggProtocol.SECAGG,
            degree=self.degree,
            threshold=self.threshold,
            target_dropout=self.target_dropout,
            failure_probability=self.failure_probability,
            bits=self.bits,
            clip_range=self.clip_range,
            weight_bound=self.weight_bound,
        )

    def round_protocol(self, verify: Verify | None = None) -> SecureFitRound:
        """The fit round; ``verify`` checks advertised keys' signatures (deployment)."""
        return SecureFitRound(self.settings(), verify)
