"""Byte strings that bind every derived key, ciphertext and digest to its run, round and
parties, shared by both halves so they cannot drift apart."""

from __future__ import annotations

import hashlib

from fedswarm.messages import ClientId

__all__ = [
    "advert_bytes",
    "enc_info",
    "mask_info",
    "seed_commitment",
    "share_context",
    "share_digest",
]


def _join(*parts: object) -> bytes:
    # lengths first (in characters of the text), so no two tuples join to the same bytes
    return "|".join(f"{len(t)}:{t}" for t in map(str, parts)).encode()


def advert_bytes(run_id: str, rnd: int, cid: ClientId, enc_key: bytes, mask_key: bytes) -> bytes:
    """What a participant signs when it advertises its keys."""
    return _join("fedswarm.secagg.advert", run_id, rnd, cid) + enc_key + mask_key


def enc_info(run_id: str, rnd: int, sender: ClientId, receiver: ClientId) -> bytes:
    """HKDF info of the share-encryption key of one direction of one pair."""
    return _join("fedswarm.secagg.enc", run_id, rnd, sender, receiver)


def share_context(run_id: str, rnd: int, sender: ClientId, receiver: ClientId) -> bytes:
    """AES-GCM associated data of one encrypted share."""
    return _join("fedswarm.secagg.share", run_id, rnd, sender, receiver)


def mask_info(run_id: str, rnd: int, a: ClientId, b: ClientId) -> bytes:
    """HKDF info of the pairwise mask seed of an unordered pair."""
    lo, hi = sorted((a, b))
    return _join("fedswarm.secagg.mask", run_id, rnd, lo, hi)


def share_digest(
    run_id: str, rnd: int, owner: ClientId, holder: ClientId, what: str, value: bytes
) -> bytes:
    """SHA-256 of one share value, bound to whose secret it shares and who holds it."""
    return hashlib.sha256(
        _join("fedswarm.secagg.digest", run_id, rnd, owner, holder, what) + value
    ).digest()


def seed_commitment(run_id: str, rnd: int, owner: ClientId, seed: bytes) -> bytes:
    return hashlib.sha256(_join("fedswarm.secagg.seed", run_id, rnd, owner) + seed).digest()
