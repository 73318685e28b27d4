"""Reading gRPC's connection failures and failed binds: the status details below are what
grpcio 1.85 reports on loopback for each case (recorded from real handshakes)."""

from __future__ import annotations

import socket

import pytest

from fedswarm.transport.grpc.diagnose import (
    DialProblem,
    host_port,
    listen_error,
    read_dial_failure,
)

_FAILED = "failed to connect to all addresses; last error: "
DETAILS = {
    "participant trusts another CA": (
        _FAILED + "UNKNOWN: ipv4:127.0.0.1:37733: Tls handshake failed (TSI_PROTOCOL_FAILURE): "
        "SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: "
        "unable to get local issuer certificate: OK",
        DialProblem.UNTRUSTED_COORDINATOR,
        "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
        "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate",
    ),
    "coordinator's certificate names another host": (
        _FAILED + "UNKNOWN: ipv4:127.0.0.2:32779: Custom verification check failed with error: "
        "UNAUTHENTICATED: Hostname Verification Check failed.",
        DialProblem.UNTRUSTED_COORDINATOR,
        "Custom verification check failed with error: UNAUTHENTICATED: Hostname Verification "
        "Check failed.",
    ),
    "coordinator refuses our certificate": (
        _FAILED + "UNAVAILABLE: ipv4:127.0.0.1:37733: Socket closed",
        DialProblem.CLOSED_IN_HANDSHAKE,
        "Socket closed",
    ),
    "coordinator down": (
        _FAILED + "UNKNOWN: ipv4:127.0.0.1:53791: Failed to connect to remote host: "
        "Connection refused",
        DialProblem.UNREACHABLE,
        "Failed to connect to remote host: Connection refused",
    ),
    "ipv6 address": (
        _FAILED + "UNKNOWN: ipv6:%5B::1%5D:8443: Failed to connect to remote host: "
        "Connection refused",
        DialProblem.UNREACHABLE,
        "Failed to connect to remote host: Connection refused",
    ),
    "unknown host": (
        _FAILED + "UNAVAILABLE: DNS resolution failed for nosuch.invalid:8443",
        DialProblem.UNREACHABLE,
        "DNS resolution failed for nosuch.invalid:8443",
    ),
}


@pytest.mark.parametrize(("details", "problem", "reason"), DETAILS.values(), ids=DETAILS.keys())
def test_a_connection_failure_is_sorted_and_its_reason_kept(
    details: str, problem: DialProblem, reason: str
) -> None:
    failure = read_dial_failure(details)
    assert failure is not None
    assert (failure.problem, failure.reason) == (problem, reason)
    assert reason in failure.explain("coordinator:8443")


def test_a_stream_that_broke_after_connecting_is_not_a_dial_failure() -> None:
    assert read_dial_failure("Socket closed") is None
    assert read_dial_failure("certificate of 'mallory' (serial 7f) is revoked") is None


def test_each_problem_says_what_to_check() -> None:
    def explained(case: str) -> str:
        failure = read_dial_failure(DETAILS[case][0])
        assert failure is not None
        return failure.explain("c:1")

    assert "CA certificate it trusts" in explained("participant trusts another CA")
    assert "expired, or not a client certificate" in explained(
        "coordinator refuses our certificate"
    )
    assert explained("coordinator down").startswith("cannot reach c:1: ")


def test_a_taken_port_is_named_as_taken() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        error = listen_error("127.0.0.1", port)
    assert str(error).startswith(f"cannot listen on 127.0.0.1:{port}: the port is in use")
    assert host_port("::1", 8443) == "[::1]:8443"
    assert host_port("0.0.0.0", 8443) == "0.0.0.0:8443"
