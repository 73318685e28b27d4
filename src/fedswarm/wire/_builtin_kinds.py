"""The five message kinds of a federated round: instructions, replies and failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, Header, check_integer, check_text
from fedswarm.wire._parts import read_params, read_training, write_params, write_training
from fedswarm.wire._tensors import TensorReader, TensorWriter

if TYPE_CHECKING:
    from fedswarm.wire._codec import Codec

__all__ = ["register_builtin_kinds"]


def register_builtin_kinds(codec: Codec) -> None:
    """Register ``fit_ins``, ``fit_res``, ``evaluate_ins``, ``evaluate_res`` and ``failure``
    into ``codec`` (one being built by :meth:`Codec.extended`)."""
    kinds = codec.kinds
    kinds.register("fit_ins", FitIns, write=_write_fit_ins, read=_read_fit_ins)
    kinds.register("fit_res", FitRes, write=_write_fit_res, read=_read_fit_res)
    kinds.register("evaluate_ins", EvaluateIns, write=_write_evaluate_ins, read=_read_evaluate_ins)
    kinds.register("evaluate_res", EvaluateRes, write=_write_evaluate_res, read=_read_evaluate_res)
    kinds.register("failure", Failure, write=_write_failure, read=_read_failure)


def _write_fit_ins(m: FitIns, t: TensorWriter, codec: Codec) -> Header:
    return {
        "run_id": check_text(m.run_id, "fit_ins.run_id"),
        "round": check_integer(m.round, "fit_ins.round"),
        "seed": check_integer(m.seed, "fit_ins.seed"),
        "training": write_training(m.training),
        "spec": write_params(m.params, t, "fit_ins"),
        "step": codec.steps.write(m.step, "step", t),
        "transforms": [
            codec.transforms.write(x, f"transforms.{i}", t) for i, x in enumerate(m.transforms)
        ],
    }


def _read_fit_ins(h: Fields, t: TensorReader, codec: Codec) -> FitIns:
    run_id, rnd, seed = h.text("run_id"), h.integer("round"), h.integer("seed")
    training = read_training(h.child("training"))
    params = read_params(h.children("spec"), t)
    step = codec.steps.read(h.child("step"), t.scoped("step", params.dim))
    transforms = tuple(
        codec.transforms.read(f, t.scoped(f"transforms.{i}", params.dim))
        for i, f in enumerate(h.children("transforms"))
    )
    return FitIns(run_id, rnd, params, training, step, seed, transforms)


def _write_fit_res(m: FitRes, t: TensorWriter, codec: Codec) -> Header:
    h: Header = {
        "client_id": check_text(m.client_id, "fit_res.client_id"),
        "round": check_integer(m.round, "fit_res.round"),
        "num_examples": check_integer(m.num_examples, "fit_res.num_examples"),
        "num_steps": check_integer(m.num_steps, "fit_res.num_steps"),
        "train_loss": float(m.train_loss),
    }
    t.vector("update", m.update)
    h["extra"] = None if m.extra is None else codec.extras.write(m.extra, "extra", t)
    return h


def _read_fit_res(h: Fields, t: TensorReader, codec: Codec) -> FitRes:
    client_id, rnd = h.text("client_id"), h.integer("round")
    num_examples, num_steps = h.integer("num_examples"), h.integer("num_steps")
    train_loss = h.number("train_loss")
    update = t.vector("update")
    extra_fields = h.optional_child("extra")
    extra = None
    if extra_fields is not None:  # its vectors are the update's length (e.g. SCAFFOLD's)
        extra = codec.extras.read(extra_fields, t.scoped("extra", len(update)))
    return FitRes(client_id, rnd, update, num_examples, num_steps, train_loss, extra)


def _write_evaluate_ins(m: EvaluateIns, t: TensorWriter, codec: Codec) -> Header:
    return {
        "run_id": check_text(m.run_id, "evaluate_ins.run_id"),
        "round": check_integer(m.round, "evaluate_ins.round"),
        "spec": write_params(m.params, t, "evaluate_ins"),
    }


def _read_evaluate_ins(h: Fields, t: TensorReader, codec: Codec) -> EvaluateIns:
    run_id, rnd = h.text("run_id"), h.integer("round")
    return EvaluateIns(run_id, rnd, read_params(h.children("spec"), t))


def _write_evaluate_res(m: EvaluateRes, t: TensorWriter, codec: Codec) -> Header:
    return {
        "client_id": check_text(m.client_id, "evaluate_res.client_id"),
        "round": check_integer(m.round, "evaluate_res.round"),
        "loss": float(m.loss),
        "accuracy": float(m.accuracy),
        "num_examples": check_integer(m.num_examples, "evaluate_res.num_examples"),
    }


def _read_evaluate_res(h: Fields, t: TensorReader, codec: Codec) -> EvaluateRes:
    client_id, rnd = h.text("client_id"), h.integer("round")
    loss, accuracy = h.number("loss"), h.number("accuracy")
    return EvaluateRes(client_id, rnd, loss, accuracy, h.integer("num_examples"))


def _write_failure(m: Failure, t: TensorWriter, codec: Codec) -> Header:
    return {
        "client_id": check_text(m.client_id, "failure.client_id"),
        "round": check_integer(m.round, "failure.round"),
        "stage": m.stage.name,
        "failure": m.kind.value,
        "refusal": None if m.refusal is None else m.refusal.value,
        "reason": check_text(m.reason, "failure.reason"),
    }


def _read_failure(h: Fields, t: TensorReader, codec: Codec) -> Failure:
    client_id, rnd, stage = h.text("client_id"), h.integer("round"), h.text("stage")
    kind = h.choice("failure", FailureKind)
    refusal = h.optional_choice("refusal", Refusal)
    try:
        return Failure(client_id, rnd, Stage(stage), kind, h.text("reason"), refusal)
    except ValueError as e:  # a malformed stage name, a refusal code without "refused"
        raise WireError(f"{h.where}: {e}") from None
