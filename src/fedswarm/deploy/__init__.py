"""Running a federation for real: a PKI for mutual TLS between servers and clients."""

from fedswarm.deploy.pki import (
    CaPaths,
    IndexEntry,
    NodePaths,
    PeerRejected,
    PkiError,
    Rejection,
    Role,
    TrustStore,
    init_ca,
    issue,
    list_certificates,
    revoke,
    verify_peer,
)

__all__ = [
    "CaPaths",
    "IndexEntry",
    "NodePaths",
    "PeerRejected",
    "PkiError",
    "Rejection",
    "Role",
    "TrustStore",
    "init_ca",
    "issue",
    "list_certificates",
    "revoke",
    "verify_peer",
]
