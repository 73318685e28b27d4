"""``fedswarm run`` of a config with ``[swarm]``: the in-process swarm, reported round by
round like a federated simulation (the same run store, the same records)."""

from __future__ import annotations

from collections.abc import Callable

from fedswarm.checkpoint import Checkpoint
from fedswarm.pytorch.settings import torch_settings
from fedswarm.reports import RoundReport
from fedswarm.run.experiment import Experiment, RoundProgress
from fedswarm.strategy import ServerState
from fedswarm.swarm.peer import PeerRoundResult
from fedswarm.swarm.simulate import train_swarm

__all__ = ["train_swarm_experiment"]


def train_swarm_experiment(
    exp: Experiment, on_round: Callable[[RoundProgress], None], resume: Checkpoint
) -> ServerState:
    """Every configured round as a swarm of one peer per client, from ``resume``."""
    config = exp.config
    assert config.swarm is not None, "a swarm run needs [swarm]"
    ids = list(exp.dataset.client_ids())
    memories = dict(resume.memories)

    def report(state: ServerState, result: PeerRoundResult, seconds: float) -> None:
        last = state.round == config.rounds
        central = None
        if config.evaluation.central and (state.round % config.evaluation.every == 0 or last):
            central = exp.learner.evaluate(state.params, exp.dataset.central_test)
        rep = RoundReport(
            round=state.round,
            num_clients=result.summary.num_replies,
            num_failures=0,
            train_loss=result.summary.train_loss,
            update_norm=result.summary.update_norm,
            seconds=seconds,
            central=central,
            replied=tuple(sorted(p.removeprefix("peer-") for p in result.counted)),
        )
        on_round(RoundProgress(state, rep, memories))

    with torch_settings(config.simulation.threads):
        final, _ = train_swarm(
            exp.clients,
            ids,
            resume.state,
            exp.strategy,
            exp.run,
            config.swarm.rules(len(ids)),
            rounds=config.rounds,
            on_round=report,
            memories=memories,
        )
    return final
