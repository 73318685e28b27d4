"""A network partition of five peers, made with network namespaces this test creates.

Each peer runs in its own namespace, its one link a veth into a "switch" namespace holding
two bridges; every peer starts on bridge 0. The partition moves two peers' links to bridge 1
(a 3 | 2 split), the heal moves them back. Nothing leaves the namespaces. Needs root,
``ip netns`` and etcd; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedswarm.security.pki import Role, init_ca, issue
from fedswarm.swarm.ledger import LEDGER_FILE, check_chain, read_ledger
from fedswarm.swarm.view import view_of


def _can_make_namespaces() -> bool:
    if os.geteuid() != 0 or shutil.which("etcd") is None or shutil.which("ip") is None:
        return False
    probe = f"fsw-probe-{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _can_make_namespaces(), reason="needs root, ip netns and etcd"),
]

N = 5
MINORITY = (3, 4)
PORT = 24000
CONFIG = """
seed = 6
rounds = 6
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
deadline_s = 4.0
attest_timeout_s = 30.0
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Net:
    """The namespaces: ``sw`` (two bridges) and one per peer, each with a veth to ``sw``."""

    tag: str
    made: list[str] = field(default_factory=list)

    def ns(self, i: int | str) -> str:
        return f"fsw{self.tag}-{i}"

    def address(self, i: int) -> str:
        return f"10.213.0.{i + 1}"

    def build(self) -> None:
        for name in (self.ns("sw"), *(self.ns(i) for i in range(N))):
            ip("netns", "add", name)
            self.made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        for br in ("br0", "br1"):
            ip("-n", self.ns("sw"), "link", "add", br, "type", "bridge")
            ip("-n", self.ns("sw"), "link", "set", br, "up")
        for i in range(N):
            ip("-n", self.ns(i), "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}")
            ip("-n", self.ns(i), "link", "set", f"p{i}", "netns", self.ns("sw"))
            ip("-n", self.ns(i), "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip("-n", self.ns(i), "link", "set", "eth0", "up")
            self.plug(i, "br0")
            ip("-n", self.ns("sw"), "link", "set", f"p{i}", "up")

    def plug(self, i: int, bridge: str) -> None:
        ip("-n", self.ns("sw"), "link", "set", f"p{i}", "master", bridge)

    def remove(self) -> None:
        for name in self.made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def net() -> Iterator[Net]:
    n = Net(str(os.getpid() % 10000))
    try:
        n.build()
        yield n
    finally:
        n.remove()


def ledger_of(out: Path) -> list[object]:
    file = out / LEDGER_FILE
    return list(read_ledger(file)) if file.exists() else []


def rounds_closed(out: Path) -> int:
    view = view_of(ledger_of(out))  # type: ignore[arg-type]
    return max((r for r, rv in view.rounds.items() if rv.close is not None), default=0)


def wait(what: str, ready: object, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


def _settle(out: Path, quiet_s: float = 5.0, limit_s: float = 60.0) -> None:
    """Wait until ``out``'s ledger has not grown for ``quiet_s`` (at most ``limit_s``)."""
    end, last, since = time.monotonic() + limit_s, -1, time.monotonic()
    while time.monotonic() < end:
        n = len(ledger_of(out))
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)


def test_minority_stalls_majority_goes_on_and_after_healing_all_agree(
    net: Net, tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    init_ca(pki)
    names = [f"peer-{i:05d}" for i in range(N)]
    for i, name in enumerate(names):
        issue(pki, name, Role.PEER, hosts=(net.address(i),))
    config = tmp_path / "swarm.toml"
    config.write_text(CONFIG)
    listen = [f"{net.address(i)}:{PORT}" for i in range(N)]
    procs = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for i, name in enumerate(names):
        args = [
            "fedswarm",
            "peer",
            str(config),
            "--pki",
            str(pki),
            "--name",
            name,
            "--listen",
            listen[i],
            "--peers",
            ",".join(a for a in listen if a != listen[i]),
            "--data",
            f"{i:05d}",
            "--out",
            str(tmp_path / name),
        ]
        with open(tmp_path / f"{name}.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", net.ns(i), sys.executable, "-m", *args],
                    stdout=log,
                    stderr=log,
                    env=env,
                )
            )
    outs = [tmp_path / n for n in names]
    try:
        wait("round 1 closes everywhere", lambda: all(rounds_closed(o) >= 1 for o in outs), 240)
        for i in MINORITY:
            net.plug(i, "br1")
        # What the minority had received before the cut may still reach its copy: wait until
        # its ledger has stopped growing, then it must not grow again while cut off.
        for i in MINORITY:
            _settle(outs[i])
        cut = {i: rounds_closed(outs[i]) for i in MINORITY}
        stalled = {i: len(ledger_of(outs[i])) for i in MINORITY}
        majority = [o for i, o in enumerate(outs) if i not in MINORITY]
        wait(
            "the majority closes two more rounds",
            lambda: all(rounds_closed(o) >= max(cut.values()) + 2 for o in majority),
            180,
        )
        for i in MINORITY:  # no progress on the minority side: not one more record
            assert len(ledger_of(outs[i])) == stalled[i]
        for i in MINORITY:
            net.plug(i, "br0")
        for i, p in enumerate(procs):
            assert p.wait(300) == 0, (tmp_path / f"{names[i]}.log").read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    models = {(o / "model.sha256").read_text() for o in outs}
    assert len(models) == 1
    heads = {check_chain(read_ledger(o)).head for o in outs}
    assert len(heads) == 1
