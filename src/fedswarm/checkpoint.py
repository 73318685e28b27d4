"""Crash-safe run state: everything needed to resume after the last completed round.

One safetensors file holds the server state (model, optimiser moments, the client-update
component's slots) and, in simulation, the participants' memories. It is written to a
temporary file and renamed into place, so a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from fedswarm.messages import ClientId, ClientMemory
from fedswarm.params import Params, ParamSpec
from fedswarm.server_opt import OptimizerState
from fedswarm.strategy import ServerState

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint"]

_META = "fedswarm"


@dataclass(frozen=True, eq=False)
class Checkpoint:
    state: ServerState
    memories: Mapping[ClientId, ClientMemory]
    config_sha256: str


def _tensors(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    s = ckpt.state
    out = {"params": np.asarray(s.params.flat)}
    out |= {f"opt/{k}": v for k, v in s.optimizer.slots.items()}
    out |= {f"update/{k}": v for k, v in s.update.items()}
    for i, memory in enumerate(ckpt.memories.values()):  # ids live in the metadata:
        out |= {f"memory/{i}/{k}": v for k, v in memory.items()}  # they may contain "/"
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Atomically replace ``path`` with ``ckpt``."""
    meta = {
        "round": ckpt.state.round,
        "opt_step": ckpt.state.optimizer.step,
        "spec": [[t.name, list(t.shape), t.dtype] for t in ckpt.state.params.spec.tensors],
        "config_sha256": ckpt.config_sha256,
        "clients": list(ckpt.memories),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(_tensors(ckpt), str(tmp), metadata={_META: json.dumps(meta)})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read back."""


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get(_META, "{}"))
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises several unrelated types for damage
        raise CheckpointError(
            f"{path} is damaged or not a checkpoint ({exc}); delete it to start the run afresh"
        ) from None
    if "round" not in meta:
        raise CheckpointError(f"{path} is not a fedswarm checkpoint (no {_META!r} metadata)")
    spec = ParamSpec.from_json(meta["spec"])
    clients: list[ClientId] = meta.get("clients", [])
    memories: dict[ClientId, dict[str, np.ndarray]] = {cid: {} for cid in clients}
    for key, value in tensors.items():
        if key.startswith("memory/"):
            _, index, name = key.split("/", 2)
            memories[clients[int(index)]][name] = value
    state = ServerState(
        round=int(meta["round"]),
        params=Params(spec, tensors["params"]),
        optimizer=OptimizerState(int(meta["opt_step"]), _prefixed(tensors, "opt/")),
        update=_prefixed(tensors, "update/"),
    )
    return Checkpoint(state, memories, str(meta["config_sha256"]))


def _prefixed(tensors: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
