"""Deterministic seeds derived from the run seed, so every run replays bit for bit."""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["client_seed", "round_rng"]


def round_rng(seed: int, round_: int, purpose: str) -> np.random.Generator:
    """A generator for one purpose (``"sample"``, ``"evaluate"``, ...) in one round."""
    return np.random.default_rng([seed, round_, zlib.crc32(purpose.encode())])


def client_seed(seed: int, round_: int, client_id: str) -> int:
    """The seed a participant uses for its batch order in one round (63 bits)."""
    words = np.random.SeedSequence([seed, round_, zlib.crc32(client_id.encode())]).generate_state(2)
    return (int(words[0]) << 31) ^ int(words[1])
