"""The wire codec: every message survives the trip bit for bit, and nothing malformed
gets through without a WireError that says what is wrong and where."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import struct
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra.numpy import arrays

from fedswarm.aggregation import Weighting
from fedswarm.algorithms import LocalSGD, LocalSGDStep, ProxStep, ScaffoldExtra, ScaffoldStep
from fedswarm.messages import (
    EvaluateIns,
    EvaluateRes,
    Failure,
    FailureKind,
    FitIns,
    FitRes,
    Refusal,
    Stage,
)
from fedswarm.params import Params, ParamSpec, TensorSpec
from fedswarm.rounds import FitReplyCheck
from fedswarm.transforms import ClipNorm
from fedswarm.wire import (
    DEFAULT_CHUNK_BYTES,
    DTYPES,
    VERSION,
    Assembler,
    Chunk,
    Codec,
    Fields,
    Message,
    Part,
    TensorReader,
    WireError,
    chunks,
    decode,
    default_codec,
    encode,
    encode_parts,
    frames,
    reassemble,
)
from wire_golden import (
    ADAM,
    CONTROL,
    DIM,
    GOLDEN,
    PARAMS,
    PROBE,
    SGD,
    Probe,
    Shape,
    differing,
    fit_ins,
    fit_res,
    golden_codec,
    golden_file,
    probe_codec,
)

MiB = 1 << 20
LIMIT = 16 * MiB

# --- fixtures: one message of every kind and variant (tiny ones in wire_golden) -------

MESSAGES: dict[str, Message] = {
    "fit_ins/local_sgd": fit_ins(),
    "fit_ins/fedprox": fit_ins(ProxStep(0.01)),
    "fit_ins/scaffold": fit_ins(ScaffoldStep(CONTROL)),
    "fit_ins/adam+clip": fit_ins(ProxStep(0.5), (ClipNorm(1.5), ClipNorm(0.25)), ADAM),
    "fit_res/plain": fit_res(),
    "fit_res/scaffold": fit_res(ScaffoldExtra(-CONTROL)),
    "fit_res/non_finite": fit_res(loss=math.nan, update=np.full(DIM, np.inf, np.float32)),
    "fit_res/empty": FitRes("c", 1, np.zeros(0, np.float32), 0, 0, -0.0),
    "evaluate_ins": EvaluateIns("run-1", 4, PARAMS),
    "evaluate_ins/empty_model": EvaluateIns("run-1", 0, Params.from_arrays({})),
    "evaluate_res": EvaluateRes("client/7", 4, 0.5, 0.875, 30),
    "evaluate_res/inf_loss": EvaluateRes("c", 4, math.inf, 0.0, 30),
    "failure/fit": Failure("c", 2, Stage.FIT, FailureKind.RAISED, "ValueError: bad things"),
    "failure/evaluate": Failure.refused(
        "ü-日本", 2, Stage.EVALUATE, Refusal.WRONG_ROUND, 'late\n"quoted" ✓'
    ),
}


def assert_same(a: object, b: object, path: str = "msg") -> None:
    """Equal field by field; arrays and floats compared bit for bit (NaN payloads too)."""
    assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), path
        assert a.tobytes() == b.tobytes(), path
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and b != b), path
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict), path
        assert list(a) == list(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, tuple):
        assert isinstance(b, tuple), path
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def trip(msg: object, codec: Codec | None = None) -> object:
    codec = codec or default_codec()
    return codec.decode(codec.encode(msg), max_bytes=LIMIT)


# --- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("name", MESSAGES)
def test_every_message_and_variant_survives_the_round_trip(name: str) -> None:
    msg = MESSAGES[name]
    assert_same(msg, trip(msg))


def test_the_spec_keeps_buffer_dtypes_and_the_arrays_come_back_typed() -> None:
    out = trip(MESSAGES["evaluate_ins"])
    assert isinstance(out, EvaluateIns)
    assert out.params.spec == PARAMS.spec
    assert out.params.spec.tensors[1] == TensorSpec("bn.num_batches_tracked", (), "int64")
    counter = out.params.arrays()["bn.num_batches_tracked"]
    assert counter.dtype == np.int64
    assert counter == 42


def test_decoded_vectors_are_read_only_views_of_the_buffer() -> None:
    data = encode(MESSAGES["fit_res/scaffold"])
    out = decode(data, max_bytes=LIMIT)
    assert isinstance(out, FitRes)
    assert isinstance(out.extra, ScaffoldExtra)
    for v in (out.update, out.extra.control_delta):
        assert not v.flags.writeable
        assert np.shares_memory(v, np.frombuffer(data, np.uint8))


def test_a_nan_update_decodes_and_the_round_protocol_refuses_it_naming_the_client() -> None:
    res = trip(MESSAGES["fit_res/non_finite"])
    assert isinstance(res, FitRes)
    assert math.isnan(res.train_loss)
    check = FitReplyCheck({"client/7"}, 3, DIM, LocalSGD(), Weighting.UNIFORM)
    replies, failures = check.split([res])
    assert not replies
    assert failures[0].client_id == "client/7"
    assert "NaN or Inf" in failures[0].reason


def test_tensors_start_aligned_after_the_header() -> None:
    for msg in MESSAGES.values():
        data = encode(msg)
        (header_len,) = struct.unpack_from("<I", data, 4)
        assert (8 + header_len) % 8 == 0


def test_every_decoded_tensor_starts_8_aligned_in_the_buffer() -> None:
    data = golden_codec().encode(PROBE)  # an int8 tensor of 3 bytes, then an int16 scalar...
    base = np.frombuffer(data, np.uint8).ctypes.data
    out = golden_codec().decode(data, max_bytes=LIMIT)
    assert isinstance(out, Probe)
    for name, array in out.tensors.items():
        if array.size:
            assert (array.ctypes.data - base) % 8 == 0, name
            assert array.flags.aligned, name


bits32 = arrays(np.uint32, st.integers(0, 64))  # every float32 bit pattern, NaNs included
ids = st.text(max_size=12)
rounds = st.integers(0, 2**63 - 1)
any_float = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def params(draw: st.DrawFn) -> Params:
    dtypes = st.sampled_from(["float32", "float16", "int64", "int8", "bool", "uint8"])
    names = draw(st.lists(st.text(min_size=1, max_size=6), max_size=5, unique=True))
    shapes = [draw(st.lists(st.integers(0, 4), max_size=3)) for _ in names]
    spec = ParamSpec(
        tuple(TensorSpec(n, tuple(s), draw(dtypes)) for n, s in zip(names, shapes, strict=True))
    )
    flat = draw(arrays(np.uint32, spec.dim)).view(np.float32)
    return Params(spec, flat)


@settings(max_examples=100, deadline=None)
@given(params(), ids, rounds, st.one_of(st.none(), st.floats(0, 10)))
def test_instructions_round_trip_for_any_model(
    p: Params, run_id: str, rnd: int, mu: float | None
) -> None:
    step = ScaffoldStep(np.arange(p.dim, dtype=np.float32)) if mu is None else ProxStep(mu)
    assert_same(EvaluateIns(run_id, rnd, p), trip(EvaluateIns(run_id, rnd, p)))
    ins = FitIns(run_id, rnd, p, SGD, step, rnd, (ClipNorm(1.0),))
    assert_same(ins, trip(ins))


@settings(max_examples=100, deadline=None)
@given(ids, rounds, bits32, st.booleans(), rounds, rounds, any_float)
def test_replies_round_trip_bit_for_bit(
    cid: str, rnd: int, bits: np.ndarray, scaffold: bool, n: int, k: int, loss: float
) -> None:
    update = bits.view(np.float32)
    extra = ScaffoldExtra(update[::-1].copy()) if scaffold else None
    assert_same(
        FitRes(cid, rnd, update, n, k, loss, extra),
        trip(FitRes(cid, rnd, update, n, k, loss, extra)),
    )
    assert_same(EvaluateRes(cid, rnd, loss, -loss, n), trip(EvaluateRes(cid, rnd, loss, -loss, n)))
    failure = Failure(cid, rnd, Stage.FIT, FailureKind.DROPPED, cid)
    assert_same(failure, trip(failure))


# --- malformed input ------------------------------------------------------------------


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack_from("<I", data, 4)
    header: dict[str, Any] = json.loads(data[8 : 8 + n])
    return header, data[8 + n :]


def join(header: dict[str, Any] | str, body: bytes) -> bytes:
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    raw += b" " * (-len(raw) % 8)  # the tensors start 8-aligned
    return b"FSWM" + struct.pack("<I", len(raw)) + raw + body


def flip(offset: int, bit: int) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        out[offset] ^= 1 << bit
        return bytes(out)

    return mutate


def text(old: str | None, new: str) -> Callable[[bytes], bytes]:
    """Replace ``old`` (None: everything) in the raw header text; for what a dict cannot
    hold, such as duplicate keys or NaN."""

    def mutate(data: bytes) -> bytes:
        (n,) = struct.unpack_from("<I", data, 4)
        header = data[8 : 8 + n].decode()
        return join(new if old is None else header.replace(old, new), data[8 + n :])

    return mutate


def unaligned(data: bytes) -> bytes:
    """The header one space longer, so the tensors after it start at an odd byte."""
    (n,) = struct.unpack_from("<I", data, 4)
    return b"FSWM" + struct.pack("<I", n + 1) + data[8 : 8 + n] + b" " + data[8 + n :]


def as_float64(data: bytes) -> bytes:
    header, body = split(data)
    header["tensors"][0].update(dtype="float64", nbytes=2 * len(body))
    return join(header, np.frombuffer(body, "<f4").astype("<f8").tobytes())


def short_control(data: bytes) -> bytes:
    header, body = split(data)
    assert header["tensors"][1]["name"] == "step.control"
    header["tensors"][1].update(shape=[DIM - 1], nbytes=4 * (DIM - 1))
    return join(header, body[:-4])


def extra_tensor(data: bytes) -> bytes:
    header, body = split(data)
    header["tensors"].append({"name": "bogus", "dtype": "float32", "shape": [1], "nbytes": 4})
    return join(header, body + bytes(-len(body) % 8) + bytes(4))  # padded to start aligned


def no_tensors(data: bytes) -> bytes:
    header, _ = split(data)
    header["tensors"] = []
    return join(header, b"")


RES, INS, SCAF, CLIP = "fit_res/plain", "fit_ins/local_sgd", "fit_ins/scaffold", "fit_ins/adam+clip"

BYTE_CASES: dict[str, tuple[str, Callable[[bytes], bytes], str]] = {
    # case: (message, mutation of its bytes, what the WireError must say)
    "truncated body": (RES, lambda d: d[:-1], "manifest declares 28 tensor bytes, only 27 follow"),
    "truncated header": (RES, lambda d: d[:40], "truncated: the header is"),
    "truncated prefix": (RES, lambda d: d[:5], "truncated: 5 bytes"),
    "empty": (RES, lambda d: b"", "truncated: 0 bytes"),
    "trailing bytes": (RES, lambda d: d + b"\0", "1 trailing bytes after the last tensor"),
    "bad magic": (RES, flip(0, 0), "not a fedswarm message: magic b'GSWM'"),
    "unaligned header": (
        RES,
        unaligned,
        "header length 201: the tensors would start at byte 209, not a multiple of 8",
    ),
    "bit-flipped brace": (RES, flip(8, 0), "header: not valid JSON"),
    "bit-flipped to non-UTF-8": (RES, flip(9, 7), "header: not UTF-8"),
    "huge header length": (RES, flip(7, 6), "bytes exceeds 4194304"),
    "header not an object": (RES, text(None, "[]"), "header: expected a JSON object, got array"),
    "deep nesting": (RES, text(None, "[" * 100_000), "header: not valid JSON"),
    "duplicate key": (RES, text('"round"', '"round":1,"round"'), "duplicate key 'round'"),
    "NaN literal": (RES, text("0.25", "NaN"), "non-standard JSON constant NaN"),
    "wrong dtype": (RES, as_float64, "tensor 'update': dtype float64, expected float32"),
    "short control": (SCAF, short_control, "tensor 'step.control': shape [6], expected [7]"),
    "unexpected tensor": (RES, extra_tensor, "unexpected tensor(s) 'bogus'"),
    "missing tensor": (RES, no_tensors, "missing tensor 'update'"),
}

DELETE = object()
HEADER_CASES: dict[str, tuple[str, str, object, str]] = {
    # case: (message, field path, new value or DELETE, what the WireError must say)
    "unknown kind": (RES, "kind", "fit_result", "kind 'fit_result'; known: evaluate_ins, evalu"),
    "older version": (RES, "version", 1, "header.version: a message in wire format version 1,"),
    "version as text": (RES, "version", "2", "header.version: expected an integer, got string"),
    "missing version": (RES, "version", DELETE, "header: missing field 'version'"),
    "missing field": (RES, "round", DELETE, "fit_res: missing field 'round'"),
    "missing nested": (INS, "training.lr", DELETE, "fit_ins.training: missing field 'lr'"),
    "extra field": (RES, "priority", 1, "fit_res: unexpected field(s) 'priority'"),
    "extra step field": (INS, "step.mu", 0.1, "fit_ins.step: unexpected field(s) 'mu'"),
    "extra row field": (RES, "tensors.0.crc", 0, "fit_res.tensors[0]: unexpected field(s)"),
    "negative round": (RES, "round", -1, "fit_res.round: must be >= 0, got -1"),
    "round > int64": (RES, "round", 2**63, "fit_res.round: must be < 2**63"),
    "round as text": (RES, "round", "3", "fit_res.round: expected an integer, got string"),
    "round as bool": (RES, "round", True, "fit_res.round: expected an integer, got bool"),
    "round as float": (RES, "round", 3.0, "fit_res.round: expected an integer, got number"),
    "loss as text": (RES, "train_loss", "low", "fit_res.train_loss: expected a number"),
    "id as number": (RES, "client_id", 7, "fit_res.client_id: expected a string"),
    "lone surrogate": (RES, "client_id", "\ud800", "fit_res.client_id: not valid Unicode"),
    "optimizer": (INS, "training.optimizer", "rmsprop", "optimizer: expected one of 'sgd'"),
    "stage": (
        "failure/fit",
        "stage",
        "Fit!",
        "failure: stage name 'Fit!' must be dotted lowercase",
    ),
    "failure": ("failure/fit", "failure", "lost", "failure.failure: expected one of 'dropped'"),
    "refusal": ("failure/fit", "refusal", "not_asked", "takes a refusal code exactly when it is"),
    "invalid training": (INS, "training.steps", 5, "fit_ins.training: LocalTraining takes"),
    "unknown step": (INS, "step.tag", "fedfoo", "client step 'fedfoo'; known: fedprox, local_"),
    "untagged step": (INS, "step.tag", DELETE, "fit_ins.step: missing field 'tag'"),
    "unknown extra": ("fit_res/scaffold", "extra.tag", "dyn", "extra 'dyn'; known: scaffold"),
    "unknown transform": (CLIP, "transforms.1.tag", "noise", "transforms[1].tag: unknown update"),
    "bad transform": (CLIP, "transforms.0.max_norm", -1, "'clip_norm': max_norm must be positive"),
    "unknown dtype": (RES, "tensors.0.dtype", "object", "tensors[0].dtype: unknown dtype 'object'"),
    "spec dtype": ("evaluate_ins", "spec.1.dtype", "object", "spec[1].dtype: unknown dtype"),
    "nbytes": (
        RES,
        "tensors.0.shape",
        [8],
        "declares 28 bytes, but dtype float32 x shape [8] is 32",
    ),
    "not a vector": (RES, "tensors.0.shape", [7, 1], "'update': shape [7, 1], expected a vector"),
    "negative dim": (RES, "tensors.0.shape", [-7], "fit_res.tensors[0].shape[0]: must be >= 0"),
    "spec vs params": ("evaluate_ins", "spec.0.shape", [2, 4], "'params': shape [7], expected [9]"),
    "number overflow": (
        RES,
        "train_loss",
        10**400,
        "fit_res.train_loss: integer out of float range",
    ),
    "spec names": ("evaluate_ins", "spec.1.name", "fc.weight", "spec[1].name: duplicate tensor"),
    "tensor names": ("fit_res/scaffold", "tensors.1.name", "update", "duplicate tensor name"),
}


def set_field(data: bytes, path: str, value: object) -> bytes:
    header, body = split(data)
    *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
    node: Any = header
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return join(header, body)


@pytest.mark.parametrize("case", BYTE_CASES)
def test_malformed_bytes_are_refused_with_a_reason(case: str) -> None:
    base, mutate, reason = BYTE_CASES[case]
    with pytest.raises(WireError, match=re.escape(reason)):
        decode(mutate(encode(MESSAGES[base])), max_bytes=LIMIT)


@pytest.mark.parametrize("case", HEADER_CASES)
def test_malformed_headers_are_refused_naming_the_field(case: str) -> None:
    base, path, value, reason = HEADER_CASES[case]
    with pytest.raises(WireError, match=re.escape(reason)):
        decode(set_field(encode(MESSAGES[base]), path, value), max_bytes=LIMIT)


def test_oversized_messages_are_refused_before_anything_is_parsed() -> None:
    data = encode(MESSAGES["fit_res/plain"])
    decode(data, max_bytes=len(data))
    with pytest.raises(WireError, match=rf"message of {len(data)} bytes exceeds max_bytes="):
        decode(data, max_bytes=len(data) - 1)
    with pytest.raises(WireError, match="exceeds max_bytes"):  # refused though not a message
        decode(b"\xff" * 100, max_bytes=99)


def test_every_truncation_is_refused() -> None:
    for name in ("fit_ins/scaffold", "evaluate_res"):
        data = encode(MESSAGES[name])
        for n in range(len(data)):
            with pytest.raises(WireError):
                decode(data[:n], max_bytes=LIMIT)


FUZZED: dict[str, object] = {**MESSAGES, "probe": PROBE}  # every kind, every tensor feature


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FUZZED)), st.data())
def test_a_bit_flip_in_the_header_is_refused_or_decodes_never_crashes(
    name: str, data: st.DataObject
) -> None:
    encoded = golden_codec().encode(FUZZED[name])
    (header_len,) = struct.unpack_from("<I", encoded, 4)
    mutate = flip(data.draw(st.integers(0, 8 + header_len - 1)), data.draw(st.integers(0, 7)))
    with contextlib.suppress(WireError):
        golden_codec().decode(mutate(encoded), max_bytes=LIMIT)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from([-1, 2**63, 10**400, "NaN", "Infinity", "sgd", "fit", "float32"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(node: object, prefix: str = "") -> list[str]:
    """Every field path in a parsed header, in :func:`set_field`'s dotted form."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    out = []
    for key, child in items:
        path = f"{prefix}{key}"
        out += [path, *paths(child, path + ".")]
    return out


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FUZZED)), st.data())
def test_any_json_in_any_field_is_refused_or_decodes_never_crashes(
    name: str, data: st.DataObject
) -> None:
    encoded = golden_codec().encode(FUZZED[name])
    path = data.draw(st.sampled_from(paths(split(encoded)[0])))
    value = data.draw(st.just(DELETE) | json_values)
    with contextlib.suppress(WireError):
        golden_codec().decode(set_field(encoded, path, value), max_bytes=LIMIT)


@given(st.binary(max_size=200))
def test_random_bytes_are_refused(junk: bytes) -> None:
    for data in (junk, b"FSWM" + junk):
        with pytest.raises(WireError):
            decode(data, max_bytes=LIMIT)


# --- encoding errors and the registry -------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (fit_res(update=np.zeros(DIM, np.float64)), r"tensor 'update': expected a 1-D float32"),
        (fit_res(update=np.zeros((1, DIM), np.float32)), r"tensor 'update': expected a 1-D"),
        (fit_res(extra=ScaffoldExtra(np.zeros(2, np.int32))), r"'extra.control_delta'"),
        (Failure("c", -1, Stage.FIT, FailureKind.RAISED, "x"), r"failure.round: must be >= 0"),
        (FitRes("c", 1, CONTROL, True, 1, 0.0), r"fit_res.num_examples: expected an integer"),
        (EvaluateRes("\ud800", 1, 0.0, 0.0, 1), r"evaluate_res: a string is not valid Unicode"),
        (fit_ins(step=object()), r"step: no wire codec for client step object; registered"),
    ],
)
def test_messages_that_cannot_be_sent_are_refused_on_encode(msg: Any, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        encode(msg)


def test_encode_refuses_what_is_not_a_message() -> None:
    with pytest.raises(WireError, match="cannot encode a dict"):
        encode({"kind": "fit_res"})


@dataclasses.dataclass(frozen=True, eq=False)
class _SketchStep(LocalSGDStep):
    """A stand-in for a future algorithm's step: a scalar field, a short vector, an N-D
    integer tensor and a blob."""

    rank: int = 2
    basis: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(3, np.float32))
    index: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((2, 2), np.int64))
    key: bytes = b"k"


def register_sketch(codec: Codec) -> None:  # as a new algorithm module would
    codec.steps.register(
        "test_sketch",
        _SketchStep,
        encode=lambda s: Part(
            fields={"rank": s.rank},
            tensors={"basis": s.basis, "index": s.index},
            blobs={"key": s.key},
        ),
        decode=lambda f, t: _SketchStep(
            rank=f.integer("rank"),
            basis=t.vector("basis"),
            index=t.tensor("index", dtype="int64", shape=(None, 2)),
            key=t.blob("key", max_len=16),
        ),
    )


def test_a_registered_variant_travels_and_a_subclass_is_not_sent_as_its_parent() -> None:
    codec = default_codec().extended(register_sketch)
    step = _SketchStep(5, np.arange(4, dtype=np.float32), np.arange(6).reshape(3, 2), b"\0key")
    out = trip(fit_ins(step), codec)
    assert isinstance(out, FitIns)
    assert_same(step, out.step)
    header, _ = split(codec.encode(fit_ins(step)))
    assert header["step"] == {"tag": "test_sketch", "rank": 5}
    assert [t["name"] for t in header["tensors"]] == [
        "params",
        "step.basis",
        "step.index",
        "step.key",
    ]
    with pytest.raises(WireError, match="no wire codec for client step _SketchStep"):
        encode(fit_ins(step))  # the default codec does not send it as a LocalSGDStep
    with pytest.raises(WireError, match="unknown client step 'test_sketch'; known: fedprox"):
        decode(codec.encode(fit_ins(step)), max_bytes=LIMIT)


def test_a_tag_or_type_cannot_be_registered_twice() -> None:
    def same_tag(codec: Codec) -> None:
        codec.steps.register(
            "fedprox", _SketchStep, encode=lambda s: Part(), decode=lambda f, t: ProxStep(0.0)
        )

    def same_type(codec: Codec) -> None:
        codec.steps.register(
            "other", ProxStep, encode=lambda s: Part(), decode=lambda f, t: ProxStep(0.0)
        )

    for register in (same_tag, same_type):
        with pytest.raises(ValueError, match="registered twice"):
            default_codec().extended(register)


# --- codecs: explicit, immutable, extended by a function --------------------------------


def test_a_built_codec_is_sealed_and_extending_it_leaves_it_as_it_was() -> None:
    base = default_codec()
    assert base is default_codec()  # built once
    assert base.kinds.tags == ("evaluate_ins", "evaluate_res", "failure", "fit_ins", "fit_res")
    assert base.steps.tags == ("fedprox", "local_sgd", "scaffold")
    with pytest.raises(RuntimeError, match=r"client step registry .* sealed: .*extended"):
        register_sketch(base)
    extended = base.extended(register_sketch)
    with pytest.raises(RuntimeError, match="message kind registry of a built codec is sealed"):
        extended.kinds.register("x", Probe, write=lambda *a: {}, read=lambda *a: PROBE)
    assert "test_sketch" in extended.steps.tags
    assert "test_sketch" not in base.steps.tags
    assert Codec().kinds.tags == Codec().steps.tags == ()


def test_a_kind_on_an_extended_codec_round_trips_and_the_default_codec_refuses_it() -> None:
    codec = golden_codec()
    out = trip(PROBE, codec)
    assert_same(PROBE, out)
    assert split(codec.encode(PROBE))[0]["kind"] == "probe"
    with pytest.raises(WireError, match="cannot encode a Probe: not a registered message type"):
        encode(PROBE)
    unknown = "header.kind: unknown message kind 'probe'; known: evaluate_ins, evaluate_res, "
    with pytest.raises(WireError, match=re.escape(unknown + "failure, fit_ins, fit_res")):
        decode(codec.encode(PROBE), max_bytes=LIMIT)
    assert_same(MESSAGES[CLIP], trip(MESSAGES[CLIP], codec))  # built-in kinds still travel


def read_nothing(h: Fields, t: TensorReader, c: Codec) -> Probe:
    return Probe(0, {}, {})


@pytest.mark.parametrize("field", ["version", "kind", "tensors"])
def test_a_kind_may_not_write_the_codecs_own_header_fields(field: str) -> None:
    def register(codec: Codec) -> None:
        codec.kinds.register("probe", Probe, write=lambda p, t, c: {field: 1}, read=read_nothing)

    with pytest.raises(WireError, match=f"probe: a message may not have a field named '{field}'"):
        default_codec().extended(register).encode(PROBE)


@pytest.mark.parametrize(("version", "older"), [(1, "the sender"), (3, "this side")])
def test_a_message_of_another_version_names_both_versions_and_what_to_do(
    version: int, older: str
) -> None:
    data = set_field(encode(MESSAGES[RES]), "version", version)
    with pytest.raises(WireError) as err:
        decode(data, max_bytes=LIMIT)
    assert str(err.value) == (
        f"header.version: a message in wire format version {version}, but this fedswarm "
        f"speaks version {VERSION}: upgrade fedswarm on the older side ({older}) so that "
        "coordinator and participants run the same wire format"
    )


# --- tensors of any dtype and shape, and blobs ------------------------------------------


def test_every_dtype_and_shape_comes_back_typed_read_only_and_without_a_copy() -> None:
    data = golden_codec().encode(PROBE)
    out = golden_codec().decode(data, max_bytes=LIMIT)
    assert isinstance(out, Probe)
    assert {a.dtype.name for a in out.tensors.values()} == set(DTYPES)
    for name, array in out.tensors.items():
        assert array.dtype == PROBE.tensors[name].dtype, name
        assert array.shape == PROBE.tensors[name].shape, name
        assert not array.flags.writeable, name
        assert array.size == 0 or np.shares_memory(array, np.frombuffer(data, np.uint8)), name
    assert out.blobs == PROBE.blobs
    assert all(type(b) is bytes for b in out.blobs.values())


def one_tensor(array: Any, dtype: str | None = None, shape: Shape = None) -> tuple[Probe, Codec]:
    """A probe carrying ``array`` as ``x``, and a codec whose reader demands ``dtype``
    (default: the array's) and ``shape`` of it."""
    name = dtype or np.asarray(array).dtype.name
    return Probe(0, {"x": array}, {}), probe_codec({"x": (name, shape)}, {})


native = st.sampled_from(sorted(DTYPES))
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)
any_array = st.tuples(native, st.booleans(), st.booleans()).flatmap(  # dtype, big-endian, F order
    lambda d: arrays(np.dtype(d[0]).newbyteorder(">" if d[1] else "<"), shapes).map(
        lambda a: a.T if d[2] else a
    )
)


@settings(max_examples=150, deadline=None)
@given(any_array, st.data())
def test_any_dtype_shape_byte_order_and_layout_round_trips_bit_for_bit(
    array: np.ndarray, data: st.DataObject
) -> None:
    shape = tuple(data.draw(st.sampled_from([None, d])) for d in array.shape)  # some axes free
    probe, codec = one_tensor(array, shape=shape)
    out = trip(probe, codec)
    assert isinstance(out, Probe)
    got, want = out.tensors["x"], np.asarray(array, array.dtype.newbyteorder("="), order="C")
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    assert got.tobytes() == want.tobytes()  # NaN payloads and -0.0 included


@settings(max_examples=100, deadline=None)
@given(any_array, st.data())
def test_a_dtype_rank_or_length_the_reader_does_not_expect_is_refused_naming_the_tensor(
    array: np.ndarray, data: st.DataObject
) -> None:
    got = array.dtype.name
    other = data.draw(native.filter(lambda d: d != got))
    with pytest.raises(WireError, match=f"tensor 'x': dtype {got}, expected {other}$"):
        trip(*one_tensor(array, other))
    rank = data.draw(st.sampled_from([r for r in range(5) if r != array.ndim]))
    wrong: list[tuple[int | None, ...]] = [(None,) * rank]
    if array.ndim:  # and the right rank, one axis a different length
        axis = data.draw(st.integers(0, array.ndim - 1))
        wrong.append(tuple(d + 1 if i == axis else d for i, d in enumerate(array.shape)))
    for shape in wrong:
        with pytest.raises(WireError, match=re.escape(f"tensor 'x': shape {list(array.shape)}, ")):
            trip(*one_tensor(array, shape=shape))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 100))
def test_blobs_round_trip_and_one_over_max_len_is_refused(blob: bytes, max_len: int) -> None:
    codec = probe_codec({}, {"key": max_len})
    msg = Probe(1, {}, {"key": blob})
    if len(blob) <= max_len:
        assert_same(msg, trip(msg, codec))
    else:
        with pytest.raises(WireError, match=f"blob 'key': {len(blob)} bytes, at most {max_len}"):
            trip(msg, codec)


def test_a_blob_is_not_an_array_nor_an_array_a_blob() -> None:
    with pytest.raises(WireError, match=r"tensor 'x': a blob, expected uint8"):
        trip(Probe(0, {}, {"x": b"ab"}), probe_codec({"x": ("uint8", None)}, {}))
    with pytest.raises(WireError, match=r"tensor 'x': dtype uint8, expected bytes \(a blob\)"):
        trip(Probe(0, {"x": np.zeros(2, np.uint8)}, {}), probe_codec({}, {"x": None}))


def test_tensors_and_blobs_are_sent_without_a_copy() -> None:
    parts = golden_codec().encode_parts(PROBE)
    views = [np.frombuffer(p, np.uint8) for p in parts[1:]]
    sources = [*PROBE.tensors.values(), *(np.frombuffer(b, np.uint8) for b in PROBE.blobs.values())]
    for source in sources:
        assert source.size == 0 or any(np.shares_memory(source, v) for v in views)


@pytest.mark.parametrize(
    ("tensors", "blobs", "reason"),
    [
        ({"a": np.zeros(2, complex)}, {}, "tensor 'a': cannot send dtype complex128"),
        ({"a": np.array([None])}, {}, "tensor 'a': cannot send dtype object"),
        ({"a": np.zeros(2, "M8[s]")}, {}, "tensor 'a': cannot send dtype datetime64[s]"),
        ({"a": [1, 2]}, {}, "tensor 'a': expected a numpy array, got list"),
        ({"a": np.zeros((1,) * 33)}, {}, "tensor 'a': 33 dimensions, at most 32"),
        ({}, {"k": "text"}, "blob 'k': expected bytes, got str"),
        ({}, {"k": bytearray(2)}, "blob 'k': expected bytes, got bytearray"),
        ({"k": np.zeros(1)}, {"k": b""}, "tensor 'k' written twice"),
    ],
)
def test_tensors_and_blobs_that_cannot_be_sent_are_refused_naming_them(
    tensors: dict[str, Any], blobs: dict[str, Any], reason: str
) -> None:
    with pytest.raises(WireError, match=re.escape(reason)):
        golden_codec().encode(Probe(0, tensors, blobs))


def probe_row(index: int, **row: object) -> tuple[str, object]:
    """A manifest row of the probe message with ``row``'s fields changed."""
    header, _ = split(golden_codec().encode(PROBE))
    return f"tensors.{index}", {**header["tensors"][index], **row}


HUGE = 2**62
PROBE_CASES: dict[str, tuple[tuple[str, object], str]] = {
    # case: ((field path, new value) in the encoded probe, what the WireError must say)
    "dtype": (probe_row(0, dtype="uint64"), "tensor 'labels': dtype uint64, expected int64"),
    "rank": (probe_row(1, shape=[6]), "tensor 'mask32': shape [6], expected [2, *]"),
    "length": (probe_row(11, shape=[2, 1, 1, 2]), "shape [2, 1, 1, 2], expected [1, 2, 1, 2]"),
    "scalar": (probe_row(7, shape=[1]), "tensor 'scalar': shape [1], expected []"),
    "blob as uint8": (probe_row(12, dtype="uint8"), "'public_key': dtype uint8, expected bytes"),
    "tensor as blob": (
        probe_row(0, dtype="bytes", shape=[24]),
        "tensor 'labels': a blob, expected int64",
    ),
    "blob rank": (probe_row(12, shape=[4, 8]), "tensors[12].shape: 2 dimensions, expected 1"),
    "rank > 32": (probe_row(8, shape=[1] * 33), "tensors[8].shape: 33 dimensions, expected at"),
    "empty but huge": (probe_row(8, shape=[0, HUGE]), f"[0, {HUGE}] is too large for any array"),
    "huge": (probe_row(0, shape=[HUGE, HUGE]), "tensors[0].shape: [4611686018427387904, 46"),
    "huge nbytes": (probe_row(0, nbytes=2**63 - 1), "declares 9223372036854775807 bytes, but"),
    "huge, consistent": (
        probe_row(0, shape=[2**59], nbytes=2**62),
        "truncated: the manifest declares 46116860184",
    ),
    "nbytes as text": (probe_row(0, nbytes="24"), "tensors[0].nbytes: expected an integer"),
    "unknown dtype": (probe_row(0, dtype="complex64"), "tensors[0].dtype: unknown dtype"),
}


@pytest.mark.parametrize("case", PROBE_CASES)
def test_forged_manifests_are_refused_before_any_tensor_byte_is_read(case: str) -> None:
    (field, value), reason = PROBE_CASES[case]
    data = set_field(golden_codec().encode(PROBE), field, value)
    with pytest.raises(WireError, match=re.escape(reason)):
        golden_codec().decode(data, max_bytes=LIMIT)


def test_the_padding_between_tensors_must_be_zero_bytes() -> None:
    data = encode(MESSAGES[SCAF])  # params (28 bytes), 4 bytes of padding, step.control
    (header_len,) = struct.unpack_from("<I", data, 4)
    assert data[8 + header_len + 28 : 8 + header_len + 32] == bytes(4)
    with pytest.raises(WireError, match=r"tensor 'step\.control': the padding before it is not"):
        decode(flip(8 + header_len + 29, 0)(data), max_bytes=LIMIT)


# --- golden files: a format change shows in review ----------------------------------------

REGENERATE = "if the format change is intended: python tests/wire_golden.py --write"


@pytest.mark.parametrize("name", GOLDEN)
def test_a_golden_message_encodes_to_its_file_byte_for_byte(name: str) -> None:
    assert golden_codec().encode(GOLDEN[name]) == golden_file(name).read_bytes(), REGENERATE


@pytest.mark.parametrize("name", GOLDEN)
def test_a_golden_file_decodes_to_its_message(name: str) -> None:
    assert_same(
        GOLDEN[name], golden_codec().decode(golden_file(name).read_bytes(), max_bytes=LIMIT)
    )


def test_golden_files_cover_every_built_in_kind_and_variant_and_are_small() -> None:
    assert differing() == [], REGENERATE  # none missing, none left over
    headers = [split(golden_file(name).read_bytes())[0] for name in GOLDEN]
    codec = default_codec()
    assert {h["kind"] for h in headers} == {*codec.kinds.tags, "probe"}
    assert {h["step"]["tag"] for h in headers if "step" in h} == set(codec.steps.tags)
    assert {h["extra"]["tag"] for h in headers if h.get("extra")} == set(codec.extras.tags)
    tags = {x["tag"] for h in headers for x in h.get("transforms", [])}
    assert tags == set(codec.transforms.tags)
    assert all(h["version"] == VERSION for h in headers)
    assert sum(golden_file(name).stat().st_size for name in GOLDEN) < 8 * 1024


# --- chunking -------------------------------------------------------------------------


def test_chunks_cut_at_size_and_an_empty_message_is_one_empty_chunk() -> None:
    assert list(chunks(b"abcdefg", 3)) == [b"abc", b"def", b"g"]
    assert list(chunks(b"", 3)) == [b""]
    assert [(c.index, c.total) for c in frames(b"abcdef", "m", 3)] == [(0, 2), (1, 2)]
    assert list(frames(b"", "m")) == [Chunk("m", 0, 1, b"")]
    with pytest.raises(ValueError, match="at least 1 byte"):
        list(chunks(b"abc", 0))


def test_a_70mb_update_passes_in_chunks_under_grpcs_4mb_limit() -> None:
    bits = np.arange(70 * MiB // 4, dtype=np.uint32)  # every element a distinct bit pattern
    data = encode(FitRes("big", 1, bits.view(np.float32), 10, 1, 0.5))
    del bits  # peak memory: the message, the assembler's buffer, the reassembled bytes
    assembler = Assembler(max_bytes=72 * MiB)
    whole, count = None, 0
    for chunk in frames(data, "m-1"):
        assert len(chunk.payload) <= DEFAULT_CHUNK_BYTES < 4_000_000
        whole, count = assembler.feed(chunk), count + 1
        assert whole is None or count == chunk.total
    del data
    assert whole is not None
    assert count == 71
    out = decode(whole, max_bytes=72 * MiB)
    assert isinstance(out, FitRes)
    assert np.array_equal(out.update.view(np.uint32), np.arange(70 * MiB // 4, dtype=np.uint32))


def test_the_size_limit_holds_at_64mb() -> None:
    payload = bytes(MiB)
    assembler = Assembler(max_bytes=64 * MiB)
    for i in range(64):
        assert assembler.feed(Chunk("big", i, 65, payload)) is None
    with pytest.raises(WireError, match=r"chunk 64 of message 'big': message exceeds max_bytes"):
        assembler.feed(Chunk("big", 64, 65, payload))
    assert assembler.pending is None  # the partial message was dropped


def test_tiny_chunks_cost_no_more_memory_than_the_message() -> None:
    n = 20_000  # one byte each: a list of payloads would hold 20,000 objects (~1 MB)
    assembler = Assembler(max_bytes=n)
    tracemalloc.start()
    try:
        for i in range(n - 1):
            assembler.feed(Chunk("m", i, n, b"x"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * n
    assert assembler.feed(Chunk("m", n - 1, n, b"y")) == b"x" * (n - 1) + b"y"


def test_exactly_max_bytes_is_accepted() -> None:
    assert Assembler(max_bytes=10).feed(Chunk("m", 0, 1, bytes(10))) == bytes(10)
    with pytest.raises(WireError, match="exceeds max_bytes=10"):
        Assembler(max_bytes=10).feed(Chunk("m", 0, 1, bytes(11)))


FIRST = Chunk("m", 0, 3, b"a")  # the first of three
ONLY = Chunk("m", 0, 1, b"a")  # a whole message
CHUNK_CASES: dict[str, tuple[list[Chunk], str]] = {
    # case: (a stream whose last chunk is bad, what the WireError must say)
    "starts mid-message": ([Chunk("m", 1, 2, b"b")], "out of order, a message starts at chunk 0"),
    "out of order": ([FIRST, Chunk("m", 2, 3, b"c")], "chunk 2 of message 'm': out of order"),
    "duplicate": ([FIRST, FIRST], "chunk 0 of message 'm': duplicate, expected chunk 1"),
    "total changes": ([FIRST, Chunk("m", 1, 4, b"b")], "total 4, earlier chunks said 3"),
    "interleaved": ([FIRST, Chunk("n", 0, 1, b"b")], "message 'm' is incomplete (1 of 3 chunks)"),
    "replayed message": ([ONLY, ONLY], "message 'm' was already received"),
    "index past total": ([Chunk("m", 2, 2, b"a")], "index 2 is not in [0, total=2)"),
    "negative index": ([Chunk("m", -1, 2, b"a")], "index -1 is not in"),
    "zero total": ([Chunk("m", 0, 0, b"")], "total 0 is not in [1, max_bytes]"),
    "absurd total": ([Chunk("m", 0, 10**9, b"a")], "total 1000000000 is not in [1, max_bytes]"),
    "empty id": ([Chunk("", 0, 1, b"a")], "message_id must be a non-empty string"),
    "empty payload": ([Chunk("m", 0, 2, b"")], "empty payload in a message of 2 chunks"),
    "payload as text": ([Chunk("m", 0, 1, "a")], "payload must be bytes, got str"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", CHUNK_CASES)
def test_bad_chunk_streams_are_refused(case: str) -> None:
    stream, reason = CHUNK_CASES[case]
    assembler = Assembler(max_bytes=MiB)
    for chunk in stream[:-1]:
        assembler.feed(chunk)
    with pytest.raises(WireError, match=re.escape(reason)):
        assembler.feed(stream[-1])


def test_a_stream_ending_mid_message_is_refused() -> None:
    with pytest.raises(WireError, match=r"stream ended after chunk 1 of 2 of message 'm'"):
        list(reassemble([Chunk("m", 0, 2, b"a")], max_bytes=MiB))


def test_after_a_refusal_the_next_message_is_assembled() -> None:
    assembler = Assembler(max_bytes=MiB)
    assembler.feed(Chunk("m", 0, 2, b"a"))
    with pytest.raises(WireError):
        assembler.feed(Chunk("m", 0, 2, b"a"))
    assert assembler.feed(Chunk("n", 0, 1, b"ok")) == b"ok"


@given(st.lists(st.binary(max_size=300), max_size=5), st.integers(1, 64))
def test_streams_of_messages_reassemble_exactly(messages: list[bytes], size: int) -> None:
    stream = [c for i, m in enumerate(messages) for c in frames(m, f"msg-{i}", size)]
    assert list(reassemble(stream, max_bytes=300)) == messages


def test_encoded_messages_survive_chunking() -> None:
    stream = [c for name, m in MESSAGES.items() for c in frames(encode(m), name, 64)]
    decoded = [decode(b, max_bytes=LIMIT) for b in reassemble(stream, max_bytes=LIMIT)]
    for msg, out in zip(MESSAGES.values(), decoded, strict=True):
        assert_same(msg, out)


@pytest.mark.parametrize("size", [1, 3, 8, 1 << 10, 4096 * 3 + 5, 1 << 30])
def test_a_message_in_pieces_is_cut_exactly_like_its_joined_bytes(size: int) -> None:
    msg = FitRes("client/7", 3, np.arange(3001, dtype=np.float32), 12, 4, 0.25)
    parts = encode_parts(msg)
    assert len(parts) == 2  # the header, then a view of the update (not a copy)
    assert np.shares_memory(np.frombuffer(parts[1], np.float32), msg.update)
    joined = encode(msg)
    assert b"".join(parts) == joined
    assert [(c.index, c.total, c.payload) for c in frames(parts, "m", size)] == [
        (c.index, c.total, c.payload) for c in frames(joined, "m", size)
    ]
