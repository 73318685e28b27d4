"""``fedswarm ledger verify|show`` (and ``fedswarm peer``, in :mod:`fedswarm.swarm.peer_cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["ledger_app"]

ledger_app = typer.Typer(help="Check and read a signed, hash-chained ledger.", no_args_is_help=True)
_out = Console()
_err = Console(stderr=True)

LedgerPath = Annotated[
    Path,
    typer.Argument(
        metavar="LEDGER", help="A ledger file, or a folder holding ledger.jsonl.", exists=True
    ),
]
CaOption = Annotated[
    Path | None,
    typer.Option(
        "--ca", help="Also check members' certificates against this CA folder (ca.crt, ca.crl)."
    ),
]


@ledger_app.command("verify")
def verify(path: LedgerPath, ca: CaOption = None) -> None:
    """Check the chain and every signature; exit 1 naming the first bad record."""
    from fedswarm.security.pki import Role, TrustStore
    from fedswarm.swarm.ledger import LedgerInvalid, check_chain, read_ledger

    trust = TrustStore.load(ca) if ca is not None else None
    try:
        chain = check_chain(read_ledger(path), trust, frozenset(Role))
    except LedgerInvalid as exc:
        _err.print(f"[red]ledger invalid[/red]: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    _out.print(
        f"ledger ok: {len(chain.records)} records, {len(chain.certs)} members, head "
        f"{chain.head[:16]}",
        highlight=False,
        soft_wrap=True,
    )


@ledger_app.command("show")
def show(path: LedgerPath) -> None:
    """One line per record: seq, kind, author, round and what it fixes."""
    from fedswarm.swarm.ledger import read_ledger

    table = Table("seq", "kind", "author", "round", "detail", "digest")
    for r in read_ledger(path):
        body = r.body
        detail = {
            "membership": f"client {body.get('client')} ({body.get('role')})",
            "contribution": f"blob {str(body.get('blob'))[:12]} x{body.get('examples')}",
            "round_close": f"{len(body.get('contributions', []))} counted ({body.get('reason')})",
            "merged": f"model {str(body.get('model'))[:12]}",
            "flag": f"{body.get('peer')} attested {str(body.get('model'))[:12]}",
        }.get(r.kind, "")
        table.add_row(
            str(r.seq), r.kind, r.author, str(body.get("round", "")), detail, r.digest[:12]
        )
    _out.print(table)
