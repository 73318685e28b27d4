"""The secure-aggregation messages on the wire: a whole round with every instruction and
reply encoded and decoded gives the same exact sum; malformed messages are refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pytest

import secagg_helpers as h
from fedswarm.messages import ClientId, Outcome
from fedswarm.secagg.messages import AdvertiseRes, MaskedInputRes
from fedswarm.secagg.simulation import VectorClients
from fedswarm.secagg.wire import secagg_codec
from fedswarm.transport.base import Fold, Request, Transport
from fedswarm.wire import WireError

CODEC = secagg_codec()
LIMIT = 1 << 24


@dataclass
class OverTheWire:
    """Every instruction and reply goes through bytes, as over gRPC."""

    inner: Transport
    kinds_seen: set[str]

    def available(self) -> Sequence[ClientId]:
        return self.inner.available()

    def exchange(
        self, requests: Sequence[Request], *, timeout: float | None, fold: Fold | None = None
    ) -> list[Outcome]:
        sent = [(c, CODEC.decode(CODEC.encode(ins), max_bytes=LIMIT)) for c, ins in requests]
        out = self.inner.exchange(sent, timeout=timeout, fold=fold)  # type: ignore[arg-type]
        back = [CODEC.decode(CODEC.encode(o), max_bytes=LIMIT) for o in out]
        self.kinds_seen |= {type(m).__name__ for m in [*(i for _, i in sent), *back]}
        return back  # type: ignore[return-value]


def test_a_round_over_bytes_gives_the_same_exact_sum() -> None:
    ids = [f"p{i}" for i in range(5)]
    make = VectorClients(seed=12, dim=33)
    wire = OverTheWire(h.transport(ids, make), set())
    done, f = h.run_round(ids, make, 4, 3, via=wire)
    assert done.aborted is None
    np.testing.assert_array_equal(done.words, h.plain_sum(done, make, f))
    assert len(wire.kinds_seen) == 8  # every kind crossed the wire


def test_malformed_messages_are_refused_naming_the_field() -> None:
    advert = AdvertiseRes("p0", 1, b"k" * 32, b"m" * 32, b"")
    long_key = replace(advert, enc_key=b"k" * 33)
    with pytest.raises(WireError, match="enc"):
        CODEC.decode(CODEC.encode(long_key), max_bytes=LIMIT)
    odd = MaskedInputRes("p0", 1, np.zeros(3, np.float32))
    with pytest.raises(WireError, match="dtype"):
        CODEC.decode(CODEC.encode(odd), max_bytes=LIMIT)
