"""A model's weights as named arrays with a flat-vector view.

Aggregation works on stacked ``(clients, dim)`` matrices, so the canonical form of a
model is one contiguous float32 vector plus a :class:`ParamSpec` that says how to cut it
back into named tensors. Non-float tensors (e.g. BatchNorm's ``num_batches_tracked``)
are carried as float32 in the vector and cast back to their own dtype by
:meth:`ParamSpec.unflatten`.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["ParamSpec", "Params", "TensorSpec"]

FLAT_DTYPE = np.float32


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and original dtype of one tensor of a model."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class ParamSpec:
    """The layout of a flat parameter vector: tensors in order."""

    tensors: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"tensor names must be unique; repeated: {dupes}")

    @cached_property
    def dim(self) -> int:
        return sum(t.size for t in self.tensors)

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Start offset of each tensor in the flat vector (length ``len(tensors) + 1``)."""
        return (0, *itertools.accumulate(t.size for t in self.tensors))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tensors)

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray]) -> ParamSpec:
        return cls(tuple(TensorSpec(k, tuple(v.shape), str(v.dtype)) for k, v in arrays.items()))

    @classmethod
    def from_json(cls, rows: list[list[object]]) -> ParamSpec:
        """Inverse of ``[[name, shape, dtype], ...]`` as written in checkpoints."""
        out = []
        for name, shape, dtype in rows:
            if not isinstance(shape, list):
                raise ValueError(f"bad shape {shape!r} for tensor {name!r}")
            out.append(TensorSpec(str(name), tuple(int(d) for d in shape), str(dtype)))
        return cls(tuple(out))

    def flatten(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Concatenate ``arrays`` (which must match this spec exactly) into a float32 vector."""
        if tuple(arrays) != self.names:
            missing = set(self.names) - set(arrays)
            extra = set(arrays) - set(self.names)
            raise ValueError(
                f"parameter names do not match the model: missing {sorted(missing)}, "
                f"unexpected {sorted(extra)} (or a different order)"
            )
        for t in self.tensors:
            if tuple(arrays[t.name].shape) != t.shape:
                raise ValueError(
                    f"tensor {t.name!r} has shape {tuple(arrays[t.name].shape)}, expected {t.shape}"
                )
        for t in self.tensors:
            _check_exact_in_float32(t.name, arrays[t.name])
        if not self.tensors:
            return np.zeros(0, FLAT_DTYPE)
        return np.concatenate([np.asarray(arrays[n], FLAT_DTYPE).ravel() for n in self.names])

    def unflatten(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named arrays of ``flat``; float32 tensors are zero-copy views."""
        self.check(flat)
        out: dict[str, np.ndarray] = {}
        for t, lo, hi in zip(self.tensors, self.offsets[:-1], self.offsets[1:], strict=True):
            view = flat[lo:hi].reshape(t.shape)
            out[t.name] = view if t.dtype == "float32" else view.astype(t.dtype)
        return out

    def check(self, flat: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``flat`` is a float32 vector of this spec's length."""
        if flat.ndim != 1 or flat.shape[0] != self.dim:
            raise ValueError(f"expected a flat vector of length {self.dim}, got shape {flat.shape}")
        if flat.dtype != FLAT_DTYPE:
            raise ValueError(f"expected dtype float32, got {flat.dtype}")


def _check_exact_in_float32(name: str, array: np.ndarray) -> None:
    """Integer tensors ride in the float32 vector: refuse values it cannot hold exactly."""
    if np.issubdtype(array.dtype, np.integer) and array.size and np.abs(array).max() > 2**24:
        raise ValueError(
            f"integer tensor {name!r} holds values beyond 2**24, which the float32 parameter "
            "vector cannot carry exactly; keep such counters out of the model state"
        )


def _frozen(flat: np.ndarray) -> np.ndarray:
    out = np.array(flat, dtype=FLAT_DTYPE, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Params:
    """Immutable model parameters: a read-only flat float32 vector and its layout."""

    spec: ParamSpec
    flat: np.ndarray

    def __post_init__(self) -> None:
        # Always copy: a read-only view may still have a writable base elsewhere.
        object.__setattr__(self, "flat", _frozen(self.flat))
        self.spec.check(self.flat)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Params:
        spec = ParamSpec.of(arrays)
        return cls(spec, spec.flatten(arrays))

    def arrays(self) -> dict[str, np.ndarray]:
        return self.spec.unflatten(self.flat)

    def replace(self, flat: np.ndarray) -> Params:
        """The same layout with new values."""
        return Params(self.spec, flat)

    def sha256(self) -> str:
        """Hash of the values only (not the layout): identifies a model's weights."""
        return hashlib.sha256(self.flat.tobytes()).hexdigest()

    @property
    def dim(self) -> int:
        return self.spec.dim
