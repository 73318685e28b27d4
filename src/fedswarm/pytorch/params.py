"""Moving parameters between ``nn.Module`` state dicts and :class:`~fedswarm.params.Params`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedswarm.params import Params, ParamSpec

__all__ = ["flat_tensor", "load_params", "module_params", "named_slices"]


def module_params(module: nn.Module) -> Params:
    """The module's full state (parameters and buffers) as :class:`Params`."""
    arrays = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    return Params.from_arrays(arrays)


def flat_tensor(module: nn.Module) -> np.ndarray:
    """The module's state as one float32 vector in state-dict order (in host memory)."""
    parts = [t.detach().reshape(-1).to(torch.float32) for t in module.state_dict().values()]
    return torch.cat(parts).cpu().numpy() if parts else np.zeros(0, np.float32)


def named_slices(spec: ParamSpec, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Views into ``flat`` shaped like each tensor of ``spec`` (float32)."""
    bounds = zip(spec.tensors, spec.offsets[:-1], spec.offsets[1:], strict=True)
    return {t.name: flat[lo:hi].view(t.shape) for t, lo, hi in bounds}


def load_params(module: nn.Module, params: Params) -> None:
    """Copy ``params`` into ``module`` in place; names and shapes must match exactly.

    What ``load_state_dict`` does for plain tensors (``copy_`` into each parameter and
    buffer, converting dtype), at a third of its cost, which a learner pays every task.
    A module on a GPU receives the whole vector in one copy.
    """
    state = module.state_dict(keep_vars=False)  # detached tensors sharing the module's storage
    shapes = tuple((name, tuple(t.shape)) for name, t in state.items())
    if shapes != tuple((t.name, t.shape) for t in params.spec.tensors):
        raise ValueError(
            "parameters do not fit this model: model tensors "
            f"{shapes[:4]}... vs received {params.spec.names[:4]}..."
        )
    device = next(iter(state.values())).device if state else torch.device("cpu")
    sources = named_slices(params.spec, torch.from_numpy(params.flat.copy()).to(device))
    with torch.no_grad():
        for target, source in zip(state.values(), sources.values(), strict=True):
            target.copy_(source)
