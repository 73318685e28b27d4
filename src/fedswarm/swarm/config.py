"""``[swarm]``: run the config as a swarm (peers, a ledger, no server) instead of federated.

Present in a run config, ``fedswarm run`` simulates the swarm in process and ``fedswarm
peer`` runs one peer of it; the rest of the config (data, model, client, strategy, seed) means
what it means for a federated run, so the two can be compared on the same experiment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fedswarm.swarm.peer import RoundRules

__all__ = ["SwarmConfig"]


class SwarmConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    quorum: int | None = Field(
        None, ge=1, description="contributions that close a round early; unset: every peer"
    )
    deadline_s: float = Field(
        600.0, gt=0, description="then a round closes with the contributions committed"
    )
    attest_timeout_s: float = Field(
        60.0, gt=0, description="how long a peer waits for the others' merged-model attestations"
    )
    max_blob_mb: int = Field(1024, ge=1, description="largest update blob accepted, MiB")

    def rules(self, peers: int) -> RoundRules:
        return RoundRules(
            quorum=min(self.quorum or peers, peers),
            deadline_s=self.deadline_s,
            attest_timeout_s=self.attest_timeout_s,
            max_blob_bytes=self.max_blob_mb << 20,
        )
