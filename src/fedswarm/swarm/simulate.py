"""A swarm in one process: N peers running :func:`~fedswarm.swarm.peer.peer_round`, the
ledger's order simulated by a list, blobs by a dict, time by a clock that jumps.

The same generators as the peer processes; only the driver differs. Peers take turns in
name order, each running until it waits; when every peer waits and none can go on, the
clock jumps to the nearest deadline (so a deadline round needs no real waiting). Records
are not signed here (no keys in a simulation): the order and the view are what matter for
comparing swarm and federated learning; signatures are the peer processes' business.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fedswarm.client import ClientApp
from fedswarm.messages import ClientId, ClientMemory
from fedswarm.strategy import FitStrategy, RunInfo, ServerState
from fedswarm.swarm.peer import (
    Append,
    Await,
    Fetch,
    PeerRound,
    PeerRoundResult,
    Publish,
    RoundRules,
    Step,
    Train,
    peer_round,
)
from fedswarm.swarm.records import GENESIS, Kind, Record
from fedswarm.swarm.view import SwarmView

__all__ = ["SimulatedLedger", "SwarmStalledError", "run_swarm_round", "train_swarm"]


class SwarmStalledError(RuntimeError):
    """Every peer waits for something no deadline will bring."""


@dataclass
class SimulatedLedger:
    records: list[Record] = field(default_factory=list)
    view: SwarmView = field(default_factory=SwarmView)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def append(self, author: str, kind: str, body: Mapping[str, Any]) -> None:
        prev = self.records[-1].digest if self.records else GENESIS
        record = Record(len(self.records), prev, kind, author, dict(body))
        self.records.append(record)
        self.view.apply(record)

    def join(self, members: Mapping[str, ClientId]) -> None:
        for name, cid in sorted(members.items()):
            self.append(
                name, Kind.MEMBERSHIP, {"cert": "", "role": "peer", "client": cid, "address": ""}
            )


@dataclass
class _Peer:
    round: PeerRound
    app: ClientApp
    step: Step | None = None
    result: PeerRoundResult | None = None
    waiting_since: float = 0.0


def run_swarm_round(
    ledger: SimulatedLedger,
    apps: Mapping[str, ClientApp],
    states: Mapping[str, ServerState],
    memories: dict[ClientId, ClientMemory],
    strategy: FitStrategy,
    run: RunInfo,
    rules: RoundRules,
) -> dict[str, PeerRoundResult]:
    """One round of every peer in ``apps``, each from its own state; their results."""
    members = dict(ledger.view.members)
    peers = {
        name: _Peer(peer_round(name, strategy, states[name], members, run, rules), app)
        for name, app in sorted(apps.items())
    }
    for p in peers.values():
        p.step = next(p.round)
    clock = 0.0
    while any(p.result is None for p in peers.values()):
        moved = [_advance(p, ledger, memories, clock) for p in peers.values() if p.result is None]
        if not any(moved):
            clock = _next_deadline(peers.values(), clock)
    return {name: p.result for name, p in peers.items() if p.result is not None}


def _advance(
    p: _Peer, ledger: SimulatedLedger, memories: dict[ClientId, ClientMemory], clock: float
) -> bool:
    """Run ``p`` until it waits; whether it moved at all."""
    moved = False
    while p.result is None:
        step = p.step
        if isinstance(step, Await) and not step.ready(ledger.view) and not _expired(p, step, clock):
            return moved
        reply = _serve(p, step, ledger, memories)
        moved = True
        try:
            p.step = p.round.send(reply)
            p.waiting_since = clock
        except StopIteration as done:
            p.result = done.value
    return moved


def _serve(
    p: _Peer, step: Step | None, ledger: SimulatedLedger, memories: dict[ClientId, ClientMemory]
) -> object:
    cid = p.app.client_id
    match step:
        case Train(ins):
            res, memories[cid] = p.app.handle(ins, memories.get(cid, {}))
            return res
        case Publish(blob):
            ledger.blobs[hashlib.sha256(blob).hexdigest()] = blob
            return None
        case Append(kind, body, needed):
            if needed(ledger.view):
                ledger.append(_name_of(ledger, cid), kind, body)
            return None
        case Await():
            return ledger.view
        case Fetch(blobs):
            return {sha: ledger.blobs[sha] for sha in blobs if sha in ledger.blobs}
    raise TypeError(f"not a peer step: {step!r}")


def _name_of(ledger: SimulatedLedger, cid: ClientId) -> str:
    return next(n for n, c in ledger.view.members.items() if c == cid)


def _expired(p: _Peer, step: Await, clock: float) -> bool:
    return step.deadline_s is not None and clock >= p.waiting_since + step.deadline_s


def _next_deadline(peers: Iterable[_Peer], clock: float) -> float:
    ends: list[float] = []
    for p in peers:
        if p.result is None and isinstance(p.step, Await) and p.step.deadline_s is not None:
            ends.append(p.waiting_since + p.step.deadline_s)
    later = [t for t in ends if t > clock]
    if not later:
        raise SwarmStalledError("every peer waits, and no deadline is set: the round cannot end")
    return min(later)


def train_swarm(
    apps: Callable[[ClientId], ClientApp],
    client_ids: Sequence[ClientId],
    state: ServerState,
    strategy: FitStrategy,
    run: RunInfo,
    rules: RoundRules,
    *,
    rounds: int,
    on_round: Callable[[ServerState, PeerRoundResult, float], None] = lambda s, r, t: None,
    memories: dict[ClientId, ClientMemory] | None = None,
) -> tuple[ServerState, SimulatedLedger]:
    """Rounds ``state.round + 1 .. rounds`` of a swarm of one peer per client id (named
    ``peer-<client id>``); the merged state (every peer's: they must agree) and the ledger.

    ``on_round`` sees the merged state, peer 0's round result and the round's seconds.
    """
    ledger = SimulatedLedger()
    ledger.join({f"peer-{cid}": cid for cid in client_ids})
    peers = {f"peer-{cid}": apps(cid) for cid in client_ids}
    memories = {} if memories is None else memories
    while state.round < rounds:
        start = time.perf_counter()
        states = dict.fromkeys(peers, state)
        results = run_swarm_round(ledger, peers, states, memories, strategy, run, rules)
        models = {r.model for r in results.values()}
        if len(models) != 1:
            raise RuntimeError(f"round {state.round + 1}: peers merged {len(models)} models")
        first = results[min(results)]
        state = first.state
        on_round(state, first, time.perf_counter() - start)
    return state, ledger
