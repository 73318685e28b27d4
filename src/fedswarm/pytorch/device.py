"""Where local training runs: the device a run asks for, its math settings there, data
moved there once, and how many clients a GPU chunk holds.

Everything crosses the learner boundary as numpy, as on the CPU: only a participant's
data (once) and the global parameters (each task) go to the device, and only the trained
parameters come back. On the CPU nothing here copies or changes a bit.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from fedswarm.data.arrays import ArrayDataset
from fedswarm.training import Precision

__all__ = [
    "CUBLAS_WORKSPACE_CONFIG",
    "DeviceData",
    "DeviceUnavailableError",
    "activation_floats",
    "autocast",
    "chunk_clients",
    "client_bytes",
    "cuda_math",
    "device_settings",
    "free_cuda_bytes",
    "resolve_device",
    "seed_device",
    "set_cuda_math",
]

# cuBLAS reduces in a pattern that depends on the workspace it is given, so its results
# vary between runs unless the workspace is fixed; torch's deterministic mode raises at a
# CUDA matmul where this variable is unset. cuBLAS and torch read it once per process, at
# the first CUDA matmul, so it must be in the environment before that: a run sets it when
# it starts (if unset); a process that ran CUDA matmuls before must set it itself.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine."""


def resolve_device(requested: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (cuda where torch sees one, else cpu)."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"torch {torch.__version__} sees no CUDA device (a CPU-only build of torch, "
            "no NVIDIA driver, or CUDA_VISIBLE_DEVICES empty)"
        )
    return device


def _math_settings() -> tuple[Any, ...]:
    """Where float32 matmuls, cuDNN convolutions and cuDNN RNNs take their arithmetic
    (torch >= 2.9's API: the older ``allow_tf32`` flags warn that they are deprecated).
    Any: torch resolves these attributes dynamically."""
    cudnn: Any = torch.backends.cudnn
    return torch.backends.cuda.matmul, cudnn.conv, cudnn.rnn


def _read_math() -> tuple[str, ...]:
    return tuple(setting.fp32_precision for setting in _math_settings())


def _write_math(values: Sequence[str]) -> None:
    for setting, value in zip(_math_settings(), values, strict=True):
        setting.fp32_precision = value


def set_cuda_math(tf32: bool) -> None:
    """For good (a worker process): float32 matmuls and cuDNN convolutions in TF32 or in
    full float32 (torch's default lets cuDNN convolutions use TF32), and the cuBLAS
    workspace that deterministic kernels need, unless the environment already sets one."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    _write_math(("tf32" if tf32 else "ieee",) * len(_math_settings()))


@contextmanager
def cuda_math(tf32: bool) -> Iterator[None]:
    """:func:`set_cuda_math` for a run's duration; the caller's TF32 settings after (the
    cuBLAS variable stays: CUDA has read it by then)."""
    before = _read_math()
    set_cuda_math(tf32)
    try:
        yield
    finally:
        _write_math(before)


def autocast(precision: Precision, device: torch.device) -> AbstractContextManager[object]:
    """The forward pass's arithmetic: bfloat16 autocast, or nothing at all for float32."""
    if precision is Precision.BF16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def seed_device(device: torch.device, seed: int) -> None:
    """Seed the generator that in-model randomness (dropout) draws from on ``device``.

    Only the CPU generator on the CPU: ``torch.manual_seed`` also records lazy CUDA
    seeding and costs 125 us a call against 1.4 us, paid once per participant per round.
    """
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


class DeviceData:
    """A learner's copies of datasets on its device, made on first use and kept while the
    dataset lives (keyed weakly by the dataset object); pickled (to workers) as empty.

    On the CPU the numpy arrays are used in place, with no copy and no cache.
    """

    def __init__(self) -> None:
        self._copies: weakref.WeakKeyDictionary[ArrayDataset, tuple[torch.Tensor, ...]] = (
            weakref.WeakKeyDictionary()
        )

    def __reduce__(self) -> tuple[type[DeviceData], tuple[()]]:
        return DeviceData, ()

    def tensors(self, data: ArrayDataset, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``(x, y)`` of ``data`` on ``device``."""
        if device.type == "cpu":
            return torch.from_numpy(data.x), torch.from_numpy(data.y)
        copies = self._copies.get(data)
        if copies is None or copies[0].device != device:
            x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
            copies = self._copies[data] = (x.to(device), y.to(device))
        return copies


def free_cuda_bytes(device: torch.device) -> int:
    """Memory a computation on ``device`` can still take: the driver's free memory plus
    what torch's caching allocator holds but no tensor uses."""
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + cached)


def chunk_clients(free_bytes: int, bytes_per_client: int, fraction: float = 0.5) -> int:
    """Clients whose working set fits in ``fraction`` of ``free_bytes`` (at least one)."""
    return max(1, int(free_bytes * fraction) // max(1, bytes_per_client))


def activation_floats(model: nn.Module, sample: torch.Tensor) -> int:
    """Values the model's leaf modules output for ``sample`` (one sample): about what a
    forward pass keeps for the backward pass, per sample."""
    total = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        total += output.numel() if isinstance(output, torch.Tensor) else 0

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    return max(total, sample.numel())


def client_bytes(
    dim: int, matrices: int, batch_size: int, activations: int, datasets: Sequence[ArrayDataset]
) -> int:
    """Estimated bytes one client adds to a chunk: ``matrices`` float32 rows of ``dim``
    (parameters, gradients, optimiser state...), one step's activations (stored, their
    gradients and temporaries: 3x), and its share of the chunk's stacked samples."""
    first = datasets[0].x
    sample_bytes = first.itemsize * int(np.prod(first.shape[1:]))
    mean_samples = sum(len(d) for d in datasets) / max(len(datasets), 1)
    return int(4 * (matrices * dim + 3 * batch_size * activations) + mean_samples * sample_bytes)


def device_settings(device: str, tf32: bool) -> AbstractContextManager[object]:
    """A run's math settings for ``device``: :func:`cuda_math` on a GPU, none on the CPU."""
    return cuda_math(tf32) if torch.device(device).type == "cuda" else nullcontext()
