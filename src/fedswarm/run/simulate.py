"""``fedswarm run``: a configured simulation that writes (or resumes) its run store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedswarm.reports import RoundReport
from fedswarm.run.build import build
from fedswarm.run.config import RunConfig
from fedswarm.run.experiment import RoundProgress
from fedswarm.run.store import RunStore
from fedswarm.strategy import ServerState

__all__ = ["simulate"]


def simulate(
    config: RunConfig,
    out: Path,
    on_round: Callable[[RoundReport], None] = lambda r: None,
    log: Callable[[str], None] = lambda line: None,
) -> ServerState:
    """Run ``config`` in simulation, writing (or resuming) the run store at ``out``.

    ``log`` receives notes the user should see (a backend fallback, a resumed run).
    """
    exp = build(config)
    for note in exp.notes:
        log(note)
    store = RunStore.open(out, config)
    start = store.latest()  # before any workers start: a damaged store fails fast
    if start is None:
        start = store.begin(exp.initial_state())
    elif start.state.round:
        log(f"resuming {out} after round {start.state.round}")

    def commit(progress: RoundProgress) -> None:
        store.commit(progress.state, progress.report, progress.memories)
        on_round(progress.report)

    if config.swarm is not None:
        from fedswarm.run.swarm import train_swarm_experiment

        final = train_swarm_experiment(exp, commit, start)
    else:
        final = exp.train(commit, resume=start, on_stop=log)  # a privacy budget says why
    store.finish(final)
    return final
