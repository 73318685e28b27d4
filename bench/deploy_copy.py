"""The raw-copy baseline of ``bench/deployment.py``: the round's bytes over plain sockets.

The copier (``python -m bench.deploy_copy --clients N --bytes B --reps R``, from the
repository root) listens on loopback and says ``{"port": P}``; each participant process
connects with :func:`echo`. Then, R times, the copier sends B bytes to every receiver at
once (one thread each) and receives B bytes back from each, and at the end says
``{"seconds": [...]}``. The only framing is an 8-byte length. With ``--pki DIR`` both ends
wrap their sockets in mutual TLS (Python's ``ssl``, the federation's certificates): what
encryption alone costs, next to the round's gRPC over mutual TLS.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from fedswarm.security.pki import NodePaths, Role

__all__ = ["LENGTH", "echo", "main", "node_paths", "tls_context"]

LENGTH = struct.Struct("<Q")


def node_paths(pki: Path, name: str, role: Role) -> NodePaths:
    nodes = pki / "nodes"
    return NodePaths(name, role, nodes / f"{name}.key", nodes / f"{name}.crt", pki / "ca.crt")


def tls_context(paths: NodePaths) -> ssl.SSLContext:
    """Mutual TLS with ``paths``' certificate, trusting only the federation's CA."""
    server = paths.role is Role.SERVER
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    context = ssl.create_default_context(purpose, cafile=str(paths.ca_cert))
    context.load_cert_chain(paths.cert, paths.key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def echo(port: int, nbytes: int, reps: int, tls: ssl.SSLContext | None = None) -> None:
    """The receiving end: take ``nbytes`` (length-prefixed) and send as many back, ``reps``
    times."""
    buf = memoryview(bytearray(nbytes))
    plain = socket.create_connection(("127.0.0.1", port))
    with tls.wrap_socket(plain, server_hostname="127.0.0.1") if tls else plain as sock:
        for _ in range(reps):
            head = bytearray(LENGTH.size)
            recv_into_exactly(sock, memoryview(head))
            recv_into_exactly(sock, buf[: LENGTH.unpack(head)[0]])
            sock.sendall(LENGTH.pack(nbytes))
            sock.sendall(buf)


def recv_into_exactly(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError(f"the peer closed after {got} of {len(view)} bytes")
        got += n


def copy(args: argparse.Namespace) -> list[float]:
    """The sending end: seconds of each of ``args.reps`` copies to every receiver."""
    tls = tls_context(node_paths(args.pki, "coordinator", Role.SERVER)) if args.pki else None
    payload = memoryview(LENGTH.pack(args.bytes) + os.urandom(args.bytes))
    buffers = [memoryview(bytearray(len(payload))) for _ in range(args.clients)]
    seconds = []
    with ExitStack() as stack:
        listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
        conns = []
        for _ in range(args.clients):
            conn = listener.accept()[0]
            conn = tls.wrap_socket(conn, server_side=True) if tls else conn
            conns.append(stack.enter_context(conn))
        for _ in range(args.reps):
            threads = [
                threading.Thread(target=send_and_receive, args=(c, payload, b))
                for c, b in zip(conns, buffers, strict=True)
            ]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds.append(time.perf_counter() - start)
    return seconds


def send_and_receive(sock: socket.socket, payload: memoryview, into: memoryview) -> None:
    sock.sendall(payload)
    recv_into_exactly(sock, into)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pki", type=Path, default=None, help="mutual TLS with this PKI")
    seconds = copy(parser.parse_args(argv))
    sys.stdout.write(json.dumps({"seconds": seconds}) + "\n")


if __name__ == "__main__":
    main()
