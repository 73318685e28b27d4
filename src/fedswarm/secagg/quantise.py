"""Fixed-point encoding of updates into ``Z_{2**bits}``, so that masked sums are exact.

Each coordinate is clipped to ``[-clip_range, clip_range]``, scaled by :attr:`Quantiser.scale`
and stochastically rounded (unbiased) to an integer, kept mod ``2**bits`` in two's complement.
The scale leaves room for ``max_summands`` values, rounding included, so the modular sum of at
most that many never wraps and reads back as a signed integer.

Error bound (per coordinate, deterministic): each rounding moves a value by less than one
unit, so for ``n`` summands ``|dequantise(sum) - sum of clipped values| < n / scale``.

Example weights: a participant with ``e`` examples (capped at ``weight_bound``) encodes
``(e / weight_bound) * clip(update)`` and, as one exact extra integer word, ``e``; its loss
rides the same way. The coordinator learns only the sums (:class:`Decoded`), and the mean
``total / weight`` is off the clipped example-weighted mean by less than
``weight_bound * n / (scale * weight)`` per coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.aggregation import WeightedSum
from fedswarm.secagg.crypto.prg import reduce_words, word_dtype

__all__ = ["Decoded", "Quantiser", "UpdateEncoding"]


@dataclass(frozen=True)
class Quantiser:
    bits: int = 32
    clip_range: float = 1.0
    max_summands: int = 1

    def __post_init__(self) -> None:
        word_dtype(self.bits)  # validates the range of bits
        if not self.clip_range > 0 or self.max_summands < 1:
            raise ValueError("clip_range must be positive and max_summands at least 1")
        if self.scale <= 0:
            raise ValueError(
                f"{self.bits} bits cannot hold a sum of {self.max_summands} values: raise bits"
            )

    @property
    def modulus(self) -> int:
        return 1 << self.bits

    @property
    def scale(self) -> float:
        """Units per value: ``max_summands * (clip_range * scale + 1) <= 2**(bits-1) - 1``."""
        room = (1 << (self.bits - 1)) - 1 - self.max_summands
        return room / (self.max_summands * self.clip_range)

    def error_bound(self, summands: int) -> float:
        """The largest distance of a dequantised sum of ``summands`` to the clipped sum."""
        return summands / self.scale

    def quantise(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Clipped, scaled, stochastically rounded ``values`` mod ``2**bits``."""
        x = np.clip(values.astype(np.float64), -self.clip_range, self.clip_range)
        return self.round_inplace(x, rng)

    def round_inplace(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """:meth:`quantise` of float64 ``x`` already within the range, using ``x`` as scratch."""
        x *= self.scale
        x += rng.random(x.shape)
        np.floor(x, out=x)  # floor(x + U[0,1)) is x rounded up with probability frac(x)
        return self.wrap(x.astype(np.int64))

    def wrap(self, signed: np.ndarray) -> np.ndarray:
        """Signed integers as words mod ``2**bits`` (the cast keeps the low bits)."""
        return reduce_words(signed.astype(np.int64).astype(word_dtype(self.bits)), self.bits)

    def signed(self, words: np.ndarray) -> np.ndarray:
        """Words mod ``2**bits`` read back as signed integers (int64)."""
        w = words.astype(np.int64)
        return np.where(w >= 1 << (self.bits - 1), w - self.modulus, w)

    def dequantise(self, words: np.ndarray) -> np.ndarray:
        return self.signed(words) / self.scale


@dataclass(frozen=True)
class Decoded:
    summed: WeightedSum  # sum of e_k * clip(update_k) and sum of e_k
    train_loss: float  # example-weighted mean of the clipped losses
    num_examples: int  # sum of the (capped) example counts


@dataclass(frozen=True)
class UpdateEncoding:
    """What a participant puts in its masked vector: ``dim`` update words, a loss word and
    the exact weight word; see the module doc."""

    quantiser: Quantiser
    weight_bound: int = 1
    loss_cap: float = 100.0

    def __post_init__(self) -> None:
        if self.weight_bound < 1 or self.weight_bound * self.quantiser.max_summands >= (
            1 << (self.quantiser.bits - 1)
        ):
            raise ValueError("weight_bound * max_summands must fit in bits - 1 bits")

    def encode(
        self, update: np.ndarray, examples: int, loss: float, rng: np.random.Generator
    ) -> np.ndarray:
        e = min(max(int(examples), 0), self.weight_bound)
        a = e / self.weight_bound
        c = self.quantiser.clip_range
        values = np.empty(update.size + 1, np.float64)  # the update's words, then the loss's
        np.clip(update, -c, c, out=values[:-1])
        values[:-1] *= a
        values[-1] = a * min(max(float(loss), 0.0), self.loss_cap) * c / self.loss_cap
        words = self.quantiser.round_inplace(values, rng)
        return np.concatenate([words, self.quantiser.wrap(np.array([e]))])

    def decode(self, words: np.ndarray, count: int) -> Decoded:
        q = self.quantiser
        values = q.dequantise(words[:-1]) * self.weight_bound
        weight = int(q.signed(words[-1:])[0])
        loss = float(values[-1] * self.loss_cap / q.clip_range / weight) if weight else 0.0
        return Decoded(WeightedSum(values[:-1], float(weight), count), loss, weight)
