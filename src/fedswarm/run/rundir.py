"""The run directory: what a run leaves behind, written as it goes.

``config.toml`` (resolved), ``metrics.jsonl`` (a line per completed round),
``checkpoint.safetensors`` (resume point), and at the end ``model.safetensors``,
``summary.json`` and ``curves.png``. Reopening a directory whose checkpoint belongs to
the same config resumes it; a different config is refused rather than overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.numpy import save_file

from fedswarm.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from fedswarm.driver import RoundReport
from fedswarm.messages import ClientId, ClientMemory
from fedswarm.run.config import RunConfig, config_sha256, dump_config
from fedswarm.run.plots import plot_curves
from fedswarm.strategy import ServerState

__all__ = ["RunDirectory", "RunDirectoryError", "write_results"]


class RunDirectoryError(RuntimeError):
    pass


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class RunDirectory:
    path: Path
    config: RunConfig
    config_sha256: str

    @classmethod
    def open(cls, path: Path, config: RunConfig) -> RunDirectory:
        path.mkdir(parents=True, exist_ok=True)
        text, existing = dump_config(config), path / "config.toml"
        if existing.exists() and existing.read_text(encoding="utf-8") != text:
            raise RunDirectoryError(
                f"{path} holds a run of a different config (its {existing.name} differs); "
                "choose another --out directory or delete it"
            )
        rundir = cls(path, config, config_sha256(config))
        rundir._truncate_metrics()  # also refuses a damaged or foreign checkpoint
        _write_atomic(existing, text)
        return rundir

    def checkpoint(self) -> Checkpoint | None:
        path = self.path / "checkpoint.safetensors"
        if not path.exists():
            return None
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            raise RunDirectoryError(str(exc)) from None
        if ckpt.config_sha256 != self.config_sha256:
            raise RunDirectoryError(f"{path} belongs to a different config; delete it")
        return ckpt

    def _truncate_metrics(self) -> None:
        """Keep only the metric lines of rounds the checkpoint covers (a crash may leave more)."""
        ckpt = self.checkpoint()
        done = ckpt.state.round if ckpt else 0
        kept = [r for r in self.records() if int(r["round"]) <= done]
        _write_atomic(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))

    def records(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def record_round(
        self, state: ServerState, report: RoundReport, memories: Mapping[ClientId, ClientMemory]
    ) -> None:
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(report.record()) + "\n")
            f.flush()
            os.fsync(f.fileno())  # on disk before the checkpoint that covers it
        save_checkpoint(
            self.path / "checkpoint.safetensors", Checkpoint(state, memories, self.config_sha256)
        )

    def finish(self, state: ServerState) -> dict[str, Any]:
        """Write the final model, ``summary.json`` and ``curves.png``; return the summary."""
        return write_results(self.path, self.config, state, self.records())


def write_results(
    path: Path, config: RunConfig, state: ServerState, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """A finished run's ``model.safetensors``, ``summary.json`` and ``curves.png`` in
    ``path`` (a run directory, or a coordinator's state directory); returns the summary."""
    model = path / "model.safetensors"
    save_file({k: v.copy() for k, v in state.params.arrays().items()}, str(model))
    last_eval: dict[str, Any] = next((r for r in reversed(records) if "eval_accuracy" in r), {})
    summary = {
        "eval_accuracy": last_eval.get("eval_accuracy"),
        "eval_loss": last_eval.get("eval_loss"),
        "fed_eval_accuracy": last_eval.get("fed_eval_accuracy"),
        "rounds": state.round,
        "seed": config.seed,
        "config_sha256": config_sha256(config),
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "seconds": sum(float(r["seconds"]) for r in records),
    }
    _write_atomic(path / "summary.json", json.dumps(summary, indent=2) + "\n")
    title = f"{config.strategy.name} on {config.data.name.value}"
    plot_curves(records, path / "curves.png", title)
    return summary
