"""The coordinator's half of a secure round: a generator of four exchanges (no I/O).

It learns the modular sum of the survivors' encoded updates and nothing else about any one
of them: each masked vector carries its owner's self-mask and pairwise masks, and of each
neighbour's secrets a holder reveals one (the self-mask seed of a survivor, the mask key of
one that dropped), never both. A participant that fails or sends something unusable at any
stage is left out; if too few holders are left to recover the masks, the round ends in an
:class:`Aborted` naming the stage and the counts.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedswarm.messages import ClientId, Failure, FailureKind, FitIns, Outcome, Refusal, Stage
from fedswarm.rounds import Exchange
from fedswarm.secagg import _checks as check
from fedswarm.secagg._recover import recover_sum
from fedswarm.secagg._types import Aborted, RoundSetup
from fedswarm.secagg.messages import (
    ADVERTISE,
    MASKED_INPUT,
    SHARE_KEYS,
    UNMASK,
    AdvertiseIns,
    AdvertiseRes,
    EncryptedShare,
    MaskedInputIns,
    ShareKeysIns,
    ShareKeysRes,
    UnmaskIns,
)
from fedswarm.secagg.quantise import Decoded, Quantiser, UpdateEncoding

__all__ = ["Aborted", "RoundSetup", "SecureSum", "secure_sum"]


@dataclass(frozen=True)
class SecureSum:
    decoded: Decoded | None  # None when aborted
    survivors: tuple[ClientId, ...]
    failures: tuple[Failure, ...]
    aborted: Aborted | None = None
    words: np.ndarray | None = None  # the modular sum of the survivors' encoded updates
    encoding: UpdateEncoding | None = None  # how the survivors encoded them


@dataclass(eq=False)
class _Round:
    """What the coordinator keeps within a round: public keys, digests, masked words."""

    setup: RoundSetup
    failures: list[Failure] = field(default_factory=list)
    adverts: dict[ClientId, AdvertiseRes] = field(default_factory=dict)
    holders: dict[ClientId, tuple[ClientId, ...]] = field(default_factory=dict)
    dealt: dict[ClientId, ShareKeysRes] = field(default_factory=dict)

    def fail(self, outcomes: Sequence[Outcome], kept: set[ClientId], stage: Stage) -> None:
        for o in outcomes:
            if isinstance(o, Failure):
                self.failures.append(o)
            elif o.client_id not in kept:
                why = f"an unusable {type(o).__name__}"
                self.failures.append(
                    Failure.refused(o.client_id, self.setup.round, stage, Refusal.MALFORMED, why)
                )

    def prune(self, live: set[ClientId], stage: Stage) -> set[ClientId]:
        """Leave out, until none is left, whoever has fewer than ``threshold`` live holders."""
        t = self.setup.threshold
        while short := {c for c in live if len(set(self.setup.graph[c]) & live) < t}:
            live -= short
            for c in sorted(short):
                why = f"fewer than {t} of its neighbours are left"
                self.failures.append(Failure(c, self.setup.round, stage, FailureKind.DROPPED, why))
        return live

    def enough(
        self, live: set[ClientId], stage: Stage, asked: int, answered: int
    ) -> Aborted | None:
        need = max(self.setup.min_survivors, self.setup.threshold)
        if len(live) >= need:
            return None
        why = f"{answered} of {asked} participants answered, at least {need} needed"
        if answered >= need:
            why += f"; {len(live)} have {self.setup.threshold} live neighbours"
        return Aborted(stage, why)

    def result(self, aborted: Aborted) -> SecureSum:
        return SecureSum(None, (), tuple(self.failures), aborted)


def secure_sum(
    setup: RoundSetup, fits: Sequence[tuple[ClientId, FitIns]]
) -> Generator[Exchange, Sequence[Outcome], SecureSum]:
    """Run one secure round over the participants of ``fits``; see the module doc."""
    r, s = _Round(setup), setup
    asked = {cid for cid, _ in fits}
    outcomes = yield Exchange(
        ADVERTISE, tuple((c, AdvertiseIns(s.run_id, s.round)) for c in sorted(asked))
    )
    r.adverts = check.adverts(outcomes, asked, s.run_id, s.round, s.verify)
    r.fail(outcomes, set(r.adverts), ADVERTISE)
    live = r.prune(set(r.adverts), ADVERTISE)
    if aborted := r.enough(live, ADVERTISE, len(asked), len(r.adverts)):
        return r.result(aborted)
    r.holders = {c: tuple(h for h in s.graph[c] if h in live) for c in live}
    requests = tuple(
        (c, ShareKeysIns(s.run_id, s.round, s.threshold, tuple(r.adverts[h] for h in r.holders[c])))
        for c in sorted(live)
    )
    outcomes = yield Exchange(SHARE_KEYS, requests)
    r.dealt = check.dealt(outcomes, r.holders, s.round)
    r.fail(outcomes, set(r.dealt), SHARE_KEYS)
    live = r.prune(set(r.dealt), SHARE_KEYS)
    if aborted := r.enough(live, SHARE_KEYS, len(asked), len(r.dealt)):
        return r.result(aborted)
    return (yield from _mask_and_unmask(r, fits, live, len(asked)))


def _forwarded(r: _Round, to: ClientId, live: set[ClientId]) -> tuple[EncryptedShare, ...]:
    out = []
    for sender in sorted(live & set(r.holders[to])):
        share = next(x for x in r.dealt[sender].shares if x.peer == to)
        out.append(EncryptedShare(sender, share.ciphertext, share.digests))
    return tuple(out)


def _good_dealers(
    r: _Round, masked: set[ClientId], reported: dict[ClientId, set[ClientId]]
) -> set[ClientId]:
    """Who sent a masked input and dealt shares every neighbour could open and check; the
    others are left out as refused (their masks are then removed like a dropout's)."""
    bad = {sender for senders in reported.values() for sender in senders}
    for c in sorted(bad & masked):
        why = "neighbours could not open or check the shares it dealt"
        r.failures.append(Failure.refused(c, r.setup.round, MASKED_INPUT, Refusal.MALFORMED, why))
    return masked - bad


def _mask_and_unmask(
    r: _Round, fits: Sequence[tuple[ClientId, FitIns]], live: set[ClientId], asked: int
) -> Generator[Exchange, Sequence[Outcome], SecureSum]:
    s, by_id, n = r.setup, dict(fits), len(live)
    encoding = UpdateEncoding(Quantiser(s.bits, s.clip_range, n), s.weight_bound)
    requests = tuple(
        (c, MaskedInputIns(
            s.run_id, s.round, by_id[c], s.bits, s.clip_range, n, s.weight_bound,
            _forwarded(r, c, live),
        ))
        for c in sorted(live)
    )  # fmt: skip
    outcomes = yield Exchange(MASKED_INPUT, requests)
    dim = by_id[next(iter(live))].params.dim + 2
    masked, reported = check.masked(outcomes, live, s.round, s.bits, dim)
    r.fail(outcomes, set(masked), MASKED_INPUT)
    survivors = _good_dealers(r, set(masked), reported)
    if aborted := r.enough(survivors, MASKED_INPUT, asked, len(survivors)):
        return r.result(aborted)
    dropped = live - survivors
    partners = {
        j: {i for i in survivors if j in r.holders[i] and j not in reported.get(i, ())}
        for j in dropped
    }
    ins = UnmaskIns(s.run_id, s.round, tuple(sorted(survivors)), tuple(sorted(dropped)))
    outcomes = yield Exchange(UNMASK, tuple((c, ins) for c in sorted(survivors)))
    revealed = check.revealed(outcomes, survivors, s, r.holders, r.dealt, dropped, r.failures)
    total = recover_sum(s, r.adverts, r.dealt, masked, survivors, partners, revealed)
    if isinstance(total, Aborted):
        return r.result(total)
    decoded = encoding.decode(total, len(survivors))
    return SecureSum(
        decoded, tuple(sorted(survivors)), tuple(r.failures), words=total, encoding=encoding
    )
