"""Which participants are malicious: drawn from the run seed, so a run is reproducible and
every backend (and every worker process) agrees without being told."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from fedswarm.attacks.config import AttackConfig, malicious_count

__all__ = ["malicious_clients"]


def malicious_clients(client_ids: Sequence[str], attack: AttackConfig, seed: int) -> frozenset[str]:
    pool = sorted(client_ids)
    rng = np.random.default_rng([seed, zlib.crc32(b"attack")])
    k = min(malicious_count(attack, len(pool)), len(pool))
    picked = rng.permutation(len(pool))[:k]
    return frozenset(pool[i] for i in picked)
