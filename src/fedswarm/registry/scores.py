"""Contribution scores of a run's participants from its kept round updates ([store]
keep_updates): each round is a game (``fedswarm.contrib.round_game``) over the model it
started from, valued by minus the central test loss; leave-one-out and GTG-Shapley per
round, summed over the rounds.

Cost per round: GTG-Shapley evaluates at most ``max(3 n, 30)`` permutations of n
coalitions (fewer with truncation), each one aggregate and one central evaluation;
leave-one-out n + 1. The game aggregates a weighted mean (FedAvg with server_lr 1);
for server optimisers with momentum it approximates what the round did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fedswarm.contrib import Memo, gtg_shapley, leave_one_out, round_game
from fedswarm.messages import ClientId
from fedswarm.params import Params
from fedswarm.run.build import build
from fedswarm.run.experiment import Experiment
from fedswarm.run.store import RunStore
from fedswarm.seeding import round_rng

__all__ = ["RoundScores", "contributions", "totals"]


@dataclass(frozen=True, eq=False)
class RoundScores:
    round: int
    client_ids: tuple[ClientId, ...]
    leave_one_out: np.ndarray  # (clients,)
    shapley: np.ndarray  # (clients,) GTG-Shapley estimate
    evaluations: int  # distinct coalitions evaluated


def contributions(store: RunStore, rounds: Sequence[int] | None = None) -> list[RoundScores]:
    """Scores of each round in ``rounds`` (default: every round with kept updates)."""
    exp = build(store.config)
    out = []
    for rnd in rounds if rounds is not None else store.rounds_with_updates():
        kept = store.round_updates(rnd)
        base = store.load_version(rnd - 1)
        value = _minus_test_loss(exp, base)
        game = Memo(round_game(base.flat.astype(np.float64), kept.updates, kept.weights, value))
        n = len(kept.client_ids)
        loo = leave_one_out(n, game)
        est = gtg_shapley(n, game, round_rng(store.config.seed, rnd, "shapley"), truncation=1e-4)
        out.append(RoundScores(rnd, kept.client_ids, loo, est.values, game.evaluations))
    return out


def _minus_test_loss(exp: Experiment, base: Params) -> Callable[[np.ndarray], float]:
    def value(flat: np.ndarray) -> float:
        params = base.replace(flat.astype(np.float32))
        return -float(exp.learner.evaluate(params, exp.dataset.central_test).loss)

    return value


def totals(scores: Sequence[RoundScores]) -> dict[ClientId, tuple[float, float]]:
    """(leave-one-out, Shapley) summed over the rounds, per participant."""
    sums: dict[ClientId, tuple[float, float]] = {}
    for s in scores:
        for cid, loo, phi in zip(s.client_ids, s.leave_one_out, s.shapley, strict=True):
            a, b = sums.get(cid, (0.0, 0.0))
            sums[cid] = (a + float(loo), b + float(phi))
    return dict(sorted(sums.items()))
