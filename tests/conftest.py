"""Suite-wide settings: one intra-op thread, so small models are fast and timings steady on
a shared 2-core machine (the results do not depend on it); and, for the CUDA tests, the
cuBLAS workspace that deterministic kernels need, set before any test's first CUDA matmul
(torch reads it once per process; see ``fedswarm.pytorch.device``)."""

import os

import torch

from fedswarm.pytorch.device import CUBLAS_WORKSPACE_CONFIG

torch.set_num_threads(1)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
