"""Parts that several message kinds carry, for their writers and readers to share: the
model's parameters (a spec in the header, one float32 vector) and the local training
settings. A protocol's own kinds use them too (they are exported by :mod:`fedswarm.wire`).
"""

from __future__ import annotations

import math

from fedswarm.params import Params, ParamSpec, TensorSpec
from fedswarm.training import LocalTraining, OptimizerKind, Precision
from fedswarm.wire._errors import WireError
from fedswarm.wire._fields import Fields, Header, check_integer, check_text
from fedswarm.wire._tensors import DTYPES, TensorReader, TensorWriter

__all__ = ["read_params", "read_training", "write_params", "write_training"]


def write_params(params: Params, tensors: TensorWriter, where: str) -> list[Header]:
    """The header rows of ``params``'s spec (for a ``"spec"`` field); the flat vector goes
    to ``tensors`` as ``"params"``."""
    rows: list[Header] = []
    for i, spec in enumerate(params.spec.tensors):
        row = f"{where}.spec[{i}]"
        if spec.dtype not in DTYPES:
            raise WireError(f"{row}.dtype: cannot send dtype {spec.dtype!r}")
        shape = [check_integer(d, f"{row}.shape") for d in spec.shape]
        rows.append(
            {"name": check_text(spec.name, f"{row}.name"), "shape": shape, "dtype": spec.dtype}
        )
    tensors.vector("params", params.flat)
    return rows


def read_params(rows: list[Fields], tensors: TensorReader) -> Params:
    """The parameters written by :func:`write_params`: spec ``rows`` and the ``"params"``
    vector, which must be exactly as long as the spec says."""
    specs: dict[str, TensorSpec] = {}
    for row in rows:
        spec = TensorSpec(row.text("name"), row.integers("shape"), row.text("dtype"))
        row.done()
        if spec.dtype not in DTYPES:
            raise WireError(f"{row.where}.dtype: unknown dtype {spec.dtype!r}")
        if spec.name in specs:
            raise WireError(f"{row.where}.name: duplicate tensor name {spec.name!r}")
        specs[spec.name] = spec
    # Sizes in Python integers: a forged shape cannot overflow int64 arithmetic here.
    flat = tensors.vector("params", length=sum(math.prod(s.shape) for s in specs.values()))
    return Params(ParamSpec(tuple(specs.values())), flat)  # the vector's length matches the spec


def write_training(lt: LocalTraining) -> Header:
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


def read_training(f: Fields) -> LocalTraining:
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
