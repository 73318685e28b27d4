"""Learning curves of a run: accuracy and loss per round."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt

__all__ = ["plot_curves"]


def _series(records: Sequence[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["round"], r[key]) for r in records if key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_curves(records: Sequence[dict[str, float]], path: Path, title: str) -> None:
    """Two panels: evaluation accuracy, and train/evaluation loss, against the round."""
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for key, label in (("eval_accuracy", "central test"), ("fed_eval_accuracy", "clients' test")):
        xs, ys = _series(records, key)
        if xs:
            acc.plot(xs, ys, marker=".", label=label)
    acc.set(xlabel="round", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for key, label in (
        ("train_loss", "train (clients)"),
        ("eval_loss", "central test"),
        ("fed_eval_loss", "clients' test"),
    ):
        xs, ys = _series(records, key)
        if xs:
            loss.plot(xs, ys, marker=".", label=label)
    loss.set(xlabel="round", ylabel="loss", title="loss")
    for ax in (acc, loss):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
