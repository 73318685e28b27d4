"""Split learning's messages, their kinds and their wire encoding.

Two exchanges move a group of batches (``batches_per_exchange`` of them, to amortise round
trips): ``split.step`` sends the participant the gradients of its previous group's cut
activations (and, on the first exchange of a turn, the part it trains and how) and gets the
next group's activations back; once its epoch is done the participant answers with no
activations and its trained part. U-shaped learning adds ``split.head``: the server sends
the trunk's outputs and receives their gradients (labels and head outputs stay home).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedswarm.kinds import BUILTIN_KINDS, MessageKind
from fedswarm.messages import ClientId, Stage
from fedswarm.split.parts import PartState
from fedswarm.training import LocalTraining
from fedswarm.wire import (
    Codec,
    Fields,
    Header,
    TensorReader,
    TensorWriter,
    default_codec,
    read_params,
    read_training,
    write_params,
    write_training,
)

__all__ = [
    "CODEC",
    "HEAD",
    "KINDS",
    "STEP",
    "HeadIns",
    "HeadRes",
    "Protection",
    "Start",
    "StepIns",
    "StepRes",
    "register",
]

STEP, HEAD = Stage("split.step"), Stage("split.head")


@dataclass(frozen=True)
class Protection:
    """Cut-layer protection: each example's activations clipped to L2 norm ``clip`` (None:
    not clipped), then Gaussian noise of standard deviation ``noise`` added."""

    clip: float | None = None
    noise: float = 0.0


@dataclass(frozen=True, eq=False)
class Start:
    """How a participant trains its turn: the part, the optimiser, the batch order's seed."""

    part: PartState
    training: LocalTraining
    seed: int
    batches_per_exchange: int
    send_labels: bool  # vanilla and SplitFed; U-shaped keeps them home
    protection: Protection = Protection()


@dataclass(frozen=True, eq=False)
class StepIns:
    run_id: str
    round: int
    start: Start | None  # the first exchange of a turn only
    grads: tuple[np.ndarray, ...]  # d loss / d activations of the previous group, per batch


@dataclass(frozen=True, eq=False)
class StepRes:
    client_id: ClientId
    round: int
    activations: tuple[np.ndarray, ...]  # one (batch, ...) float32 array per batch
    labels: tuple[np.ndarray, ...]  # one per batch when the server computes the loss
    final: PartState | None = None  # the trained part, once the epoch is done


@dataclass(frozen=True, eq=False)
class HeadIns:
    run_id: str
    round: int
    outputs: tuple[np.ndarray, ...]  # the trunk's output, per batch


@dataclass(frozen=True, eq=False)
class HeadRes:
    client_id: ClientId
    round: int
    grads: tuple[np.ndarray, ...]  # d loss / d trunk output, per batch
    loss: float  # summed over the group's examples
    correct: int
    examples: int


KINDS = BUILTIN_KINDS.extended(
    MessageKind(STEP, StepIns, StepRes), MessageKind(HEAD, HeadIns, HeadRes)
)


def _write_arrays(t: TensorWriter, name: str, arrays: tuple[np.ndarray, ...]) -> int:
    for i, a in enumerate(arrays):
        t.tensor(f"{name}.{i}", np.ascontiguousarray(a))
    return len(arrays)


def _read_arrays(t: TensorReader, name: str, count: int, dtype: str) -> tuple[np.ndarray, ...]:
    return tuple(t.tensor(f"{name}.{i}", dtype=dtype) for i in range(count))


def _write_part(part: PartState, t: TensorWriter) -> Header:
    keys = sorted(part.optimizer)
    for key in keys:  # optimiser state of float32 parameters (and Adam's float32 step)
        t.tensor(f"opt.{key}", np.ascontiguousarray(part.optimizer[key], np.float32))
    return {"spec": write_params(part.params, t, "part"), "opt": [{"key": k} for k in keys]}


def _read_part(h: Fields, t: TensorReader) -> PartState:
    keys = []
    for row in h.children("opt"):
        keys.append(row.text("key"))
        row.done()
    opt = {k: np.array(t.tensor(f"opt.{k}", dtype="float32")) for k in keys}
    part = PartState(read_params(h.children("spec"), t), opt)
    h.done()
    return part


def _write_start(s: Start, t: TensorWriter) -> Header:
    p = s.protection
    return {
        "part": _write_part(s.part, t),
        "training": write_training(s.training),
        "seed": s.seed,
        "batches_per_exchange": s.batches_per_exchange,
        "send_labels": int(s.send_labels),
        "protection": {"clip": float(p.clip or 0.0), "noise": float(p.noise)},
    }


def _read_start(h: Fields, t: TensorReader) -> Start:
    p = h.child("protection")
    protection = Protection(p.number("clip") or None, p.number("noise"))  # 0: not clipped
    p.done()
    start = Start(
        _read_part(h.child("part"), t),
        read_training(h.child("training")),
        h.integer("seed"),
        h.integer("batches_per_exchange"),
        bool(h.integer("send_labels")),
        protection,
    )
    h.done()
    return start


def _write_step_ins(m: StepIns, t: TensorWriter, codec: Codec) -> Header:
    start = _write_start(m.start, t) if m.start is not None else None
    grads = _write_arrays(t, "grad", m.grads)
    return {"run_id": m.run_id, "round": m.round, "start": start, "grads": grads}


def _read_step_ins(h: Fields, t: TensorReader, codec: Codec) -> StepIns:
    start = h.optional_child("start")
    return StepIns(
        h.text("run_id"),
        h.integer("round"),
        _read_start(start, t) if start is not None else None,
        _read_arrays(t, "grad", h.integer("grads"), "float32"),
    )


def _write_step_res(m: StepRes, t: TensorWriter, codec: Codec) -> Header:
    final = _write_part(m.final, t) if m.final is not None else None
    return {
        "client_id": m.client_id,
        "round": m.round,
        "activations": _write_arrays(t, "act", m.activations),
        "labels": _write_arrays(t, "label", m.labels),
        "final": final,
    }


def _read_step_res(h: Fields, t: TensorReader, codec: Codec) -> StepRes:
    final = h.optional_child("final")
    return StepRes(
        h.text("client_id"),
        h.integer("round"),
        _read_arrays(t, "act", h.integer("activations"), "float32"),
        _read_arrays(t, "label", h.integer("labels"), "int64"),
        _read_part(final, t) if final is not None else None,
    )


def _write_head_ins(m: HeadIns, t: TensorWriter, codec: Codec) -> Header:
    return {"run_id": m.run_id, "round": m.round, "outputs": _write_arrays(t, "out", m.outputs)}


def _read_head_ins(h: Fields, t: TensorReader, codec: Codec) -> HeadIns:
    outputs = _read_arrays(t, "out", h.integer("outputs"), "float32")
    return HeadIns(h.text("run_id"), h.integer("round"), outputs)


def _write_head_res(m: HeadRes, t: TensorWriter, codec: Codec) -> Header:
    return {
        "client_id": m.client_id,
        "round": m.round,
        "grads": _write_arrays(t, "grad", m.grads),
        "loss": float(m.loss),
        "correct": m.correct,
        "examples": m.examples,
    }


def _read_head_res(h: Fields, t: TensorReader, codec: Codec) -> HeadRes:
    return HeadRes(
        h.text("client_id"),
        h.integer("round"),
        _read_arrays(t, "grad", h.integer("grads"), "float32"),
        h.number("loss"),
        h.integer("correct"),
        h.integer("examples"),
    )


def register(codec: Codec) -> None:
    """Split learning's kinds on the wire."""
    codec.kinds.register("split.step_ins", StepIns, write=_write_step_ins, read=_read_step_ins)
    codec.kinds.register("split.step_res", StepRes, write=_write_step_res, read=_read_step_res)
    codec.kinds.register("split.head_ins", HeadIns, write=_write_head_ins, read=_read_head_ins)
    codec.kinds.register("split.head_res", HeadRes, write=_write_head_res, read=_read_head_res)


CODEC = default_codec().extended(register)
