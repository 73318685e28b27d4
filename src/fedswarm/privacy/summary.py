"""The ``"privacy"`` entry of a finished run's ``summary.json``."""

from __future__ import annotations

from typing import Any

from fedswarm.privacy.accountant import Ledger, epsilon
from fedswarm.privacy.config import PrivacyConfig
from fedswarm.privacy.dpfedavg import LEDGER
from fedswarm.strategy import ServerState

__all__ = ["privacy_summary"]


def privacy_summary(
    cfg: PrivacyConfig, sampling_rate: float, state: ServerState, planned_rounds: int
) -> dict[str, Any]:
    """What the run spent, recomputed from the ledger the final state carries."""
    ledger = Ledger.from_array(state.wrapper[LEDGER], "the final state's privacy ledger")
    out: dict[str, Any] = {
        "epsilon": epsilon(ledger, cfg.delta, cfg.accountant),
        "delta": cfg.delta,
        "accountant": cfg.accountant.value,
        "mechanism": cfg.mechanism.value,
        "noise_multiplier": cfg.noise_multiplier,
        "sampling_rate": sampling_rate,
        "rounds": state.round,
    }
    if cfg.target_epsilon is not None:
        out["target_epsilon"] = cfg.target_epsilon
        out["stopped_by_budget"] = state.round < planned_rounds
    return out
