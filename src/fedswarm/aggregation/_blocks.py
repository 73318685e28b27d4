"""Column-block helpers shared by the robust kernels.

A stack of 1,000 clients by 1M parameters is 4 GB in float32; a float64 copy would be 8 GB.
Every kernel therefore walks the columns in blocks, widening one block at a time to float64
(exact sums of float32 products, and the blocks stay in cache), never the whole stack.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = [
    "column_blocks",
    "columns_as_rows",
    "gram",
    "row_sq_distances",
    "row_sq_norms",
    "weighted_rows_sum",
]

_BLOCK = 1 << 14  # columns per block: 1,000 clients x 16k x 8 bytes = 128 MB of float64


def column_blocks(dim: int, block: int = _BLOCK) -> Iterator[slice]:
    for lo in range(0, dim, block):
        yield slice(lo, min(lo + block, dim))


def columns_as_rows(updates: np.ndarray, b: slice) -> np.ndarray:
    """Columns ``b`` as contiguous float64 rows, ``(width, clients)``: sorting or partitioning
    each coordinate's values then runs along memory, several times faster than down a
    strided column."""
    return np.ascontiguousarray(updates[:, b].T, dtype=np.float64)


def gram(updates: np.ndarray) -> np.ndarray:
    """``U U^T`` in float64, ``(clients, clients)``: one matrix product per block."""
    n, dim = updates.shape
    out = np.zeros((n, n), np.float64)
    for b in column_blocks(dim):
        x = updates[:, b].astype(np.float64)
        out += x @ x.T
    return out


def row_sq_norms(updates: np.ndarray) -> np.ndarray:
    """``||u_k||^2`` per row, float64."""
    out = np.zeros(len(updates), np.float64)
    for b in column_blocks(updates.shape[1]):
        x = updates[:, b].astype(np.float64)
        out += np.einsum("ij,ij->i", x, x)
    return out


def row_sq_distances(updates: np.ndarray, point: np.ndarray) -> np.ndarray:
    """``||u_k - point||^2`` per row, float64, by differences (no cancellation)."""
    out = np.zeros(len(updates), np.float64)
    for b in column_blocks(updates.shape[1]):
        d = updates[:, b].astype(np.float64) - point[b]
        out += np.einsum("ij,ij->i", d, d)
    return out


def weighted_rows_sum(updates: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``sum_k coef_k u_k``, float64 ``(dim,)``."""
    out = np.empty(updates.shape[1], np.float64)
    for b in column_blocks(updates.shape[1]):
        out[b] = coef @ updates[:, b].astype(np.float64)
    return out
