"""Run state as bytes: a model version, and what else resuming after a round needs.

A checkpoint is two safetensors documents, so that a run store can keep every round's model
(small, content-addressed, the model registry's unit) apart from the resume state it needs
for the last round only:

- :func:`encode_params`: the parameters, one float32 tensor per named tensor, cut from the
  flat vector (exact: resuming from it continues bit for bit), the layout in the metadata;
- :func:`encode_state`: the rest of the server state (round, optimiser step and moments, the
  client-update component's slots, wrappers' state) and, in simulation, the participants'
  memories.

Both encodings are deterministic: the same state gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from safetensors.numpy import load, save

from fedswarm.messages import ClientId, ClientMemory
from fedswarm.params import Params, ParamSpec
from fedswarm.server_opt import OptimizerState
from fedswarm.strategy import ServerState

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "decode_params",
    "decode_state",
    "encode_params",
    "encode_state",
]

_META = "fedswarm"


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """Everything needed to resume after ``state.round`` rounds."""

    state: ServerState
    memories: Mapping[ClientId, ClientMemory]  # participants' (simulation stands in for them)


class CheckpointError(ValueError):
    """Bytes that are not the encoding they should be; the message names their source."""


def encode_params(params: Params) -> bytes:
    """The model as a safetensors document: named float32 tensors and their layout."""
    flat, spec = params.flat, params.spec
    tensors = {
        t.name: np.ascontiguousarray(flat[lo:hi].reshape(t.shape))
        for t, lo, hi in zip(spec.tensors, spec.offsets[:-1], spec.offsets[1:], strict=True)
    }
    layout = [[t.name, list(t.shape), t.dtype] for t in spec.tensors]
    return save(tensors, metadata={_META: json.dumps({"kind": "params", "spec": layout})})


def decode_params(data: bytes, where: str) -> Params:
    """Inverse of :func:`encode_params`; ``where`` (a file) names the source in errors."""
    meta, tensors = _decode(data, "params", where)
    try:
        spec = ParamSpec.from_json(meta["spec"])
        flat = [np.asarray(tensors[t.name], np.float32).ravel() for t in spec.tensors]
        return Params(spec, np.concatenate(flat) if flat else np.zeros(0, np.float32))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where} holds params that do not fit their layout: {exc}") from None


def encode_state(ckpt: Checkpoint) -> bytes:
    """Everything of ``ckpt`` but the parameters, as a safetensors document."""
    s = ckpt.state
    tensors = {f"opt/{k}": v for k, v in s.optimizer.slots.items()}
    tensors |= {f"update/{k}": v for k, v in s.update.items()}
    tensors |= {f"wrapper/{k}": v for k, v in s.wrapper.items()}
    for i, memory in enumerate(ckpt.memories.values()):  # ids live in the metadata:
        tensors |= {f"memory/{i}/{k}": v for k, v in memory.items()}  # they may contain "/"
    meta = {
        "kind": "state",
        "round": s.round,
        "opt_step": s.optimizer.step,
        "clients": list(ckpt.memories),
    }
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    return save(arrays, metadata={_META: json.dumps(meta)})


def decode_state(data: bytes, params: Params, where: str) -> Checkpoint:
    """Inverse of :func:`encode_state`, with the round's ``params``."""
    meta, tensors = _decode(data, "state", where)
    try:
        clients: list[ClientId] = [str(c) for c in meta["clients"]]
        memories: dict[ClientId, dict[str, np.ndarray]] = {cid: {} for cid in clients}
        for key, value in tensors.items():
            if key.startswith("memory/"):
                _, index, name = key.split("/", 2)
                memories[clients[int(index)]][name] = value
        state = ServerState(
            round=int(meta["round"]),
            params=params,
            optimizer=OptimizerState(int(meta["opt_step"]), _prefixed(tensors, "opt/")),
            update=_prefixed(tensors, "update/"),
            wrapper=_prefixed(tensors, "wrapper/"),
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where} is not a valid resume state: {exc!r}") from None
    return Checkpoint(state, memories)


def _decode(data: bytes, kind: str, where: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        tensors = load(data)
        meta = json.loads(_metadata(data).get(_META, "{}"))
    except Exception as exc:  # safetensors raises several unrelated types for damage
        raise CheckpointError(f"{where} is damaged or not safetensors ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        raise CheckpointError(f"{where} is not a fedswarm {kind} document (no {_META!r} {kind})")
    return meta, tensors


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors document (an 8-byte length, then JSON)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    meta: dict[str, str] = header.get("__metadata__") or {}
    return meta


def _prefixed(tensors: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
