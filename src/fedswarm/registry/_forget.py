"""Forgetting a participant: roll back to the last version before its first contribution
and continue without it (``fedswarm models forget``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedswarm.messages import ClientId
from fedswarm.registry._versions import lineage, open_run
from fedswarm.run.store import RunStore, RunStoreError

__all__ = ["Forgotten", "forget"]


@dataclass(frozen=True)
class Forgotten:
    store: RunStore  # the run under its new config, to continue (``simulate(store.config, ...)``)
    rolled_back_to: int  # the last round it did not contribute to (and none before)
    discarded: tuple[int, ...]  # the rounds to retrain


def forget(run: Path, participant: ClientId) -> Forgotten:
    """Roll the run at ``run`` back to before ``participant``'s first contribution and
    switch it to a config that forgets it; the caller then retrains the remaining rounds
    (in simulation: :func:`fedswarm.run.simulate.simulate` with ``store.config``)."""
    store = open_run(run)
    if participant in store.config.forgotten:
        raise RunStoreError(f"{participant!r} is forgotten already in {run}")
    contributed = [v.round for v in lineage(store) if participant in v.contributors]
    if not contributed:
        raise RunStoreError(
            f"{participant!r} contributed to no version of {run}; nothing to forget"
        )
    target = contributed[0] - 1
    discarded = store.rollback(target)
    forgotten = tuple(sorted({*store.config.forgotten, participant}))
    config = store.config.model_copy(update={"forgotten": forgotten})
    return Forgotten(store.forget(participant, config), target, tuple(discarded))
