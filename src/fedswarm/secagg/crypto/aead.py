"""AES-256-GCM for the Shamir shares a participant sends a neighbour through the coordinator.

Each key is derived for one direction of one pair in one round (see ``keys.agree``'s
``info``), so the fixed nonce is never reused under a key; the associated data names the
run, round, sender and receiver, so a share replayed from another round or redirected to
another participant fails to open.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["InvalidShareError", "open_share", "seal_share"]

_NONCE = bytes(12)  # one message per key: see the module doc


class InvalidShareError(ValueError):
    """A ciphertext that does not open under the expected key and context."""


def seal_share(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    return AESGCM(key).encrypt(_NONCE, plaintext, context)


def open_share(key: bytes, ciphertext: bytes, context: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(_NONCE, ciphertext, context)
    except InvalidTag as err:
        raise InvalidShareError(
            "the share does not authenticate: forged, altered or replayed"
        ) from err
