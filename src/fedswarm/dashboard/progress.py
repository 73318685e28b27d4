"""The terminal's view of a run: a live rich progress bar (round, loss, accuracy, ETA).

The bar is drawn only on a terminal and not under ``--quiet``; the per-round lines the
commands print are the same either way (above the bar on a terminal), because scripts and
tests read them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from fedswarm.reports import RoundReport

__all__ = ["CurrentStderr", "RoundBar", "round_bar"]

_COLUMNS = (
    TextColumn("round"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("loss [bold]{task.fields[loss]}"),
    TextColumn("acc [bold]{task.fields[acc]}"),
    TimeElapsedColumn(),
    TextColumn("eta"),
    TimeRemainingColumn(),
)


@dataclass
class RoundBar:
    """What a round loop calls: :meth:`on_round` after each round, :meth:`log` for notes."""

    progress: Progress
    task: TaskID
    line: Callable[[RoundReport], str | None]  # the round's printed line, if it has one
    _started: bool = False

    def on_round(self, report: RoundReport) -> None:
        if not self._started:  # a resumed run starts after round N: time its rounds from here
            self.progress.reset(self.task, completed=report.round - 1)
            self._started = True
        evaluation = report.central or report.federated
        loss = f"{report.train_loss:.4f}"
        if evaluation is None:
            self.progress.update(self.task, completed=report.round, loss=loss)
        else:
            acc = f"{evaluation.accuracy:.4f}"
            self.progress.update(self.task, completed=report.round, loss=loss, acc=acc)
        text = self.line(report)
        if text is not None:
            self.progress.console.print(text, highlight=False, soft_wrap=True)

    def log(self, note: str) -> None:
        self.progress.console.print(Text(note), soft_wrap=True)


@contextmanager
def round_bar(
    console: Console,
    total: int,
    line: Callable[[RoundReport], str | None],
    *,
    quiet: bool = False,
) -> Iterator[RoundBar]:
    """A :class:`RoundBar` over ``total`` rounds, drawn when ``console`` is a terminal and
    not ``quiet`` (otherwise only the lines are printed)."""
    enabled = console.is_terminal and not quiet
    with Progress(*_COLUMNS, console=console, transient=True, disable=not enabled) as progress:
        task = progress.add_task("rounds", total=total, loss="-", acc="-")
        yield RoundBar(progress, task, line)


class CurrentStderr:
    """A stream for a logging handler that writes to whatever ``sys.stderr`` is at the time:
    while the bar is drawn, rich has redirected it to print above the bar, so log lines do
    not tear it (a handler given ``sys.stderr`` itself would keep writing under it)."""

    def write(self, text: str) -> int:
        stream: TextIO = sys.stderr
        return stream.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
