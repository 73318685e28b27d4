"""Learning curves of a run: accuracy and loss per round."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt

from fedswarm.reports import RoundRecord

__all__ = ["plot_curves"]

_Value = Callable[[RoundRecord], float | None]


def _series(records: Sequence[RoundRecord], value: _Value) -> tuple[list[int], list[float]]:
    pts = [(r.round, v) for r in records if (v := value(r)) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


_ACCURACY: tuple[tuple[_Value, str], ...] = (
    (lambda r: None if r.central is None else r.central.accuracy, "central test"),
    (lambda r: None if r.federated is None else r.federated.accuracy, "clients' test"),
)
_LOSS: tuple[tuple[_Value, str], ...] = (
    (lambda r: r.train_loss, "train (clients)"),
    (lambda r: None if r.central is None else r.central.loss, "central test"),
    (lambda r: None if r.federated is None else r.federated.loss, "clients' test"),
)


def plot_curves(records: Sequence[RoundRecord], path: Path, title: str) -> None:
    """Two panels: evaluation accuracy, and train/evaluation loss, against the round."""
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for value, label in _ACCURACY:
        xs, ys = _series(records, value)
        if xs:
            acc.plot(xs, ys, marker=".", label=label)
    acc.set(xlabel="round", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for value, label in _LOSS:
        xs, ys = _series(records, value)
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
