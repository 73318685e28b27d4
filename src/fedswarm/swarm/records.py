"""Ledger records: what they hold, their canonical bytes, their hash and their signature.

One record is one JSON object (one line of ``ledger.jsonl``)::

    {"v": 1, "seq": 7, "prev": "<sha256 hex of record 6>", "kind": "contribution",
     "author": "peer-2", "body": {...}, "sig": "<base64 ECDSA P-256/SHA-256, DER>"}

- The **signed bytes** are the canonical encoding of every field but ``sig``; the author signs
  them with its node key (:class:`~fedswarm.security.signing.NodeSigner`).
- The **digest** (the record's hash) is the sha256 of the canonical encoding of the whole
  record, ``sig`` included, so the chain pins the exact signature too; the next record's
  ``prev`` is this digest (record 0's is :data:`GENESIS`).
- **Canonical encoding**: UTF-8 JSON, keys sorted, no whitespace, no NaN/Inf. Python's float
  repr is the shortest round-trip one, so a record read back re-encodes to the same bytes.

Kinds and the fields of their bodies are a registry (:data:`BODIES`): the swarm's below;
governance (issue 14) registers its own with :func:`register_kind` and keeps the envelope,
the chain and ``fedswarm ledger verify``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Protocol

__all__ = [
    "BODIES",
    "GENESIS",
    "VERSION",
    "Kind",
    "Record",
    "RecordError",
    "Signer",
    "canonical",
    "check_body",
    "new_record",
    "register_kind",
]

VERSION = 1
GENESIS = "0" * 64


class RecordError(ValueError):
    """A line that is not a well-formed record of a known kind."""


class Kind:
    """The swarm's record kinds (plain strings: other layers register more)."""

    MEMBERSHIP = "membership"  # a peer joins: its certificate; self-signed by its key
    CONTRIBUTION = "contribution"  # an update blob of one round
    ROUND_CLOSE = "round_close"  # which contributions count in a round
    MERGED = "merged"  # a peer's attestation of the merged model it computed
    FLAG = "flag"  # a peer whose attestation disagrees with the majority's


_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    # client: whose data it trains on; address: where it serves its blobs ("" in simulation)
    Kind.MEMBERSHIP: {"cert": str, "role": str, "client": str, "address": str},
    Kind.CONTRIBUTION: {
        "round": int,
        "blob": str,  # sha256 of the update blob (the wire encoding of its FitRes)
        "examples": int,
        "metrics": dict,
    },
    Kind.ROUND_CLOSE: {
        "round": int,
        "contributions": list,  # digests of the counted contribution records, sorted
        "reason": str,  # "quorum" or "deadline"
    },
    Kind.MERGED: {"round": int, "model": str},  # sha256 of the merged parameters
    Kind.FLAG: {"round": int, "peer": str, "model": str, "majority": str},
}
BODIES: Mapping[str, Mapping[str, type | tuple[type, ...]]] = MappingProxyType(_FIELDS)


def register_kind(kind: str, fields: Mapping[str, type | tuple[type, ...]]) -> None:
    """Add a record kind (its body's required fields and their JSON types)."""
    if kind in _FIELDS:
        raise ValueError(f"record kind {kind!r} is already registered")
    _FIELDS[kind] = dict(fields)


def canonical(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@dataclass(frozen=True)
class Record:
    seq: int
    prev: str
    kind: str
    author: str
    body: Mapping[str, Any]
    sig: str = ""

    def unsigned(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "seq": self.seq,
            "prev": self.prev,
            "kind": self.kind,
            "author": self.author,
            "body": dict(self.body),
        }

    def signed_bytes(self) -> bytes:
        return canonical(self.unsigned())

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned(), "sig": self.sig}

    def line(self) -> bytes:
        return canonical(self.to_json())

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.line()).hexdigest()

    @property
    def signature(self) -> bytes:
        return base64.b64decode(self.sig, validate=True)

    def signed(self, sign: Callable[[bytes], bytes]) -> Record:
        return replace(self, sig=base64.b64encode(sign(self.signed_bytes())).decode())

    @classmethod
    def parse(cls, line: bytes | str) -> Record:
        """A record from its JSON line; :class:`RecordError` says what is wrong."""
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise RecordError(f"not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise RecordError("not a JSON object")
        return cls.from_json(raw)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Record:
        expected = {"v", "seq", "prev", "kind", "author", "body", "sig"}
        if set(raw) != expected:
            raise RecordError(f"fields {sorted(raw)}, expected {sorted(expected)}")
        if raw["v"] != VERSION:
            raise RecordError(f"record format version {raw['v']!r}, this reader knows {VERSION}")
        for name, kind in (("seq", int), ("prev", str), ("kind", str), ("author", str)):
            if not isinstance(raw[name], kind) or isinstance(raw[name], bool):
                raise RecordError(f"{name} is not a {kind.__name__}")
        for name in ("body", "sig"):
            if not isinstance(raw[name], dict if name == "body" else str):
                raise RecordError(f"{name} has the wrong type")
        check_body(raw["kind"], raw["body"])
        return cls(raw["seq"], raw["prev"], raw["kind"], raw["author"], raw["body"], raw["sig"])


def check_body(kind: str, body: Mapping[str, Any]) -> None:
    fields = _FIELDS.get(kind)
    if fields is None:
        raise RecordError(f"unknown record kind {kind!r} (known: {', '.join(sorted(_FIELDS))})")
    if set(body) != set(fields):
        raise RecordError(f"a {kind} body has fields {sorted(body)}, expected {sorted(fields)}")
    for name, typ in fields.items():
        value = body[name]
        if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
            raise RecordError(f"{kind}.{name} has the wrong type")


class Signer(Protocol):
    @property
    def name(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def new_record(seq: int, prev: str, kind: str, signer: Signer, body: Mapping[str, Any]) -> Record:
    """Record ``seq`` after ``prev``, by ``signer``, checked against its kind and signed."""
    check_body(kind, body)
    return Record(seq, prev, kind, signer.name, dict(body)).signed(signer.sign)
