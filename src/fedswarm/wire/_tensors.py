"""The tensor part of a message: a manifest in the header, raw little-endian bytes after it.

Tensors lie back to back in manifest order, so offsets are implicit: there is nothing to
overlap, and the only length check is that the declared byte lengths add up to exactly the
bytes that follow the header. Decoded arrays are read-only views of the received buffer
(no copy), which matters for the 100 MB updates this format exists for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, some

__all__ = ["DTYPES", "TensorReader", "TensorWriter", "read_manifest"]

# The dtypes a tensor may be declared with (little-endian on the wire). The same list bounds
# the dtype names a ParamSpec may carry, so a peer cannot make us build e.g. object arrays.
_NAMES = "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64"
DTYPES: dict[str, np.dtype] = {name: np.dtype(name).newbyteorder("<") for name in _NAMES.split()}
_F32 = DTYPES["float32"]


@dataclass
class TensorWriter:
    """Collects the flat float32 vectors of a message being encoded."""

    manifest: list[dict[str, object]] = field(default_factory=list)
    buffers: list[memoryview] = field(default_factory=list)

    def vector(self, name: str, array: np.ndarray) -> None:
        if any(row["name"] == name for row in self.manifest):
            raise WireError(f"tensor {name!r} written twice")
        if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype != np.float32:
            got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else "not one"
            raise WireError(f"tensor {name!r}: expected a 1-D float32 array, got {got}")
        array = np.ascontiguousarray(array, dtype=_F32)  # a no-copy on little-endian hosts
        self.manifest.append(
            {"name": name, "dtype": "float32", "shape": [array.shape[0]], "nbytes": array.nbytes}
        )
        self.buffers.append(array.data)


@dataclass(frozen=True)
class _Entry:
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int  # into the whole message


@dataclass
class _Store:
    data: bytes
    entries: dict[str, _Entry]
    taken: set[str] = field(default_factory=set)


def read_manifest(rows: list[Fields], data: bytes, body_start: int) -> TensorReader:
    """Check every manifest row, and that their byte lengths add up to the body exactly."""
    entries: dict[str, _Entry] = {}
    offset = body_start
    for row in rows:
        name = row.text("name")
        dtype_name = row.text("dtype")
        shape = row.integers("shape")
        nbytes = row.integer("nbytes")
        row.done()
        if name in entries:
            raise WireError(f"{row.where}: duplicate tensor name {name!r}")
        if dtype_name not in DTYPES:
            raise WireError(f"{row.where}.dtype: unknown dtype {dtype_name!r}")
        dtype = DTYPES[dtype_name]
        if nbytes != math.prod(shape) * dtype.itemsize:
            raise WireError(
                f"{row.where}.nbytes: tensor {name!r} declares {nbytes} bytes, but dtype "
                f"{dtype_name} x shape {list(shape)} is {math.prod(shape) * dtype.itemsize}"
            )
        entries[name] = _Entry(dtype, shape, offset)
        offset += nbytes
    if offset > len(data):
        raise WireError(
            f"truncated: the manifest declares {offset - body_start} tensor bytes, "
            f"only {len(data) - body_start} follow the header"
        )
    if offset < len(data):
        raise WireError(f"{len(data) - offset} trailing bytes after the last tensor")
    return TensorReader(_Store(data, entries))


@dataclass(frozen=True)
class TensorReader:
    """The tensors of a message being decoded, each taken once by name.

    ``model_dim`` is the length of the model vector when the message carries one (the
    parameters of an instruction, the update of a reply), so variant decoders can demand
    that their vectors match it. A scoped reader (``step.``, ``extra.``) sees its part only.
    """

    _store: _Store
    prefix: str = ""
    model_dim: int | None = None

    def scoped(self, prefix: str, model_dim: int | None) -> TensorReader:
        return TensorReader(self._store, f"{self.prefix}{prefix}.", model_dim)

    def vector(self, name: str, *, length: int | None = None) -> np.ndarray:
        """The float32 vector ``name`` (of ``length`` elements if given), read-only."""
        full = self.prefix + name
        entry = self._store.entries.get(full)
        if entry is None or full in self._store.taken:
            raise WireError(f"missing tensor {full!r}")
        self._store.taken.add(full)
        if entry.dtype != _F32:
            raise WireError(f"tensor {full!r}: dtype {entry.dtype.name}, expected float32")
        if len(entry.shape) != 1 or (length is not None and entry.shape[0] != length):
            want = "a vector" if length is None else f"[{length}]"
            raise WireError(f"tensor {full!r}: shape {list(entry.shape)}, expected {want}")
        array = np.frombuffer(self._store.data, _F32, entry.shape[0], entry.offset)
        array = array.astype(np.float32, copy=False)  # native order; no-op on little-endian
        array.flags.writeable = False
        return array

    def done(self) -> None:
        if extra := [n for n in self._store.entries if n not in self._store.taken]:
            raise WireError(f"unexpected tensor(s) {some(extra)}")
