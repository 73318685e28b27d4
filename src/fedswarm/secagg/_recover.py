"""Unmasking: the survivors' masked vectors, less their self-masks and the pairwise masks
they share with participants that dropped, is the modular sum of their encoded updates."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedswarm.messages import ClientId
from fedswarm.secagg import _context as ctx
from fedswarm.secagg._types import Aborted, RoundSetup
from fedswarm.secagg.crypto.keys import keypair_from_seed
from fedswarm.secagg.crypto.prg import expand_mask, reduce_words, word_dtype
from fedswarm.secagg.crypto.shamir import Share, combine
from fedswarm.secagg.messages import UNMASK, AdvertiseRes, ShareKeysRes

__all__ = ["recover_sum"]


def _secret(shares: list[Share] | None, threshold: int) -> bytes | None:
    if shares is None or len(shares) < threshold:
        return None
    try:
        return combine(shares[:threshold])
    except ValueError:
        return None


def recover_sum(
    setup: RoundSetup,
    adverts: Mapping[ClientId, AdvertiseRes],
    dealt: Mapping[ClientId, ShareKeysRes],
    masked: Mapping[ClientId, np.ndarray],
    survivors: set[ClientId],
    partners: Mapping[ClientId, set[ClientId]],
    revealed: Mapping[ClientId, list[Share]],
) -> np.ndarray | Aborted:
    """The sum mod ``2**bits`` (words), or an ``Aborted`` naming whose secret is lost."""
    run_id, rnd, bits, t = setup.run_id, setup.round, setup.bits, setup.threshold
    dim = next(iter(masked.values())).size
    acc = np.zeros(dim, word_dtype(bits))  # wraps at a multiple of 2**bits: exact
    for i in sorted(survivors):
        seed = _secret(revealed.get(i), t)
        if seed is None or ctx.seed_commitment(run_id, rnd, i, seed) != dealt[i].seed_commitment:
            return Aborted(UNMASK, _lost(i, "self-mask seed", revealed, t))
        acc += masked[i]
        acc -= expand_mask(seed, dim, bits)
    for j in sorted(p for p in partners if partners[p]):
        key = _secret(revealed.get(j), t)
        pair = keypair_from_seed(key) if key is not None else None
        if pair is None or pair.public != adverts[j].mask_key:
            return Aborted(UNMASK, _lost(j, "mask key", revealed, t))
        for i in partners[j]:
            m = expand_mask(
                pair.agree(adverts[i].mask_key, ctx.mask_info(run_id, rnd, i, j)), dim, bits
            )
            if i < j:  # i added +m: take it away
                acc -= m
            else:
                acc += m
    return reduce_words(acc, bits)


def _lost(owner: ClientId, what: str, revealed: Mapping[ClientId, list[Share]], t: int) -> str:
    got = len(revealed.get(owner, []))
    if got < t:
        return f"the {what} of {owner!r}: {got} shares revealed, {t} needed"
    return f"the {what} of {owner!r}: its shares do not reconstruct it (inconsistent dealer)"
