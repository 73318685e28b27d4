"""The ledger: a hash chain of signed records, checked record by record, and its file.

The order of the records comes from consensus (see :mod:`fedswarm.swarm.consensus`); what
this module adds on top makes a stored copy tamper-evident. :func:`check_chain` walks the
records in order and stops at the first that is not what the chain and the signatures say it
must be, naming it:

- record ``i`` must have ``seq == i`` and ``prev`` = record ``i-1``'s digest (a removed,
  inserted or reordered record breaks this at the first record out of place);
- a membership record carries its author's certificate and is signed by that certificate's
  key; with a trust store, the certificate must be the federation's, of an allowed role and
  not revoked;
- every other record's author must have joined earlier, and its signature must verify under
  that author's certificate (an edited record, or one re-signed by another key, fails here).

The file (``ledger.jsonl``) is one canonical record per line, appended and fsynced.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedswarm.security.pki import PeerRejected, Role, TrustStore
from fedswarm.security.signing import SignatureInvalid, verify_signature
from fedswarm.swarm.records import GENESIS, Kind, Record, RecordError

__all__ = ["LEDGER_FILE", "Chain", "LedgerInvalid", "check_chain", "read_ledger", "write_ledger"]

LEDGER_FILE = "ledger.jsonl"


class LedgerInvalid(Exception):  # noqa: N818 -- a verdict on a ledger
    """The first record of a ledger that does not verify: ``seq`` and why."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(seq, reason)
        self.seq = seq
        self.reason = reason

    def __str__(self) -> str:
        return f"record {self.seq}: {self.reason}"


@dataclass
class Chain:
    """Records checked so far, and the certificates of the members they admitted.

    ``append_checked`` is the one way in: a peer feeds it the records consensus committed,
    ``fedswarm ledger verify`` the lines of a stored file.
    """

    trust: TrustStore | None = None
    roles: frozenset[Role] = frozenset({Role.PEER})
    records: list[Record] = field(default_factory=list)
    certs: dict[str, bytes] = field(default_factory=dict)

    @property
    def head(self) -> str:
        return self.records[-1].digest if self.records else GENESIS

    def append_checked(self, record: Record) -> None:
        """Append ``record`` if it continues the chain; else :class:`LedgerInvalid`."""
        seq = len(self.records)
        where = f"{record.kind} by {record.author!r}"
        if record.seq != seq:
            raise LedgerInvalid(seq, f"{where} has seq {record.seq}: a record is missing or moved")
        if record.prev != self.head:
            raise LedgerInvalid(
                seq,
                f"{where} does not follow record {seq - 1} (its prev hash differs): "
                "a record before it was edited, removed or reordered",
            )
        cert = self._author_cert(record, seq, where)
        try:
            signer = verify_signature(cert, record.signed_bytes(), record.signature)
        except (SignatureInvalid, ValueError) as exc:
            raise LedgerInvalid(seq, f"{where}: bad signature ({exc})") from None
        if signer != record.author:
            raise LedgerInvalid(seq, f"{where} is signed by {signer!r}")
        self.records.append(record)
        if record.kind == Kind.MEMBERSHIP:
            self.certs[record.author] = cert

    def _author_cert(self, record: Record, seq: int, where: str) -> bytes:
        if record.kind != Kind.MEMBERSHIP:
            cert = self.certs.get(record.author)
            if cert is None:
                raise LedgerInvalid(seq, f"{where}: the author is not a member")
            return cert
        cert = str(record.body["cert"]).encode()
        if self.trust is not None:
            try:
                name = self.trust.verify(cert)
                role = Role(record.body["role"])
            except (PeerRejected, ValueError) as exc:
                raise LedgerInvalid(seq, f"{where}: certificate refused ({exc})") from None
            if name != record.author or role not in self.roles:
                raise LedgerInvalid(seq, f"{where}: the certificate is {name!r}'s, as {role}")
        return cert


def check_chain(
    records: Iterable[Record],
    trust: TrustStore | None = None,
    roles: frozenset[Role] = frozenset({Role.PEER}),
) -> Chain:
    """Every record checked in order (see the module doc); the first bad one raises."""
    chain = Chain(trust, roles)
    for record in records:
        chain.append_checked(record)
    return chain


def read_ledger(path: Path) -> list[Record]:
    """The records of ``path`` (a ledger file, or a folder holding ``ledger.jsonl``);
    :class:`LedgerInvalid` names the first line that is not a record."""
    file = path / LEDGER_FILE if path.is_dir() else path
    records = []
    for seq, line in enumerate(file.read_bytes().splitlines()):
        try:
            records.append(Record.parse(line))
        except RecordError as exc:
            raise LedgerInvalid(seq, f"unreadable ({exc})") from None
    return records


def write_ledger(folder: Path, records: Sequence[Record], start: int = 0) -> None:
    """Write ``records[start:]`` after the first ``start`` lines of the file, durably."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / LEDGER_FILE
    mode = "ab" if start else "wb"
    with open(file, mode) as f:
        for record in records[start:]:
            f.write(record.line() + b"\n")
        f.flush()
        os.fsync(f.fileno())
