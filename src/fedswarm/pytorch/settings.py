"""The one place torch's process-wide settings are made: deterministic kernels and threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["set_torch_settings", "torch_settings", "worker_torch_settings"]


def set_torch_settings(threads: int) -> tuple[bool, int, bool]:
    """Bit-reproducible kernels and ``threads`` intra-op threads, for this process; returns
    the settings it replaced (for :func:`torch_settings` to restore).

    Small federated models train fastest on one thread per process: the parallelism is
    across participants (vectorised or in worker processes), not inside each matmul.
    Deterministic mode's debugging aid that fills every new tensor with NaN is off: it
    changes no result and costs about 6% of a vectorised CNN round. Switching determinism on
    imports ``torch._dynamo`` (about 2 s), which the first ``torch.optim`` optimiser would
    otherwise import inside the first round.
    """
    fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    before = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), fill
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    torch.set_num_threads(threads)
    return before


@contextmanager
def torch_settings(threads: int) -> Iterator[None]:
    """:func:`set_torch_settings` for the block; the caller's settings after it."""
    deterministic, num_threads, fill = set_torch_settings(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(num_threads)
        torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]


def worker_torch_settings(tf32: bool | None = None) -> None:
    """A worker process's settings, for good (a pool's or a Ray actor's): one intra-op
    thread, since the workers are the parallelism, and deterministic kernels as the driver
    runs them. ``tf32``: for workers that train on a GPU, its float32 math
    (:func:`fedswarm.pytorch.device.set_cuda_math`), set before the first CUDA matmul, which
    reads the cuBLAS setting; None: CPU workers."""
    if tf32 is not None:
        from fedswarm.pytorch.device import set_cuda_math

        set_cuda_math(tf32)
    set_torch_settings(threads=1)
