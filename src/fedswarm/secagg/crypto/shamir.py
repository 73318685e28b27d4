"""Shamir secret sharing of 32-byte secrets over the prime field of ``2**521 - 1``.

Written here rather than taken from a library: PyCryptodome's ``Shamir`` (what Flower uses)
shares 16-byte secrets only and is not a dependency; ``pyshamir`` shares byte by byte over
GF(256), so at most 255 holders; the other PyPI packages are unmaintained. A Mersenne prime
field holds a whole 32-byte secret in one element, and the code is two short formulas
(Horner evaluation, Lagrange interpolation at zero) checked against a slow reference in the
tests. Coefficients come from the caller's secret randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PRIME", "SHARE_BYTES", "Share", "combine", "randomness_bytes", "split"]

PRIME = 2**521 - 1
SHARE_BYTES = 66  # ceil(521 / 8)
_COEFF_BYTES = SHARE_BYTES + 16  # 128 bits more than the field: reduction bias < 2**-128


@dataclass(frozen=True, repr=False)
class Share:
    """The polynomial's value ``y`` at ``x`` (1-based holder index); repr hides ``y``."""

    x: int
    y: int

    def value_bytes(self) -> bytes:
        return self.y.to_bytes(SHARE_BYTES, "big")

    @classmethod
    def from_bytes(cls, x: int, data: bytes) -> Share:
        y = int.from_bytes(data, "big")
        if len(data) != SHARE_BYTES or not 0 < x < PRIME or y >= PRIME:
            raise ValueError("a share is an index and a field element of 66 bytes")
        return cls(x, y)


def split(secret: bytes, xs: Sequence[int], threshold: int, randomness: bytes) -> list[Share]:
    """Shares of ``secret`` at the points ``xs``; any ``threshold`` of them recover it.

    ``randomness``: :func:`randomness_bytes` secret bytes for the polynomial's coefficients.
    """
    if not 1 <= threshold <= len(xs) or len(set(xs)) != len(xs) or min(xs, default=1) < 1:
        raise ValueError(f"need 1 <= threshold ({threshold}) <= {len(xs)} distinct points >= 1")
    if len(randomness) != randomness_bytes(threshold):
        raise ValueError(f"need {randomness_bytes(threshold)} random bytes")
    n = _COEFF_BYTES
    coeffs = [
        int.from_bytes(randomness[i : i + n], "big") % PRIME for i in range(0, len(randomness), n)
    ]
    poly = [int.from_bytes(secret, "big"), *coeffs]  # poly[0] is the secret
    return [Share(x, _horner(poly, x)) for x in xs]


def randomness_bytes(threshold: int) -> int:
    """How many secret random bytes :func:`split` needs for a polynomial of this threshold."""
    return (threshold - 1) * _COEFF_BYTES


def combine(shares: Sequence[Share], nbytes: int = 32) -> bytes:
    """The secret from at least ``threshold`` shares at distinct points (more is fine)."""
    xs = [s.x for s in shares]
    if not shares or len(set(xs)) != len(xs):
        raise ValueError("need at least one share, at distinct points")
    secret = 0
    for i, s in enumerate(shares):
        num, den = 1, 1
        for j, x in enumerate(xs):
            if j != i:
                num = num * x % PRIME
                den = den * (x - s.x) % PRIME
        secret = (secret + s.y * num * pow(den, -1, PRIME)) % PRIME
    if secret >= 1 << (8 * nbytes):
        raise ValueError("the shares are inconsistent: they do not interpolate a secret")
    return secret.to_bytes(nbytes, "big")


def _horner(poly: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(poly):
        acc = (acc * x + c) % PRIME
    return acc
