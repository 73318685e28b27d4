"""The secure-aggregation messages on the wire: :func:`register` adds their kinds to a codec
(``default_codec().extended(register)``); :func:`secagg_codec` is that codec.

Keys, ciphertexts, digests and shares travel as blobs of fixed, checked lengths; masked
vectors as uint32/uint64 tensors; client ids in the header. The nested fit instruction of
the masked-input stage is written by the fit kind's own writer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedswarm.messages import FitIns
from fedswarm.secagg.crypto.shamir import SHARE_BYTES
from fedswarm.secagg.messages import (
    AdvertiseIns,
    AdvertiseRes,
    EncryptedShare,
    MaskedInputIns,
    MaskedInputRes,
    RevealedShare,
    ShareKeysIns,
    ShareKeysRes,
    UnmaskIns,
    UnmaskRes,
)
from fedswarm.wire import (
    Codec,
    Fields,
    Header,
    TensorReader,
    TensorWriter,
    WireError,
    default_codec,
)

__all__ = ["register", "secagg_codec"]

_KEY, _DIGEST, _SIG, _CERT = 32, 32, 512, 16384
_CT = 4 + 2 * SHARE_BYTES + 16


def _ids(ids: tuple[str, ...]) -> list[Any]:
    return [{"id": c} for c in ids]


def _read_ids(h: Fields, name: str) -> tuple[str, ...]:
    return tuple(f.text("id") for f in h.children(name))


def _w_advertise_ins(m: AdvertiseIns, t: TensorWriter, c: Codec) -> Header:
    return {"run_id": m.run_id, "round": m.round}


def _r_advertise_ins(h: Fields, t: TensorReader, c: Codec) -> AdvertiseIns:
    return AdvertiseIns(h.text("run_id"), h.integer("round"))


def _put_advert(a: AdvertiseRes, t: TensorWriter, p: str) -> Header:
    t.blob(f"{p}enc", a.enc_key)
    t.blob(f"{p}mask", a.mask_key)
    t.blob(f"{p}sig", a.signature)
    t.blob(f"{p}cert", a.certificate)
    return {"client_id": a.client_id, "round": a.round}


def _get_advert(h: Fields, t: TensorReader, p: str) -> AdvertiseRes:
    enc, mask = t.blob(f"{p}enc", max_len=_KEY), t.blob(f"{p}mask", max_len=_KEY)
    sig, cert = t.blob(f"{p}sig", max_len=_SIG), t.blob(f"{p}cert", max_len=_CERT)
    return AdvertiseRes(h.text("client_id"), h.integer("round"), enc, mask, sig, cert)


def _w_advertise_res(m: AdvertiseRes, t: TensorWriter, c: Codec) -> Header:
    return _put_advert(m, t, "")


def _r_advertise_res(h: Fields, t: TensorReader, c: Codec) -> AdvertiseRes:
    return _get_advert(h, t, "")


def _w_share_keys_ins(m: ShareKeysIns, t: TensorWriter, c: Codec) -> Header:
    adverts = [_put_advert(a, t, f"n{i}.") for i, a in enumerate(m.neighbours)]
    return {"run_id": m.run_id, "round": m.round, "threshold": m.threshold, "neighbours": adverts}


def _r_share_keys_ins(h: Fields, t: TensorReader, c: Codec) -> ShareKeysIns:
    adverts = tuple(_get_advert(f, t, f"n{i}.") for i, f in enumerate(h.children("neighbours")))
    return ShareKeysIns(h.text("run_id"), h.integer("round"), h.integer("threshold"), adverts)


def _put_shares(shares: tuple[EncryptedShare, ...], t: TensorWriter) -> list[Any]:
    for i, s in enumerate(shares):
        t.blob(f"s{i}.ct", s.ciphertext)
        t.blob(f"s{i}.d0", s.digests[0])
        t.blob(f"s{i}.d1", s.digests[1])
    return [{"peer": s.peer} for s in shares]


def _get_shares(h: Fields, t: TensorReader) -> tuple[EncryptedShare, ...]:
    out = []
    for i, f in enumerate(h.children("shares")):
        ct = t.blob(f"s{i}.ct", max_len=_CT)
        digests = (t.blob(f"s{i}.d0", max_len=_DIGEST), t.blob(f"s{i}.d1", max_len=_DIGEST))
        out.append(EncryptedShare(f.text("peer"), ct, digests))
    return tuple(out)


def _w_share_keys_res(m: ShareKeysRes, t: TensorWriter, c: Codec) -> Header:
    t.blob("commitment", m.seed_commitment)
    return {"client_id": m.client_id, "round": m.round, "shares": _put_shares(m.shares, t)}


def _r_share_keys_res(h: Fields, t: TensorReader, c: Codec) -> ShareKeysRes:
    shares = _get_shares(h, t)
    return ShareKeysRes(
        h.text("client_id"), h.integer("round"), shares, t.blob("commitment", max_len=_DIGEST)
    )


def _w_masked_ins(m: MaskedInputIns, t: TensorWriter, c: Codec) -> Header:
    fit = c.kinds.for_message(m.fit).write(m.fit, t, c)
    return {
        "run_id": m.run_id, "round": m.round, "fit": fit, "bits": m.bits,
        "clip_range": float(m.clip_range), "max_summands": m.max_summands,
        "weight_bound": m.weight_bound, "shares": _put_shares(m.shares, t),
    }  # fmt: skip


def _r_masked_ins(h: Fields, t: TensorReader, c: Codec) -> MaskedInputIns:
    fit = c.kinds.for_tag("fit_ins", "masked_input_ins.fit").read(h.child("fit"), t, c)
    if not isinstance(fit, FitIns):
        raise WireError("masked_input_ins.fit: not a fit instruction")
    return MaskedInputIns(
        h.text("run_id"), h.integer("round"), fit, h.integer("bits"), h.number("clip_range"),
        h.integer("max_summands"), h.integer("weight_bound"), _get_shares(h, t),
    )  # fmt: skip


def _w_masked_res(m: MaskedInputRes, t: TensorWriter, c: Codec) -> Header:
    t.tensor("masked", m.masked)
    bad = _ids(m.bad_senders)
    return {
        "client_id": m.client_id,
        "round": m.round,
        "dtype": m.masked.dtype.name,
        "bad_senders": bad,
    }


def _r_masked_res(h: Fields, t: TensorReader, c: Codec) -> MaskedInputRes:
    dtype = h.text("dtype")
    if dtype not in ("uint32", "uint64"):
        raise WireError(f"masked_input_res.dtype: {dtype!r}, expected uint32 or uint64")
    masked = t.tensor("masked", dtype=dtype, shape=(None,))
    return MaskedInputRes(
        h.text("client_id"), h.integer("round"), np.asarray(masked), _read_ids(h, "bad_senders")
    )


def _w_unmask_ins(m: UnmaskIns, t: TensorWriter, c: Codec) -> Header:
    return {
        "run_id": m.run_id,
        "round": m.round,
        "survivors": _ids(m.survivors),
        "dropped": _ids(m.dropped),
    }


def _r_unmask_ins(h: Fields, t: TensorReader, c: Codec) -> UnmaskIns:
    return UnmaskIns(
        h.text("run_id"), h.integer("round"), _read_ids(h, "survivors"), _read_ids(h, "dropped")
    )


def _w_unmask_res(m: UnmaskRes, t: TensorWriter, c: Codec) -> Header:
    for i, s in enumerate(m.shares):
        t.blob(f"r{i}", s.value)
    shares = [{"owner": s.owner, "x": s.x} for s in m.shares]
    return {"client_id": m.client_id, "round": m.round, "shares": shares}


def _r_unmask_res(h: Fields, t: TensorReader, c: Codec) -> UnmaskRes:
    shares = tuple(
        RevealedShare(f.text("owner"), f.integer("x"), t.blob(f"r{i}", max_len=SHARE_BYTES))
        for i, f in enumerate(h.children("shares"))
    )
    return UnmaskRes(h.text("client_id"), h.integer("round"), shares)


def register(codec: Codec) -> None:
    """The eight secure-aggregation kinds, tagged ``secagg.*``."""
    k = codec.kinds
    k.register("secagg.advertise_ins", AdvertiseIns, write=_w_advertise_ins, read=_r_advertise_ins)
    k.register("secagg.advertise_res", AdvertiseRes, write=_w_advertise_res, read=_r_advertise_res)
    k.register(
        "secagg.share_keys_ins", ShareKeysIns, write=_w_share_keys_ins, read=_r_share_keys_ins
    )
    k.register(
        "secagg.share_keys_res", ShareKeysRes, write=_w_share_keys_res, read=_r_share_keys_res
    )
    k.register("secagg.masked_input_ins", MaskedInputIns, write=_w_masked_ins, read=_r_masked_ins)
    k.register("secagg.masked_input_res", MaskedInputRes, write=_w_masked_res, read=_r_masked_res)
    k.register("secagg.unmask_ins", UnmaskIns, write=_w_unmask_ins, read=_r_unmask_ins)
    k.register("secagg.unmask_res", UnmaskRes, write=_w_unmask_res, read=_r_unmask_res)


def secagg_codec() -> Codec:
    """fedswarm's default codec with the secure-aggregation kinds."""
    return default_codec().extended(register)
