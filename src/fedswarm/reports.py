"""What a round reports, and the one definition of a line of ``metrics.jsonl``.

:class:`RoundReport` is what the driver hands ``on_round`` (the live view: who replied, who
failed and why). :class:`RoundRecord` is what is kept of it: one line of ``metrics.jsonl``,
one row of the run store. Its keys are written by :meth:`RoundRecord.to_json` and read back
by :meth:`RoundRecord.from_json` and nowhere else, so a reader (the summary, the curves, the
CLI's round line, the run store) never parses a line by hand::

    {"round": 3, "train_loss": 0.41, "num_clients": 20, "num_failures": 0,
     "update_norm": 1.7, "seconds": 0.12,
     "eval_loss": 0.35, "eval_accuracy": 0.9,            # when evaluated centrally
     "fed_eval_loss": 0.4, "fed_eval_accuracy": 0.88,    # when evaluated by clients
     "metrics": {"privacy/epsilon": 1.2}}                # wrappers' values, when any

``metrics`` holds what wrappers add to a round (privacy's spent ``epsilon``, robust
aggregation's summary of its scores), each under its own ``namespace/name`` key so two
wrappers cannot collide; it is left out of the line when empty, so the lines of runs
without wrappers keep the keys they always had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from fedswarm.messages import ClientId, Failure
from fedswarm.training import Evaluation

__all__ = ["ClientFitStats", "EvalScore", "RecordError", "RoundRecord", "RoundReport"]


@dataclass(frozen=True)
class ClientFitStats:
    """What a round saw of one participant's counted update (drift monitoring uses it)."""

    train_loss: float  # its local training loss
    update_norm: float  # L2 norm of its update
    num_examples: int


@dataclass(frozen=True)
class RoundReport:
    """A completed round as the driver reports it to ``on_round``."""

    round: int
    num_clients: int
    num_failures: int
    train_loss: float
    update_norm: float
    seconds: float  # wall time of the fit round (sampling to aggregation)
    central: Evaluation | None = None
    federated: Evaluation | None = None
    replied: tuple[ClientId, ...] = ()  # whose updates count
    failures: tuple[Failure, ...] = ()  # who failed and why (refusals included)
    metrics: Mapping[str, float] = field(default_factory=dict)  # ``namespace/name`` keys
    # The aggregator's per-participant scores (name -> one value per ``replied``, in its
    # order); arrays, so left out of ``==``. The run store keeps them, one row per value.
    scores: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False)
    clients: Mapping[ClientId, ClientFitStats] = field(default_factory=dict)  # of ``replied``
    # ``replied``'s updates (clients, dim) in that order, when the policy keeps them
    updates: np.ndarray | None = field(default=None, compare=False)


class RecordError(ValueError):
    """A ``metrics.jsonl`` line (or stored round) that is not a round record; names it."""


@dataclass(frozen=True)
class EvalScore:
    """An evaluation as recorded: loss and accuracy (the example count is not kept)."""

    loss: float
    accuracy: float


@dataclass(frozen=True)
class RoundRecord:
    """One line of ``metrics.jsonl``: what is kept of a completed round."""

    round: int
    train_loss: float
    num_clients: int
    num_failures: int
    update_norm: float
    seconds: float
    central: EvalScore | None = None  # on the held-out central test set
    federated: EvalScore | None = None  # on sampled clients' local test splits
    metrics: Mapping[str, float] = field(default_factory=dict)  # read-only once built

    def __post_init__(self) -> None:
        for key in self.metrics:
            _check_metric_key(key, "RoundRecord.metrics")
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    @classmethod
    def from_report(cls, report: RoundReport) -> RoundRecord:
        return cls(
            round=report.round,
            train_loss=report.train_loss,
            num_clients=report.num_clients,
            num_failures=report.num_failures,
            update_norm=report.update_norm,
            seconds=report.seconds,
            central=_score(report.central),
            federated=_score(report.federated),
            metrics=report.metrics,
        )

    def to_json(self) -> dict[str, Any]:
        """The line's keys, in the order ``metrics.jsonl`` has always had them."""
        out: dict[str, Any] = {
            "round": self.round,
            "train_loss": self.train_loss,
            "num_clients": self.num_clients,
            "num_failures": self.num_failures,
            "update_norm": self.update_norm,
            "seconds": self.seconds,
        }
        for prefix, score in (("eval", self.central), ("fed_eval", self.federated)):
            if score is not None:
                out |= {f"{prefix}_loss": score.loss, f"{prefix}_accuracy": score.accuracy}
        if self.metrics:
            out["metrics"] = dict(self.metrics)
        return out

    @classmethod
    def from_json(cls, raw: object, where: str) -> RoundRecord:
        """Parse one line (already JSON-decoded); ``where`` names it in errors
        (``"runs/demo/metrics.jsonl line 3"``)."""
        if not isinstance(raw, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise RecordError(
                f"{where}: unknown key(s) {unknown}; a round record has {sorted(_KEYS)}"
            )
        line = _Line(raw, where)
        return cls(
            round=line.integer("round"),
            train_loss=line.number("train_loss"),
            num_clients=line.integer("num_clients"),
            num_failures=line.integer("num_failures"),
            update_norm=line.number("update_norm"),
            seconds=line.number("seconds"),
            central=line.score("eval"),
            federated=line.score("fed_eval"),
            metrics=line.metrics(),
        )


_REQUIRED = ("round", "train_loss", "num_clients", "num_failures", "update_norm", "seconds")
_KEYS = {
    *_REQUIRED,
    *(f"{p}_{k}" for p in ("eval", "fed_eval") for k in ("loss", "accuracy")),
    "metrics",
}


def _score(evaluation: Evaluation | None) -> EvalScore | None:
    return None if evaluation is None else EvalScore(evaluation.loss, evaluation.accuracy)


def _check_metric_key(key: object, where: str) -> None:
    if not isinstance(key, str) or key.count("/") != 1 or "" in key.split("/"):
        raise RecordError(
            f"{where}: metric key {key!r} is not 'namespace/name' (e.g. 'privacy/epsilon')"
        )


@dataclass(frozen=True)
class _Line:
    """Typed reads of one decoded line; every error names the line and the key."""

    raw: dict[str, Any]
    where: str

    def _get(self, key: str) -> object:
        if key not in self.raw:
            raise RecordError(f"{self.where}: missing key {key!r}")
        return self.raw[key]

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RecordError(f"{self.where}: {key!r} must be a whole number >= 0, got {value!r}")
        return value

    def number(self, key: str) -> float:
        return _number(self._get(key), key, self.where)

    def score(self, prefix: str) -> EvalScore | None:
        keys = (f"{prefix}_loss", f"{prefix}_accuracy")
        present = [k in self.raw for k in keys]
        if not any(present):
            return None
        if not all(present):
            raise RecordError(f"{self.where}: {keys[0]!r} and {keys[1]!r} come together")
        return EvalScore(self.number(keys[0]), self.number(keys[1]))

    def metrics(self) -> Mapping[str, float]:
        raw = self.raw.get("metrics", {})
        if not isinstance(raw, dict):
            raise RecordError(f"{self.where}: 'metrics' must be an object, got {raw!r}")
        for key in raw:
            _check_metric_key(key, self.where)
        return {k: _number(v, f"metrics.{k}", self.where) for k, v in raw.items()}


def _number(value: object, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where}: {key!r} must be a number, got {value!r}")
    return float(value)
