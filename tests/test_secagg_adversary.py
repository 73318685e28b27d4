"""Bad participants and a coordinator that cheats: forged, replayed, redirected and
inconsistent shares leave their sender out of the round, which completes with the exact sum
of the others; a participant refuses keys nobody signed and never reveals both secrets."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import secagg_helpers as h
from fedswarm.client import ClientApp, Session
from fedswarm.messages import FailureKind, Refusal
from fedswarm.secagg import KeyBinding, SecAggProtocolError, secagg_handlers
from fedswarm.secagg.messages import (
    MASKED_INPUT,
    UNMASK,
    AdvertiseIns,
    AdvertiseRes,
    RevealedShare,
    ShareKeysIns,
    ShareKeysRes,
    UnmaskIns,
    UnmaskRes,
)
from fedswarm.secagg.simulation import VectorClients

IDS = [f"p{i}" for i in range(6)]
Tamper = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Tampering:
    """Participant ``who`` alters its replies of one kind with ``tamper(reply, ins)``."""

    base: VectorClients
    who: str
    kind: type
    tamper: Tamper

    @property
    def dim(self) -> int:
        return self.base.dim

    def __call__(self, client_id: str) -> ClientApp:
        app = self.base(client_id)
        if client_id != self.who:
            return app
        inner = app.handlers[self.kind]

        def handler(a: ClientApp, ins: Any, mem: Any, session: Session) -> Any:
            reply, mem = inner(a, ins, mem, session)
            return self.tamper(reply, ins), mem

        return replace(app, handlers={**app.handlers, self.kind: handler})


def _flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _alter_share_to(receiver: str, change: Callable[[Any], Any]) -> Tamper:
    def tamper(res: ShareKeysRes, ins: ShareKeysIns) -> ShareKeysRes:
        shares = tuple(change(s) if s.peer == receiver else s for s in res.shares)
        return replace(res, shares=shares)

    return tamper


def _run(make: Any) -> Any:
    done, f = h.run_round(IDS, make, 5, 4)
    return done, f


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: replace(s, ciphertext=_flip(s.ciphertext)), id="forged"),
        pytest.param(lambda s: replace(s, digests=(s.digests[1], s.digests[0])), id="inconsistent"),
    ],
)
def test_a_bad_dealer_is_left_out_and_the_round_sums_the_others(change: Any) -> None:
    base = VectorClients(seed=2, dim=8)
    make = Tampering(base, "p1", ShareKeysIns, _alter_share_to("p2", change))
    done, f = _run(make)
    assert done.aborted is None
    assert "p1" not in done.survivors
    assert len(done.survivors) == 5
    refused = [x for x in done.failures if x.client_id == "p1"]
    assert refused
    assert refused[0].stage == MASKED_INPUT
    assert refused[0].refusal is Refusal.MALFORMED
    np.testing.assert_array_equal(done.words, h.plain_sum(done, base, f))


@dataclass
class _Replayer:
    """Keeps p1's shares of round 1 and sends them again in round 2."""

    kept: dict[int, ShareKeysRes] = field(default_factory=dict)

    def __call__(self, res: ShareKeysRes, ins: ShareKeysIns) -> ShareKeysRes:
        self.kept.setdefault(ins.round, res)
        old = self.kept[1]
        return replace(res, shares=old.shares) if ins.round == 2 else res


def test_shares_replayed_from_an_earlier_round_do_not_open() -> None:
    base = VectorClients(seed=4, dim=8)
    replayer = _Replayer()
    make = Tampering(base, "p1", ShareKeysIns, replayer)
    first, _ = h.run_round(IDS, make, 5, 4, rnd=1)
    assert first.aborted is None
    assert "p1" in first.survivors
    second, f = h.run_round(IDS, make, 5, 4, rnd=2)
    assert second.aborted is None
    assert "p1" not in second.survivors
    np.testing.assert_array_equal(second.words, h.plain_sum(second, base, f))


def test_a_share_redirected_to_another_receiver_does_not_open() -> None:
    def redirect(res: ShareKeysRes, ins: ShareKeysIns) -> ShareKeysRes:
        to3 = next(s for s in res.shares if s.peer == "p3")
        shares = tuple(replace(to3, peer="p2") if s.peer == "p2" else s for s in res.shares)
        return replace(res, shares=shares)

    base = VectorClients(seed=5, dim=8)
    done, f = _run(Tampering(base, "p1", ShareKeysIns, redirect))
    assert done.aborted is None
    assert "p1" not in done.survivors
    np.testing.assert_array_equal(done.words, h.plain_sum(done, base, f))


def test_a_holder_revealing_a_wrong_share_is_refused_and_its_input_still_counts() -> None:
    def lie(res: UnmaskRes, ins: UnmaskIns) -> UnmaskRes:
        first = res.shares[0]
        shares = (RevealedShare(first.owner, first.x, _flip(first.value)), *res.shares[1:])
        return replace(res, shares=shares)

    base = VectorClients(seed=6, dim=8)
    done, f = _run(Tampering(base, "p2", UnmaskIns, lie))
    assert done.aborted is None
    assert "p2" in done.survivors
    refused = [x for x in done.failures if x.client_id == "p2"]
    assert refused[0].stage == UNMASK
    assert refused[0].kind is FailureKind.REFUSED
    np.testing.assert_array_equal(done.words, h.plain_sum(done, base, f))


def _signing_apps() -> tuple[dict[str, ClientApp], KeyBinding]:
    keys = {c: Ed25519PrivateKey.generate() for c in IDS[:3]}

    def verify(advert: AdvertiseRes, data: bytes) -> bool:
        try:
            keys[advert.client_id].public_key().verify(advert.signature, data)
        except (InvalidSignature, KeyError):
            return False
        return True

    apps = {}
    for c in keys:
        binding = KeyBinding(keys[c].sign, verify)
        apps[c] = replace(VectorClients(0, 4)(c), handlers=secagg_handlers(binding))
    return apps, binding


def test_a_coordinator_cannot_swap_a_participants_public_key() -> None:
    apps, _ = _signing_apps()
    sessions = {c: Session(c, 1) for c in apps}
    adverts: dict[str, AdvertiseRes] = {}
    for c, app in apps.items():
        reply, _ = app.handle(AdvertiseIns("run", 1), {}, sessions[c])
        assert isinstance(reply, AdvertiseRes)
        adverts[c] = reply
    honest = ShareKeysIns("run", 1, 2, tuple(adverts[c] for c in sorted(apps)))
    assert isinstance(apps["p0"].handle(honest, {}, sessions["p0"])[0], ShareKeysRes)
    fake = replace(adverts["p1"], mask_key=os.urandom(32))  # the coordinator's own key
    swapped = ShareKeysIns("run", 1, 2, (adverts["p0"], fake, adverts["p2"]))
    with pytest.raises(SecAggProtocolError, match="keys of 'p1' are not signed by it"):
        apps["p2"].handle(swapped, {}, sessions["p2"])
    low = ShareKeysIns("run", 1, 1, honest.neighbours)  # a threshold no majority
    with pytest.raises(SecAggProtocolError, match="not a majority"):
        apps["p1"].handle(low, {}, sessions["p1"])


def test_a_participant_never_reveals_both_secrets_of_a_neighbour() -> None:
    base = VectorClients(seed=7, dim=4)
    seen: list[UnmaskIns] = []

    def both(res: UnmaskRes, ins: UnmaskIns) -> UnmaskRes:
        seen.append(ins)
        return res

    done, _ = _run(Tampering(base, "p0", UnmaskIns, both))
    assert done.aborted is None
    assert seen
    app = base("p0")
    session = Session("p0", 1)
    with pytest.raises(SecAggProtocolError, match="before advertise"):
        app.handle(UnmaskIns("run", 1, ("p1",), ("p1",)), {}, session)
    assert isinstance(app.handle(AdvertiseIns("run", 1), {}, session)[0], AdvertiseRes)
    with pytest.raises(SecAggProtocolError, match="both survivor and dropped"):
        app.handle(UnmaskIns("run", 1, ("p1", "p2"), ("p1",)), {}, session)
