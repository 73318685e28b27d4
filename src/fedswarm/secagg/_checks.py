"""The coordinator's checks of each stage's replies: what passes is usable, the rest is left
out (and becomes a failure of its sender). Forged, replayed or inconsistent shares fail
here or in the participants' own checks, never silently in the sum."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedswarm.messages import ClientId, Failure, Outcome, Refusal
from fedswarm.secagg import _context as ctx
from fedswarm.secagg._types import RoundSetup, Verify
from fedswarm.secagg.crypto.prg import word_dtype
from fedswarm.secagg.crypto.shamir import SHARE_BYTES, Share
from fedswarm.secagg.messages import (
    UNMASK,
    AdvertiseRes,
    MaskedInputRes,
    ShareKeysRes,
    UnmaskRes,
)

__all__ = ["adverts", "dealt", "masked", "revealed"]

_CIPHERTEXT_BYTES = 4 + 2 * SHARE_BYTES + 16  # plaintext and the GCM tag


def _firsts(outcomes: Sequence[Outcome], kind: type, expected: set[ClientId], rnd: int) -> list:  # type: ignore[type-arg]
    """Replies of ``kind`` from the expected senders for this round, first one each."""
    seen: set[ClientId] = set()
    out = []
    for o in outcomes:
        if isinstance(o, kind) and o.client_id in expected - seen and o.round == rnd:
            seen.add(o.client_id)
            out.append(o)
    return out


def adverts(
    outcomes: Sequence[Outcome],
    asked: set[ClientId],
    run_id: str,
    rnd: int,
    verify: Verify | None,
) -> dict[ClientId, AdvertiseRes]:
    out = {}
    for a in _firsts(outcomes, AdvertiseRes, asked, rnd):
        if len(a.enc_key) != 32 or len(a.mask_key) != 32 or a.enc_key == a.mask_key:
            continue
        data = ctx.advert_bytes(run_id, rnd, a.client_id, a.enc_key, a.mask_key)
        if verify is None or verify(a, data):
            out[a.client_id] = a
    return out


def dealt(
    outcomes: Sequence[Outcome], holders: Mapping[ClientId, tuple[ClientId, ...]], rnd: int
) -> dict[ClientId, ShareKeysRes]:
    out = {}
    for res in _firsts(outcomes, ShareKeysRes, set(holders), rnd):
        peers = [s.peer for s in res.shares]
        if sorted(peers) != sorted(holders[res.client_id]) or len(res.seed_commitment) != 32:
            continue
        if all(
            len(s.ciphertext) == _CIPHERTEXT_BYTES and all(len(d) == 32 for d in s.digests)
            for s in res.shares
        ):
            out[res.client_id] = res
    return out


def masked(
    outcomes: Sequence[Outcome], live: set[ClientId], rnd: int, bits: int, dim: int
) -> tuple[dict[ClientId, np.ndarray], dict[ClientId, set[ClientId]]]:
    """The well-formed masked vectors, and whom each sender reported as a bad dealer."""
    vectors, reported = {}, {}
    for res in _firsts(outcomes, MaskedInputRes, live, rnd):
        v = res.masked
        if not isinstance(v, np.ndarray) or v.dtype != word_dtype(bits) or v.shape != (dim,):
            continue
        if bits < 8 * v.dtype.itemsize and v.size and int(v.max()) >> bits:
            continue
        if not set(res.bad_senders) <= live:
            continue
        vectors[res.client_id] = v
        reported[res.client_id] = set(res.bad_senders)
    return vectors, reported


def revealed(
    outcomes: Sequence[Outcome],
    survivors: set[ClientId],
    setup: RoundSetup,
    holders: Mapping[ClientId, tuple[ClientId, ...]],
    dealt_by: Mapping[ClientId, ShareKeysRes],
    dropped: set[ClientId],
    failures: list[Failure],
) -> dict[ClientId, list[Share]]:
    """The checked shares by owner; a holder revealing anything that does not match what
    its owner dealt has all its shares set aside and is recorded as refused."""
    run_id, rnd = setup.run_id, setup.round
    out: dict[ClientId, list[Share]] = {}
    for res in _firsts(outcomes, UnmaskRes, survivors, rnd):
        got = _holder_shares(res, run_id, rnd, survivors, dropped, holders, dealt_by)
        if got is None:
            why = "revealed shares that do not match what their owners dealt"
            failures.append(Failure.refused(res.client_id, rnd, UNMASK, Refusal.MALFORMED, why))
            continue
        for owner, share in got:
            out.setdefault(owner, []).append(share)
    for o in outcomes:
        if isinstance(o, Failure):
            failures.append(o)
    return out


def _holder_shares(
    res: UnmaskRes,
    run_id: str,
    rnd: int,
    survivors: set[ClientId],
    dropped: set[ClientId],
    holders: Mapping[ClientId, tuple[ClientId, ...]],
    dealt_by: Mapping[ClientId, ShareKeysRes],
) -> list[tuple[ClientId, Share]] | None:
    h, got = res.client_id, []
    owners = [s.owner for s in res.shares]
    if len(set(owners)) != len(owners):
        return None
    for s in res.shares:
        if s.owner not in survivors | dropped or h not in holders.get(s.owner, ()):
            return None
        what, which = ("seed", 0) if s.owner in survivors else ("key", 1)
        digests = next(x.digests for x in dealt_by[s.owner].shares if x.peer == h)
        if s.x != holders[s.owner].index(h) + 1 or len(s.value) != SHARE_BYTES:
            return None
        if ctx.share_digest(run_id, rnd, s.owner, h, what, s.value) != digests[which]:
            return None
        got.append((s.owner, Share.from_bytes(s.x, s.value)))
    return got
