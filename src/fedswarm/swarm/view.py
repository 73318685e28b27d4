"""What a checked ledger says: members, each round's contributions, close, attestations, flags.

Pure and deterministic: every peer replaying the same records gets the same view. The rules
that make a contribution count once live here, not in the writers:

- a peer's first contribution to a round is its contribution; a later one (a retry after a
  lost reply from a failed leader) is ignored;
- a round's first close record is its close; later ones are ignored, and so is any
  contribution committed after it;
- a peer's first attestation of a round counts; the round's majority model is the sha that
  most attestations name (ties: the smaller sha, so every peer names the same one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fedswarm.swarm.records import Kind, Record

__all__ = ["RoundView", "SwarmView", "contribution_body", "view_of"]


@dataclass
class RoundView:
    contributions: dict[str, Record] = field(default_factory=dict)  # by author, first only
    close: Record | None = None
    attestations: dict[str, str] = field(default_factory=dict)  # author -> model sha
    flagged: dict[str, str] = field(default_factory=dict)  # peer -> the model it attested

    def counted(self) -> list[Record]:
        """The contributions the close fixed, in the close's (sorted digest) order."""
        if self.close is None:
            return []
        by_digest = {r.digest: r for r in self.contributions.values()}
        return [by_digest[d] for d in self.close.body["contributions"] if d in by_digest]

    def majority(self) -> str | None:
        if not self.attestations:
            return None
        counts = Counter(self.attestations.values())
        return min(counts, key=lambda sha: (-counts[sha], sha))

    def disagreeing(self) -> dict[str, str]:
        """Peers whose attested model differs from the majority's."""
        top = self.majority()
        return {p: sha for p, sha in self.attestations.items() if sha != top}


@dataclass
class SwarmView:
    members: dict[str, str] = field(default_factory=dict)  # peer -> the client id it trains
    rounds: dict[int, RoundView] = field(default_factory=dict)
    length: int = 0

    def round(self, rnd: int) -> RoundView:
        return self.rounds.get(rnd) or RoundView()

    def apply(self, record: Record) -> None:
        """Fold one (already checked) record into the view."""
        self.length += 1
        body, author = record.body, record.author
        if record.kind == Kind.MEMBERSHIP:
            self.members.setdefault(author, str(body["client"]))
            return
        if record.kind not in _ROUND_KINDS:
            return  # a kind another layer registered: kept in the chain, no swarm meaning
        rv = self.rounds.setdefault(int(body["round"]), RoundView())
        if record.kind == Kind.CONTRIBUTION and rv.close is None:
            rv.contributions.setdefault(author, record)
        elif record.kind == Kind.ROUND_CLOSE and rv.close is None:
            rv.close = record
        elif record.kind == Kind.MERGED:
            rv.attestations.setdefault(author, str(body["model"]))
        elif record.kind == Kind.FLAG:
            rv.flagged.setdefault(str(body["peer"]), str(body["model"]))


_ROUND_KINDS = frozenset({Kind.CONTRIBUTION, Kind.ROUND_CLOSE, Kind.MERGED, Kind.FLAG})


def view_of(records: Sequence[Record]) -> SwarmView:
    view = SwarmView()
    for record in records:
        view.apply(record)
    return view


def contribution_body(
    rnd: int, blob: str, examples: int, metrics: dict[str, Any]
) -> dict[str, Any]:
    return {"round": rnd, "blob": blob, "examples": examples, "metrics": metrics}
