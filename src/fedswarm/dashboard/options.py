"""The command line's flags for watching a run (``--quiet``, ``--dashboard``, ...), checked
into a :class:`View`. Imports no web stack: parsing a command line stays fast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fedswarm.dashboard.commands import DashboardOptions
    from fedswarm.reports import RoundReport

__all__ = ["DashboardFlag", "DashboardListen", "PkiOption", "QuietFlag", "ServerName", "View",
           "each", "view"]  # fmt: skip

DashboardFlag = Annotated[
    bool, typer.Option("--dashboard", help="Serve a live web dashboard (127.0.0.1:8765).")
]
DashboardListen = Annotated[
    str | None,
    typer.Option(
        metavar="HOST:PORT",
        help="Where to serve the dashboard (implies --dashboard). An address other than "
        "loopback is served over HTTPS only, with the server node certificate of --pki.",
    ),
]
QuietFlag = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar (the round lines stay).")
]
PkiOption = Annotated[
    Path | None, typer.Option(help="Federation PKI: serve the dashboard over HTTPS.")
]
ServerName = Annotated[str | None, typer.Option(help="The PKI's server node (with --pki).")]


@dataclass(frozen=True)
class View:
    """How a command shows its run: the progress bar, and the dashboard if asked for."""

    quiet: bool = False
    dashboard: DashboardOptions | None = None


def view(
    quiet: bool,
    dashboard: bool,
    listen: str | None,
    pki: Path | None,
    name: str | None,
    *,
    https_on_loopback: bool = True,
) -> View:
    """The flags, checked before the run starts (DashboardError saying what is wrong)."""
    from fedswarm.dashboard.commands import dashboard_options

    return View(quiet, dashboard_options(dashboard, listen, pki, name, https_on_loopback))


def each(*callbacks: Callable[[RoundReport], None]) -> Callable[[RoundReport], None]:
    """One ``on_round`` calling each of ``callbacks`` in turn."""

    def on_round(report: RoundReport) -> None:
        for callback in callbacks:
            callback(report)

    return on_round
