"""A chunk of clients' mini-batches, step by step, padded to one width: what the vectorised
learner feeds ``vmap``. On a GPU the chunk's samples come from the learner's device copies
and every step's indices go there in one copy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from fedswarm.data.arrays import ArrayDataset
from fedswarm.pytorch.device import DeviceData
from fedswarm.pytorch.learner import batch_indices
from fedswarm.training import LocalTraining

__all__ = ["Step", "StepBatch", "moved", "step_batches"]

# One step's padded batch: x (K, W, ...), y (K, W), mask (K, W) 0/1, active (K,) bool, and
# whether every client is active (known on the host: no device sync to find out).
StepBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, bool]
# A step before gathering: idx (K, W) into the stacked samples, active (K,), all active.
Step = tuple[torch.Tensor, torch.Tensor, bool]


def step_batches(
    datasets: Sequence[ArrayDataset],
    training: LocalTraining,
    seeds: Sequence[int],
    device: torch.device,
    cache: DeviceData,
) -> Iterator[StepBatch]:
    """Each step's batches of all clients, in ``batch_indices`` order, padded to one width."""
    x_all, y_all, offsets = _stack_data(datasets, device, cache)
    pad = len(y_all) - 1  # the zero sample appended by _stack_data
    steps = _step_indices(datasets, training, seeds, offsets, pad)
    if device.type != "cpu":
        steps = moved(list(steps), device)
    for idx, active, full in steps:
        yield x_all[idx], y_all[idx], (idx != pad).to(torch.float32), active, full


def _step_indices(
    datasets: Sequence[ArrayDataset],
    training: LocalTraining,
    seeds: Sequence[int],
    offsets: list[int],
    pad: int,
) -> Iterator[Step]:
    orders = [batch_indices(len(d), training, s) for d, s in zip(datasets, seeds, strict=True)]
    while True:
        batches = [next(order, None) for order in orders]
        real = [b for b in batches if b is not None]
        if not real:
            return
        idx = torch.full((len(batches), max(len(b) for b in real)), pad, dtype=torch.int64)
        for row, (b, offset) in enumerate(zip(batches, offsets, strict=True)):
            if b is not None:
                idx[row, : len(b)] = b + offset
        yield idx, torch.tensor([b is not None for b in batches]), len(real) == len(batches)


def moved(steps: list[Step], device: torch.device) -> Iterator[Step]:
    """The steps' index tensors on ``device``, sent in two copies for all steps."""
    if not steps:
        return
    idx = torch.cat([i.reshape(-1) for i, _, _ in steps]).to(device)
    active = torch.cat([a for _, a, _ in steps]).to(device)
    idx_parts = torch.split(idx, [i.numel() for i, _, _ in steps])
    active_parts = torch.split(active, [len(a) for _, a, _ in steps])
    for (i, _, full), ip, ap in zip(steps, idx_parts, active_parts, strict=True):
        yield ip.view(i.shape), ap, full


def _stack_data(
    datasets: Sequence[ArrayDataset], device: torch.device, cache: DeviceData
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """All clients' samples in one tensor with a zero sample (the padding) at the end."""
    offsets = np.cumsum([0] + [len(d) for d in datasets])[:-1].tolist()
    if device.type == "cpu":
        return *_stacked_arrays(datasets), offsets
    return *_stacked_copies([cache.tensors(d, device) for d in datasets]), offsets


def _stacked_arrays(datasets: Sequence[ArrayDataset]) -> tuple[torch.Tensor, torch.Tensor]:
    """The host's stack: the numpy arrays concatenated with the zero sample."""
    x0, y0 = datasets[0].x, datasets[0].y
    xs = [d.x for d in datasets] + [np.zeros((1, *x0.shape[1:]), x0.dtype)]
    ys = [d.y for d in datasets] + [np.zeros(1, y0.dtype)]
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _stacked_copies(pairs: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A device's stack, from its copies of the datasets: no host data crosses over."""
    x0, y0 = pairs[0]
    x_pad = x0.new_zeros((1, *x0.shape[1:]))
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    return torch.cat([*xs, x_pad]), torch.cat([*ys, y0.new_zeros(1)])
