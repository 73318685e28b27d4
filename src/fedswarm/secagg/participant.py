"""The participant's half of a secure round: one handler per stage, state in the session.

Neither half does I/O. What the participant keeps between the exchanges of a round (its
private keys, its self-mask seed, the shares it holds for its neighbours) stays in its
:class:`~fedswarm.client.Session`, in the process that runs it; its randomness comes from
``app.secrets``. Keys are bound to identities by an optional :class:`KeyBinding` (node-key
signatures in deployment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedswarm.client import BUILTIN_HANDLERS, ClientApp, Handler, Session
from fedswarm.messages import ClientId, ClientMemory
from fedswarm.secagg import _context as ctx
from fedswarm.secagg.crypto.aead import InvalidShareError, open_share, seal_share
from fedswarm.secagg.crypto.keys import KeyPair, expand, keypair_from_seed
from fedswarm.secagg.crypto.prg import expand_mask, reduce_words
from fedswarm.secagg.crypto.shamir import SHARE_BYTES, randomness_bytes, split
from fedswarm.secagg.graph import majority
from fedswarm.secagg.messages import (
    AdvertiseIns,
    AdvertiseRes,
    EncryptedShare,
    MaskedInputIns,
    MaskedInputRes,
    RevealedShare,
    ShareKeysIns,
    ShareKeysRes,
    UnmaskIns,
    UnmaskRes,
)
from fedswarm.secagg.quantise import Quantiser, UpdateEncoding

__all__ = ["KeyBinding", "SecAggProtocolError", "secagg_handlers"]

_KEY = "secagg"
_PLAIN_BYTES = 4 + 2 * SHARE_BYTES  # x, seed share, mask-key share


class SecAggProtocolError(RuntimeError):
    """The coordinator asked for something the protocol forbids; the participant stops."""


@dataclass(frozen=True)
class KeyBinding:
    """Signs this participant's advertised keys and checks its neighbours'.

    ``verify(advert, data)`` says whether ``advert.client_id`` signed ``data`` (with the key
    of ``advert.certificate`` in deployment); ``certificate`` is this participant's own.
    """

    sign: Callable[[bytes], bytes]
    verify: Callable[[AdvertiseRes, bytes], bool]
    certificate: bytes = b""


@dataclass(eq=False)
class _State:
    enc: KeyPair
    mask: KeyPair
    adverts: dict[ClientId, AdvertiseRes] = field(default_factory=dict)
    threshold: int = 0
    seed: bytes = b""
    held: dict[ClientId, tuple[int, bytes, bytes]] = field(default_factory=dict)
    # raw X25519 secrets of the encryption key with each neighbour: both directions' keys
    # derive from one (an exchange costs as much as everything else a share needs)
    shared: dict[ClientId, bytes] = field(default_factory=dict)

    def enc_key(self, peer: ClientId, info: bytes) -> bytes:
        if peer not in self.shared:
            self.shared[peer] = self.enc.exchange(self.adverts[peer].enc_key)
        return expand(self.shared[peer], info)

    unmasked: bool = False


def _state(session: Session, stage: str) -> _State:
    state = session.values.get(_KEY)
    if not isinstance(state, _State):
        raise SecAggProtocolError(f"{stage} before advertise: no secure-aggregation session here")
    return state


@dataclass(frozen=True)
class _Advertise:
    binding: KeyBinding | None

    def __call__(
        self, app: ClientApp, ins: AdvertiseIns, memory: ClientMemory, session: Session
    ) -> tuple[AdvertiseRes, ClientMemory]:
        enc = keypair_from_seed(app.secrets.key(ins.round, "secagg.enc"))
        mask = keypair_from_seed(app.secrets.key(ins.round, "secagg.mask"))
        session.values[_KEY] = _State(enc, mask)
        signed = ctx.advert_bytes(ins.run_id, ins.round, app.client_id, enc.public, mask.public)
        sig = self.binding.sign(signed) if self.binding else b""
        cert = self.binding.certificate if self.binding else b""
        return AdvertiseRes(app.client_id, ins.round, enc.public, mask.public, sig, cert), memory


@dataclass(frozen=True)
class _ShareKeys:
    binding: KeyBinding | None

    def __call__(
        self, app: ClientApp, ins: ShareKeysIns, memory: ClientMemory, session: Session
    ) -> tuple[ShareKeysRes, ClientMemory]:
        st = _state(session, "share_keys")
        me = app.client_id
        st.adverts = {a.client_id: a for a in ins.neighbours}
        self._check(ins, st, me)
        st.threshold = ins.threshold
        st.seed = app.secrets.key(ins.round, "secagg.seed")
        holders = sorted(st.adverts)
        xs = list(range(1, len(holders) + 1))
        rand = randomness_bytes(ins.threshold)
        seed_sh = split(st.seed, xs, ins.threshold, app.secrets.key(ins.round, "secagg.sh1", rand))
        key_sh = split(
            st.mask.private, xs, ins.threshold, app.secrets.key(ins.round, "secagg.sh2", rand)
        )
        shares = tuple(
            _seal(ins.run_id, ins.round, me, st, h, x, s.value_bytes(), k.value_bytes())
            for h, x, s, k in zip(holders, xs, seed_sh, key_sh, strict=True)
        )
        commitment = ctx.seed_commitment(ins.run_id, ins.round, me, st.seed)
        return ShareKeysRes(me, ins.round, shares, commitment), memory

    def _check(self, ins: ShareKeysIns, st: _State, me: ClientId) -> None:
        own = st.adverts.get(me)
        if own is None or (own.enc_key, own.mask_key) != (st.enc.public, st.mask.public):
            raise SecAggProtocolError("my advertised keys are missing or were replaced")
        holders = len(st.adverts)
        if not majority(holders) <= ins.threshold <= holders:
            raise SecAggProtocolError(
                f"threshold {ins.threshold} is not a majority of the {holders} holders"
            )
        for a in ins.neighbours if self.binding else ():
            data = ctx.advert_bytes(ins.run_id, ins.round, a.client_id, a.enc_key, a.mask_key)
            if not self.binding.verify(a, data):  # type: ignore[union-attr]
                raise SecAggProtocolError(f"the keys of {a.client_id!r} are not signed by it")


def _seal(
    run_id: str, rnd: int, me: ClientId, st: _State, holder: ClientId, x: int, s: bytes, k: bytes
) -> EncryptedShare:
    key = st.enc_key(holder, ctx.enc_info(run_id, rnd, me, holder))
    plain = x.to_bytes(4, "big") + s + k
    ct = seal_share(key, plain, ctx.share_context(run_id, rnd, me, holder))
    digests = (
        ctx.share_digest(run_id, rnd, me, holder, "seed", s),
        ctx.share_digest(run_id, rnd, me, holder, "key", k),
    )
    return EncryptedShare(holder, ct, digests)


def _open(
    ins: MaskedInputIns, me: ClientId, st: _State, share: EncryptedShare
) -> tuple[int, bytes, bytes]:
    """The shares ``share.peer`` dealt me; InvalidShareError if they do not open or check out."""
    sender = st.adverts.get(share.peer)
    if sender is None:
        raise InvalidShareError("a share from a participant that is not my neighbour")
    rnd = ins.round
    key = st.enc_key(share.peer, ctx.enc_info(ins.run_id, rnd, share.peer, me))
    plain = open_share(key, share.ciphertext, ctx.share_context(ins.run_id, rnd, share.peer, me))
    if len(plain) != _PLAIN_BYTES:
        raise InvalidShareError("a share of the wrong length")
    x, s, k = int.from_bytes(plain[:4], "big"), plain[4 : 4 + SHARE_BYTES], plain[4 + SHARE_BYTES :]
    want = (
        ctx.share_digest(ins.run_id, rnd, share.peer, me, "seed", s),
        ctx.share_digest(ins.run_id, rnd, share.peer, me, "key", k),
    )
    if want != share.digests:
        raise InvalidShareError("a share that does not match the digest its sender gave")
    return x, s, k


def _masked_input(
    app: ClientApp, ins: MaskedInputIns, memory: ClientMemory, session: Session
) -> tuple[MaskedInputRes, ClientMemory]:
    st = _state(session, "masked_input")
    me, bad = app.client_id, []
    for share in ins.shares:
        try:
            st.held[share.peer] = _open(ins, me, st, share)
        except InvalidShareError:
            bad.append(share.peer)
    if me not in st.held:
        raise SecAggProtocolError("my own shares were not returned to me")
    res, memory = app.fit(ins.fit, memory)
    quantiser = Quantiser(ins.bits, ins.clip_range, ins.max_summands)
    encoding = UpdateEncoding(quantiser, ins.weight_bound)
    rng = app.secrets.generator(ins.round, "secagg.rounding")
    words = encoding.encode(res.update, res.num_examples, res.train_loss, rng)
    partners = [p for p in st.held if p != me]
    masked = _mask(words, st, partners, ins.run_id, ins.round, me, ins.bits)
    return MaskedInputRes(me, ins.round, masked, tuple(sorted(bad))), memory


def _mask(
    words: np.ndarray,
    st: _State,
    partners: list[ClientId],
    run_id: str,
    rnd: int,
    me: ClientId,
    bits: int,
) -> np.ndarray:
    """``words + PRG(seed) + sum_j ±PRG(s_me,j)`` mod ``2**bits`` (+ towards larger ids).

    In the word dtype throughout: it wraps at 2**32 or 2**64, which ``2**bits`` divides,
    so one reduction at the end is exact."""
    acc = words.copy()
    acc += expand_mask(st.seed, acc.size, bits)
    for p in partners:
        pair = st.mask.agree(st.adverts[p].mask_key, ctx.mask_info(run_id, rnd, me, p))
        m = expand_mask(pair, acc.size, bits)
        if me < p:
            acc += m
        else:
            acc -= m
    return reduce_words(acc, bits)


def _unmask(
    app: ClientApp, ins: UnmaskIns, memory: ClientMemory, session: Session
) -> tuple[UnmaskRes, ClientMemory]:
    st = _state(session, "unmask")
    survivors, dropped = set(ins.survivors), set(ins.dropped)
    if st.unmasked:
        raise SecAggProtocolError("asked to unmask twice in one round")
    if survivors & dropped:
        raise SecAggProtocolError("a participant named both survivor and dropped")
    if len(survivors) < st.threshold:
        raise SecAggProtocolError(f"{len(survivors)} survivors, below the threshold {st.threshold}")
    st.unmasked = True
    out = []
    for owner, (x, seed_share, key_share) in sorted(st.held.items()):
        if owner in survivors:
            out.append(RevealedShare(owner, x, seed_share))
        elif owner in dropped:
            out.append(RevealedShare(owner, x, key_share))
    return UnmaskRes(app.client_id, ins.round, tuple(out)), memory


def secagg_handlers(binding: KeyBinding | None = None) -> Mapping[type, Handler]:
    """The built-in handlers and the four secure-aggregation ones; ``binding`` signs and
    checks advertised keys (None: keys are taken as the coordinator forwards them)."""
    own: dict[type, Any] = {
        AdvertiseIns: _Advertise(binding),
        ShareKeysIns: _ShareKeys(binding),
        MaskedInputIns: _masked_input,
        UnmaskIns: _unmask,
    }
    return {**BUILTIN_HANDLERS, **own}
