"""The mask generator: an AES-256-CTR keystream read as integers by numpy.

A mask is ``dim`` words of the keystream of a 32-byte seed, reduced mod ``2**bits``; the
words are uniform, so for ``bits`` = 32 or 64 the reduction is a no-op and for smaller
``bits`` a mask of the low bits (still uniform, as ``2**bits`` divides the word range).
Cost: one AES pass over ``dim`` words, no Python loop over elements.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["expand_mask", "reduce_words", "word_dtype"]

_NONCE = bytes(16)  # each seed is used for one mask only (derived per round and pair)
_zeros = bytearray()  # the plaintext of the keystream, grown as needed and reused


def word_dtype(bits: int) -> np.dtype[np.unsignedinteger]:
    """The unsigned dtype masked vectors travel in: uint32 up to 32 bits, else uint64."""
    if not 1 <= bits <= 63:
        raise ValueError(f"bits must be in 1..63, got {bits}")
    return np.dtype(np.uint32) if bits <= 32 else np.dtype(np.uint64)


def expand_mask(seed: bytes, dim: int, bits: int) -> np.ndarray:
    """``(dim,)`` uniform integers in ``[0, 2**bits)`` of dtype :func:`word_dtype`."""
    if len(seed) != 32:
        raise ValueError(f"a mask seed is 32 bytes, got {len(seed)}")
    global _zeros
    dtype = word_dtype(bits)
    nbytes = dim * dtype.itemsize
    if len(_zeros) < nbytes:
        _zeros = bytearray(nbytes)
    buf = np.empty(nbytes + 16, np.uint8)  # update_into wants a block's room to spare
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(_NONCE)).encryptor()
    encryptor.update_into(memoryview(_zeros)[:nbytes], buf.data)  # the keystream, in place
    words = buf[:nbytes].view(dtype.newbyteorder("<")).astype(dtype, copy=False)
    return reduce_words(words, bits)


def reduce_words(words: np.ndarray, bits: int) -> np.ndarray:
    """``words`` mod ``2**bits`` in place (a no-op for the dtype's full width)."""
    if bits < 8 * words.dtype.itemsize:
        words &= words.dtype.type((1 << bits) - 1)
    return words
