"""Running a federation for real: the PKI for mutual TLS (re-exported here), the
coordinator (:mod:`.coordinator`, its state directory :mod:`.state`) and the participant
(:mod:`.participant`, its credentials and data :mod:`.node`)."""

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
