"""``fedswarm server`` and ``fedswarm client`` failing as a new user meets them, through the
command line (in process): one line that says what failed and what to do, and the exit code
(1: setup, 3: a certificate refused), never a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs import issue_expired
from fedswarm.deploy.node import find_node, peer_check, tls_identity
from fedswarm.security.pki import Role, TrustStore, init_ca, issue
from fedswarm.transport.grpc.frames import RunSpec
from fedswarm.transport.grpc.server import GrpcServerTransport
from test_cli import exited, flat, invoke


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root)
    issue(root, "coordinator", Role.SERVER)
    issue(root, "00000", Role.CLIENT)
    issue_expired(root, "00001")
    return root


@pytest.fixture
def coordinator(pki: Path) -> Iterator[str]:
    """A listening coordinator's address (it never plays a round)."""
    check = peer_check(TrustStore.load(pki), Role.CLIENT)
    server = GrpcServerTransport(
        tls_identity(find_node(pki, Role.SERVER)), check, run=RunSpec("r", "")
    )
    port = server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=0)


def test_server_on_a_port_another_program_holds_exits_1_with_one_line(
    pki: Path, tmp_path: Path
) -> None:
    config = tmp_path / "federation.toml"
    config.write_text("rounds = 1\n[data]\nnum_clients = 2\n")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = invoke(
            "server", str(config), "--pki", str(pki), "--listen", f"127.0.0.1:{port}",
            "--state", str(tmp_path / "state"), columns=80,
        )  # fmt: skip
    assert exited(result, 1), result.output
    assert "Traceback" not in result.output
    [line] = [x for x in result.output.splitlines() if x.strip()]
    assert line.startswith(f"server error: cannot listen on 127.0.0.1:{port}: the port is in use")


def test_client_with_a_missing_npz_exits_1_naming_it(pki: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.npz"
    result = invoke(
        "client", "--server", "127.0.0.1:9", "--pki", str(pki), "--name", "00000",
        "--data", str(missing),
    )  # fmt: skip
    assert exited(result, 1), result.output
    assert f"client error: --data {missing}: no such file" in flat(result.output)


def test_client_with_an_expired_certificate_exits_3_saying_so(pki: Path, coordinator: str) -> None:
    result = invoke("client", "--server", coordinator, "--pki", str(pki), "--name", "00001")
    assert exited(result, 3), result.output
    out = flat(result.output)
    assert out.startswith("TLS handshake failed: ")
    assert "does not accept this participant's certificate" in out
    assert "certificate of '00001'" in out
    assert "expired at" in out
