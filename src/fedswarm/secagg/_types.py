"""The types both the coordinator's stages and its recovery share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fedswarm.messages import ClientId, Stage
from fedswarm.secagg.messages import AdvertiseRes

__all__ = ["Aborted", "RoundSetup", "Verify"]

Verify = Callable[[AdvertiseRes, bytes], bool]
"""Whether the advert's sender signed these bytes (see ``participant.KeyBinding``)."""


@dataclass(frozen=True)
class RoundSetup:
    """One round's parameters; ``graph`` maps each sampled participant to its neighbourhood
    (itself included)."""

    run_id: str
    round: int
    graph: dict[ClientId, tuple[ClientId, ...]]
    threshold: int
    bits: int = 32
    clip_range: float = 1.0
    weight_bound: int = 1
    min_survivors: int = 1
    verify: Verify | None = None  # checks advertised keys' signatures


@dataclass(frozen=True)
class Aborted:
    stage: Stage
    reason: str

    def __str__(self) -> str:
        return f"secure aggregation aborted in {self.stage}: {self.reason}"
