"""`fedswarm server` and `fedswarm client` running split learning as real processes over
gRPC with mutual TLS: the same model as the simulation, through a coordinator crash; a
participant that dies mid-epoch leaves a complete run."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import test_deploy as d
from fedswarm.reports import RoundRecord
from fedswarm.run.config import loads_config
from fedswarm.run.simulate import simulate

AGENT = Path(__file__).with_name("split_agent.py")
CONFIG = """
seed = 4
rounds = {rounds}
[data]
num_clients = 5
[model]
hidden = [32, 16]
[client]
batch_size = {batch}
lr = 0.1
[simulation]
backend = "sequential"
[deployment]
join_timeout_s = {join}
[split]
mode = "{mode}"
"""

pki = d.pki


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[d.Fleet]:
    f = d.Fleet(tmp_path)
    try:
        yield f
    finally:
        f.kill_all()


def _config(fleet: d.Fleet, mode: str, rounds: int, batch: int, join: float) -> Path:
    path = fleet.dir / "split.toml"
    path.write_text(CONFIG.format(mode=mode, rounds=rounds, batch=batch, join=join))
    return path


def _rounds(state: Path) -> list[int]:
    lines = (state / "metrics.jsonl").read_text().splitlines()
    return [RoundRecord.from_json(json.loads(t), f"line {i}").round for i, t in enumerate(lines)]


@pytest.mark.slow
def test_a_split_deployment_killed_mid_run_resumes_to_the_simulated_model(
    pki: Path, fleet: d.Fleet
) -> None:
    config = _config(fleet, "vanilla", rounds=24, batch=4, join=60)
    port, state = d._free_port(), fleet.dir / "state"
    d._start_coordinator(fleet, config, pki, port, "server")
    d._start_clients(fleet, pki, port, d.NAMES)
    d._until(lambda: d._committed(state) >= 2, 180, "two committed rounds")
    fleet.procs["server"].send_signal(signal.SIGKILL)
    fleet.wait("server", 10)
    killed_after = d._committed(state)
    assert killed_after < 24, "the run ended before the kill: make rounds longer"
    d._start_coordinator(fleet, config, pki, port, "restarted")
    assert fleet.wait("restarted", 300) == 0, fleet.log("restarted")
    assert f"after round {killed_after}" in fleet.log("restarted")
    sim = simulate(loads_config(config.read_text()), fleet.dir / "sim")
    assert sim.round == 24
    # participant processes over gRPC, through the crash: the simulation's bits
    assert d._sha(state / "summary.json") == d._sha(fleet.dir / "sim" / "summary.json")
    assert _rounds(state) == list(range(1, 25))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["vanilla", "splitfed_v1"])
def test_a_participant_dying_mid_epoch_leaves_a_complete_run(
    mode: str, pki: Path, fleet: d.Fleet
) -> None:
    config = _config(fleet, mode, rounds=3, batch=16, join=8)
    port, state = d._free_port(), fleet.dir / "state"
    d._start_coordinator(fleet, config, pki, port, "server")
    d._start_clients(fleet, pki, port, d.NAMES[:4])
    address = f"127.0.0.1:{port}"
    fleet.start("dying", str(AGENT), address, str(pki), d.NAMES[4], "4")  # dies on step 4
    assert fleet.wait("server", 300) == 0, fleet.log("server")
    assert fleet.procs["dying"].wait(10) == 17, fleet.log("dying")
    assert _rounds(state) == [1, 2, 3]
    failed = {(rnd, cid) for rnd, cid, kind, _ in d._events(state) if kind != "refused"}
    assert (1, d.NAMES[4]) in failed, d._events(state)
    summary = json.loads((state / "summary.json").read_text())
    assert summary["eval_accuracy"] > 0.3, summary  # the others trained on (chance: 0.1)
