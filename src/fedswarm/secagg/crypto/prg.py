"""The mask generator: an AES-256-CTR keystream read as integers by numpy.

A mask is ``dim`` words of the keystream of a 32-byte seed, reduced mod ``2**bits``; the
words are uniform, so for ``bits`` = 32 or 64 the reduction is a no-op and for smaller
``bits`` a mask of the low bits (still uniform, as ``2**bits`` divides the word range).
Cost: one AES pass over ``dim`` words, no Python loop over elements.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["expand_mask", "word_dtype"]

_NONCE = bytes(16)  # each seed is used for one mask only (derived per round and pair)


def word_dtype(bits: int) -> np.dtype[np.unsignedinteger]:
    """The unsigned dtype masked vectors travel in: uint32 up to 32 bits, else uint64."""
    if not 1 <= bits <= 63:
        raise ValueError(f"bits must be in 1..63, got {bits}")
    return np.dtype(np.uint32) if bits <= 32 else np.dtype(np.uint64)


def expand_mask(seed: bytes, dim: int, bits: int) -> np.ndarray:
    """``(dim,)`` uniform integers in ``[0, 2**bits)`` of dtype :func:`word_dtype`."""
    if len(seed) != 32:
        raise ValueError(f"a mask seed is 32 bytes, got {len(seed)}")
    dtype = word_dtype(bits)
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(_NONCE)).encryptor()
    stream = encryptor.update(bytes(dim * dtype.itemsize)) + encryptor.finalize()
    words = np.frombuffer(stream, dtype=dtype.newbyteorder("<")).astype(dtype)
    if bits < 8 * dtype.itemsize:
        words &= dtype.type((1 << bits) - 1)
    return words
