"""The in-process swarm: the same model, bit for bit, as the federated simulation of the same
config and seed; every peer merges the same bits; a wrong attestation is flagged; a round
short of its quorum closes at its deadline; a retried contribution counts once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from fedswarm.client import ClientApp
from fedswarm.run.build import build
from fedswarm.run.config import BackendKind, RunConfig, loads_config
from fedswarm.run.experiment import Experiment
from fedswarm.run.simulate import simulate
from fedswarm.strategy import ServerState
from fedswarm.swarm import simulate as swarm_simulate
from fedswarm.swarm.peer import Append, PeerRoundResult, RoundRules
from fedswarm.swarm.records import Kind
from fedswarm.swarm.simulate import SimulatedLedger, run_swarm_round
from fedswarm.swarm.view import contribution_body

SMALL = """
seed = 3
rounds = 3
[data]
name = "digits"
num_clients = 5
partition = "dirichlet"
[model]
hidden = [16]
[client]
steps = 3
batch_size = 16
lr = 0.05
[strategy]
{strategy}
[simulation]
backend = "sequential"
[evaluation]
every = 3
"""
STRATEGIES = {
    "fedavg": 'name = "fedavg"',
    "scaffold": 'name = "scaffold"\nfraction = 0.6',  # sampled peers, per-peer memories
    "fedadam": 'name = "fedadam"\nserver_lr = 0.01',
}


def config(strategy: str, swarm: bool) -> RunConfig:
    text = SMALL.format(strategy=STRATEGIES[strategy])
    return loads_config(text + ("\n[swarm]\n" if swarm else ""))


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_swarm_run_equals_federated_run_bit_for_bit(
    tmp_path: Path, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    federated = simulate(config(strategy, False), tmp_path / "fed")
    rounds: list[int] = []  # proof that the swarm ran, not the federated loop again
    real = swarm_simulate.run_swarm_round

    def counted(*args: Any, **kw: Any) -> dict[str, PeerRoundResult]:
        rounds.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(swarm_simulate, "run_swarm_round", counted)
    swarm = simulate(config(strategy, True), tmp_path / "swarm")
    assert len(rounds) == 3
    assert swarm.round == federated.round == 3
    assert swarm.params.sha256() == federated.params.sha256()
    assert (tmp_path / "swarm" / "metrics.jsonl").read_text().count("\n") == 3


def test_vectorized_federated_run_equals_the_swarm(tmp_path: Path) -> None:
    fed = config("fedavg", False)
    fed = fed.model_copy(
        update={"simulation": fed.simulation.model_copy(update={"backend": BackendKind.VECTORIZED})}
    )
    assert (
        simulate(fed, tmp_path / "fed").params.sha256()
        == simulate(config("fedavg", True), tmp_path / "swarm").params.sha256()
    )


@dataclass
class Swarm:
    exp: Experiment
    ledger: SimulatedLedger
    apps: dict[str, ClientApp]
    rules: RoundRules

    def round(self, states: dict[str, ServerState]) -> dict[str, PeerRoundResult]:
        apps = {n: self.apps[n] for n in states}
        return run_swarm_round(
            self.ledger, apps, states, {}, self.exp.strategy, self.exp.run, self.rules
        )


def swarm_of(cfg: RunConfig, rules: RoundRules | None = None) -> Swarm:
    exp = build(cfg)
    ids = list(exp.dataset.client_ids())
    ledger = SimulatedLedger()
    ledger.join({f"peer-{c}": c for c in ids})
    assert cfg.swarm is not None
    apps = {f"peer-{c}": exp.clients(c) for c in ids}
    return Swarm(exp, ledger, apps, rules or cfg.swarm.rules(len(ids)))


def test_a_peer_attesting_a_wrong_model_is_flagged() -> None:
    swarm = swarm_of(config("fedavg", True))
    state = swarm.exp.initial_state()
    names = sorted(swarm.apps)
    liar = names[-1]  # it merges from another model, so its attestation differs
    wrong = replace(state, params=state.params.replace(state.params.flat * 0.5))
    results = swarm.round({n: wrong if n == liar else state for n in names})
    honest = {r.model for n, r in results.items() if n != liar}
    assert len(honest) == 1
    assert results[liar].model not in honest
    flags = [r for r in swarm.ledger.records if r.kind == Kind.FLAG]
    assert [(f.body["peer"], f.body["model"]) for f in flags] == [(liar, results[liar].model)]
    assert swarm.ledger.view.round(1).majority() in honest


def test_short_of_quorum_the_round_closes_at_its_deadline() -> None:
    rules = RoundRules(quorum=5, deadline_s=30, attest_timeout_s=5)
    swarm = swarm_of(config("fedavg", True), rules)
    state = swarm.exp.initial_state()
    names = sorted(swarm.apps)
    present = [n for n in names if n != names[2]]
    results = swarm.round(dict.fromkeys(present, state))
    close = swarm.ledger.view.round(1).close
    assert close is not None
    assert close.body["reason"] == "deadline"
    assert {r.counted for r in results.values()} == {tuple(present)}


def test_a_retried_contribution_counts_once() -> None:
    swarm = swarm_of(config("fedavg", True))
    body = contribution_body(1, "ab" * 32, 7, {})
    swarm.ledger.append("peer-00000", Kind.CONTRIBUTION, body)
    swarm.ledger.append("peer-00000", Kind.CONTRIBUTION, body)
    assert len(swarm.ledger.view.round(1).contributions) == 1
    step = Append(Kind.CONTRIBUTION, body, lambda v: "peer-00000" not in v.round(1).contributions)
    assert not step.needed(swarm.ledger.view)
