"""What the gRPC transport needs of a PKI, and no more: TLS material and a peer check.

The transport does not know how a federation issues or revokes certificates
(:mod:`fedswarm.security` does): a node hands it its key, certificate and CA certificate as
bytes, and the coordinator hands it a :data:`PeerCheck` that turns a connecting peer's
certificate into an identity or refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PeerCheck", "PeerRefused", "TlsIdentity"]


@dataclass(frozen=True, repr=False)  # no repr: it holds a private key
class TlsIdentity:
    """A node's private key and certificate (PEM), and the CA certificate (PEM) that its
    peers' certificates must chain to."""

    key: bytes
    cert: bytes
    ca_cert: bytes

    @classmethod
    def from_files(cls, key: Path, cert: Path, ca_cert: Path) -> TlsIdentity:
        return cls(key.read_bytes(), cert.read_bytes(), ca_cert.read_bytes())


class PeerRefused(Exception):  # noqa: N818 -- a verdict, not a malfunction
    """A peer certificate the federation does not accept; the text says why."""


PeerCheck = Callable[[bytes], str]
"""Checks a peer's PEM certificate: returns its identity, or raises :class:`PeerRefused`."""
