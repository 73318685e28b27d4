"""One side's trainable part: a module, its optimiser, and their state as plain arrays.

A part's state travels (a vanilla hand-off from one participant to the next) and is
checkpointed (the run store's resume state), so it is a :class:`PartState` of numpy arrays:
the parameters, and the torch optimiser's per-parameter state flattened to
``"<index>.<key>"`` arrays (SGD's momentum buffer, Adam's moments and step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedswarm.params import Params
from fedswarm.pytorch.learner import make_optimizer
from fedswarm.pytorch.params import load_params, module_params
from fedswarm.training import LocalTraining

__all__ = ["PartState", "Trainable", "delayed_steps"]


@dataclass(frozen=True, eq=False)
class PartState:
    """A part's parameters and optimiser state (empty: a fresh optimiser)."""

    params: Params
    optimizer: Mapping[str, np.ndarray]


class Trainable:
    """A module and its optimiser (None when the part has no parameters: an identity)."""

    def __init__(self, module: nn.Module, training: LocalTraining, state: PartState) -> None:
        load_params(module, state.params)
        self.module = module.train()
        params = list(module.parameters())
        self.optimizer = make_optimizer(params, training) if params else None
        if self.optimizer is not None and state.optimizer:
            _load_optimizer(self.optimizer, state.optimizer)

    def state(self) -> PartState:
        saved = {} if self.optimizer is None else _optimizer_arrays(self.optimizer)
        return PartState(module_params(self.module), saved)

    def step(self) -> None:
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)


def _optimizer_arrays(optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for index, slots in optimizer.state_dict()["state"].items():
        for key, value in slots.items():
            out[f"{index}.{key}"] = torch.as_tensor(value).detach().numpy().copy()
    return out


def _load_optimizer(optimizer: torch.optim.Optimizer, arrays: Mapping[str, np.ndarray]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in arrays.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = torch.from_numpy(np.array(value))
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def delayed_steps(
    part: Trainable,
    outputs: Sequence[torch.Tensor],
    output_grads: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor | None],
) -> list[torch.Tensor | None]:
    """Back-propagate each batch's output gradient, then take one optimiser step per batch
    in order; the gradients with respect to ``inputs`` (None where no input needs one).

    Every batch's gradients are taken before the first step: the outputs were computed with
    the part's weights as they were, and a step changes those weights in place. With one
    batch per exchange this is plain SGD; with more, steps 2.. use gradients that are late
    by up to ``batches - 1`` steps (the price of fewer round trips).
    """
    params = list(part.module.parameters())
    per_batch: list[list[torch.Tensor | None]] = []
    input_grads: list[torch.Tensor | None] = []
    for out, grad, x in zip(outputs, output_grads, inputs, strict=True):
        wrt = [*params, *([x] if x is not None else [])]
        found = torch.autograd.grad(out, wrt, grad, allow_unused=True) if wrt else ()
        grads: list[torch.Tensor | None] = list(found)
        input_grads.append(grads.pop() if x is not None else None)
        per_batch.append(grads)
    for grads in per_batch:
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        part.step()
    return input_grads
