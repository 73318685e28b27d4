"""Why a coordinator cannot listen, and why a participant cannot connect, in words to act on.

gRPC reports a failed bind as "Failed to bind to address" whatever the cause: a plain socket
bound the same way finds it (:func:`bind_problem`). A failed connection it does explain, in
the status details of the first call ("failed to connect to all addresses; last error:
..."); :func:`read_dial_failure` sorts that into what retrying can fix (the coordinator is
down or unreachable) and what it cannot (a certificate one side refuses).
"""

from __future__ import annotations

import enum
import errno
import re
import socket
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DialFailure",
    "DialProblem",
    "ListenError",
    "bind_problem",
    "host_port",
    "listen_error",
    "read_dial_failure",
]

_BIND_CAUSES: Final = {
    errno.EADDRINUSE: "the port is in use: another program listens on it, or an earlier "
    "coordinator is still running; stop it or listen on another port",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's (0.0.0.0 listens on all)",
    errno.EACCES: "ports below 1024 need privileges; listen on a higher port",
}
_CONNECT_FAILED: Final = "failed to connect to all addresses"
# gRPC's "last error": an optional status name, the address dialled, then the reason.
_LAST_ERROR: Final = re.compile(
    r"last error: (?:[A-Z_]+: )?(?:(?:ipv4|ipv6|unix|dns):\S+?: )?(?P<reason>.*?)(?:: OK)?$",
    re.S,
)
# BoringSSL and gRPC's own certificate checks, as they appear in that reason.
_TLS_REFUSAL: Final = re.compile(
    r"CERTIFICATE|Tls handshake failed|SSL_ERROR|Hostname Verification|verification check"
)


class ListenError(OSError):
    """The coordinator cannot listen on ``address``; the text names the likely cause."""

    def __init__(self, address: str, cause: str) -> None:
        super().__init__(f"cannot listen on {address}: {cause}")
        self.address = address
        self.cause = cause


def host_port(host: str, port: int) -> str:
    """``host:port`` as gRPC parses it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_problem(host: str, port: int) -> ListenError | None:
    """Why ``host:port`` cannot be listened on, found by binding a plain socket there as
    gRPC does (address reuse on, port sharing off); None if it can be."""
    address = host_port(host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        return ListenError(address, f"{host!r} is not a name or address of this machine ({err})")
    family, kind, proto, _, where = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(where)
        except OSError as err:
            return ListenError(address, _BIND_CAUSES.get(err.errno or 0, str(err)))
    return None


def listen_error(host: str, port: int) -> ListenError:
    """Why gRPC could not listen on ``host:port``."""
    return bind_problem(host, port) or ListenError(
        host_port(host, port),
        "gRPC cannot bind it, a plain socket can (GRPC_VERBOSITY=debug shows why)",
    )


class DialProblem(enum.Enum):
    UNREACHABLE = "unreachable"  # no connection, or it broke: the coordinator may come back
    UNTRUSTED_COORDINATOR = "untrusted coordinator"  # we refuse its certificate: stop
    CLOSED_IN_HANDSHAKE = "closed in the handshake"  # it refuses ours (or died just then)


@dataclass(frozen=True)
class DialFailure:
    problem: DialProblem
    reason: str  # gRPC's words, without its prefixes

    def explain(self, server: str) -> str:
        """What happened at ``server`` and what to check, in one line."""
        if self.problem is DialProblem.UNTRUSTED_COORDINATOR:
            return (
                f"this participant does not accept the certificate of {server} ({self.reason}):"
                " is the CA certificate it trusts the federation's, and does the coordinator's"
                " certificate name the address dialled?"
            )
        if self.problem is DialProblem.CLOSED_IN_HANDSHAKE:
            return (
                f"{server} closed the connection during the TLS handshake ({self.reason}): it"
                " does not accept this participant's certificate (issued by another CA,"
                " expired, or not a client certificate); the coordinator's log says which"
            )
        return f"cannot reach {server}: {self.reason}"


def read_dial_failure(details: str) -> DialFailure | None:
    """The failure to connect that a call's status ``details`` describe; None if they
    describe something else (a stream that broke after connecting, a refusal by the
    coordinator's own check)."""
    if not details.startswith(_CONNECT_FAILED):
        return None
    match = _LAST_ERROR.search(details)
    reason = match["reason"].strip() if match else details
    if _TLS_REFUSAL.search(reason):
        return DialFailure(DialProblem.UNTRUSTED_COORDINATOR, reason)
    if "Socket closed" in reason:
        return DialFailure(DialProblem.CLOSED_IN_HANDSHAKE, reason)
    return DialFailure(DialProblem.UNREACHABLE, reason)
