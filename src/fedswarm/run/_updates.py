"""A round's kept participant updates as one safetensors file: ``updates`` (replied, dim)
float32, ``weights`` (replied,) their example counts, the client ids in the metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load, save

from fedswarm.messages import ClientId

__all__ = ["RoundUpdates", "decode_updates", "encode_updates"]


@dataclass(frozen=True, eq=False)
class RoundUpdates:
    client_ids: tuple[ClientId, ...]  # sorted: the round's ``replied``
    updates: np.ndarray  # (clients, dim) float32
    weights: np.ndarray  # (clients,) example counts


def encode_updates(
    client_ids: Sequence[ClientId], updates: np.ndarray, weights: Sequence[int]
) -> bytes:
    tensors = {"updates": np.ascontiguousarray(updates), "weights": np.asarray(weights, np.int64)}
    return save(tensors, {"client_ids": json.dumps(list(client_ids))})


def decode_updates(data: bytes, where: str) -> RoundUpdates:
    try:
        tensors = load(data)
        meta = json.loads(_metadata(data)["client_ids"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{where} is not a round's updates ({exc})") from None
    return RoundUpdates(tuple(meta), tensors["updates"], tensors["weights"])


def _metadata(data: bytes) -> dict[str, str]:
    n = int.from_bytes(data[:8], "little")
    header: dict[str, dict[str, str]] = json.loads(data[8 : 8 + n])
    return header.get("__metadata__", {})
