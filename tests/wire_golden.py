"""Golden wire messages: fixed messages of every kind, and their encodings in tests/golden/.

A change to the wire format changes these files, so it shows in review. ``test_wire.py``
fails when an encoding differs from its file; it never rewrites one. After an intended
format change (and a bump of ``fedswarm.wire.VERSION`` if old peers cannot read it)::

    python tests/wire_golden.py           # which files differ (exit 1 if any)
    python tests/wire_golden.py --write   # rewrite tests/golden/ from the messages below

The ``probe`` message is of a test-only kind that carries a tensor of every wire dtype, in
shapes from a scalar to four dimensions (an empty one too), and two blobs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedswarm.algorithms import LocalSGDStep, ProxStep, ScaffoldExtra, ScaffoldStep
from fedswarm.messages import EvaluateIns, EvaluateRes, Failure, FitIns, FitRes, Refusal, Stage
from fedswarm.params import Params
from fedswarm.training import LocalTraining, OptimizerKind
from fedswarm.transforms import ClipNorm
from fedswarm.wire import (
    Codec,
    Fields,
    Header,
    TensorReader,
    TensorWriter,
    check_integer,
    default_codec,
)

GOLDEN_DIR = Path(__file__).with_name("golden")
SUFFIX = ".fswm"

PARAMS = Params.from_arrays(
    {  # a BatchNorm-like int64 buffer rides in the float32 vector
        "fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "bn.num_batches_tracked": np.array(42, np.int64),
    }
)
DIM = PARAMS.dim  # 7
CONTROL = np.linspace(-1, 1, DIM, dtype=np.float32)
ADAM = LocalTraining(
    8, 0.05, steps=3, optimizer=OptimizerKind.ADAM, momentum=0.9, weight_decay=1e-4
)
SGD = LocalTraining(batch_size=32, lr=0.1)


def fit_ins(step: Any = None, transforms: tuple[Any, ...] = (), training: Any = SGD) -> FitIns:
    return FitIns("run-1", 3, PARAMS, training, step or LocalSGDStep(), 2**62 + 5, transforms)


def fit_res(extra: Any = None, loss: float = 0.25, update: Any = None) -> FitRes:
    update = np.linspace(-3, 3, DIM, dtype=np.float32) if update is None else update
    return FitRes("client/7", 3, update, 120, 15, loss, extra)


# --- a test-only kind: every tensor feature of the format ------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Probe:
    round: int
    tensors: Mapping[str, np.ndarray]
    blobs: Mapping[str, bytes]


Shape = tuple[int | None, ...] | None  # what a reader demands; None: any length, any shape
PROBE_TENSORS: dict[str, tuple[str, Shape]] = {  # name: (dtype, shape)
    "labels": ("int64", (None,)),
    "mask32": ("uint32", (2, None)),
    "mask64": ("uint64", (None,)),
    "activations": ("float16", (None, 2, 2)),
    "logits": ("float64", (None, 3)),
    "flags": ("bool", None),
    "small": ("int8", (3,)),
    "scalar": ("int16", ()),
    "empty": ("int32", (0, None)),
    "pixels": ("uint8", (2, 2)),
    "counts": ("uint16", (None,)),
    "deep": ("float32", (1, 2, 1, 2)),
}
PROBE_BLOBS: dict[str, int | None] = {"public_key": 32, "signature": 64}  # name: max_len


def write_probe(p: Probe, t: TensorWriter, codec: Codec) -> Header:
    for name, array in p.tensors.items():
        t.tensor(name, array)
    for name, data in p.blobs.items():
        t.blob(name, data)
    return {"round": check_integer(p.round, "probe.round")}


def probe_codec(tensors: Mapping[str, tuple[str, Shape]], blobs: Mapping[str, int | None]) -> Codec:
    """The default codec plus a ``probe`` kind whose reader demands ``tensors`` and
    ``blobs`` (as a protocol with its own messages would extend it)."""

    def read(h: Fields, t: TensorReader, codec: Codec) -> Probe:
        arrays = {n: t.tensor(n, dtype=d, shape=s) for n, (d, s) in tensors.items()}
        data = {n: t.blob(n, max_len=m) for n, m in blobs.items()}
        return Probe(h.integer("round"), arrays, data)

    def register(codec: Codec) -> None:
        codec.kinds.register("probe", Probe, write=write_probe, read=read)

    return default_codec().extended(register)


@functools.cache
def golden_codec() -> Codec:
    return probe_codec(PROBE_TENSORS, PROBE_BLOBS)


PROBE = Probe(
    9,
    {
        "labels": np.array([3, -1, 2**62], np.int64),
        "mask32": np.array([[0, 1, 2**32 - 1], [7, 8, 9]], np.uint32),
        "mask64": np.array([2**64 - 1, 0], np.uint64),
        "activations": np.linspace(-2, 2, 8, dtype=np.float16).reshape(2, 2, 2),
        "logits": np.array([[np.nan, np.inf, -0.0]], np.float64),
        "flags": np.array([[True, False], [False, True]]),
        "small": np.array([-128, 0, 127], np.int8),
        "scalar": np.array(-5, np.int16),
        "empty": np.zeros((0, 4), np.int32),
        "pixels": np.array([[0, 255], [16, 32]], np.uint8),
        "counts": np.array([65535], np.uint16),
        "deep": np.arange(4, dtype=np.float32).reshape(1, 2, 1, 2),
    },
    {"public_key": bytes(range(32)), "signature": b""},
)

# --- the golden messages: one file each ------------------------------------------------

GOLDEN: dict[str, object] = {
    "fit_ins-local_sgd": fit_ins(),
    "fit_ins-fedprox": fit_ins(ProxStep(0.01)),
    "fit_ins-scaffold": fit_ins(ScaffoldStep(CONTROL)),
    "fit_ins-adam_clip": fit_ins(ProxStep(0.5), (ClipNorm(1.5),), ADAM),
    "fit_res-plain": fit_res(),
    "fit_res-scaffold": fit_res(ScaffoldExtra(-CONTROL)),
    "evaluate_ins": EvaluateIns("run-1", 4, PARAMS),
    "evaluate_res": EvaluateRes("client/7", 4, 0.5, 0.875, 30),
    "failure": Failure.refused(
        "ü-日本", 2, Stage.EVALUATE, Refusal.WRONG_ROUND, 'late\n"quoted" ✓'
    ),
    "probe": PROBE,
}


def golden_file(name: str) -> Path:
    return GOLDEN_DIR / f"{name}{SUFFIX}"


def differing() -> list[str]:
    """The golden files that are missing, stale or differ from their message's encoding."""
    codec = golden_codec()
    out = [n for n, msg in GOLDEN.items() if _read(n) != codec.encode(msg)]
    return out + sorted(p.name for p in GOLDEN_DIR.glob(f"*{SUFFIX}") if p.stem not in GOLDEN)


def _read(name: str) -> bytes | None:
    return golden_file(name).read_bytes() if golden_file(name).is_file() else None


def write() -> None:
    """Rewrite tests/golden/ from :data:`GOLDEN` (and remove files of no message)."""
    codec = golden_codec()
    GOLDEN_DIR.mkdir(exist_ok=True)
    for stale in GOLDEN_DIR.glob(f"*{SUFFIX}"):
        if stale.stem not in GOLDEN:
            stale.unlink()
    for name, msg in GOLDEN.items():
        golden_file(name).write_bytes(codec.encode(msg))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="rewrite tests/golden/")
    if parser.parse_args(argv).write:
        write()
        print(f"wrote {len(GOLDEN)} files to tests/{GOLDEN_DIR.name}/")
        return 0
    if bad := differing():
        print("differ from their message's encoding:", ", ".join(bad))
        return 1
    print(f"all {len(GOLDEN)} golden files match")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
