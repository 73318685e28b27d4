"""Round overhead of the swarm (etcd ledger + mutual-TLS blob exchange) against the same rounds
through ``fedswarm server`` (FedAvg over gRPC), with N peers / participants on loopback.

Both run the same config (digits, MLP 64, 3 local steps, all N train every round, sequential
torch, one thread), as real processes started here. Per round: the coordinator's round
seconds (``metrics.jsonl``) and each peer's (its log: from the end of one merged round to the
end of the next, attestations included). Also the ledger's bytes and records per round.

    python bench/swarm.py --peers 5 10 --rounds 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedswarm.security.pki import Role, init_ca, issue
from fedswarm.swarm.ledger import read_ledger
from fedswarm.swarm.records import Kind

CONFIG = """
seed = 1
rounds = {rounds}
[data]
name = "digits"
num_clients = {n}
[model]
hidden = [64]
[client]
batch_size = 16
steps = 3
[strategy]
min_replies = {n}
[simulation]
backend = "sequential"
[evaluation]
every = 1000
central = false
[deployment]
join_timeout_s = 120
"""
ROUND = re.compile(r"round (\d+): .* in ([0-9.]+)s")


def free_block(n: int, start: int) -> int:
    base = start
    while True:
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            base += 10


def fedswarm(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fedswarm", *args], stdout=out, stderr=out, env=env
        )


def ids(n: int) -> list[str]:
    return [f"{i:05d}" for i in range(n)]


def server_rounds(n: int, rounds: int, d: Path) -> list[float]:
    pki = d / "pki"
    init_ca(pki)
    issue(pki, "coordinator", Role.SERVER)
    for cid in ids(n):
        issue(pki, cid, Role.CLIENT)
    config = d / "fed.toml"
    config.write_text(CONFIG.format(n=n, rounds=rounds))
    port = free_block(1, 31000)
    address = f"127.0.0.1:{port}"
    server = fedswarm(
        [
            "server",
            str(config),
            "--pki",
            str(pki),
            "--listen",
            address,
            "--state",
            str(d / "state"),
        ],
        d / "server.log",
    )
    clients = [
        fedswarm(["client", "--server", address, "--pki", str(pki), "--name", c], d / f"{c}.log")
        for c in ids(n)
    ]
    assert server.wait(900) == 0, (d / "server.log").read_text()[-2000:]
    for c in clients:
        c.wait(60)
    lines = (d / "state" / "metrics.jsonl").read_text().splitlines()
    return [float(json.loads(line)["seconds"]) for line in lines]


def swarm_rounds(n: int, rounds: int, d: Path) -> tuple[list[float], int, int]:
    pki = d / "pki"
    init_ca(pki)
    for cid in ids(n):
        issue(pki, f"peer-{cid}", Role.PEER)
    config = d / "swarm.toml"
    config.write_text(CONFIG.format(n=n, rounds=rounds) + "[swarm]\ndeadline_s = 120.0\n")
    listen = {}
    base = 32000
    for cid in ids(n):
        base = free_block(3, base)
        listen[cid] = f"127.0.0.1:{base}"
        base += 10
    procs = []
    for cid, address in listen.items():
        others = ",".join(a for a in listen.values() if a != address)
        args = [
            "peer",
            str(config),
            "--pki",
            str(pki),
            "--name",
            f"peer-{cid}",
            "--listen",
            address,
            "--peers",
            others,
            "--data",
            cid,
            "--out",
            str(d / cid),
        ]
        procs.append(fedswarm(args, d / f"peer-{cid}.log"))
    for p, cid in zip(procs, listen, strict=True):
        assert p.wait(900) == 0, (d / f"peer-{cid}.log").read_text()[-2000:]
    per_round: dict[int, list[float]] = {}
    for cid in listen:
        for m in ROUND.finditer((d / f"peer-{cid}.log").read_text()):
            per_round.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    seconds = [max(per_round[r]) for r in sorted(per_round)]  # the slowest peer ends a round
    records = read_ledger(d / ids(n)[0])
    size = (d / ids(n)[0] / "ledger.jsonl").stat().st_size
    members = sum(r.kind == Kind.MEMBERSHIP for r in records)
    member_bytes = sum(len(r.line()) + 1 for r in records if r.kind == Kind.MEMBERSHIP)
    return seconds, (size - member_bytes) // rounds, (len(records) - members) // rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    print("| N | mode | median round s (rounds 2..) | ledger bytes/round | records/round |")
    print("|---|---|---|---|---|")
    for n in args.peers:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "fed").mkdir()
            (d / "swarm").mkdir()
            t = time.perf_counter()
            fed = server_rounds(n, args.rounds, d / "fed")
            swarm, size, records = swarm_rounds(n, args.rounds, d / "swarm")
            print(f"| {n} | server (gRPC FedAvg) | {statistics.median(fed[1:]):.3f} | - | - |")
            median = statistics.median(swarm[1:])
            print(f"| {n} | swarm (etcd + blobs) | {median:.3f} | {size} | {records} |")
            print(f"<!-- N={n} took {time.perf_counter() - t:.0f}s -->", flush=True)


if __name__ == "__main__":
    main()
