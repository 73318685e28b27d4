"""Node keys sign bytes; anyone with the node's certificate checks the signature."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedswarm.security.pki import PkiError, Role, init_ca, issue
from fedswarm.security.signing import NodeSigner, SignatureInvalid, verify_signature


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root)
    for name in ("alice", "bob"):
        issue(root, name, Role.CLIENT)
    return root


def _signer(ca: Path, name: str) -> NodeSigner:
    return NodeSigner.load(ca / "nodes" / f"{name}.key", ca / "nodes" / f"{name}.crt")


def test_a_signature_verifies_under_its_certificate_and_names_the_signer(ca: Path) -> None:
    alice = _signer(ca, "alice")
    record = b'{"round": 3, "update_sha256": "ab12"}'
    assert verify_signature(alice.cert_pem, record, alice.sign(record)) == "alice"


@pytest.mark.parametrize("tamper", ["data", "signature", "signer"])
def test_tampered_data_a_damaged_signature_or_another_signer_fails(ca: Path, tamper: str) -> None:
    alice, bob = _signer(ca, "alice"), _signer(ca, "bob")
    record = b"contribution of round 3"
    signature = alice.sign(record)
    cert = alice.cert_pem
    if tamper == "data":
        record = b"contribution of round 4"
    elif tamper == "signature":
        signature = signature[:-1] + bytes([signature[-1] ^ 1])
    else:
        cert = bob.cert_pem
    with pytest.raises(
        SignatureInvalid, match=r"does not verify under the certificate of '(alice|bob)'"
    ):
        verify_signature(cert, record, signature)


def test_a_key_that_is_not_the_certificates_is_refused(ca: Path) -> None:
    with pytest.raises(PkiError, match="is not the key of"):
        NodeSigner.load(ca / "nodes" / "alice.key", ca / "nodes" / "bob.crt")


def test_the_signer_does_not_print_its_key(ca: Path) -> None:
    assert "PRIVATE" not in repr(_signer(ca, "alice"))
