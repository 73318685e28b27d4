"""A CA directory on disk: where each file lives, the registry of issued certificates, and
writes that are whole or absent.

The layout is described in :mod:`fedswarm.security.pki`, which re-exports :class:`CaPaths`,
:class:`NodePaths` and :class:`IndexEntry`. Every write goes through :func:`write`: a temporary
file created with its final mode (0600 for keys), then renamed or linked into place, so a
reader never sees half a file and a key is never readable by others. Read failures become
:class:`~fedswarm.security.pki.PkiError` naming the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedswarm.security._x509 import PkiError, Role

__all__ = [
    "CaIndex",
    "CaPaths",
    "IndexEntry",
    "NodePaths",
    "index_json",
    "load_ca",
    "load_index",
    "read",
    "write",
]

_INDEX_FORMAT = 1


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
class CaIndex:
    """``index.json``: the number of the current CRL and every certificate issued, oldest first."""

    crl_number: int
    entries: tuple[IndexEntry, ...]

    def active(self, name: str) -> IndexEntry | None:
        """The unrevoked certificate of ``name``; names differing only in case are one node."""
        folded = name.casefold()
        return next(
            (e for e in self.entries if e.name.casefold() == folded and not e.revoked), None
        )

    def revocations(self) -> tuple[tuple[int, dt.datetime], ...]:
        """``(serial, revoked at)`` of each revoked certificate, in issue order: the CRL's rows."""
        return tuple((e.serial, e.revoked_at) for e in self.entries if e.revoked_at is not None)


def write(
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


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(
            f"{path} not found: no CA there (create one with `fedswarm ca init`)"
        ) from None


def load_ca(paths: CaPaths) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        key = serialization.load_pem_private_key(read(paths.key), password=None)
        cert = x509.load_pem_x509_certificate(read(paths.cert))
    except (ValueError, TypeError) as exc:
        raise PkiError(f"cannot read the CA in {paths.dir}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise PkiError(f"{paths.key} is not the key of {paths.cert}")
    return key, cert


def index_json(index: CaIndex) -> bytes:
    raw = {
        "format": _INDEX_FORMAT,
        "crl_number": index.crl_number,
        "certificates": [e.to_json() for e in index.entries],
    }
    return (json.dumps(raw, indent=2) + "\n").encode()


def load_index(paths: CaPaths) -> CaIndex:
    try:
        raw = json.loads(read(paths.index))
        if raw["format"] != _INDEX_FORMAT:
            raise ValueError(f"format {raw['format']}, expected {_INDEX_FORMAT}")
        entries = tuple(IndexEntry.from_json(e) for e in raw["certificates"])
        return CaIndex(int(raw["crl_number"]), entries)
    except (ValueError, KeyError, TypeError) as exc:
        raise PkiError(f"{paths.index} is damaged: {type(exc).__name__}: {exc}") from None
