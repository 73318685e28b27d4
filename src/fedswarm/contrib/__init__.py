"""Per-participant measurement: contribution scores (leave-one-out, exact and GTG-Shapley
over a round's game) and drift of each participant against its own history and the
federation. Apart from ``registry/`` (which manages model versions) because these are
measurements of participants, computed from round outcomes, and the ledger and dashboard
show them without the registry."""

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
    "Memo",
    "ShapleyEstimate",
    "Utility",
    "exact_shapley",
    "gtg_shapley",
    "leave_one_out",
    "round_game",
]
