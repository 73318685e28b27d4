"""One swarm peer's round, as a generator of steps: no sockets, no clock, no files.

A driver moves the steps: the in-process simulation (:mod:`fedswarm.swarm.simulate`) over a
list standing in for the ledger, a peer process (:mod:`fedswarm.swarm.node`) over etcd and
mutual-TLS blob fetches. The round, for peer ``me`` from the merged model ``state``:

1. every peer computes the round's instructions itself with the strategy's
   ``configure_fit`` over the members' client ids (same state, same seed: the same sample
   everywhere); a sampled peer yields :class:`Train` and gets its :class:`FitRes`;
2. it yields :class:`Publish` (the update blob: the wire encoding of its reply) and
   :class:`Append` of its contribution record (unless the ledger already holds one of its:
   a retry after a failover counts once);
3. it waits (:class:`Await`) for the quorum of contributions or the deadline, then appends
   a round close fixing the contributions the ledger holds -- unless another peer's close
   was committed first: consensus orders the proposals and the first one counts;
4. it fetches the counted blobs (:class:`Fetch`; the driver checks their sha256 against the
   records), and merges them with the strategy exactly as a federated server would (the
   order-independent mean: every peer gets the same bits);
5. it appends its attestation (sha256 of the merged parameters), waits for the others'
   and appends a flag for any peer that attested a different model than the majority.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fedswarm.messages import ClientId, FitIns, FitRes
from fedswarm.rounds import FitReplyCheck
from fedswarm.strategy import FitStrategy, FitSummary, RunInfo, ServerState
from fedswarm.swarm.records import Kind, Record
from fedswarm.swarm.view import RoundView, SwarmView, contribution_body
from fedswarm.wire import WireError, decode, encode

__all__ = [
    "Append",
    "Await",
    "Fetch",
    "PeerRound",
    "PeerRoundResult",
    "Publish",
    "RoundRules",
    "Step",
    "Train",
    "peer_round",
]


@dataclass(frozen=True)
class Train:
    ins: FitIns  # -> FitRes


@dataclass(frozen=True)
class Publish:
    blob: bytes  # -> None; the blob is now fetchable by its sha256


@dataclass(frozen=True)
class Append:
    kind: str
    body: Mapping[str, Any]
    # Checked against the ledger as it stands when the record would be committed: False
    # drops the record (another peer closed the round first; our contribution is in).
    needed: Callable[[SwarmView], bool]  # -> None


@dataclass(frozen=True)
class Await:
    ready: Callable[[SwarmView], bool]
    deadline_s: float | None  # from now; then the driver sends the view as it is  # -> view


@dataclass(frozen=True)
class Fetch:
    blobs: tuple[str, ...]  # sha256s -> Mapping[sha, bytes]
    # required: the driver keeps trying until it has them all (a counted blob is held by
    # at least the peer that closed the round); else it returns those it could get now
    required: bool = True


Step = Train | Publish | Append | Await | Fetch


@dataclass(frozen=True)
class RoundRules:
    quorum: int  # contributions that close a round before its deadline
    deadline_s: float | None  # then the round closes with what the ledger holds (>= 1)
    attest_timeout_s: float | None  # how long to wait for the others' attestations
    max_blob_bytes: int = 1 << 30


@dataclass(frozen=True, eq=False)
class PeerRoundResult:
    state: ServerState
    summary: FitSummary
    model: str  # sha256 of the merged parameters
    counted: tuple[str, ...]  # the peers whose contributions count, sorted


PeerRound = Generator[Step, Any, PeerRoundResult]


def peer_round(
    me: str,
    strategy: FitStrategy,
    state: ServerState,
    members: Mapping[str, ClientId],
    run: RunInfo,
    rules: RoundRules,
) -> PeerRound:
    """Round ``state.round + 1`` as peer ``me`` sees it (see the module doc)."""
    rnd = state.round + 1
    yield from _contribute(me, strategy, state, members, run, rnd)
    yield from _close_round(rnd, rules)
    view = yield Await(lambda v: v.round(rnd).close is not None, None)
    counted = view.round(rnd).counted()
    blobs: Mapping[str, bytes] = yield Fetch(tuple(str(r.body["blob"]) for r in counted))
    replies = _replies(counted, blobs, members, rnd, rules.max_blob_bytes)
    new_state, summary = _merge(strategy, state, replies, members, run)
    model = new_state.params.sha256()
    yield Append(
        Kind.MERGED, {"round": rnd, "model": model}, lambda v: me not in v.round(rnd).attestations
    )
    view = yield Await(
        lambda v: len(v.round(rnd).attestations) >= len(counted), rules.attest_timeout_s
    )
    for peer, sha in sorted(view.round(rnd).disagreeing().items()):
        yield _flag(view.round(rnd), rnd, peer, sha)
    return PeerRoundResult(new_state, summary, model, tuple(sorted(r.author for r in counted)))


def _contribute(
    me: str,
    strategy: FitStrategy,
    state: ServerState,
    members: Mapping[str, ClientId],
    run: RunInfo,
    rnd: int,
) -> Generator[Step, Any, None]:
    now: SwarmView = yield Await(lambda v: True, None)
    if now.round(rnd).close is not None:
        return  # a late or restarted peer: the round closed without it; it only merges
    mine = members[me]
    sampled = dict(strategy.configure_fit(state, sorted(members.values()), run))
    if mine not in sampled:
        return
    res: FitRes = yield Train(sampled[mine])
    blob = encode(res)
    yield Publish(blob)
    metrics = {"train_loss": float(res.train_loss), "steps": int(res.num_steps)}
    body = contribution_body(rnd, hashlib.sha256(blob).hexdigest(), int(res.num_examples), metrics)
    # not needed once it is in, or once the round closed without it (it would not count)
    yield Append(Kind.CONTRIBUTION, body, lambda v: _open_without(v.round(rnd), me))


def _open_without(rv: RoundView, me: str) -> bool:
    return rv.close is None and me not in rv.contributions


def _closable(rv: RoundView, rules: RoundRules) -> bool:
    return rv.close is not None or len(rv.contributions) >= rules.quorum


def _close_round(rnd: int, rules: RoundRules) -> Generator[Step, Any, None]:
    """At quorum or deadline, propose a close (unless one is committed first)."""
    view: SwarmView = yield Await(lambda v: _closable(v.round(rnd), rules), rules.deadline_s)
    rv = view.round(rnd)
    if rv.close is not None:
        return
    # Only what this peer holds can count: a blob whose author died before anyone fetched
    # it is gone, and a close naming it would stall every merge.
    seen = list(rv.contributions.values())
    held = yield Fetch(tuple(str(r.body["blob"]) for r in seen), required=False)
    reason = "quorum" if _closable(rv, rules) else "deadline"
    yield _close([r for r in seen if r.body["blob"] in held], rnd, reason)


def _close(held: list[Record], rnd: int, reason: str) -> Append:
    """A close fixing the contributions this peer saw and holds the blobs of."""
    contributions = sorted(r.digest for r in held)
    body = {"round": rnd, "contributions": contributions, "reason": reason}
    # Fixed at the view we saw; a contribution that lands before ours commits is simply
    # not counted (as after a deadline); the first close committed is the one that counts.
    return Append(
        Kind.ROUND_CLOSE, body, lambda v: v.round(rnd).close is None and bool(contributions)
    )


def _flag(rv: RoundView, rnd: int, peer: str, sha: str) -> Append:
    body = {"round": rnd, "peer": peer, "model": sha, "majority": rv.majority() or ""}
    return Append(Kind.FLAG, body, lambda v: peer not in v.round(rnd).flagged)


def _replies(
    counted: list[Any],
    blobs: Mapping[str, bytes],
    members: Mapping[str, ClientId],
    rnd: int,
    max_bytes: int,
) -> list[tuple[str, FitRes | str]]:
    out: list[tuple[str, FitRes | str]] = []
    for record in counted:
        data = blobs[str(record.body["blob"])]
        try:
            res = decode(data, max_bytes=max_bytes)
        except WireError as exc:
            out.append((record.author, f"unreadable blob: {exc}"))
            continue
        if not isinstance(res, FitRes) or res.client_id != members[record.author]:
            out.append((record.author, "blob is not its author's fit reply"))
        elif res.num_examples != record.body["examples"]:
            out.append((record.author, "blob's examples differ from its record's"))
        else:
            out.append((record.author, res))
    return out


def _merge(
    strategy: FitStrategy,
    state: ServerState,
    replies: list[tuple[str, FitRes | str]],
    members: Mapping[str, ClientId],
    run: RunInfo,
) -> tuple[ServerState, FitSummary]:
    """The federated server's merge, with its checks and its fold, over the counted replies."""
    usable = [r for _, r in replies if isinstance(r, FitRes)]
    check = FitReplyCheck(
        expected={r.client_id for r in usable},
        round=state.round + 1,
        dim=state.params.dim,
        update=strategy.client_update,
        weighting=strategy.weighting,
        accumulator=strategy.accumulator(state.params.dim),
    )
    good, _refused = check.split(sorted(usable, key=lambda r: r.client_id))
    if not good:  # nothing usable: the model stays, the round still ends for everyone alike
        return replace(state, round=state.round + 1), FitSummary(0, 0, 0.0, 0.0)
    summed = check.accumulator.summed() if check.accumulator is not None else None
    return strategy.aggregate_fit(state, good, num_clients=len(members), run=run, summed=summed)
