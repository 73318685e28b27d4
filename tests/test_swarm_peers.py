"""``fedswarm peer`` as real processes on loopback, each with its own etcd member.

Every process is started here and killed at the end of its test. The witnesses: each peer's
``model.sha256`` and ``ledger.jsonl``, and the ledger read live from etcd by an observer.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedswarm.cli import app
from fedswarm.deploy.peer import member_name
from fedswarm.run.config import loads_config
from fedswarm.security.pki import Role, TrustStore, init_ca, issue, revoke
from fedswarm.swarm.blobs import BlobError, BlobServer, BlobStore, fetch_blob
from fedswarm.swarm.etcd import EtcdClient, EtcdError, EtcdMember, TlsFiles
from fedswarm.swarm.ledger import read_ledger
from fedswarm.swarm.node import EtcdLedger
from fedswarm.swarm.records import Kind
from fedswarm.swarm.simulate import train_swarm

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "etcd"], capture_output=True).returncode != 0,
    reason="etcd is not installed (.ci/run installs Debian's etcd-server)",
)

NAMES = ("00000", "00001", "00002", "00003", "00004")
CONFIG = """
seed = 5
rounds = {rounds}
[data]
name = "digits"
num_clients = 5
[model]
hidden = [16]
[client]
batch_size = 16
steps = 3
[simulation]
backend = "sequential"
[swarm]
deadline_s = {deadline}
attest_timeout_s = 4.0
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root)
    for name in (*(f"peer-{n}" for n in NAMES), "observer", "gone"):
        issue(root, name, Role.PEER)
    issue(root, "alice", Role.CLIENT)
    revoke(root, "gone")
    return root


def tls_of(pki: Path, name: str) -> TlsFiles:
    return TlsFiles(
        pki / "ca.crt", pki / f"nodes/{name}.crt", pki / f"nodes/{name}.key", pki / "ca.crl"
    )


def free_block(n: int) -> int:
    """A port p with p..p+n-1 all free on loopback."""
    while True:
        base = random.randrange(20000, 60000, 10)
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue


@dataclass
class Swarm:
    dir: Path
    pki: Path
    config: Path
    addresses: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        others = ",".join(a for n, a in self.addresses.items() if n != name)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.dir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fedswarm",
                    "peer",
                    str(self.config),
                    "--pki",
                    str(self.pki),
                    "--name",
                    name,
                    "--listen",
                    self.addresses[name],
                    "--peers",
                    others,
                    "--data",
                    name.removeprefix("peer-"),
                    "--out",
                    str(self.dir / name),
                ],
                stdout=log,
                stderr=log,
                env=env,
            )

    def observer(self, name: str = "peer-00000") -> EtcdLedger:
        client = EtcdClient(self.addresses[name], tls_of(self.pki, "observer"), timeout=2)
        return EtcdLedger(client, TrustStore.load(self.pki))

    def wait_all(self, timeout: float, names: list[str] | None = None) -> None:
        end = time.monotonic() + timeout
        for name in names or list(self.procs):
            left = max(end - time.monotonic(), 0.1)
            assert self.procs[name].wait(left) == 0, (self.dir / f"{name}.log").read_text()[-3000:]

    def model(self, name: str) -> str:
        return (self.dir / name / "model.sha256").read_text().strip()

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)


@pytest.fixture
def swarm(tmp_path: Path, pki: Path) -> Iterator[Callable[[int, float], Swarm]]:
    made: list[Swarm] = []

    def make(rounds: int, deadline: float) -> Swarm:
        config = tmp_path / "swarm.toml"
        config.write_text(CONFIG.format(rounds=rounds, deadline=deadline))
        s = Swarm(tmp_path, pki, config)
        for n in NAMES:
            s.addresses[f"peer-{n}"] = f"127.0.0.1:{free_block(3)}"
        made.append(s)
        return s

    yield make
    for s in made:
        for p in s.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)


def simulated_sha(config: Path) -> str:
    from fedswarm.run.build import build

    cfg = loads_config(config.read_text())
    assert cfg.swarm is not None
    exp = build(cfg)
    ids = list(exp.dataset.client_ids())
    final, _ = train_swarm(
        exp.clients,
        ids,
        exp.initial_state(),
        exp.strategy,
        exp.run,
        cfg.swarm.rules(len(ids)),
        rounds=cfg.rounds,
    )
    return final.params.sha256()


def wait_for(ledger: EtcdLedger, ready: Callable[[EtcdLedger], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            ledger.refresh()
            if ready(ledger):
                return
        except EtcdError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out waiting on the ledger")


def assert_counted_once(records: list[object]) -> None:
    """Every close counts distinct authors' contributions of its round, each only once."""
    from fedswarm.swarm.view import view_of

    view = view_of(records)  # type: ignore[arg-type]
    for rnd, rv in view.rounds.items():
        assert rv.close is not None, f"round {rnd} never closed"
        counted = rv.counted()
        assert (
            len({r.author for r in counted}) == len(counted) == len(rv.close.body["contributions"])
        )


@pytest.mark.slow
def test_five_peers_end_with_the_simulated_model(swarm: Callable[[int, float], Swarm]) -> None:
    s = swarm(3, 60.0)
    for name in s.addresses:
        s.start(name)
    s.wait_all(240)
    models = {s.model(n) for n in s.addresses}
    assert models == {simulated_sha(s.config)}
    for name in s.addresses:
        result = CliRunner().invoke(
            app, ["ledger", "verify", str(s.dir / name), "--ca", str(s.pki)]
        )
        assert result.exit_code == 0, result.output
    records = read_ledger(s.dir / "peer-00000")
    assert_counted_once(records)  # type: ignore[arg-type]
    assert sum(r.kind == Kind.CONTRIBUTION for r in records) == 15


def leader(s: Swarm) -> str:
    """The peer whose etcd member leads the cluster."""
    for name in s.addresses:
        try:
            client = EtcdClient(s.addresses[name], tls_of(s.pki, "observer"), timeout=2)
            status = client.status()
            members = client.call("/v3/cluster/member/list", {})["members"]
        except EtcdError:
            continue
        finally:
            client.close()
        by_id = {m["ID"]: m["name"] for m in members}
        lead = by_id[status["leader"]]
        return next(n for n, a in s.addresses.items() if member_name(a) == lead)
    raise AssertionError("no etcd member answers")


@pytest.mark.slow
def test_killing_the_consensus_leader_mid_round_loses_no_round(
    swarm: Callable[[int, float], Swarm],
) -> None:
    s = swarm(4, 8.0)
    for name in s.addresses:
        s.start(name)
    obs = s.observer()
    wait_for(obs, lambda led: len(led.view.round(2).contributions) >= 2, 180)
    obs.client.close()
    victim = leader(s)
    s.kill(victim)
    survivors = [n for n in s.addresses if n != victim]
    s.wait_all(240, survivors)
    assert len({s.model(n) for n in survivors}) == 1
    records = read_ledger(s.dir / survivors[0])
    assert_counted_once(records)  # type: ignore[arg-type]
    from fedswarm.swarm.view import view_of

    view = view_of(records)
    assert sorted(view.rounds) == [1, 2, 3, 4]
    for rnd in (2, 3, 4):  # every survivor's contribution counts, the failover lost none
        assert set(survivors) <= {r.author for r in view.round(rnd).counted()}
    committed_before = {
        r.digest for r in records if r.kind == Kind.CONTRIBUTION and r.body["round"] == 2
    }
    assert set(view.round(2).close.body["contributions"]) <= committed_before  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_killed_peer_restarts_catches_up_and_contributes_again(
    swarm: Callable[[int, float], Swarm],
) -> None:
    s = swarm(5, 6.0)
    for name in s.addresses:
        s.start(name)
    obs = s.observer()
    victim = "peer-00003"
    wait_for(obs, lambda led: victim in led.view.round(1).attestations, 180)
    s.kill(victim)
    wait_for(obs, lambda led: led.view.round(2).close is not None, 180)
    obs.client.close()
    s.start(victim)
    s.wait_all(300)
    assert len({s.model(n) for n in s.addresses}) == 1
    records = read_ledger(s.dir / victim)
    later = [
        r
        for r in records
        if r.kind == Kind.CONTRIBUTION and r.author == victim and r.body["round"] >= 3
    ]
    assert later, "the restarted peer never contributed again"
    assert_counted_once(records)  # type: ignore[arg-type]


def test_foreign_and_revoked_peers_can_neither_read_nor_append(tmp_path: Path, pki: Path) -> None:
    other = tmp_path / "foreign"
    init_ca(other)
    issue(other, "peer-00000", Role.PEER)
    base = free_block(3)
    client, peer_port, blob = (f"127.0.0.1:{base + i}" for i in range(3))
    member = EtcdMember(
        "m", tmp_path / "etcd", client, peer_port, [("m", peer_port)], tls_of(pki, "observer")
    )
    proc = member.start(tmp_path / "etcd.log")
    store = BlobStore(tmp_path / "blobs")
    sha = store.put(b"an update")
    server = BlobServer(store, blob, tls_of(pki, "observer"))
    server.start()
    try:
        good = EtcdClient(client, tls_of(pki, "peer-00000"))
        end = time.monotonic() + 20
        while True:
            try:
                assert good.put_if(b"/k", None, {b"/k": b"v"})
                break
            except EtcdError:
                assert time.monotonic() < end
                time.sleep(0.2)
        assert fetch_blob(sha, [blob], tls_of(pki, "peer-00000")) == b"an update"
        # the foreign peer trusts our CA for the server's certificate: only its own is foreign
        foreign = replace(tls_of(other, "peer-00000"), ca=pki / "ca.crt")
        for tls in (foreign, tls_of(pki, "gone")):
            intruder = EtcdClient(client, tls, timeout=3)
            with pytest.raises(EtcdError):
                intruder.get(b"/k")
            with pytest.raises(EtcdError):
                intruder.put_if(b"/k2", None, {b"/k2": b"x"})
            with pytest.raises(BlobError):
                fetch_blob(sha, [blob], tls, timeout=3)
        assert good.get(b"/k2") is None
        good.close()
    finally:
        server.close()
        proc.kill()
        proc.wait(10)
