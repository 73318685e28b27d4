"""The federation PKI: CA, issuing, revoking, the peer check, the CLI, and real mutual TLS."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import pickle
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from fedswarm.cli import app
from fedswarm.security.pki import (
    CaPaths,
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

TIMEOUT = 5.0  # seconds: every socket and the server thread give up after this


@pytest.fixture
def ca(tmp_path: Path) -> CaPaths:
    return init_ca(tmp_path / "pki")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert_of(node: NodePaths) -> x509.Certificate:
    return x509.load_pem_x509_certificate(node.cert.read_bytes())


def rejection(
    store: TrustStore, node: NodePaths, role: Role | None = None, **kw: dt.datetime
) -> PeerRejected:
    with pytest.raises(PeerRejected) as info:
        store.verify(node.cert.read_bytes(), role, **kw)
    return info.value


# -- the CA ---------------------------------------------------------------------------------


def test_init_writes_a_private_key_and_a_self_signed_ca(ca: CaPaths) -> None:
    assert sorted(p.name for p in ca.dir.iterdir()) == ["ca.crl", "ca.crt", "ca.key", "index.json"]
    assert mode(ca.key) == 0o600
    assert mode(ca.dir) == 0o700
    cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)  # self-signed: raises if not
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert not usage.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    crl = x509.load_pem_x509_crl(ca.crl.read_bytes())
    assert len(crl) == 0
    assert crl.is_signature_valid(public)
    assert json.loads(ca.index.read_text())["certificates"] == []


def test_init_refuses_to_overwrite_a_ca(ca: CaPaths) -> None:
    key = ca.key.read_bytes()
    with pytest.raises(PkiError, match=r"ca\.key already exists"):
        init_ca(ca.dir)
    assert ca.key.read_bytes() == key


def test_keys_are_0600_even_with_an_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ca = init_ca(tmp_path / "pki")
        node = issue(ca.dir, "alice", Role.CLIENT)
    finally:
        os.umask(old)
    assert (mode(ca.key), mode(node.key)) == (0o600, 0o600)
    assert (mode(ca.cert), mode(node.cert)) == (0o644, 0o644)
    assert not list(ca.dir.rglob("*.tmp"))


def test_commands_on_a_directory_without_a_ca_say_so(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"index\.json not found.*fedswarm ca init"):
        issue(tmp_path, "alice", Role.CLIENT)
    with pytest.raises(PkiError, match=r"ca\.crt not found"):
        TrustStore.load(tmp_path)


# -- issuing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "usage"),
    [
        (Role.SERVER, [ExtendedKeyUsageOID.SERVER_AUTH]),
        (Role.CLIENT, [ExtendedKeyUsageOID.CLIENT_AUTH]),
        (Role.PEER, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
def test_issued_certificate_verifies_and_names_the_node(
    ca: CaPaths, role: Role, usage: list[x509.ObjectIdentifier]
) -> None:
    node = issue(ca.dir, "node-1.eu_west", role, days=30)
    assert node.key.parent == node.cert.parent == ca.dir / "nodes"
    assert mode(node.key) == 0o600
    store = TrustStore.load(ca.dir)
    assert store.verify(node.cert.read_bytes(), role) == "node-1.eu_west"
    assert store.verify(node.cert.read_bytes()) == "node-1.eu_west"  # any role
    assert verify_peer(ca.dir, node.cert.read_bytes(), role) == "node-1.eu_west"
    cert = cert_of(node)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == usage
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=30) <= lifetime <= dt.timedelta(days=30, minutes=10)
    (entry,) = list_certificates(ca.dir)
    assert (entry.name, entry.role, entry.serial, entry.revoked) == (
        "node-1.eu_west",
        role,
        cert.serial_number,
        False,
    )


def test_server_names_cover_loopback_and_extra_hosts(ca: CaPaths) -> None:
    server = issue(ca.dir, "agg", Role.SERVER, hosts=["10.0.0.5", "agg.example.org", "localhost"])
    client = issue(ca.dir, "alice", Role.CLIENT)

    def names(node: NodePaths) -> list[object]:
        san = cert_of(node).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [*san.get_values_for_type(x509.DNSName), *san.get_values_for_type(x509.IPAddress)]

    ip = ipaddress.ip_address
    assert names(server) == ["agg", "localhost", "agg.example.org", ip("127.0.0.1"), ip("10.0.0.5")]
    assert names(client) == ["alice"]
    with pytest.raises(PkiError, match="server certificates"):
        issue(ca.dir, "bob", Role.CLIENT, hosts=["10.0.0.6"])


@pytest.mark.parametrize(
    "name", ["", "a" * 65, "a/b", "../x", ".hidden", "-rf", "a b", "é", "a\nb", "x:1"]
)
def test_bad_names_are_refused(ca: CaPaths, name: str) -> None:
    with pytest.raises(PkiError, match="invalid node name"):
        issue(ca.dir, name, Role.CLIENT)
    assert not (ca.dir / "nodes").exists()


def test_longest_name_and_bad_validity(ca: CaPaths) -> None:
    assert TrustStore.load(ca.dir).verify(issue(ca.dir, "a" * 64, Role.CLIENT).cert.read_bytes())
    with pytest.raises(PkiError, match="at least 1 day"):
        issue(ca.dir, "b", Role.CLIENT, days=0)
    with pytest.raises(PkiError, match="outlive the CA"):
        issue(ca.dir, "c", Role.CLIENT, days=4000)


def test_an_issued_name_is_reissued_only_after_revocation(ca: CaPaths) -> None:
    first = issue(ca.dir, "alice", Role.CLIENT)
    old_pem = first.cert.read_bytes()
    for again in ("alice", "ALICE"):  # one node, whatever the case
        with pytest.raises(PkiError, match="'alice' already holds a client certificate"):
            issue(ca.dir, again, Role.SERVER)
    revoke(ca.dir, "alice")
    second = issue(ca.dir, "alice", Role.CLIENT)
    store = TrustStore.load(ca.dir)
    assert store.verify(second.cert.read_bytes(), Role.CLIENT) == "alice"
    with pytest.raises(PeerRejected, match="revoked"):
        store.verify(old_pem)
    assert [e.revoked for e in list_certificates(ca.dir)] == [True, False]


# -- revoking -------------------------------------------------------------------------------


def test_revoked_certificate_is_rejected_once_the_store_is_reloaded(ca: CaPaths) -> None:
    alice, bob = issue(ca.dir, "alice", Role.CLIENT), issue(ca.dir, "bob", Role.CLIENT)
    before = TrustStore.load(ca.dir)
    revoke(ca.dir, "alice")
    assert before.verify(alice.cert.read_bytes()) == "alice"  # a store is a snapshot
    after = TrustStore.load(ca.dir)
    error = rejection(after, alice)
    assert error.kind is Rejection.REVOKED
    assert "'alice'" in str(error)
    assert "revoked" in str(error)
    assert after.verify(bob.cert.read_bytes()) == "bob"
    crl = x509.load_pem_x509_crl(ca.crl.read_bytes())
    assert [r.serial_number for r in crl] == [cert_of(alice).serial_number]
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > crl.last_update_utc
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1


def test_revoking_an_unknown_or_revoked_name_fails(ca: CaPaths) -> None:
    with pytest.raises(PkiError, match="no certificate issued to 'zed'"):
        revoke(ca.dir, "zed")
    issue(ca.dir, "alice", Role.CLIENT)
    revoke(ca.dir, "alice")
    with pytest.raises(PkiError, match="'alice' is already revoked"):
        revoke(ca.dir, "alice")


# -- the peer check -------------------------------------------------------------------------


def test_a_certificate_from_another_ca_is_rejected(ca: CaPaths, tmp_path: Path) -> None:
    other = init_ca(tmp_path / "other")  # the same default CA name, another key
    mallory = issue(other.dir, "mallory", Role.CLIENT)
    error = rejection(TrustStore.load(ca.dir), mallory, Role.CLIENT)
    assert error.kind is Rejection.WRONG_CA
    assert "not issued by this federation's CA" in str(error)
    assert "'mallory'" in str(error)


def test_wrong_role_is_rejected(ca: CaPaths) -> None:
    alice = issue(ca.dir, "alice", Role.CLIENT)
    error = rejection(TrustStore.load(ca.dir), alice, Role.SERVER)
    assert error.kind is Rejection.WRONG_ROLE
    assert "is a client certificate; expected a server" in str(error)


def test_expired_and_not_yet_valid_certificates_are_rejected(ca: CaPaths) -> None:
    alice = issue(ca.dir, "alice", Role.CLIENT, days=1)
    store, now = TrustStore.load(ca.dir), dt.datetime.now(dt.UTC)
    expired = rejection(store, alice, now=now + dt.timedelta(days=2))
    assert expired.kind is Rejection.EXPIRED
    assert "expired at" in str(expired)
    early = rejection(store, alice, now=now - dt.timedelta(hours=1))
    assert early.kind is Rejection.NOT_YET_VALID


def test_the_ca_certificate_is_not_a_peer(ca: CaPaths) -> None:
    with pytest.raises(PeerRejected, match="is a CA certificate") as info:
        TrustStore.load(ca.dir).verify(ca.cert.read_bytes())
    assert info.value.kind is Rejection.NOT_A_NODE


def test_der_is_accepted_and_garbage_is_malformed(ca: CaPaths) -> None:
    der = cert_of(issue(ca.dir, "alice", Role.CLIENT)).public_bytes(Encoding.DER)
    store = TrustStore.load(ca.dir)
    assert store.verify(der) == "alice"
    with pytest.raises(PeerRejected) as info:
        store.verify(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert info.value.kind is Rejection.MALFORMED


def test_a_crl_from_another_ca_is_refused(ca: CaPaths, tmp_path: Path) -> None:
    other = init_ca(tmp_path / "other")
    with pytest.raises(PkiError, match="CRL is not signed by the CA"):
        TrustStore.from_pem(ca.cert.read_bytes(), other.crl.read_bytes())


def test_peer_rejected_pickles() -> None:
    error = pickle.loads(pickle.dumps(PeerRejected(Rejection.REVOKED, "x is revoked")))
    assert (error.kind, error.reason, str(error)) == (
        Rejection.REVOKED,
        "x is revoked",
        "x is revoked",
    )


# -- the command line -----------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and output (stdout and stderr) of ``fedswarm ARGS``, in process."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_cli_init_issue_revoke_list(tmp_path: Path) -> None:
    pki = str(tmp_path / "pki")
    assert invoke("ca", "init", pki, "--name", "acme-ca")[0] == 0
    issued = invoke("ca", "issue", "agg", "--role", "server", "--dir", pki, "--host", "10.0.0.5")
    assert issued[0] == 0, issued[1]
    assert invoke("ca", "issue", "alice", "--role", "client", "--dir", pki)[0] == 0
    assert invoke("ca", "revoke", "alice", "--dir", pki)[0] == 0
    code, listed = invoke("ca", "list", "--dir", pki)
    assert code == 0
    rows = [line for line in listed.splitlines() if "agg" in line or "alice" in line]
    assert "server" in rows[0]
    assert "active" in rows[0]
    assert "client" in rows[1]
    assert "revoked" in rows[1]
    for key in ("ca.key", "nodes/agg.key", "nodes/alice.key"):
        assert mode(tmp_path / "pki" / key) == 0o600
    store = TrustStore.load(tmp_path / "pki")
    assert store.ca.subject.rfc4514_string() == "CN=acme-ca"
    assert store.verify((tmp_path / "pki/nodes/agg.crt").read_bytes(), Role.SERVER) == "agg"


@pytest.mark.parametrize(
    ("with_ca", "args", "message"),
    [
        (False, ("ca", "issue", "alice", "--role", "client"), "index.json not found"),
        (True, ("ca", "issue", "a/b", "--role", "client"), "invalid node name 'a/b'"),
        (True, ("ca", "revoke", "zed"), "no certificate issued to 'zed'"),
        (True, ("ca", "init"), "ca.key already exists"),
    ],
)
def test_cli_errors_exit_1_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_ca: bool,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # --dir defaults to ./pki
    if with_ca:
        init_ca(tmp_path / "pki")
    code, output = invoke(*args)
    assert code == 1
    assert output.strip().startswith("ca error: ")
    assert message in output
    assert len(output.strip().splitlines()) == 1


def test_cli_roles_are_the_role_enum(tmp_path: Path) -> None:
    code, output = invoke("ca", "issue", "--help")
    assert code == 0
    for role in Role:
        assert role.value in output  # the choices offered are exactly the roles
    code, output = invoke("ca", "issue", "x", "--role", "admin", "--dir", str(tmp_path))
    assert code == 2
    assert "admin" in output


# -- real mutual TLS ------------------------------------------------------------------------


@dataclass
class Handshake:
    """What the server side of one connection saw."""

    peer_der: bytes | None = None
    error: OSError | None = None


def _strict(context: ssl.SSLContext) -> ssl.SSLContext:
    # Python 3.13 turns this on by default: AKI/SKI, critical basic constraints and the like.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def _serve_once(listener: socket.socket, context: ssl.SSLContext, seen: Handshake) -> None:
    try:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            with context.wrap_socket(conn, server_side=True) as tls:
                seen.peer_der = tls.getpeercert(binary_form=True)
                tls.sendall(b"ok")
    except OSError as exc:  # ssl.SSLError and timeouts included
        seen.error = exc


@contextlib.contextmanager
def tls_server(server: NodePaths) -> Iterator[tuple[int, Handshake]]:
    """A one-connection TLS server on 127.0.0.1 requiring a client certificate from the CA."""
    context = _strict(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(server.ca_cert)
    context.load_cert_chain(server.cert, server.key)
    seen = Handshake()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        thread = threading.Thread(target=_serve_once, args=(listener, context, seen), daemon=True)
        thread.start()
        yield listener.getsockname()[1], seen
        thread.join(TIMEOUT)
    assert not thread.is_alive()


def tls_connect(port: int, client: NodePaths, ca_cert: Path, host: str) -> bytes:
    context = _strict(ssl.create_default_context(cafile=ca_cert))  # checks the server's name
    context.load_cert_chain(client.cert, client.key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.recv(2)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_mutual_tls_handshake_succeeds(ca: CaPaths, host: str) -> None:
    server, client = issue(ca.dir, "agg", Role.SERVER), issue(ca.dir, "alice", Role.CLIENT)
    with tls_server(server) as (port, seen):
        assert tls_connect(port, client, ca.cert, host) == b"ok"
    assert seen.error is None
    assert seen.peer_der is not None
    assert TrustStore.load(ca.dir).verify(seen.peer_der, Role.CLIENT) == "alice"


def test_mutual_tls_refuses_a_client_from_another_ca(ca: CaPaths, tmp_path: Path) -> None:
    server = issue(ca.dir, "agg", Role.SERVER)
    mallory = issue(init_ca(tmp_path / "other").dir, "mallory", Role.CLIENT)
    with tls_server(server) as (port, seen), contextlib.suppress(ssl.SSLError, ConnectionError):
        # TLS 1.3: the client may finish first and only see the server's alert when reading
        assert tls_connect(port, mallory, ca.cert, "localhost") == b""
    assert isinstance(seen.error, ssl.SSLCertVerificationError)
    assert seen.peer_der is None


def test_mutual_tls_refuses_a_client_certificate_as_server(ca: CaPaths) -> None:
    impostor, client = issue(ca.dir, "bob", Role.CLIENT), issue(ca.dir, "alice", Role.CLIENT)
    with tls_server(impostor) as (port, seen), pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(port, client, ca.cert, "bob")  # the name matches; it lacks serverAuth
    assert seen.peer_der is None
