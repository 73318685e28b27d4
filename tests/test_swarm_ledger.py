"""The ledger's hash chain and signatures: an untouched ledger verifies; an edited, removed,
reordered, forged or foreign record fails, and the verdict names the first bad record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedswarm.cli import app
from fedswarm.security.pki import Role, TrustStore, init_ca, issue, revoke
from fedswarm.security.signing import NodeSigner
from fedswarm.swarm.ledger import LEDGER_FILE, LedgerInvalid, check_chain, read_ledger, write_ledger
from fedswarm.swarm.records import GENESIS, Kind, Record, new_record
from fedswarm.swarm.view import contribution_body, view_of


def signer(pki: Path, name: str, role: Role = Role.PEER) -> NodeSigner:
    node = issue(pki, name, role)
    return NodeSigner.load(node.key, node.cert)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    init_ca(d)
    return d


@pytest.fixture(scope="module")
def peers(pki: Path) -> list[NodeSigner]:
    return [signer(pki, f"peer-{i}") for i in range(3)]


def build(peers: list[NodeSigner]) -> list[Record]:
    records: list[Record] = []

    def add(kind: str, who: NodeSigner, body: dict[str, object]) -> None:
        prev = records[-1].digest if records else GENESIS
        records.append(new_record(len(records), prev, kind, who, body))

    for i, p in enumerate(peers):
        add(
            Kind.MEMBERSHIP,
            p,
            {"cert": p.cert_pem.decode(), "role": "peer", "client": str(i), "address": ""},
        )
    for i, p in enumerate(peers):
        add(Kind.CONTRIBUTION, p, contribution_body(1, f"{i:064x}", 10 + i, {"loss": 0.5}))
    counted = sorted(r.digest for r in records if r.kind == Kind.CONTRIBUTION)
    add(Kind.ROUND_CLOSE, peers[0], {"round": 1, "contributions": counted, "reason": "quorum"})
    for p in peers:
        add(Kind.MERGED, p, {"round": 1, "model": "ab" * 32})
    return records


def stored(tmp_path: Path, records: list[Record]) -> Path:
    write_ledger(tmp_path, records)
    return tmp_path


def lines(folder: Path) -> list[str]:
    return (folder / LEDGER_FILE).read_text().splitlines()


def put(folder: Path, rows: list[str]) -> None:
    (folder / LEDGER_FILE).write_text("\n".join(rows) + "\n")


def verdict(folder: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ledger", "verify", str(folder), *extra])
    return result.exit_code, result.output


def test_untouched_ledger_verifies_and_reads_back_the_same(
    tmp_path: Path, pki: Path, peers: list[NodeSigner]
) -> None:
    records = build(peers)
    folder = stored(tmp_path, records)
    assert read_ledger(folder) == records
    chain = check_chain(read_ledger(folder), TrustStore.load(pki))
    assert chain.head == records[-1].digest
    assert set(chain.certs) == {p.name for p in peers}
    code, out = verdict(folder, "--ca", str(pki))
    assert code == 0, out
    assert "7 records" not in out
    assert f"{len(records)} records" in out
    view = view_of(records)
    contributions = [r for r in records if r.kind == Kind.CONTRIBUTION]
    assert view.round(1).counted() == sorted(contributions, key=lambda r: r.digest)


def test_edited_record_is_named(tmp_path: Path, peers: list[NodeSigner]) -> None:
    folder = stored(tmp_path, build(peers))
    rows = lines(folder)
    row = json.loads(rows[4])
    row["body"]["examples"] = 1000  # peer-1 claims more examples than it had
    rows[4] = json.dumps(row)
    put(folder, rows)
    code, out = verdict(folder)
    assert code == 1
    assert "record 4" in out
    assert "bad signature" in out


@pytest.mark.parametrize("how", ["removed", "reordered"])
def test_removed_or_reordered_record_is_named(
    tmp_path: Path, peers: list[NodeSigner], how: str
) -> None:
    folder = stored(tmp_path, build(peers))
    rows = lines(folder)
    if how == "removed":
        del rows[5]
    else:
        rows[4], rows[5] = rows[5], rows[4]
    put(folder, rows)
    code, out = verdict(folder)
    assert code == 1
    assert ("record 5" if how == "removed" else "record 4") in out
    assert "missing or moved" in out


def test_forged_signature_and_re_signed_record_are_named(
    tmp_path: Path, pki: Path, peers: list[NodeSigner]
) -> None:
    records = build(peers)
    forged = Record(**{**records[6].__dict__, "sig": records[5].sig})
    with pytest.raises(LedgerInvalid, match=r"record 6: .* bad signature"):
        check_chain([*records[:6], forged, *records[7:]])
    # a record re-signed by another member (consistent chain after it) still fails
    edited = Record(
        6,
        records[5].digest,
        Kind.ROUND_CLOSE,
        "peer-0",
        {"round": 1, "contributions": [], "reason": "quorum"},
    ).signed(peers[1].sign)
    with pytest.raises(LedgerInvalid, match=r"record 6: .* bad signature"):
        check_chain([*records[:6], edited])
    # a record whose author never joined
    outsider = signer(pki, "outsider")
    rogue = new_record(
        len(records), records[-1].digest, Kind.MERGED, outsider, {"round": 1, "model": "00" * 32}
    )
    with pytest.raises(LedgerInvalid, match=rf"record {len(records)}: .* not a member"):
        check_chain([*records, rogue])


def test_foreign_revoked_and_wrong_role_members_are_refused(
    tmp_path: Path, pki: Path, peers: list[NodeSigner]
) -> None:
    other = tmp_path / "other"
    init_ca(other)
    cases = {
        "foreign": (signer(other, "peer-9"), "not issued by this federation"),
        "revoked": (signer(pki, "gone"), "is revoked"),
        "client": (signer(pki, "alice", Role.CLIENT), "as client"),
    }
    revoke(pki, "gone")
    trust = TrustStore.load(pki)
    head = build(peers)[:3]
    for who, why in cases.values():
        role = "client" if who.name == "alice" else "peer"
        joined = new_record(
            3,
            head[-1].digest,
            Kind.MEMBERSHIP,
            who,
            {"cert": who.cert_pem.decode(), "role": role, "client": "9", "address": ""},
        )
        with pytest.raises(LedgerInvalid, match=rf"record 3: .*{why}"):
            check_chain([*head, joined], trust)


def test_show_lists_every_record(tmp_path: Path, peers: list[NodeSigner]) -> None:
    folder = stored(tmp_path, build(peers))
    result = CliRunner().invoke(app, ["ledger", "show", str(folder)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert result.output.count("contribution") == 3
    assert "round_close" in result.output
