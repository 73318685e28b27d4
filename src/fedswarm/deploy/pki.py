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
the organizational unit (``server`` or ``client``), and the extended key usage agrees
(serverAuth or clientAuth), so a client certificate cannot serve and a server's cannot dial.

gRPC Python checks the chain during the handshake but cannot check a CRL, so a server calls
:meth:`TrustStore.verify` on the peer certificate afterwards: pure, well under a millisecond.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # no leading "." or "-": no hidden files
_BACKDATE = dt.timedelta(minutes=5)  # accept nodes whose clocks run a little behind the CA's
_INDEX_FORMAT = 1


class Role(StrEnum):
    SERVER = "server"
    CLIENT = "client"


_USAGE = {
    Role.SERVER: ExtendedKeyUsageOID.SERVER_AUTH,
    Role.CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH,
}


class PkiError(Exception):
    """A CA operation that cannot be done: existing CA, bad name, unknown node, missing file."""


class Rejection(StrEnum):
    MALFORMED = "malformed"
    WRONG_CA = "wrong CA"
    NOT_A_NODE = "not a node certificate"
    REVOKED = "revoked"
    NOT_YET_VALID = "not yet valid"
    EXPIRED = "expired"
    WRONG_ROLE = "wrong role"


class PeerRejected(Exception):  # noqa: N818 -- the name the transport work relies on
    """A peer certificate this federation does not accept; ``kind`` says why, ``reason`` how."""

    def __init__(self, kind: Rejection, reason: str) -> None:
        super().__init__(kind, reason)  # both in args: the exception pickles
        self.kind = kind
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class CaPaths:
    dir: Path

    @property
    def key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def crl(self) -> Path:
        return self.dir / "ca.crl"

    @property
    def index(self) -> Path:
        return self.dir / "index.json"

    @property
    def nodes(self) -> Path:
        return self.dir / "nodes"


@dataclass(frozen=True)
class NodePaths:
    """What a node needs: its key and certificate, and the CA certificate to check its peers."""

    name: str
    role: Role
    key: Path
    cert: Path
    ca_cert: Path


@dataclass(frozen=True)
class IndexEntry:
    name: str
    role: Role
    serial: int
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> dict[str, Any]:
        revoked_at = self.revoked_at.isoformat() if self.revoked_at else None
        return {
            "name": self.name,
            "role": self.role.value,
            "serial": f"{self.serial:x}",  # hex string: 159-bit serials overflow JSON numbers
            "not_after": self.not_after.isoformat(),
            "revoked": self.revoked,
            "revoked_at": revoked_at,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> IndexEntry:
        revoked_at = raw["revoked_at"]
        return cls(
            name=raw["name"],
            role=Role(raw["role"]),
            serial=int(raw["serial"], 16),
            not_after=dt.datetime.fromisoformat(raw["not_after"]),
            revoked_at=dt.datetime.fromisoformat(revoked_at) if revoked_at else None,
        )


@dataclass(frozen=True)
class _Index:
    crl_number: int
    entries: tuple[IndexEntry, ...]

    def active(self, name: str) -> IndexEntry | None:
        """The unrevoked certificate of ``name``; names differing only in case are one node."""
        folded = name.casefold()
        return next(
            (e for e in self.entries if e.name.casefold() == folded and not e.revoked), None
        )


def init_ca(dir: Path, name: str = "fedswarm-ca", days: int = 3650) -> CaPaths:
    """Create a federation CA in ``dir``; refuses to overwrite one that is there."""
    paths = CaPaths(Path(dir))
    _check_name(name, "CA name")
    _check_days(days)
    for path in (paths.key, paths.cert, paths.crl, paths.index):
        if path.exists():
            raise PkiError(f"{path} already exists: refusing to overwrite a CA")
    paths.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(paths.key, _private_pem(key), private=True)  # claimed first: a racing init loses here
    _write(paths.cert, cert.public_bytes(serialization.Encoding.PEM))
    index = _Index(crl_number=0, entries=())
    _write(paths.crl, _crl_pem(key, cert, index, now))
    _write(paths.index, _index_json(index))
    return paths


def issue(
    dir: Path, name: str, role: Role, days: int = 365, hosts: Sequence[str] = ()
) -> NodePaths:
    """Issue ``name`` a key and certificate for ``role``, written to ``dir/nodes/``.

    A server's certificate names ``name``, ``localhost`` and ``127.0.0.1`` plus any ``hosts``
    (DNS names or IP addresses it is dialled by); a client's names ``name``. A name that holds
    an unrevoked certificate is refused.
    """
    paths = CaPaths(Path(dir))
    _check_name(name, "node name")
    _check_days(days)
    if hosts and role is not Role.SERVER:
        raise PkiError("extra hosts are for server certificates; clients are not dialled")
    index = _load_index(paths)
    if (active := index.active(name)) is not None:
        raise PkiError(
            f"{active.name!r} already holds a {active.role} certificate (serial "
            f"{active.serial:x}); revoke it before issuing a new one"
        )
    ca_key, ca_cert = _load_ca(paths)
    now = _now()
    if now + dt.timedelta(days=days) > ca_cert.not_valid_after_utc:
        raise PkiError(
            f"a {days}-day certificate would outlive the CA (expires "
            f"{ca_cert.not_valid_after_utc:%Y-%m-%d}); choose fewer days"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _node_certificate(name, role, key.public_key(), ca_key, ca_cert, now, days, hosts)
    node = NodePaths(
        name, role, paths.nodes / f"{name}.key", paths.nodes / f"{name}.crt", paths.cert
    )
    paths.nodes.mkdir(mode=0o700, exist_ok=True)
    _write(node.key, _private_pem(key), private=True, replace_existing=True)
    _write(node.cert, cert.public_bytes(serialization.Encoding.PEM), replace_existing=True)
    entry = IndexEntry(name, role, cert.serial_number, cert.not_valid_after_utc)
    index = replace(index, entries=(*index.entries, entry))
    _write(paths.index, _index_json(index), replace_existing=True)
    return node


def revoke(dir: Path, name: str) -> None:
    """Revoke ``name``'s certificate and re-sign ``ca.crl`` (servers must reload it)."""
    paths = CaPaths(Path(dir))
    index = _load_index(paths)
    active = index.active(name)
    if active is None:
        known = any(e.name.casefold() == name.casefold() for e in index.entries)
        raise PkiError(
            f"{name!r} is already revoked" if known else f"no certificate issued to {name!r}"
        )
    ca_key, ca_cert = _load_ca(paths)
    now = _now()
    entries = tuple(replace(e, revoked_at=now) if e is active else e for e in index.entries)
    index = _Index(index.crl_number + 1, entries)
    # CRL first: a crash in between leaves the certificate rejected and revoke repeatable.
    _write(paths.crl, _crl_pem(ca_key, ca_cert, index, now), replace_existing=True)
    _write(paths.index, _index_json(index), replace_existing=True)


def list_certificates(dir: Path) -> tuple[IndexEntry, ...]:
    """Every certificate the CA in ``dir`` has issued, oldest first, revoked ones included."""
    return _load_index(CaPaths(Path(dir))).entries


@dataclass(frozen=True)
class TrustStore:
    """The CA certificate and the revoked serials: all a server needs to check its peers."""

    ca: x509.Certificate
    revoked: frozenset[int]

    @classmethod
    def load(cls, dir: Path) -> TrustStore:
        """Load ``dir/ca.crt`` and ``dir/ca.crl`` (the CA key is not needed)."""
        paths = CaPaths(Path(dir))
        return cls.from_pem(_read(paths.cert), _read(paths.crl))

    @classmethod
    def from_pem(cls, ca_pem: bytes, crl_pem: bytes) -> TrustStore:
        try:
            ca = x509.load_pem_x509_certificate(ca_pem)
            crl = x509.load_pem_x509_crl(crl_pem)
        except ValueError as exc:
            raise PkiError(f"cannot read the CA certificate or CRL: {exc}") from None
        public = ca.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or not _is_ca(ca):
            raise PkiError(f"{ca.subject.rfc4514_string()} is not a fedswarm CA certificate")
        if crl.issuer != ca.subject or not crl.is_signature_valid(public):
            raise PkiError(f"the CRL is not signed by the CA {ca.subject.rfc4514_string()}")
        return cls(ca, frozenset(r.serial_number for r in crl))

    def verify(
        self, cert: bytes, expected_role: Role | None = None, *, now: dt.datetime | None = None
    ) -> str:
        """The node identity (common name) of ``cert`` (PEM or DER), or :class:`PeerRejected`."""
        peer = _parse_peer(cert)
        who = f"certificate of {_common_name(peer)!r} (serial {peer.serial_number:x})"
        try:
            peer.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, InvalidSignature):
            raise PeerRejected(
                Rejection.WRONG_CA,
                f"{who} is not issued by this federation's CA "
                f"({self.ca.subject.rfc4514_string()}); its issuer is "
                f"{peer.issuer.rfc4514_string()}",
            ) from None
        if _is_ca(peer):
            raise PeerRejected(Rejection.NOT_A_NODE, f"{who} is a CA certificate, not a node's")
        if peer.serial_number in self.revoked:
            raise PeerRejected(Rejection.REVOKED, f"{who} is revoked")
        _check_validity(peer, who, now or _now())
        _check_role(peer, who, expected_role)
        return _common_name(peer)


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


# -- checks --------------------------------------------------------------------------------


def _check_name(name: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise PkiError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )


def _check_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"validity must be at least 1 day, got {days}")


def _check_validity(peer: x509.Certificate, who: str, now: dt.datetime) -> None:
    if now < peer.not_valid_before_utc:
        raise PeerRejected(
            Rejection.NOT_YET_VALID, f"{who} is not valid before {peer.not_valid_before_utc}"
        )
    if now > peer.not_valid_after_utc:
        raise PeerRejected(Rejection.EXPIRED, f"{who} expired at {peer.not_valid_after_utc}")


def _check_role(peer: x509.Certificate, who: str, expected: Role | None) -> None:
    units = {a.value for a in peer.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
    roles = [r for r in Role if r.value in units]
    try:
        usage = peer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = x509.ExtendedKeyUsage([])
    if len(roles) != 1 or _USAGE[roles[0]] not in usage:
        raise PeerRejected(Rejection.WRONG_ROLE, f"{who} carries no fedswarm role")
    if expected is not None and roles[0] is not expected:
        raise PeerRejected(
            Rejection.WRONG_ROLE, f"{who} is a {roles[0]} certificate; expected a {expected}"
        )


def _parse_peer(cert: bytes) -> x509.Certificate:
    try:
        if cert.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(cert)
        return x509.load_der_x509_certificate(cert)
    except ValueError as exc:
        raise PeerRejected(Rejection.MALFORMED, f"unreadable peer certificate: {exc}") from None


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


# -- building ------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _subject_alt_names(name: str, role: Role, hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    for host in ("localhost", "127.0.0.1", *hosts) if role is Role.SERVER else ():
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            _check_name(host, "host name")
            sans.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(list(dict.fromkeys(sans)))  # without repeats, in order


def _node_certificate(
    name: str,
    role: Role,
    public: ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: dt.datetime,
    days: int,
    hosts: Sequence[str],
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
        ]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        _builder(subject, ca_cert.subject, public, now, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([_USAGE[role]]), critical=False)
        .add_extension(_subject_alt_names(name, role, hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _crl_pem(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, index: _Index, now: dt.datetime
) -> bytes:
    # next_update is the CA's expiry: this list is complete until ``revoke`` re-signs it.
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(ca_cert.not_valid_after_utc)
        .add_extension(x509.CRLNumber(index.crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    for entry in index.entries:
        if entry.revoked_at is not None:
            revoked = x509.RevokedCertificateBuilder(entry.serial, entry.revoked_at).build()
            builder = builder.add_revoked_certificate(revoked)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# -- files ---------------------------------------------------------------------------------


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: what grpc.ssl_server_credentials and ssl.load_cert_chain take as is.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(
    path: Path, data: bytes, *, private: bool = False, replace_existing: bool = False
) -> None:
    """Write ``path`` whole or not at all.

    The data goes to a fresh temporary file beside ``path``, created (O_CREAT | O_EXCL) with its
    final mode, 0600 for keys, so a key is never readable by others, not even for a moment. It
    then takes the final name: ``os.replace`` when replacing, else ``os.link``, which fails if
    the name exists, so a racing writer cannot be overwritten.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace_existing:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise PkiError(f"{path} already exists: refusing to overwrite it") from None
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(
            f"{path} not found: no CA there (create one with `fedswarm ca init`)"
        ) from None


def _load_ca(paths: CaPaths) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        key = serialization.load_pem_private_key(_read(paths.key), password=None)
        cert = x509.load_pem_x509_certificate(_read(paths.cert))
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot read the CA in {paths.dir}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise PkiError(f"{paths.key} is not the key of {paths.cert}")
    return key, cert


def _index_json(index: _Index) -> bytes:
    raw = {
        "format": _INDEX_FORMAT,
        "crl_number": index.crl_number,
        "certificates": [e.to_json() for e in index.entries],
    }
    return (json.dumps(raw, indent=2) + "\n").encode()


def _load_index(paths: CaPaths) -> _Index:
    try:
        raw = json.loads(_read(paths.index))
        if raw["format"] != _INDEX_FORMAT:
            raise ValueError(f"format {raw['format']}, expected {_INDEX_FORMAT}")
        entries = tuple(IndexEntry.from_json(e) for e in raw["certificates"])
        return _Index(int(raw["crl_number"]), entries)
    except (ValueError, KeyError, TypeError) as exc:
        raise PkiError(f"{paths.index} is damaged: {type(exc).__name__}: {exc}") from None
