"""An etcd member per peer, and a small client of etcd's HTTP/JSON gateway.

Why etcd (Debian's ``etcd-server``) and not an embedded Raft library such as ``pysyncobj``:
etcd authenticates its members and clients by mutual TLS with certificates from a CA we
choose, and checks a CRL on every connection (``--peer-crl-file``, ``--client-crl-file``),
so the federation's PKI *is* its membership control with no code of ours; pysyncobj's
transport is plain TCP with an optional shared password, so PKI membership would need a
TLS tunnel and a revocation check written here. etcd is also the Raft implementation with
the most production use (Kubernetes), with leader failover and catch-up of a restarted or
lagging member built in. We write no consensus: only the command line of a member and
~100 lines of HTTP client.

Who gets in: foreign-CA and revoked certificates are refused on both ports. Only peer
certificates can be *members*: every fedswarm peer certificate names ``localhost`` (see
:func:`fedswarm.security.pki.issue`) and carries serverAuth and clientAuth, and members must
name ``localhost`` (``--peer-cert-allowed-hostname``). The same check on the client port
(``--client-cert-allowed-hostname``) breaks etcd 3.4's JSON gateway (its internal dial is
refused), so a *client*-role certificate of the same CA can reach the client port; what it
could append is no ledger record, since every reader accepts records only from members whose
membership record carries a peer certificate (:class:`fedswarm.swarm.ledger.Chain`).

The ledger in etcd: ``<prefix>/rec/<seq, 12 digits>`` holds each record's line and
``<prefix>/head`` the last one's ``seq digest``. An append is one transaction: if the head is
what the writer last read, put the record and the new head; else the writer re-reads and
decides again. So records form one chain in Raft's commit order.
"""

from __future__ import annotations

import base64
import ctypes
import http.client
import json
import os
import signal
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EtcdClient", "EtcdError", "EtcdMember", "TlsFiles"]


class EtcdError(RuntimeError):
    """etcd could not be reached or refused the request (retry: it may be electing)."""


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    crl: Path


@dataclass(frozen=True)
class EtcdMember:
    """The etcd process a peer starts: ``client`` and ``peer`` are ``host:port``."""

    name: str
    data_dir: Path
    client: str
    peer: str
    cluster: Sequence[tuple[str, str]]  # every member's (name, peer host:port), itself included
    tls: TlsFiles
    token: str = "fedswarm"  # the cluster's identity: members of another never join it

    def command(self) -> list[str]:
        t = self.tls
        cluster = ",".join(f"{n}=https://{a}" for n, a in self.cluster)
        return [
            "etcd",
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls=https://{self.client}",
            f"--advertise-client-urls=https://{self.client}",
            f"--listen-peer-urls=https://{self.peer}",
            f"--initial-advertise-peer-urls=https://{self.peer}",
            f"--initial-cluster={cluster}",
            f"--initial-cluster-token={self.token}",
            "--initial-cluster-state=new",
            *(f"--{side}cert-file={t.cert}" for side in ("", "peer-")),
            *(f"--{side}key-file={t.key}" for side in ("", "peer-")),
            f"--trusted-ca-file={t.ca}",
            f"--peer-trusted-ca-file={t.ca}",
            "--client-cert-auth",
            "--peer-client-cert-auth",
            f"--client-crl-file={t.crl}",
            f"--peer-crl-file={t.crl}",
            "--peer-cert-allowed-hostname=localhost",
            # loopback timings: a dead leader is replaced in well under a second
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--log-level=error",
        ]

    def start(self, log: Path) -> subprocess.Popen[bytes]:
        """Start the member; it dies with this process (PR_SET_PDEATHSIG), even on kill -9."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            return subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    os.setpgrp()  # a terminal's ^C reaches the peer, which then stops its member itself


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass
class EtcdClient:
    """Requests to one member over mutual TLS (the member forwards writes to the leader)."""

    address: str  # host:port of the member's client URL
    tls: TlsFiles
    timeout: float = 5.0

    def __post_init__(self) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.tls.ca))
        ctx.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        self._ctx = ctx
        self._conn: http.client.HTTPSConnection | None = None

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        host, port = self.address.rsplit(":", 1)
        try:
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(
                    host, int(port), context=self._ctx, timeout=self.timeout
                )
            self._conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = self._conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise EtcdError(f"etcd at {self.address}: {exc}") from None
        if resp.status != 200:
            raise EtcdError(f"etcd at {self.address}: HTTP {resp.status} {data[:200]!r}")
        out: dict[str, Any] = json.loads(data)
        return out

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def get(self, key: bytes) -> bytes | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return base64.b64decode(kvs[0]["value"]) if kvs else None

    def range_from(self, start: bytes, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Keys ``>= start`` under ``prefix``, in key order, with their values."""
        body = {"key": _b64(start), "range_end": _b64(_prefix_end(prefix))}
        kvs = self.call("/v3/kv/range", body).get("kvs", [])
        return [(base64.b64decode(kv["key"]), base64.b64decode(kv["value"])) for kv in kvs]

    def put_if(self, key: bytes, expected: bytes | None, puts: dict[bytes, bytes]) -> bool:
        """Put ``puts`` if ``key`` holds ``expected`` (None: does not exist); whether it did."""
        compare: dict[str, Any] = {"key": _b64(key), "result": "EQUAL"}
        if expected is None:
            compare |= {"target": "CREATE", "create_revision": "0"}
        else:
            compare |= {"target": "VALUE", "value": _b64(expected)}
        success = [{"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in puts.items()]
        reply = self.call("/v3/kv/txn", {"compare": [compare], "success": success})
        return bool(reply.get("succeeded", False))

    def status(self) -> dict[str, Any]:
        """The member's view: its id (``header.member_id``) and the ``leader``'s."""
        return self.call("/v3/maintenance/status", {})
