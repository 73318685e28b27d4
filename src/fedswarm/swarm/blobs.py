"""Update blobs: stored by their sha256, served to peers and fetched from them over mutual TLS.

A peer serves ``GET /blobs/<sha256>`` from its folder to any peer of the federation (chain
checked in the handshake, then role and revocation by the
:class:`~fedswarm.security.pki.TrustStore`); a fetched blob is kept only if its bytes hash
to the name the ledger gave. The ledger holds the hashes, the blobs hold the megabytes.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fedswarm.security.pki import PeerRejected, Rejection, Role, TrustStore
from fedswarm.swarm.etcd import TlsFiles

__all__ = ["BlobError", "BlobServer", "BlobStore", "fetch_blob"]

_SHA = re.compile(r"[0-9a-f]{64}")


class BlobError(RuntimeError):
    """A blob no peer could provide with the bytes its hash names."""


@dataclass(frozen=True)
class BlobStore:
    folder: Path

    def path(self, sha: str) -> Path:
        if not _SHA.fullmatch(sha):
            raise BlobError(f"{sha!r} is not a sha256")
        return self.folder / sha

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{sha}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.path(sha))
        return sha

    def get(self, sha: str) -> bytes | None:
        try:
            data = self.path(sha).read_bytes()
        except FileNotFoundError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha else None


def _context(tls: TlsFiles, purpose: ssl.Purpose) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose, cafile=str(tls.ca))
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    if purpose is ssl.Purpose.CLIENT_AUTH:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


_IO_TIMEOUT_S = 10.0


class _TlsServer(ThreadingHTTPServer):
    """TLS per connection, in that connection's thread: a handshake that stalls (a peer cut
    off by a partition mid-handshake) costs its own thread, never the accept loop."""

    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(_IO_TIMEOUT_S)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # refused in the handshake (foreign CA, no certificate) or cut off
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()  # the wrapper owns the connection now (socketserver closes the raw one)


class BlobServer:
    """Serves a :class:`BlobStore` to federation peers on ``host:port`` (a thread)."""

    def __init__(self, store: BlobStore, address: str, tls: TlsFiles) -> None:
        trust = TrustStore.load(tls.ca.parent) if tls.crl.exists() else None
        host, port = address.rsplit(":", 1)

        class Handler(BaseHTTPRequestHandler):
            timeout = _IO_TIMEOUT_S

            def do_GET(self) -> None:
                cert = self.connection.getpeercert(binary_form=True)
                try:
                    if trust is None or cert is None:
                        raise PeerRejected(Rejection.MALFORMED, "no trust store or certificate")
                    trust.verify(cert, Role.PEER)
                except PeerRejected as exc:
                    self.send_error(403, str(exc))
                    return
                data = store.get(self.path.removeprefix("/blobs/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # one line per fetch would drown the peer's log

        self.server = _TlsServer((host, int(port)), Handler)
        self.server.context = _context(tls, ssl.Purpose.CLIENT_AUTH)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fetch_blob(sha: str, sources: Sequence[str], tls: TlsFiles, timeout: float = 30) -> bytes:
    """The blob named ``sha`` from the first of ``sources`` (host:port) that has it intact."""
    ctx = _context(tls, ssl.Purpose.SERVER_AUTH)
    problems = []
    for source in sources:
        host, port = source.rsplit(":", 1)
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=timeout)
        try:
            conn.request("GET", f"/blobs/{sha}")
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            problems.append(f"{source}: {exc}")
            continue
        finally:
            conn.close()
        if resp.status == 200 and hashlib.sha256(data).hexdigest() == sha:
            return data
        problems.append(f"{source}: HTTP {resp.status}" if resp.status != 200 else "bad bytes")
    raise BlobError(f"blob {sha[:12]}: no peer had it intact ({'; '.join(problems)})")
