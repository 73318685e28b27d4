"""Serving the dashboard from a thread of the run's process (uvicorn), loopback by default.

The socket is bound before the thread starts, so a taken port or a bad address is an error
the command reports at once, not a log line from a thread. An address other than loopback
serves HTTPS only, with a certificate of the federation's PKI (the coordinator's node
certificate): a run's participants and metrics are not for an open network.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

__all__ = ["DEFAULT_LISTEN", "DashboardError", "DashboardServer", "Listen", "TlsFiles"]

DEFAULT_LISTEN = "127.0.0.1:8765"
_START_TIMEOUT_S = 30.0


class DashboardError(RuntimeError):
    """The dashboard cannot be served as asked; says why and what to do."""


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate (chain) and its key: the server's node certificate."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Listen:
    host: str
    port: int  # 0: any free port (tests)

    @classmethod
    def parse(cls, text: str) -> Listen:
        """``HOST:PORT`` (``[v6]:PORT`` too); DashboardError naming the problem."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise DashboardError(
                f"--dashboard-listen {text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})"
            )
        return cls(host.strip("[]"), int(port))

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def check_tls(self, tls: TlsFiles | None) -> None:
        """Refuse a non-loopback address without TLS."""
        if tls is None and not self.loopback:
            raise DashboardError(
                f"the dashboard on {self.host} would be open to the network without TLS; "
                "listen on 127.0.0.1, or give the federation PKI (--pki, and --name for the "
                "server's node certificate) so it is served over HTTPS"
            )


class DashboardServer:
    """``with DashboardServer(app, listen, tls): ...``: serves ``app`` while the block runs."""

    def __init__(self, app: Starlette, listen: Listen, tls: TlsFiles | None = None) -> None:
        listen.check_tls(tls)
        self._app, self._listen, self._tls = app, listen, tls
        self._server = uvicorn.Server(self._config(app))
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def _config(self, app: Starlette) -> uvicorn.Config:
        tls = self._tls
        return uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
        )

    @property
    def url(self) -> str:
        if self._socket is None:
            raise DashboardError("the dashboard is not started")
        port = self._socket.getsockname()[1]
        host = f"[{self._listen.host}]" if ":" in self._listen.host else self._listen.host
        return f"{'https' if self._tls else 'http'}://{host}:{port}/"

    def start(self) -> str:
        """Bind, serve from a daemon thread, wait until it answers; the dashboard's URL."""
        self._socket = _bind(self._listen)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]},
            name="fedswarm-dashboard", daemon=True,
        )  # fmt: skip
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise DashboardError(f"the dashboard on {self._listen.host} did not start")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        hub = getattr(self._app.state, "hub", None)
        if hub is not None:
            hub.closing.set()  # ends the event streams, so shutdown need not wait for them
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> DashboardServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR (not SO_REUSEPORT): a port left in TIME_WAIT is usable, a taken one is not
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        taken = "the port is taken; choose another with --dashboard-listen HOST:PORT"
        why = taken if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise DashboardError(
            f"cannot serve the dashboard on {listen.host}:{listen.port}: {why}"
        ) from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock
