"""``fedswarm run``: a configured simulation that writes (or resumes) its run directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedswarm.driver import RoundReport
from fedswarm.run.build import build
from fedswarm.run.config import RunConfig
from fedswarm.run.experiment import RoundProgress
from fedswarm.run.rundir import RunDirectory
from fedswarm.strategy import ServerState

__all__ = ["simulate"]


def simulate(
    config: RunConfig,
    out: Path,
    on_round: Callable[[RoundReport], None] = lambda r: None,
    log: Callable[[str], None] = lambda line: None,
) -> ServerState:
    """Run ``config`` in simulation, writing (or resuming) the run directory ``out``.

    ``log`` receives notes the user should see (a backend fallback, a resumed run).
    """
    exp = build(config)
    for note in exp.notes:
        log(note)
    rundir = RunDirectory.open(out, config)
    checkpoint = rundir.checkpoint()  # before any workers start: a bad one fails fast
    if checkpoint:
        log(f"resuming {out} after round {checkpoint.state.round}")

    def record(progress: RoundProgress) -> None:
        rundir.record_round(progress.state, progress.report, progress.memories)
        on_round(progress.report)

    final = exp.train(record, resume=checkpoint)
    rundir.finish(final)
    return final
