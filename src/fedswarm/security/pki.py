"""Federation PKI: one CA, node certificates for mutual TLS, revocation, and the peer check.

A CA directory (``fedswarm ca init pki``) holds::

    ca.key          the CA's private key (0600; stays with the federation operator)
    ca.crt          the CA certificate (every node gets a copy)
    ca.crl          the revocation list, signed by the CA (servers get a copy; ``revoke`` renews it)
    index.json      the registry of issued certificates
    nodes/NAME.key  a node's private key (0600; that node gets it, nobody else)
    nodes/NAME.crt  a node's certificate

Keys are ECDSA P-256 with SHA-256 signatures: what gRPC's BoringSSL and Python's OpenSSL both
accept for TLS 1.2 and 1.3. A node's identity is its certificate's common name; its role is
the organizational unit (``server``, ``client`` or ``peer``), and the extended key usage agrees
(serverAuth, clientAuth, or both for a swarm peer, which serves and dials), so a client
certificate cannot serve and a server's cannot dial.

gRPC Python checks the chain during the handshake but cannot check a CRL, so a server calls
:meth:`TrustStore.verify` on the peer certificate afterwards: pure, well under a millisecond.

This module is the public face and the operations; the certificates and CRL are built and
checked in memory by ``_x509``, and the directory's files are read and written by ``_ca_dir``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedswarm.security import _ca_dir, _x509
from fedswarm.security._ca_dir import CaIndex, CaPaths, IndexEntry, NodePaths
from fedswarm.security._x509 import PeerRejected, PkiError, Rejection, Role

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


def init_ca(dir: Path, name: str = "fedswarm-ca", days: int = 3650) -> CaPaths:
    """Create a federation CA in ``dir``; refuses to overwrite one that is there."""
    paths = CaPaths(Path(dir))
    _x509.check_name(name, "CA name")
    _x509.check_days(days)
    for path in (paths.key, paths.cert, paths.crl, paths.index):
        if path.exists():
            raise PkiError(f"{path} already exists: refusing to overwrite a CA")
    paths.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _x509.new_key()
    now = _x509.utc_now()
    cert = _x509.ca_certificate(name, key, now, days)
    # The key is claimed first: a racing init loses here.
    _ca_dir.write(paths.key, _x509.private_pem(key), private=True)
    _ca_dir.write(paths.cert, cert.public_bytes(serialization.Encoding.PEM))
    index = CaIndex(crl_number=0, entries=())
    _ca_dir.write(paths.crl, _crl_pem(key, cert, index, now))
    _ca_dir.write(paths.index, _ca_dir.index_json(index))
    return paths


def issue(
    dir: Path, name: str, role: Role, days: int = 365, hosts: Sequence[str] = ()
) -> NodePaths:
    """Issue ``name`` a key and certificate for ``role``, written to ``dir/nodes/``.

    A server's or peer's certificate names ``name``, ``localhost`` and ``127.0.0.1`` plus any
    ``hosts``
    (DNS names or IP addresses it is dialled by); a client's names ``name``. A name that holds
    an unrevoked certificate is refused.
    """
    paths = CaPaths(Path(dir))
    _x509.check_name(name, "node name")
    _x509.check_days(days)
    if hosts and role is Role.CLIENT:
        raise PkiError(
            "extra hosts are for server certificates (and peers'); clients are not dialled"
        )
    index = _ca_dir.load_index(paths)
    if (active := index.active(name)) is not None:
        raise PkiError(
            f"{active.name!r} already holds a {active.role} certificate (serial "
            f"{active.serial:x}); revoke it before issuing a new one"
        )
    ca_key, ca_cert = _ca_dir.load_ca(paths)
    now = _x509.utc_now()
    if now + dt.timedelta(days=days) > ca_cert.not_valid_after_utc:
        raise PkiError(
            f"a {days}-day certificate would outlive the CA (expires "
            f"{ca_cert.not_valid_after_utc:%Y-%m-%d}); choose fewer days"
        )
    key = _x509.new_key()
    cert = _x509.node_certificate(name, role, key.public_key(), ca_key, ca_cert, now, days, hosts)
    node = NodePaths(
        name, role, paths.nodes / f"{name}.key", paths.nodes / f"{name}.crt", paths.cert
    )
    paths.nodes.mkdir(mode=0o700, exist_ok=True)
    _ca_dir.write(node.key, _x509.private_pem(key), private=True, replace_existing=True)
    _ca_dir.write(node.cert, cert.public_bytes(serialization.Encoding.PEM), replace_existing=True)
    entry = IndexEntry(name, role, cert.serial_number, cert.not_valid_after_utc)
    index = replace(index, entries=(*index.entries, entry))
    _ca_dir.write(paths.index, _ca_dir.index_json(index), replace_existing=True)
    return node


def revoke(dir: Path, name: str) -> None:
    """Revoke ``name``'s certificate and re-sign ``ca.crl`` (servers must reload it)."""
    paths = CaPaths(Path(dir))
    index = _ca_dir.load_index(paths)
    active = index.active(name)
    if active is None:
        known = any(e.name.casefold() == name.casefold() for e in index.entries)
        raise PkiError(
            f"{name!r} is already revoked" if known else f"no certificate issued to {name!r}"
        )
    ca_key, ca_cert = _ca_dir.load_ca(paths)
    now = _x509.utc_now()
    entries = tuple(replace(e, revoked_at=now) if e is active else e for e in index.entries)
    index = CaIndex(index.crl_number + 1, entries)
    # CRL first: a crash in between leaves the certificate rejected and revoke repeatable.
    _ca_dir.write(paths.crl, _crl_pem(ca_key, ca_cert, index, now), replace_existing=True)
    _ca_dir.write(paths.index, _ca_dir.index_json(index), replace_existing=True)


def list_certificates(dir: Path) -> tuple[IndexEntry, ...]:
    """Every certificate the CA in ``dir`` has issued, oldest first, revoked ones included."""
    return _ca_dir.load_index(CaPaths(Path(dir))).entries


@dataclass(frozen=True)
class TrustStore:
    """The CA certificate and the revoked serials: all a server needs to check its peers."""

    ca: x509.Certificate
    revoked: frozenset[int]

    @classmethod
    def load(cls, dir: Path) -> TrustStore:
        """Load ``dir/ca.crt`` and ``dir/ca.crl`` (the CA key is not needed)."""
        paths = CaPaths(Path(dir))
        return cls.from_pem(_ca_dir.read(paths.cert), _ca_dir.read(paths.crl))

    @classmethod
    def from_pem(cls, ca_pem: bytes, crl_pem: bytes) -> TrustStore:
        try:
            ca = x509.load_pem_x509_certificate(ca_pem)
            crl = x509.load_pem_x509_crl(crl_pem)
        except ValueError as exc:
            raise PkiError(f"cannot read the CA certificate or CRL: {exc}") from None
        public = ca.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or not _x509.is_ca(ca):
            raise PkiError(f"{ca.subject.rfc4514_string()} is not a fedswarm CA certificate")
        if crl.issuer != ca.subject or not crl.is_signature_valid(public):
            raise PkiError(f"the CRL is not signed by the CA {ca.subject.rfc4514_string()}")
        return cls(ca, frozenset(r.serial_number for r in crl))

    def verify(
        self, cert: bytes, expected_role: Role | None = None, *, now: dt.datetime | None = None
    ) -> str:
        """The node identity (common name) of ``cert`` (PEM or DER), or :class:`PeerRejected`."""
        peer = _x509.parse_peer(cert)
        who = f"certificate of {_x509.common_name(peer)!r} (serial {peer.serial_number:x})"
        try:
            peer.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, InvalidSignature):
            raise PeerRejected(
                Rejection.WRONG_CA,
                f"{who} is not issued by this federation's CA "
                f"({self.ca.subject.rfc4514_string()}); its issuer is "
                f"{peer.issuer.rfc4514_string()}",
            ) from None
        if _x509.is_ca(peer):
            raise PeerRejected(Rejection.NOT_A_NODE, f"{who} is a CA certificate, not a node's")
        if peer.serial_number in self.revoked:
            raise PeerRejected(Rejection.REVOKED, f"{who} is revoked")
        _x509.check_validity(peer, who, now or _x509.utc_now())
        _x509.check_role(peer, who, expected_role)
        return _x509.common_name(peer)


def verify_peer(
    trust: Path | TrustStore,
    cert: bytes,
    expected_role: Role | None = None,
    *,
    now: dt.datetime | None = None,
) -> str:
    """:meth:`TrustStore.verify` against a store, or a CA directory loaded for this one call."""
    store = trust if isinstance(trust, TrustStore) else TrustStore.load(trust)
    return store.verify(cert, expected_role, now=now)


def _crl_pem(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, index: CaIndex, now: dt.datetime
) -> bytes:
    return _x509.crl_pem(ca_key, ca_cert, index.crl_number, index.revocations(), now)
