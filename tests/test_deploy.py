"""`fedswarm server` and `fedswarm client` as real processes on loopback.

Every process is started here and killed at the end of its test. The coordinator's state
directory (state.sqlite) is the witness: what it committed, and every failure and refusal
with its reason.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedswarm.reports import RoundRecord
from fedswarm.run.config import loads_config
from fedswarm.run.simulate import simulate
from fedswarm.security.pki import Role, init_ca, issue, revoke

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # processes: minutes on 2 cores
AGENT = Path(__file__).with_name("deploy_agent.py")
NAMES = ("00000", "00001", "00002", "00003", "00004")
CONFIG = """
seed = 4
rounds = {rounds}
[data]
num_clients = 5
[client]
batch_size = 16
epochs = {epochs}
[strategy]
min_replies = 2
[simulation]
backend = "sequential"
[deployment]
join_timeout_s = {join}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root)
    issue(root, "coordinator", Role.SERVER, hosts=("127.0.0.1",))
    for name in (*NAMES, "mallory"):
        issue(root, name, Role.CLIENT)
    revoke(root, "mallory")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fleet:
    """The processes of one test, with their output in files; all killed at the end."""

    dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, key: str, *args: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.dir / f"{key}.log", "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=log, env=env)
        self.procs[key] = proc
        return proc

    def fedswarm(self, key: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(key, "-m", "fedswarm", *args)

    def log(self, key: str) -> str:
        return (self.dir / f"{key}.log").read_text(errors="replace")

    def wait(self, key: str, timeout: float = 180) -> int:
        try:
            return self.procs[key].wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{key} did not finish in {timeout} s; its log:\n{self.log(key)}")

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.kill_all()


def _until(what: Callable[[], bool], timeout: float, why: str) -> None:
    end = time.monotonic() + timeout
    while not what():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {why}")
        time.sleep(0.05)


def _committed(state: Path) -> int:
    db = state / "state.sqlite"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return int(con.execute("SELECT COALESCE(MAX(round), 0) FROM rounds").fetchone()[0])
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


def _events(state: Path) -> list[tuple[int, str, str, str]]:
    with sqlite3.connect(state / "state.sqlite") as con:
        return list(con.execute("SELECT round, client_id, kind, reason FROM events"))


def _start_coordinator(fleet: Fleet, config: Path, pki: Path, port: int, key: str) -> None:
    state = fleet.dir / "state"
    fleet.fedswarm(
        key, "server", str(config), "--pki", str(pki), "--listen", f"127.0.0.1:{port}",
        "--state", str(state),
    )  # fmt: skip


def _start_clients(fleet: Fleet, pki: Path, port: int, names: tuple[str, ...]) -> None:
    for name in names:
        fleet.fedswarm(
            name, "client", "--server", f"127.0.0.1:{port}", "--pki", str(pki), "--name", name
        )


def _sha(summary: Path) -> str:
    return str(json.loads(summary.read_text())["model_sha256"])


def _write_config(fleet: Fleet, rounds: int, epochs: int, join: float) -> Path:
    path = fleet.dir / "federation.toml"
    path.write_text(CONFIG.format(rounds=rounds, epochs=epochs, join=join))
    return path


def test_a_deployment_equals_the_simulation_of_its_config(pki: Path, fleet: Fleet) -> None:
    config = _write_config(fleet, rounds=4, epochs=1, join=60)
    port = _free_port()
    _start_coordinator(fleet, config, pki, port, "server")
    _start_clients(fleet, pki, port, NAMES)
    assert fleet.wait("server") == 0, fleet.log("server")
    for name in NAMES:  # told the run is over, every participant exits cleanly
        assert fleet.wait(name, 30) == 0, fleet.log(name)
    sim = simulate(loads_config(config.read_text()), fleet.dir / "sim")
    assert sim.round == 4
    sha = _sha(fleet.dir / "state" / "summary.json")
    assert sha == _sha(fleet.dir / "sim" / "summary.json")
    assert f"model_sha256 {sha}" in fleet.log("server")  # whole, in a pipe too
    with sqlite3.connect(fleet.dir / "state" / "state.sqlite") as con:
        updates = dict(con.execute("SELECT client_id, updates FROM clients"))
    assert updates == dict.fromkeys(NAMES, 4)


def test_a_killed_coordinator_resumes_to_the_same_model(pki: Path, fleet: Fleet) -> None:
    config = _write_config(fleet, rounds=6, epochs=20, join=60)
    port, state = _free_port(), fleet.dir / "state"
    _start_coordinator(fleet, config, pki, port, "server")
    _start_clients(fleet, pki, port, NAMES)
    _until(lambda: _committed(state) >= 2, 120, "two committed rounds")
    fleet.procs["server"].send_signal(signal.SIGKILL)
    fleet.wait("server", 10)
    killed_after = _committed(state)
    assert killed_after < 6, "the run ended before the kill: make rounds longer"
    _start_coordinator(fleet, config, pki, port, "restarted")
    assert fleet.wait("restarted") == 0, fleet.log("restarted")
    assert f"after round {killed_after}" in fleet.log("restarted")
    sim = simulate(loads_config(config.read_text()), fleet.dir / "sim")
    assert sim.round == 6
    assert _sha(state / "summary.json") == _sha(fleet.dir / "sim" / "summary.json")
    lines = (state / "metrics.jsonl").read_text().splitlines()
    rounds = [RoundRecord.from_json(json.loads(t), f"line {i}").round for i, t in enumerate(lines)]
    assert rounds == [1, 2, 3, 4, 5, 6]  # nothing lost, nothing repeated


def test_faults_and_bad_input_are_refused_while_the_rounds_go_on(
    pki: Path, fleet: Fleet, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = _write_config(fleet, rounds=3, epochs=40, join=6)  # join: time to start up
    port, state = _free_port(), fleet.dir / "state"
    address = f"127.0.0.1:{port}"
    _start_coordinator(fleet, config, pki, port, "server")
    _start_clients(fleet, pki, port, ("00000", "00001", "00002"))
    fleet.start("00003", str(AGENT), "nan", address, str(pki), "00003")
    fleet.start("00004", str(AGENT), "replay", address, str(pki), "00004")
    revoked = fleet.fedswarm(
        "mallory", "client", "--server", address, "--pki", str(pki), "--name", "mallory"
    )
    stranger = tmp_path_factory.mktemp("other-ca")
    init_ca(stranger)
    issue(stranger, "00000", Role.CLIENT)
    fleet.fedswarm(
        "stranger", "client", "--server", address, "--pki", str(stranger), "--name", "00000"
    )
    _until(lambda: "00002: round 2: fit" in fleet.log("00002"), 120, "00002 training round 2")
    fleet.procs["00002"].send_signal(signal.SIGKILL)  # mid-round: while it trains

    assert fleet.wait("server") == 0, fleet.log("server")
    assert revoked.wait(30) == 3
    assert "refused by the coordinator" in fleet.log("mallory")
    assert "revoked" in fleet.log("mallory")
    events = _events(state)
    reasons = {(cid, kind): reason for _, cid, kind, reason in events}
    assert (2, "00002", "failure") in {(r, c, k) for r, c, k, _ in events}
    assert "disconnected" in reasons["00002", "failure"]
    assert "NaN or Inf" in reasons["00003", "refusal"]
    assert "already received (a replay)" in reasons["00004", "refusal"]
    assert "revoked" in reasons["mallory", "refusal"]
    with sqlite3.connect(state / "state.sqlite") as con:
        registry = {row[0]: row[1:] for row in con.execute(
            "SELECT client_id, updates, failures, refusals FROM clients")}  # fmt: skip
    assert registry["00000"] == (3, 0, 0)
    assert registry["00001"] == (3, 0, 0)
    assert registry["00003"] == (0, 3, 3)  # no NaN update ever counted; each one refused
    assert registry["00004"][0] == 1  # its reply counted, the replay was refused and it
    assert registry["00004"][2] == 1  # was disconnected (this agent does not come back)
    assert set(registry) == {*NAMES, "mallory"}  # the stranger never got in
    assert _committed(state) == 3
    assert fleet.wait("stranger", 30) == 3  # it trusts another CA: it stops and says so
    assert "CERTIFICATE_VERIFY_FAILED" in fleet.log("stranger")
