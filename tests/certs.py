"""Certificates the CA commands refuse to issue, for tests: one whose validity is over."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from fedswarm.security import _x509
from fedswarm.security._ca_dir import CaPaths, load_ca
from fedswarm.security.pki import NodePaths, Role


def issue_expired(ca_dir: Path, name: str, role: Role = Role.CLIENT) -> NodePaths:
    """A certificate for ``name`` signed by the CA in ``ca_dir`` that expired nine days ago,
    written (with its key) to ``ca_dir/nodes/`` like ``issue``'s; not in the CA's index."""
    paths = CaPaths(ca_dir)
    ca_key, ca_cert = load_ca(paths)
    key = _x509.new_key()
    ten_days_ago = _x509.utc_now() - dt.timedelta(days=10)
    cert = _x509.node_certificate(
        name, role, key.public_key(), ca_key, ca_cert, ten_days_ago, 1, ()
    )
    node = NodePaths(
        name, role, paths.nodes / f"{name}.key", paths.nodes / f"{name}.crt", paths.cert
    )
    paths.nodes.mkdir(mode=0o700, exist_ok=True)
    node.key.write_bytes(_x509.private_pem(key))
    node.key.chmod(0o600)
    node.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return node
