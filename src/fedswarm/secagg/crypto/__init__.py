"""The cryptography of secure aggregation, each primitive in its own small module.

Everything is built from `cryptography`'s primitives (X25519, HKDF-SHA256, AES-GCM,
AES-CTR); only Shamir sharing is written here (see :mod:`.shamir` for why).
"""

from fedswarm.secagg.crypto.aead import open_share, seal_share
from fedswarm.secagg.crypto.keys import KeyPair, agree, keypair_from_seed
from fedswarm.secagg.crypto.prg import expand_mask
from fedswarm.secagg.crypto.shamir import PRIME, Share, combine, split

__all__ = [
    "PRIME",
    "KeyPair",
    "Share",
    "agree",
    "combine",
    "expand_mask",
    "keypair_from_seed",
    "open_share",
    "seal_share",
    "split",
]
