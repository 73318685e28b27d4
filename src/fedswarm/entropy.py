"""Participant-private randomness: what a participant draws that the coordinator must not know.

A fit instruction's ``seed`` is public: the coordinator derived it from the run seed, so
batch order drawn from it is reproducible and protects nothing. Noise for local
differential privacy, secure-aggregation masks and keys must come from a source only the
participant holds: :class:`OsSecrets` (the operating system's entropy) in deployment.
Simulation may use :class:`SimulatedSecrets` instead, derived from the run seed so that a
simulated run replays bit for bit; it is marked as simulation-only, because anyone with
the run seed can recompute it.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["OsSecrets", "SecretSource", "SimulatedSecrets"]


class SecretSource(Protocol):
    """Randomness a participant holds alone, per round and purpose."""

    def generator(self, round_: int, purpose: str) -> np.random.Generator:
        """A generator for one purpose (``"transforms"``, ``"secagg.mask"``) in one round."""
        ...

    def key(self, round_: int, purpose: str, nbytes: int = 32) -> bytes:
        """``nbytes`` secret bytes (key material) for one purpose in one round."""
        ...


@dataclass(frozen=True)
class OsSecrets:
    """The operating system's entropy: nothing anyone else holds determines it."""

    def generator(self, round_: int, purpose: str) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence())  # seeded from os entropy

    def key(self, round_: int, purpose: str, nbytes: int = 32) -> bytes:
        return os.urandom(nbytes)


@dataclass(frozen=True)
class SimulatedSecrets:
    """SIMULATION ONLY: "secrets" derived from the run seed and the participant's id, so a
    simulated run is reproducible. Anyone with the run seed recomputes them: never use it
    for a participant on another machine (deployment uses :class:`OsSecrets`)."""

    run_seed: int
    client_id: str

    def generator(self, round_: int, purpose: str) -> np.random.Generator:
        words = [self.run_seed, _crc("private"), round_, _crc(purpose), _crc(self.client_id)]
        return np.random.default_rng(words)

    def key(self, round_: int, purpose: str, nbytes: int = 32) -> bytes:
        info = f"fedswarm simulated secret|{self.client_id}|{round_}|{purpose}".encode()
        hkdf = HKDF(hashes.SHA256(), nbytes, salt=str(self.run_seed).encode(), info=info)
        return hkdf.derive(b"simulation")


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())
