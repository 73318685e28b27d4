"""Per-participant measurement: contribution scores (leave-one-out, exact and GTG-Shapley
over a round's game) and drift of each participant against its own history and the
federation. Apart from ``registry/`` (which manages model versions) because these are
measurements of participants, computed from round outcomes, and the ledger and dashboard
show them without the registry."""

from fedswarm.contrib.drift import (
    SIGNALS,
    DriftRow,
    DriftSettings,
    drift_metrics,
    drift_rows,
    robust_z,
)
from fedswarm.contrib.game import round_game
from fedswarm.contrib.shapley import (
    Memo,
    ShapleyEstimate,
    Utility,
    exact_shapley,
    gtg_shapley,
    leave_one_out,
)

__all__ = [
    "SIGNALS",
    "DriftRow",
    "DriftSettings",
    "Memo",
    "ShapleyEstimate",
    "Utility",
    "drift_metrics",
    "drift_rows",
    "exact_shapley",
    "gtg_shapley",
    "leave_one_out",
    "robust_z",
    "round_game",
]
