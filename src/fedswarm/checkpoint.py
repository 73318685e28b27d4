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
from safetensors.numpy import load_file, save_file

from fedswarm.messages import ClientId, ClientMemory
from fedswarm.params import Params, ParamSpec
from fedswarm.server_opt import OptimizerState
from fedswarm.strategy import ServerState

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

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
    for cid, memory in ckpt.memories.items():
        out |= {f"memory/{cid}/{k}": v for k, v in memory.items()}
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Atomically replace ``path`` with ``ckpt``."""
    meta = {
        "round": ckpt.state.round,
        "opt_step": ckpt.state.optimizer.step,
        "spec": [[t.name, list(t.shape), t.dtype] for t in ckpt.state.params.spec.tensors],
        "config_sha256": ckpt.config_sha256,
    }
    tmp = path.with_suffix(".tmp")
    save_file(_tensors(ckpt), str(tmp), metadata={_META: json.dumps(meta)})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Checkpoint:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = json.loads((f.metadata() or {}).get(_META, "{}"))
    if "round" not in meta:
        raise ValueError(f"{path} is not a fedswarm checkpoint (no {_META!r} metadata)")
    tensors = load_file(str(path))
    spec = ParamSpec.from_json(meta["spec"])
    memories: dict[ClientId, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        if key.startswith("memory/"):
            _, cid, name = key.split("/", 2)
            memories.setdefault(cid, {})[name] = value
    state = ServerState(
        round=int(meta["round"]),
        params=Params(spec, tensors["params"]),
        optimizer=OptimizerState(int(meta["opt_step"]), _prefixed(tensors, "opt/")),
        update=_prefixed(tensors, "update/"),
    )
    return Checkpoint(state, memories, str(meta["config_sha256"]))


def _prefixed(tensors: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
