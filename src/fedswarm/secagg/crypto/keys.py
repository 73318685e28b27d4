"""X25519 key pairs and key agreement, expanded by HKDF into purpose-bound keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["KeyPair", "agree", "expand", "keypair_from_seed", "public_of"]

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw


@dataclass(frozen=True, repr=False)
class KeyPair:
    """A raw 32-byte X25519 private key and its public key (``repr`` hides the secret)."""

    private: bytes
    public: bytes
    key: X25519PrivateKey = field(compare=False)  # parsed once: parsing costs as much as a DH

    def agree(self, peer_public: bytes, info: bytes) -> bytes:
        """:func:`agree` with this pair's private key."""
        return expand(self.exchange(peer_public), info)

    def exchange(self, peer_public: bytes) -> bytes:
        """The raw X25519 secret with a peer: never a key itself (see :func:`expand`); worth
        keeping when several keys derive from it."""
        return self.key.exchange(X25519PublicKey.from_public_bytes(peer_public))


def expand(shared: bytes, info: bytes) -> bytes:
    """A 32-byte key for one purpose (``info``) from a raw X25519 secret (HKDF-SHA256)."""
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared)


def keypair_from_seed(seed: bytes) -> KeyPair:
    """The key pair whose private key is ``seed`` (32 secret bytes from the participant's
    own :class:`~fedswarm.entropy.SecretSource`, so simulation replays)."""
    key = X25519PrivateKey.from_private_bytes(seed)
    private = key.private_bytes(_RAW, _RAW_PRIV, serialization.NoEncryption())
    return KeyPair(private, key.public_key().public_bytes(_RAW, _RAW_PUB), key)


def public_of(private: bytes) -> bytes:
    """The public key of a raw private key (to check a reconstructed key)."""
    return keypair_from_seed(private).public


def agree(private: bytes, peer_public: bytes, info: bytes) -> bytes:
    """32 bytes both ends derive alike: X25519, then HKDF-SHA256 bound to ``info`` (which
    names the run, round and purpose, so no key is ever used for two things).

    Raises ValueError for a malformed or low-order peer key.
    """
    return keypair_from_seed(private).agree(peer_public, info)
