"""The federation's certificates in memory: building them, the CRL, and the checks on a peer's.

Pure: no files, and no clock except :func:`utc_now`, which callers read once and pass down. Also
the PKI's vocabulary (:class:`Role`, :class:`Rejection` and the two errors), which
:mod:`fedswarm.security.pki` re-exports as its own.

Keys are ECDSA P-256 with SHA-256 signatures. A node certificate carries its identity as the
common name and its role twice, as the organizational unit and as the extended key usage
(serverAuth, clientAuth, or both for a swarm peer);
:func:`check_role` accepts a certificate only when they agree.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "PeerRejected",
    "PkiError",
    "Rejection",
    "Role",
    "ca_certificate",
    "check_days",
    "check_name",
    "check_role",
    "check_validity",
    "common_name",
    "crl_pem",
    "is_ca",
    "new_key",
    "node_certificate",
    "parse_peer",
    "private_pem",
    "utc_now",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # no leading "." or "-": no hidden files
_BACKDATE = dt.timedelta(minutes=5)  # accept nodes whose clocks run a little behind the CA's


class Role(StrEnum):
    SERVER = "server"
    CLIENT = "client"
    PEER = "peer"  # a swarm peer: it both serves (its ledger member, its blobs) and dials


_USAGE = {
    Role.SERVER: (ExtendedKeyUsageOID.SERVER_AUTH,),
    Role.CLIENT: (ExtendedKeyUsageOID.CLIENT_AUTH,),
    Role.PEER: (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
}
_DIALLED = (Role.SERVER, Role.PEER)  # roles whose certificates name the hosts they listen on


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


# -- checks --------------------------------------------------------------------------------


def check_name(name: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise PkiError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '.', '-' or '_', "
            "starting with a letter or digit"
        )


def check_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"validity must be at least 1 day, got {days}")


def check_validity(peer: x509.Certificate, who: str, now: dt.datetime) -> None:
    if now < peer.not_valid_before_utc:
        raise PeerRejected(
            Rejection.NOT_YET_VALID, f"{who} is not valid before {peer.not_valid_before_utc}"
        )
    if now > peer.not_valid_after_utc:
        raise PeerRejected(Rejection.EXPIRED, f"{who} expired at {peer.not_valid_after_utc}")


def check_role(peer: x509.Certificate, who: str, expected: Role | None) -> None:
    units = {a.value for a in peer.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
    roles = [r for r in Role if r.value in units]
    try:
        usage = peer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = x509.ExtendedKeyUsage([])
    if len(roles) != 1 or any(u not in usage for u in _USAGE[roles[0]]):
        raise PeerRejected(Rejection.WRONG_ROLE, f"{who} carries no fedswarm role")
    if expected is not None and roles[0] is not expected:
        raise PeerRejected(
            Rejection.WRONG_ROLE, f"{who} is a {roles[0]} certificate; expected a {expected}"
        )


def parse_peer(cert: bytes) -> x509.Certificate:
    try:
        if cert.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(cert)
        return x509.load_der_x509_certificate(cert)
    except ValueError as exc:
        raise PeerRejected(Rejection.MALFORMED, f"unreadable peer certificate: {exc}") from None


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


# -- building ------------------------------------------------------------------------------


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ca_certificate(
    name: str, key: ec.EllipticCurvePrivateKey, now: dt.datetime, days: int
) -> x509.Certificate:
    """A self-signed CA certificate for ``key``: signs node certificates and CRLs, nothing else."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        _builder(subject, subject, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def node_certificate(
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
        .add_extension(x509.ExtendedKeyUsage(list(_USAGE[role])), critical=False)
        .add_extension(_subject_alt_names(name, role, hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def crl_pem(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    number: int,
    revoked: Iterable[tuple[int, dt.datetime]],
    now: dt.datetime,
) -> bytes:
    """CRL ``number`` listing the ``(serial, revoked at)`` pairs in ``revoked``, as PEM."""
    # next_update is the CA's expiry: this list is complete until ``revoke`` re-signs it.
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(ca_cert.not_valid_after_utc)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    for serial, revoked_at in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder(serial, revoked_at).build()
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: what grpc.ssl_server_credentials and ssl.load_cert_chain take as is.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


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
    for host in ("localhost", "127.0.0.1", *hosts) if role in _DIALLED else ():
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            check_name(host, "host name")
            sans.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(list(dict.fromkeys(sans)))  # without repeats, in order
