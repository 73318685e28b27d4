"""Signatures over bytes with node keys: what a node's records (ledger entries, attestations)
are signed with, and how anyone holding its certificate checks them.

The node's TLS key (ECDSA P-256, from ``fedswarm ca issue``) signs; the signature is ECDSA
with SHA-256 in DER form. A signature proves which certificate's key signed; whether that
certificate belongs to the federation (chain, role, revocation, expiry) is the
:class:`~fedswarm.security.pki.TrustStore`'s question, asked separately by the verifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from fedswarm.security._x509 import PkiError, common_name, parse_peer

__all__ = ["NodeSigner", "SignatureInvalid", "verify_signature"]

_ALGORITHM = ec.ECDSA(hashes.SHA256())


class SignatureInvalid(Exception):  # noqa: N818 -- a verdict, not a malfunction
    """Bytes whose signature does not verify under the certificate given; says whose."""


@dataclass(frozen=True, repr=False)  # no repr: it holds a private key
class NodeSigner:
    """A node's private key, for signing; ``name`` is its certificate's common name."""

    name: str
    key: ec.EllipticCurvePrivateKey
    cert_pem: bytes

    @classmethod
    def load(cls, key: Path, cert: Path) -> NodeSigner:
        """The signer of the node whose key and certificate files these are."""
        try:
            loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise PkiError(f"{key} is not a readable PEM private key: {exc}") from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{key} is not an EC key (fedswarm node keys are ECDSA P-256)")
        cert_pem = cert.read_bytes()
        peer = parse_peer(cert_pem)
        if _public_der(peer.public_key()) != _public_der(loaded.public_key()):
            raise PkiError(f"{key} is not the key of {cert}: they were issued apart")
        return cls(common_name(peer), loaded, cert_pem)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, _ALGORITHM)


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_signature(cert_pem: bytes, data: bytes, signature: bytes) -> str:
    """The common name of ``cert_pem`` if ``signature`` is its key's over ``data``;
    :class:`SignatureInvalid` if not (a malformed certificate raises ``PeerRejected``)."""
    peer = parse_peer(cert_pem)
    public = peer.public_key()
    name = common_name(peer)
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise SignatureInvalid(f"{name!r}'s certificate holds no EC key")
    try:
        public.verify(signature, data, _ALGORITHM)
    except InvalidSignature:
        why = f"the signature does not verify under the certificate of {name!r}"
        raise SignatureInvalid(why) from None
    return name
