"""``fedswarm peer``: one swarm peer process, built from a run config with ``[swarm]``.

Addresses: ``--listen HOST:PORT`` is this peer's etcd client port; its etcd member port is
PORT+1 and its blob server PORT+2. ``--peers`` lists the other peers' ``--listen``
addresses; etcd members are named after their addresses, so every peer derives the same
cluster from the same lists. ``--out DIR`` keeps the etcd data, the blobs, a copy of the
ledger (``ledger.jsonl``, for ``fedswarm ledger verify``) and the final model
(``model.safetensors``, ``model.sha256``); a peer restarted on the same DIR catches up.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedswarm.checkpoint import encode_params
from fedswarm.deploy.node import find_node
from fedswarm.pytorch.settings import torch_settings
from fedswarm.run.build import build
from fedswarm.run.config import RunConfig
from fedswarm.security.pki import Role, TrustStore
from fedswarm.security.signing import NodeSigner
from fedswarm.strategy import ServerState
from fedswarm.swarm.blobs import BlobServer, BlobStore
from fedswarm.swarm.etcd import EtcdClient, EtcdMember, TlsFiles
from fedswarm.swarm.ledger import write_ledger
from fedswarm.swarm.node import EtcdLedger, PeerContext, run_peer
from fedswarm.swarm.peer import PeerRoundResult

__all__ = ["PeerOptions", "member_name", "run_peer_process"]

log = logging.getLogger("fedswarm.peer")


@dataclass(frozen=True)
class PeerOptions:
    pki: Path
    name: str
    listen: str
    peers: Sequence[str]
    client_id: str  # whose partition of the config's dataset this peer trains on
    out: Path


def member_name(address: str) -> str:
    return "m-" + address.replace(":", "-")


def _shift(address: str, by: int) -> str:
    host, port = address.rsplit(":", 1)
    return f"{host}:{int(port) + by}"


def run_peer_process(config: RunConfig, opts: PeerOptions) -> ServerState:
    """Start the etcd member and the blob server, run every round, write the outputs."""
    if config.swarm is None:
        raise ValueError("fedswarm peer needs a config with a [swarm] table")
    node = find_node(opts.pki, Role.PEER, opts.name)
    tls = TlsFiles(opts.pki / "ca.crt", node.cert, node.key, opts.pki / "ca.crl")
    everyone = sorted({opts.listen, *opts.peers})
    member = EtcdMember(
        member_name(opts.listen),
        opts.out / "etcd",
        opts.listen,
        _shift(opts.listen, 1),
        [(member_name(a), _shift(a, 1)) for a in everyone],
        tls,
    )
    opts.out.mkdir(parents=True, exist_ok=True)
    etcd = member.start(opts.out / "etcd.log")
    blobs = BlobStore(opts.out / "blobs")
    server = BlobServer(blobs, _shift(opts.listen, 2), tls)
    server.start()
    try:
        return _train(config, opts, tls, blobs)
    finally:
        server.close()
        _stop(etcd)


def _stop(etcd: subprocess.Popen[bytes]) -> None:
    """Stop the member: SIGTERM (it flushes its WAL), SIGKILL if it lingers (a loaded host)."""
    etcd.terminate()
    try:
        etcd.wait(10)
    except subprocess.TimeoutExpired:
        etcd.kill()
        etcd.wait()


def _train(config: RunConfig, opts: PeerOptions, tls: TlsFiles, blobs: BlobStore) -> ServerState:
    assert config.swarm is not None
    exp = build(config)
    signer = NodeSigner.load(tls.key, tls.cert)
    ledger = EtcdLedger(EtcdClient(opts.listen, tls), TrustStore.load(opts.pki))
    ctx = PeerContext(
        signer, exp.clients(opts.client_id), ledger, blobs, tls, _shift(opts.listen, 2)
    )
    peers = len({opts.listen, *opts.peers})

    since = [time.perf_counter()]  # the round's wall time, for bench/swarm.py

    def on_round(result: PeerRoundResult) -> None:
        now = time.perf_counter()
        seconds, since[0] = now - since[0], now
        write_ledger(opts.out, ledger.records)
        log.info(
            "round %d: model %s from %s in %.3fs",
            result.state.round,
            result.model[:12],
            ",".join(result.counted),
            seconds,
        )

    with torch_settings(config.simulation.threads):
        final = run_peer(
            ctx,
            exp.strategy,
            exp.initial_state(),
            exp.run,
            config.swarm.rules(peers),
            peers=peers,
            rounds=config.rounds,
            on_round=on_round,
        )
    write_ledger(opts.out, ledger.records)
    (opts.out / "model.safetensors").write_bytes(encode_params(final.params))
    (opts.out / "model.sha256").write_text(final.params.sha256() + "\n")
    return final
