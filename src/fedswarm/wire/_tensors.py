"""The tensor part of a message: a manifest in the header, raw little-endian bytes after it.

Tensors lie in manifest order, each starting at the next multiple of 8 bytes after the one
before it (the gap is zero bytes), so offsets are implicit: nothing can overlap, and the
one length check is that the tensors end exactly where the message does. A tensor is an
array of any dtype in :data:`DTYPES` and any shape (C order), or a blob of raw bytes
(dtype ``"bytes"``, shape ``[length]``). Decoded arrays are read-only views of the
received buffer (no copy), which matters for the 100 MB updates this format exists for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import INT_MAX, Fields, some

__all__ = [
    "ALIGN",
    "BLOB",
    "DTYPES",
    "MAX_RANK",
    "TensorReader",
    "TensorWriter",
    "aligned",
    "check_vector",
    "read_manifest",
]

# The dtypes a tensor may be declared with (little-endian on the wire). The same list bounds
# the dtype names a ParamSpec may carry, so a peer cannot make us build e.g. object arrays.
_NAMES = "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64"
DTYPES: dict[str, np.dtype] = {name: np.dtype(name).newbyteorder("<") for name in _NAMES.split()}
BLOB = "bytes"  # the manifest dtype of a blob: raw bytes, not an array (see TensorReader.blob)
MAX_RANK = 32  # numpy's own limit is 64; no tensor of ours comes near either
ALIGN = 8  # every tensor starts at a multiple of 8 bytes from the start of the message

Shape = tuple[int | None, ...]  # what a reader expects: None is any length in that axis


def aligned(offset: int) -> int:
    """``offset`` rounded up to the next multiple of :data:`ALIGN`."""
    return offset + (-offset % ALIGN)


def check_vector(array: object, where: str) -> np.ndarray:
    """``array`` if it is a 1-D float32 array, else :class:`WireError` naming ``where``."""
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype != np.float32:
        got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else "not one"
        raise WireError(f"{where}: expected a 1-D float32 array, got {got}")
    return array


@dataclass
class TensorWriter:
    """Collects the tensors and blobs of a message being encoded, in manifest order."""

    manifest: list[dict[str, object]] = field(default_factory=list)
    buffers: list[memoryview] = field(default_factory=list)  # one per tensor, as bytes
    _names: set[str] = field(default_factory=set)

    def tensor(self, name: str, array: np.ndarray) -> None:
        """Send ``array`` (any dtype in :data:`DTYPES`, any shape) as tensor ``name``.
        A C-contiguous little-endian array is sent without a copy."""
        if not isinstance(array, np.ndarray):
            raise WireError(f"tensor {name!r}: expected a numpy array, got {type(array).__name__}")
        dtype = DTYPES.get(array.dtype.name)
        if dtype is None:
            raise WireError(f"tensor {name!r}: cannot send dtype {array.dtype}")
        if array.ndim > MAX_RANK:
            raise WireError(f"tensor {name!r}: {array.ndim} dimensions, at most {MAX_RANK}")
        array = np.asarray(array, dtype=dtype, order="C")  # a no-copy if it already is
        self._add(name, dtype.name, list(array.shape), array.reshape(-1).view(np.uint8).data)

    def vector(self, name: str, array: np.ndarray) -> None:
        """Send ``array``, which must be a 1-D float32 array (a model-sized vector)."""
        self.tensor(name, check_vector(array, f"tensor {name!r}"))

    def blob(self, name: str, data: bytes) -> None:
        """Send ``data`` (a key, a signature, a ciphertext) as blob ``name``, without a copy."""
        if not isinstance(data, bytes):
            raise WireError(f"blob {name!r}: expected bytes, got {type(data).__name__}")
        self._add(name, BLOB, [len(data)], memoryview(data))

    def _add(self, name: str, dtype: str, shape: list[int], buffer: memoryview) -> None:
        if name in self._names:
            raise WireError(f"tensor {name!r} written twice")
        self._names.add(name)
        self.manifest.append({"name": name, "dtype": dtype, "shape": shape, "nbytes": len(buffer)})
        self.buffers.append(buffer)


@dataclass(frozen=True)
class _Entry:
    dtype: str  # a DTYPES name, or BLOB
    shape: tuple[int, ...]
    offset: int  # into the whole message
    nbytes: int


def _read_entry(row: Fields, offset: int) -> tuple[str, _Entry]:
    """One manifest row, checked; sizes in Python integers, so a forged shape cannot
    overflow anything here."""
    name, dtype, shape, nbytes = (
        row.text("name"),
        row.text("dtype"),
        row.integers("shape"),
        row.integer("nbytes"),
    )
    row.done()
    if dtype != BLOB and dtype not in DTYPES:
        raise WireError(f"{row.where}.dtype: unknown dtype {dtype!r}")
    if len(shape) > MAX_RANK or (dtype == BLOB and len(shape) != 1):
        want = "1 (a blob is [length])" if dtype == BLOB else f"at most {MAX_RANK}"
        raise WireError(f"{row.where}.shape: {len(shape)} dimensions, expected {want}")
    itemsize = 1 if dtype == BLOB else DTYPES[dtype].itemsize
    if math.prod(d for d in shape if d) * itemsize > INT_MAX:  # even an empty one: numpy
        raise WireError(f"{row.where}.shape: {list(shape)} is too large for any array")
    if nbytes != math.prod(shape) * itemsize:
        raise WireError(
            f"{row.where}.nbytes: tensor {name!r} declares {nbytes} bytes, but dtype "
            f"{dtype} x shape {list(shape)} is {math.prod(shape) * itemsize}"
        )
    return name, _Entry(dtype, shape, offset, nbytes)


def read_manifest(rows: list[Fields], data: bytes, body_start: int) -> TensorReader:
    """Check every manifest row, and that the tensors (and the zero padding between them)
    end exactly where ``data`` does; no tensor byte is read before that holds."""
    entries: dict[str, _Entry] = {}
    end = body_start
    for row in rows:
        name, entry = _read_entry(row, aligned(end))
        if name in entries:
            raise WireError(f"{row.where}: duplicate tensor name {name!r}")
        entries[name] = entry
        end = entry.offset + entry.nbytes
    if end > len(data):
        raise WireError(
            f"truncated: the manifest declares {end - body_start} tensor bytes, "
            f"only {len(data) - body_start} follow the header"
        )
    if end < len(data):
        raise WireError(f"{len(data) - end} trailing bytes after the last tensor")
    start = body_start
    for name, entry in entries.items():
        if any(data[start : entry.offset]):
            raise WireError(f"tensor {name!r}: the padding before it is not zero bytes")
        start = entry.offset + entry.nbytes
    return TensorReader(_Store(data, entries))


@dataclass
class _Store:
    data: bytes
    entries: dict[str, _Entry]
    taken: set[str] = field(default_factory=set)


def _shape_text(shape: Sequence[int | None]) -> str:
    """What a reader expects, for an error message: ``a vector``, ``[*, 3]``."""
    if len(shape) == 1 and shape[0] is None:
        return "a vector"
    return "[" + ", ".join("*" if d is None else str(d) for d in shape) + "]"


@dataclass(frozen=True)
class TensorReader:
    """The tensors of a message being decoded, each taken once by name, with the dtype
    and shape the reader asks for (anything else is a :class:`WireError` naming it).

    ``model_dim`` is the length of the model vector when the message carries one (the
    parameters of an instruction, the update of a reply), so variant decoders can demand
    that their vectors match it. A scoped reader (``step.``, ``extra.``) sees its part only.
    """

    _store: _Store
    prefix: str = ""
    model_dim: int | None = None

    def scoped(self, prefix: str, model_dim: int | None) -> TensorReader:
        return TensorReader(self._store, f"{self.prefix}{prefix}.", model_dim)

    def tensor(self, name: str, *, dtype: str, shape: Shape | None = None) -> np.ndarray:
        """The array ``name`` of ``dtype`` (a :data:`DTYPES` name), read-only. ``shape``,
        if given, is its rank and the length of each axis (None: any length)."""
        if dtype not in DTYPES:  # the reader's mistake, not the peer's
            raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        full, entry = self._take(name)
        if entry.dtype != dtype:
            what = "a blob" if entry.dtype == BLOB else f"dtype {entry.dtype}"
            raise WireError(f"tensor {full!r}: {what}, expected {dtype}")
        if shape is not None and (
            len(shape) != len(entry.shape)
            or any(w is not None and w != d for w, d in zip(shape, entry.shape, strict=False))
        ):
            raise WireError(
                f"tensor {full!r}: shape {list(entry.shape)}, expected {_shape_text(shape)}"
            )
        wire = DTYPES[dtype]
        array = np.frombuffer(self._store.data, wire, math.prod(entry.shape), entry.offset)
        array = array.reshape(entry.shape).astype(wire.newbyteorder("="), copy=False)
        array.flags.writeable = False  # a no-copy view on little-endian hosts
        return array

    def vector(self, name: str, *, length: int | None = None) -> np.ndarray:
        """The float32 vector ``name`` (of ``length`` elements if given), read-only."""
        return self.tensor(name, dtype="float32", shape=(length,))

    def blob(self, name: str, *, max_len: int | None = None) -> bytes:
        """The blob ``name`` (at most ``max_len`` bytes if given), copied out as bytes."""
        full, entry = self._take(name)
        if entry.dtype != BLOB:
            raise WireError(f"tensor {full!r}: dtype {entry.dtype}, expected {BLOB} (a blob)")
        if max_len is not None and entry.nbytes > max_len:
            raise WireError(f"blob {full!r}: {entry.nbytes} bytes, at most {max_len}")
        return self._store.data[entry.offset : entry.offset + entry.nbytes]

    def _take(self, name: str) -> tuple[str, _Entry]:
        full = self.prefix + name
        entry = self._store.entries.get(full)
        if entry is None or full in self._store.taken:
            raise WireError(f"missing tensor {full!r}")
        self._store.taken.add(full)
        return full, entry

    def done(self) -> None:
        if extra := [n for n in self._store.entries if n not in self._store.taken]:
            raise WireError(f"unexpected tensor(s) {some(extra)}")
