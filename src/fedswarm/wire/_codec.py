"""Messages to bytes and back (the layout is described in :mod:`fedswarm.wire`)."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import TypeAlias

from fedswarm.learner import LocalTraining, OptimizerKind, Precision
from fedswarm.messages import EvaluateIns, EvaluateRes, Failure, FitIns, FitRes, Stage
from fedswarm.params import Params, ParamSpec, TensorSpec
from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, check_integer, dump_header, parse_header
from fedswarm.wire._registry import EXTRAS, STEPS, TRANSFORMS
from fedswarm.wire._tensors import DTYPES, TensorReader, TensorWriter, read_manifest

__all__ = ["MAGIC", "MAX_HEADER_BYTES", "VERSION", "Message", "decode", "encode"]

Message: TypeAlias = FitIns | FitRes | EvaluateIns | EvaluateRes | Failure

VERSION = 1
MAGIC = b"FSWM"
MAX_HEADER_BYTES = 1 << 22  # a 50,000-tensor spec fits; JSON larger than this is refused
_PREFIX = struct.Struct("<4sI")  # magic, header length in bytes
_ALIGN = 8  # the header is padded with spaces so that the tensors start 8-byte aligned

Header = dict[str, object]


def encode(msg: Message) -> bytes:
    """The wire form of ``msg``; :class:`WireError` if a field cannot be sent as it is."""
    # One copy of each vector, straight into the message (no intermediate tobytes()).
    return b"".join(encode_parts(msg))


def encode_parts(msg: Message) -> list[bytes | memoryview]:
    """``encode(msg)`` as pieces to send back to back, without joining them: the prefix
    and header, then zero-copy views of the message's vectors. A coordinator sending one
    model to many participants shares the model's bytes instead of copying them for each."""
    kind = _KINDS.get(type(msg))
    if kind is None:
        raise WireError(f"cannot encode a {type(msg).__name__}: not a message type")
    header: Header = {"version": VERSION, "kind": kind}
    tensors = TensorWriter()
    _write(msg, header, tensors)
    header["tensors"] = tensors.manifest
    raw = dump_header(header, kind)
    raw += b" " * (-(_PREFIX.size + len(raw)) % _ALIGN)
    if len(raw) > MAX_HEADER_BYTES:
        raise WireError(f"{kind}: header of {len(raw)} bytes exceeds {MAX_HEADER_BYTES}")
    return [_PREFIX.pack(MAGIC, len(raw)) + raw, *(b.cast("B") for b in tensors.buffers)]


def decode(data: bytes, *, max_bytes: int) -> Message:
    """The message in ``data``, validated; :class:`WireError` naming what is wrong if not.

    Vectors in the result are read-only views of ``data``. Values are not judged (a NaN
    update decodes): the round protocol refuses those and names the participant.
    """
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds max_bytes={max_bytes}")
    if len(data) < _PREFIX.size:
        raise WireError(f"truncated: {len(data)} bytes, the prefix alone is {_PREFIX.size}")
    magic, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise WireError(f"not a fedswarm message: magic {magic!r}, expected {MAGIC!r}")
    if header_len > MAX_HEADER_BYTES:
        raise WireError(f"header of {header_len} bytes exceeds {MAX_HEADER_BYTES}")
    body_start = _PREFIX.size + header_len
    if body_start > len(data):
        have = len(data) - _PREFIX.size
        raise WireError(f"truncated: the header is {header_len} bytes, only {have} follow")
    header = parse_header(data[_PREFIX.size : body_start])
    if (version := header.integer("version")) != VERSION:
        raise WireError(f"header.version: unsupported version {version}, expected {VERSION}")
    kind = header.text("kind")
    if kind not in _READERS:
        raise WireError(f"header.kind: unknown message kind {kind!r}; known: {', '.join(_READERS)}")
    header.where = kind
    tensors = read_manifest(header.children("tensors"), data, body_start)
    msg = _READERS[kind](header, tensors)
    header.done()
    tensors.done()
    return msg


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise WireError(f"{where}: expected a string, got {type(value).__name__}")
    return value


# --- parts shared by several messages -------------------------------------------------


def _write_params(params: Params, h: Header, t: TensorWriter, kind: str) -> None:
    rows = []
    for i, spec in enumerate(params.spec.tensors):
        where = f"{kind}.spec[{i}]"
        if spec.dtype not in DTYPES:
            raise WireError(f"{where}.dtype: cannot send dtype {spec.dtype!r}")
        shape = [check_integer(d, f"{where}.shape") for d in spec.shape]
        rows.append(
            {"name": _text(spec.name, f"{where}.name"), "shape": shape, "dtype": spec.dtype}
        )
    h["spec"] = rows
    t.vector("params", params.flat)


def _read_params(h: Fields, t: TensorReader) -> Params:
    specs: dict[str, TensorSpec] = {}
    for row in h.children("spec"):
        spec = TensorSpec(row.text("name"), row.integers("shape"), row.text("dtype"))
        row.done()
        if spec.dtype not in DTYPES:
            raise WireError(f"{row.where}.dtype: unknown dtype {spec.dtype!r}")
        if spec.name in specs:
            raise WireError(f"{row.where}.name: duplicate tensor name {spec.name!r}")
        specs[spec.name] = spec
    # Sizes in Python integers: a forged shape cannot overflow int64 arithmetic here.
    flat = t.vector("params", length=sum(math.prod(s.shape) for s in specs.values()))
    return Params(ParamSpec(tuple(specs.values())), flat)  # the vector's length matches the spec


def _write_training(lt: LocalTraining) -> Header:
    return {
        "batch_size": lt.batch_size,
        "lr": float(lt.lr),
        "epochs": lt.epochs,
        "steps": lt.steps,
        "optimizer": lt.optimizer.value,
        "momentum": float(lt.momentum),
        "weight_decay": float(lt.weight_decay),
        "precision": lt.precision.value,
    }


def _read_training(f: Fields) -> LocalTraining:
    try:
        training = LocalTraining(
            batch_size=f.integer("batch_size"),
            lr=f.number("lr"),
            epochs=f.optional_integer("epochs"),
            steps=f.optional_integer("steps"),
            optimizer=f.choice("optimizer", OptimizerKind),
            momentum=f.number("momentum"),
            weight_decay=f.number("weight_decay"),
            precision=f.choice("precision", Precision),
        )
    except WireError:
        raise
    except ValueError as e:  # LocalTraining's own validation
        raise WireError(f"{f.where}: {e}") from None
    f.done()
    return training


# --- one writer and one reader per message kind ---------------------------------------


def _write_fit_ins(m: FitIns, h: Header, t: TensorWriter) -> None:
    h["run_id"] = _text(m.run_id, "fit_ins.run_id")
    h["round"] = check_integer(m.round, "fit_ins.round")
    h["seed"] = check_integer(m.seed, "fit_ins.seed")
    h["training"] = _write_training(m.training)
    _write_params(m.params, h, t, "fit_ins")
    h["step"] = STEPS.write(m.step, "step", t)
    h["transforms"] = [
        TRANSFORMS.write(x, f"transforms.{i}", t) for i, x in enumerate(m.transforms)
    ]


def _read_fit_ins(h: Fields, t: TensorReader) -> FitIns:
    run_id, rnd, seed = h.text("run_id"), h.integer("round"), h.integer("seed")
    training = _read_training(h.child("training"))
    params = _read_params(h, t)
    step = STEPS.read(h.child("step"), t.scoped("step", params.dim))
    transforms = tuple(
        TRANSFORMS.read(f, t.scoped(f"transforms.{i}", params.dim))
        for i, f in enumerate(h.children("transforms"))
    )
    return FitIns(run_id, rnd, params, training, step, seed, transforms)


def _write_fit_res(m: FitRes, h: Header, t: TensorWriter) -> None:
    h["client_id"] = _text(m.client_id, "fit_res.client_id")
    h["round"] = check_integer(m.round, "fit_res.round")
    h["num_examples"] = check_integer(m.num_examples, "fit_res.num_examples")
    h["num_steps"] = check_integer(m.num_steps, "fit_res.num_steps")
    h["train_loss"] = float(m.train_loss)
    t.vector("update", m.update)
    h["extra"] = None if m.extra is None else EXTRAS.write(m.extra, "extra", t)


def _read_fit_res(h: Fields, t: TensorReader) -> FitRes:
    client_id, rnd = h.text("client_id"), h.integer("round")
    num_examples, num_steps = h.integer("num_examples"), h.integer("num_steps")
    train_loss = h.number("train_loss")
    update = t.vector("update")
    extra_fields = h.optional_child("extra")
    extra = None
    if extra_fields is not None:  # its vectors are the update's length (e.g. SCAFFOLD's)
        extra = EXTRAS.read(extra_fields, t.scoped("extra", len(update)))
    return FitRes(client_id, rnd, update, num_examples, num_steps, train_loss, extra)


def _write_evaluate_ins(m: EvaluateIns, h: Header, t: TensorWriter) -> None:
    h["run_id"] = _text(m.run_id, "evaluate_ins.run_id")
    h["round"] = check_integer(m.round, "evaluate_ins.round")
    _write_params(m.params, h, t, "evaluate_ins")


def _read_evaluate_ins(h: Fields, t: TensorReader) -> EvaluateIns:
    run_id, rnd = h.text("run_id"), h.integer("round")
    return EvaluateIns(run_id, rnd, _read_params(h, t))


def _write_evaluate_res(m: EvaluateRes, h: Header, t: TensorWriter) -> None:
    h["client_id"] = _text(m.client_id, "evaluate_res.client_id")
    h["round"] = check_integer(m.round, "evaluate_res.round")
    h["loss"] = float(m.loss)
    h["accuracy"] = float(m.accuracy)
    h["num_examples"] = check_integer(m.num_examples, "evaluate_res.num_examples")


def _read_evaluate_res(h: Fields, t: TensorReader) -> EvaluateRes:
    client_id, rnd = h.text("client_id"), h.integer("round")
    loss, accuracy = h.number("loss"), h.number("accuracy")
    return EvaluateRes(client_id, rnd, loss, accuracy, h.integer("num_examples"))


def _write_failure(m: Failure, h: Header, t: TensorWriter) -> None:
    h["client_id"] = _text(m.client_id, "failure.client_id")
    h["round"] = check_integer(m.round, "failure.round")
    h["stage"] = m.stage.value
    h["reason"] = _text(m.reason, "failure.reason")


def _read_failure(h: Fields, t: TensorReader) -> Failure:
    client_id, rnd = h.text("client_id"), h.integer("round")
    return Failure(client_id, rnd, h.choice("stage", Stage), h.text("reason"))


_KINDS: dict[type, str] = {
    FitIns: "fit_ins",
    FitRes: "fit_res",
    EvaluateIns: "evaluate_ins",
    EvaluateRes: "evaluate_res",
    Failure: "failure",
}


def _write(msg: Message, h: Header, t: TensorWriter) -> None:
    match msg:
        case FitIns():
            _write_fit_ins(msg, h, t)
        case FitRes():
            _write_fit_res(msg, h, t)
        case EvaluateIns():
            _write_evaluate_ins(msg, h, t)
        case EvaluateRes():
            _write_evaluate_res(msg, h, t)
        case Failure():
            _write_failure(msg, h, t)


_READERS: dict[str, Callable[[Fields, TensorReader], Message]] = {
    "fit_ins": _read_fit_ins,
    "fit_res": _read_fit_res,
    "evaluate_ins": _read_evaluate_ins,
    "evaluate_res": _read_evaluate_res,
    "failure": _read_failure,
}
