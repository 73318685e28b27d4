"""A peer process's driver: the same round generators, over etcd and mutual-TLS blob fetches.

:class:`EtcdLedger` is the ledger as this peer sees it: the records etcd committed, each
checked into a :class:`~fedswarm.swarm.ledger.Chain` (signature, author's certificate from
the federation's CA, hash chain) before it counts, and appended by a compare-and-put on the
head (see :mod:`fedswarm.swarm.etcd`). Requests that fail (the leader died, an election is
under way, this side of a partition has no majority) are retried; an append whose reply was
lost is found on the re-read, so a record is never written twice by its author's retry.

:func:`run_peer` joins, waits for the expected members, and runs every round from the
ledger's beginning: rounds already closed are merged from the ledger and the blobs (a
restarted or late peer catches up this way), the open one is joined.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fedswarm.client import ClientApp
from fedswarm.messages import ClientId, ClientMemory
from fedswarm.security.pki import Role, TrustStore
from fedswarm.security.signing import NodeSigner
from fedswarm.strategy import FitStrategy, RunInfo, ServerState
from fedswarm.swarm.blobs import BlobError, BlobStore, fetch_blob
from fedswarm.swarm.etcd import EtcdClient, EtcdError, TlsFiles
from fedswarm.swarm.ledger import Chain
from fedswarm.swarm.peer import (
    Append,
    Await,
    Fetch,
    PeerRound,
    PeerRoundResult,
    Publish,
    RoundRules,
    Train,
    peer_round,
)
from fedswarm.swarm.records import Kind, Record, new_record
from fedswarm.swarm.view import SwarmView

__all__ = ["EtcdLedger", "PeerContext", "drive_round", "run_peer"]

_POLL_S = 0.05


@dataclass
class EtcdLedger:
    client: EtcdClient
    trust: TrustStore
    prefix: bytes = b"/fedswarm/ledger"
    chain: Chain = field(init=False)
    view: SwarmView = field(default_factory=SwarmView)

    def __post_init__(self) -> None:
        self.chain = Chain(self.trust, frozenset({Role.PEER}))

    @property
    def records(self) -> list[Record]:
        return self.chain.records

    def _key(self, seq: int) -> bytes:
        return self.prefix + b"/rec/%012d" % seq

    def refresh(self) -> None:
        """Read and check every record committed since the last refresh."""
        start, prefix = self._key(len(self.records)), self.prefix + b"/rec/"
        for _key, line in self.client.range_from(start, prefix):
            record = Record.parse(line)
            self.chain.append_checked(record)  # a bad record stops this peer, named
            self.view.apply(record)

    def append(
        self,
        signer: NodeSigner,
        kind: str,
        body: Mapping[str, Any],
        needed: Callable[[SwarmView], bool],
    ) -> None:
        """Append unless ``needed`` says the ledger no longer needs it; retried to commit."""
        while True:
            try:
                self.refresh()
                if not needed(self.view):
                    return
                seq, head = len(self.records), self.chain.head
                record = new_record(seq, head, kind, signer, body)
                expected = f"{seq - 1} {head}".encode() if seq else None
                puts = {
                    self._key(seq): record.line(),
                    self.prefix + b"/head": f"{seq} {record.digest}".encode(),
                }
                if self.client.put_if(self.prefix + b"/head", expected, puts):
                    self.refresh()
                    return
            except EtcdError:
                time.sleep(_POLL_S * 4)  # an election, a lost leader, or no majority here

    def wait(self, ready: Callable[[SwarmView], bool], deadline_s: float | None) -> SwarmView:
        """The view once ``ready`` holds or ``deadline_s`` passed (then as it is)."""
        end = None if deadline_s is None else time.monotonic() + deadline_s
        while True:
            with contextlib.suppress(EtcdError):  # keep waiting: the deadline is ours
                self.refresh()
            if ready(self.view) or (end is not None and time.monotonic() >= end):
                return self.view
            time.sleep(_POLL_S)


@dataclass
class PeerContext:
    """What one peer process holds: its identity, its data, its ledger and blobs."""

    signer: NodeSigner
    app: ClientApp
    ledger: EtcdLedger
    blobs: BlobStore
    tls: TlsFiles
    address: str  # where this peer serves its blobs
    memory: ClientMemory = field(default_factory=dict)
    fetch_timeout_s: float = 300.0

    def fetch(self, shas: tuple[str, ...], required: bool) -> dict[str, bytes]:
        """The blobs named, from this peer's folder or the others'; with ``required``, tried
        again (peers restart, partitions heal) until ``fetch_timeout_s``, then BlobError."""
        out: dict[str, bytes] = {}
        end = time.monotonic() + self.fetch_timeout_s
        for sha in shas:
            while sha not in out:
                try:
                    out[sha] = self._fetch_one(sha, required)
                except BlobError:
                    if not required:
                        break
                    if time.monotonic() > end:
                        raise
                    time.sleep(_POLL_S * 10)
        return out

    def _fetch_one(self, sha: str, required: bool) -> bytes:
        data = self.blobs.get(sha)
        if data is None:
            data = fetch_blob(sha, self._sources(sha, required), self.tls, timeout=5)
            self.blobs.put(data)
        return data

    def _sources(self, sha: str, required: bool) -> list[str]:
        """Where to ask for ``sha``: its author first (it surely has it), then, if it is
        required, every other peer (those that merged its round have it too)."""
        records = self.ledger.records
        address = {r.author: str(r.body["address"]) for r in records if r.kind == Kind.MEMBERSHIP}
        authors = [
            r.author for r in records if r.kind == Kind.CONTRIBUTION and r.body["blob"] == sha
        ]
        order = [*authors, *(sorted(address) if required else [])]
        me = self.signer.name
        return [address[n] for n in dict.fromkeys(order) if n != me and address.get(n)]


def drive_round(ctx: PeerContext, round_: PeerRound) -> PeerRoundResult:
    """Move one round's steps over etcd and the blob stores."""
    step = next(round_)
    while True:
        reply: object
        match step:
            case Train(ins):
                reply, ctx.memory = ctx.app.handle(ins, ctx.memory)
            case Publish(blob):
                reply = ctx.blobs.put(blob)
            case Append(kind, body, needed):
                ctx.ledger.append(ctx.signer, kind, body, needed)
                reply = None
            case Await(ready, deadline_s):
                reply = ctx.ledger.wait(ready, deadline_s)
            case Fetch(shas, required):
                reply = ctx.fetch(shas, required)
        try:
            step = round_.send(reply)
        except StopIteration as done:
            result: PeerRoundResult = done.value
            return result


def run_peer(
    ctx: PeerContext,
    strategy: FitStrategy,
    state: ServerState,
    run: RunInfo,
    rules: RoundRules,
    *,
    peers: int,
    rounds: int,
    on_round: Callable[[PeerRoundResult], None] = lambda r: None,
) -> ServerState:
    """Join, wait for ``peers`` members, run rounds ``1..rounds`` (catching up on closed
    ones), then wait for every member's final attestation so no one is left short of a
    majority. Returns the merged state."""
    me, cid = ctx.signer.name, ctx.app.client_id
    body = {
        "cert": ctx.signer.cert_pem.decode(),
        "role": "peer",
        "client": cid,
        "address": ctx.address,
    }
    ctx.ledger.append(ctx.signer, Kind.MEMBERSHIP, body, lambda v: me not in v.members)
    view = ctx.ledger.wait(lambda v: len(v.members) >= peers, None)
    members: dict[str, ClientId] = dict(list(view.members.items())[:peers])  # the first to join
    while state.round < rounds:
        result = drive_round(ctx, peer_round(me, strategy, state, members, run, rules))
        state = result.state
        on_round(result)
    ctx.ledger.wait(
        lambda v: set(members) <= set(v.round(rounds).attestations), rules.attest_timeout_s
    )
    return state
