"""The messages of a secure-aggregation round, one instruction and one reply per stage.

Stages (Bonawitz et al. 2017, with Bell et al. 2020's neighbour graph):
``secagg.advertise`` (two public keys each, signed), ``secagg.share_keys`` (Shamir shares
of the mask key and the self-mask seed, encrypted to each neighbour), ``secagg.masked_input``
(train, quantise, mask), ``secagg.unmask`` (for each neighbour, the share that removes what
must be removed: its self-mask seed if it survived, its mask key if it dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.kinds import BUILTIN_KINDS, MessageKind, MessageKinds
from fedswarm.messages import ClientId, FitIns, Stage

__all__ = [
    "ADVERTISE",
    "KINDS",
    "MASKED_INPUT",
    "SHARE_KEYS",
    "UNMASK",
    "AdvertiseIns",
    "AdvertiseRes",
    "EncryptedShare",
    "MaskedInputIns",
    "MaskedInputRes",
    "RevealedShare",
    "ShareKeysIns",
    "ShareKeysRes",
    "UnmaskIns",
    "UnmaskRes",
]

ADVERTISE = Stage("secagg.advertise")
SHARE_KEYS = Stage("secagg.share_keys")
MASKED_INPUT = Stage("secagg.masked_input")
UNMASK = Stage("secagg.unmask")


@dataclass(frozen=True)
class AdvertiseIns:
    run_id: str
    round: int


@dataclass(frozen=True)
class AdvertiseRes:
    """``enc_key`` encrypts shares to this participant; ``mask_key`` agrees pairwise masks;
    ``signature`` binds both to the sender's identity, which ``certificate`` proves in
    deployment (its node certificate, PEM); both empty where nothing signs."""

    client_id: ClientId
    round: int
    enc_key: bytes
    mask_key: bytes
    signature: bytes = b""
    certificate: bytes = b""


@dataclass(frozen=True)
class ShareKeysIns:
    """The adverts of the receiver's neighbourhood (itself included), and the threshold."""

    run_id: str
    round: int
    threshold: int
    neighbours: tuple[AdvertiseRes, ...]


@dataclass(frozen=True)
class EncryptedShare:
    """One participant's shares for one neighbour: ``peer`` is the receiver when sent, the
    sender when forwarded. ``digests`` are SHA-256 of the two share values (self-mask seed,
    mask key), which the coordinator keeps to check what the holder reveals later."""

    peer: ClientId
    ciphertext: bytes
    digests: tuple[bytes, bytes]


@dataclass(frozen=True)
class ShareKeysRes:
    client_id: ClientId
    round: int
    shares: tuple[EncryptedShare, ...]
    seed_commitment: bytes  # SHA-256 of the self-mask seed, to check its reconstruction


@dataclass(frozen=True, eq=False)
class MaskedInputIns:
    """The fit instruction, and the shares addressed to this participant by the neighbours
    that shared (it masks with exactly those)."""

    run_id: str
    round: int
    fit: FitIns
    bits: int
    clip_range: float
    max_summands: int
    weight_bound: int
    shares: tuple[EncryptedShare, ...]


@dataclass(frozen=True, eq=False)
class MaskedInputRes:
    """The masked words, and the neighbours whose shares did not open or check out."""

    client_id: ClientId
    round: int
    masked: np.ndarray  # (dim + 2,) uint32 or uint64
    bad_senders: tuple[ClientId, ...] = ()


@dataclass(frozen=True)
class UnmaskIns:
    run_id: str
    round: int
    survivors: tuple[ClientId, ...]  # sent a masked input that counts
    dropped: tuple[ClientId, ...]  # shared keys, then did not count


@dataclass(frozen=True)
class RevealedShare:
    owner: ClientId
    x: int  # the holder's point
    value: bytes  # the share of the owner's seed (survivor) or mask key (dropped)


@dataclass(frozen=True)
class UnmaskRes:
    client_id: ClientId
    round: int
    shares: tuple[RevealedShare, ...]


KINDS: MessageKinds = BUILTIN_KINDS.extended(
    MessageKind(ADVERTISE, AdvertiseIns, AdvertiseRes),
    MessageKind(SHARE_KEYS, ShareKeysIns, ShareKeysRes),
    MessageKind(MASKED_INPUT, MaskedInputIns, MaskedInputRes),
    MessageKind(UNMASK, UnmaskIns, UnmaskRes),
)
"""Every kind a secure round uses (the built-in fit and evaluate included)."""
