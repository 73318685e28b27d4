"""Content-addressed files: ``<sha256 of the bytes>.safetensors``, written atomically.

A file is written to a temporary name, fsynced, renamed into place and its folder fsynced,
so once :meth:`BlobFolder.put` returns the file survives a crash; reading one back checks
its bytes against its name, so a damaged or truncated file is named, never half-read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BlobError", "BlobFolder", "write_atomic"]

_SUFFIX = ".safetensors"


class BlobError(RuntimeError):
    """A blob that is missing or whose bytes do not match its name."""


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: all of it or (after a crash) the old file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself is durable
    finally:
        os.close(folder)


@dataclass(frozen=True)
class BlobFolder:
    path: Path

    def file(self, sha256: str) -> Path:
        return self.path / f"{sha256}{_SUFFIX}"

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its sha256 (its name)."""
        sha = hashlib.sha256(data).hexdigest()
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.file(sha), data)
        return sha

    def get(self, sha256: str) -> bytes:
        """The bytes named ``sha256``; :class:`BlobError` naming the file if they are not."""
        file = self.file(sha256)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise BlobError(f"{file} is missing") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise BlobError(f"{file} is damaged (its bytes hash to {actual[:12]}..., not its name)")
        return data

    def keep_only(self, names: Set[str]) -> None:
        """Remove every file but those named in ``names`` (and leftover temporaries)."""
        if not self.path.is_dir():
            return
        for file in self.path.iterdir():
            stem = file.name.removesuffix(".tmp").removesuffix(_SUFFIX)
            if file.name.endswith(".tmp") or stem not in names:
                file.unlink(missing_ok=True)
