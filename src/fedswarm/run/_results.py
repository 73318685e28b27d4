"""A finished run's files: ``metrics.jsonl``, ``model.safetensors``, ``summary.json`` and
``curves.png``, all derived from the run store (which stays the record)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors.numpy import save

from fedswarm.privacy.summary import privacy_summary
from fedswarm.reports import RoundRecord
from fedswarm.run._blobs import write_atomic
from fedswarm.run.config import RunConfig, config_sha256
from fedswarm.run.plots import plot_curves
from fedswarm.strategy import ServerState

__all__ = ["METRICS", "metrics_line", "write_metrics", "write_results"]

METRICS = "metrics.jsonl"


def metrics_line(record: RoundRecord) -> str:
    return json.dumps(record.to_json()) + "\n"


def write_metrics(folder: Path, records: Sequence[RoundRecord]) -> None:
    write_atomic(folder / METRICS, "".join(map(metrics_line, records)).encode())


def write_results(
    folder: Path, config: RunConfig, state: ServerState, records: Sequence[RoundRecord]
) -> dict[str, Any]:
    """Write the finished run's files into ``folder``; returns the summary."""
    write_metrics(folder, records)
    # The model in its own dtypes, no metadata: the file fedswarm has always written.
    model = save({k: v.copy() for k, v in state.params.arrays().items()})
    write_atomic(folder / "model.safetensors", model)
    central = next((r.central for r in reversed(records) if r.central), None)
    federated = next((r.federated for r in reversed(records) if r.federated), None)
    summary: dict[str, Any] = {
        "eval_accuracy": central.accuracy if central else None,
        "eval_loss": central.loss if central else None,
        "fed_eval_accuracy": federated.accuracy if federated else None,
        "rounds": state.round,
        "seed": config.seed,
        "config_sha256": config_sha256(config),
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "seconds": sum(r.seconds for r in records),
    }
    if config.privacy is not None:
        rate = config.strategy.fraction
        summary["privacy"] = privacy_summary(config.privacy, rate, state, config.rounds)
    write_atomic(folder / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    title = f"{config.strategy.name} on {config.data.name.value}"
    plot_curves(records, folder / "curves.png", title)
    return summary
