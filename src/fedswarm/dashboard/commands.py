"""What the commands need of the dashboard: options checked before a run starts, a live
dashboard around a round loop, and serving a finished run until Ctrl-C.

``fedswarm run --dashboard``, ``fedswarm server --dashboard`` and ``fedswarm dashboard
RUN_DIR`` go through here (and ``fedswarm peer`` can: it is a round loop with a store).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fedswarm.dashboard.app import create_app
from fedswarm.dashboard.server import (
    DEFAULT_LISTEN,
    DashboardError,
    DashboardServer,
    Listen,
    TlsFiles,
)
from fedswarm.dashboard.snapshot import LiveFeed, RunSource
from fedswarm.reports import RoundReport
from fedswarm.run.config import RunConfig

__all__ = ["DashboardOptions", "dashboard_options", "live_dashboard", "serve_finished"]


@dataclass(frozen=True)
class DashboardOptions:
    listen: Listen
    tls: TlsFiles | None = None


def dashboard_options(
    enabled: bool,
    listen: str | None,
    pki: Path | None = None,
    name: str | None = None,
    https_on_loopback: bool = True,
) -> DashboardOptions | None:
    """The command line's dashboard flags, checked (None: no dashboard). ``--dashboard-listen``
    implies ``--dashboard``; with ``pki`` the dashboard is served over HTTPS with the server
    node certificate ``name`` (the only server one when None), on loopback too unless
    ``https_on_loopback`` is False (``fedswarm server``, which always has a PKI)."""
    if not enabled and listen is None:
        return None
    where = Listen.parse(listen or DEFAULT_LISTEN)
    wants_tls = pki is not None and (https_on_loopback or not where.loopback)
    tls = server_tls(pki, name) if pki is not None and wants_tls else None
    where.check_tls(tls)
    return DashboardOptions(where, tls)


def server_tls(pki: Path, name: str | None) -> TlsFiles:
    """The federation's server node certificate and key (checked: present, role server)."""
    from fedswarm.deploy.node import NodeSetupError, find_node
    from fedswarm.security.pki import Role

    try:
        node = find_node(pki, Role.SERVER, name)
    except NodeSetupError as exc:
        raise DashboardError(f"no certificate for the dashboard's HTTPS: {exc}") from None
    return TlsFiles(node.cert, node.key)


@contextmanager
def live_dashboard(
    options: DashboardOptions | None,
    out: Path,
    config: RunConfig,
    say: Callable[[str], None],
) -> Iterator[Callable[[RoundReport], None]]:
    """Serve the dashboard of the run writing ``out`` while the block runs; yields the
    ``on_round`` to call after each committed round (a no-op without ``options``)."""
    if options is None:
        yield lambda report: None
        return
    feed = LiveFeed()
    app = create_app(RunSource(out, config), feed)
    with DashboardServer(app, options.listen, options.tls) as server:
        say(f"dashboard: {server.url} (metrics: {server.url}metrics; it stops with the run, "
            f"`fedswarm dashboard {out}` serves it after)")  # fmt: skip
        yield feed.publish


def serve_finished(
    run_dir: Path,
    options: DashboardOptions,
    say: Callable[[str], None],
    stop: threading.Event | None = None,
) -> None:
    """Serve the dashboard of the run in ``run_dir`` until Ctrl-C (or ``stop`` is set). The
    store is re-read every few seconds, so a run still being written shows its new rounds."""
    source = RunSource.finished(run_dir)
    stop = stop or threading.Event()
    with DashboardServer(create_app(source), options.listen, options.tls) as server:
        say(f"dashboard of {run_dir}: {server.url} (Ctrl-C to stop)")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
